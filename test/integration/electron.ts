// Runs the same in-host suite (index.ts) in a downloaded VS Code (Electron), for machines that
// can reach update.code.visualstudio.com. Offline machines use `npm run test:vscode`.
// Usage: npm run build && npm run test:electron   (VSCODE_VERSION=stable to try the newest)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';

const FIXTURES = ['chelsea.png', 'coffee.png', 'astronaut.png', 'truncated.jpg'];

async function main(): Promise<void> {
  // This file runs as dist/test/integration/electron.js.
  const extensionDevelopmentPath = path.resolve(__dirname, '../../..');
  const extensionTestsPath = path.resolve(__dirname, 'index.js');
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-electron-ws-'));
  const fixtures = path.resolve(extensionDevelopmentPath, '../shared/fixtures/images');
  for (const name of FIXTURES) {
    const from = path.join(fixtures, name);
    if (fs.existsSync(from)) fs.copyFileSync(from, path.join(workspace, name));
  }
  fs.writeFileSync(path.join(workspace, 'notes.txt'), 'not an image\n');
  try {
    await runTests({
      version: process.env.VSCODE_VERSION ?? '1.100.3',
      extensionDevelopmentPath,
      extensionTestsPath,
      launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
    });
  } finally {
    fs.rmSync(workspace, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error('Electron test run failed:', error);
  process.exit(1);
});

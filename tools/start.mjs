#!/usr/bin/env node
// `npm start`: try the extension in a real VS Code in your browser, offline.
// Builds dist/ if missing, installs code-server if needed (tools/setup-code-server.sh),
// opens a sample folder of images (or the folder you name) with the extension loaded
// from this repo, and prints the URL. Ctrl-C stops it.
// Usage: npm start [-- [folder] [--port 8080] [--host 127.0.0.1]]
// While it runs, `npm run watch` + "Developer: Reload Window" picks up your changes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, startCodeServer, workbenchUrl } from '../test/vscode/harness.mjs';

const args = process.argv.slice(2);
function option(name) {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const [, value] = args.splice(i, 2);
  return value;
}
const port = option('--port') ?? process.env.PORT;
const host = option('--host') ?? '127.0.0.1';
const folderArg = args.find((a) => !a.startsWith('--'));

function run(command, commandArgs) {
  console.log(`> ${command} ${commandArgs.join(' ')}`);
  const result = spawnSync(command, commandArgs, { cwd: repoRoot, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`npm start: \`${command} ${commandArgs.join(' ')}\` failed`);
    process.exit(1);
  }
}

if (!fs.existsSync(path.join(repoRoot, 'dist', 'extension.js'))) run(process.execPath, ['esbuild.js']);
run('bash', [path.join(repoRoot, 'tools', 'setup-code-server.sh')]);

function sampleWorkspace() {
  const dir = path.join(os.tmpdir(), 'feature-maps-sample');
  fs.mkdirSync(dir, { recursive: true });
  const fixtures = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'images');
  if (fs.existsSync(fixtures)) {
    for (const name of fs.readdirSync(fixtures)) {
      if (/\.(png|jpe?g|gif|tiff?|bmp|webp)$/i.test(name) && !fs.existsSync(path.join(dir, name))) {
        fs.copyFileSync(path.join(fixtures, name), path.join(dir, name));
      }
    }
  } else {
    console.log(`(no sample images at ${fixtures}: drop your own images into ${dir})`);
  }
  return dir;
}

const workspace = folderArg ? path.resolve(folderArg) : sampleWorkspace();
if (!fs.statSync(workspace, { throwIfNoEntry: false })?.isDirectory()) {
  console.error(`npm start: ${workspace} is not a folder`);
  process.exit(1);
}

const server = await startCodeServer({
  workspace,
  extensionDevelopmentPath: repoRoot,
  label: 'start',
  host,
  port: port ? Number(port) : undefined,
});

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping code-server…');
    await server.stop();
    process.exit(0);
  });
}

console.log(`
Feature Maps is running in VS Code (code-server) on folder ${workspace}

  Open: ${workbenchUrl(server)}

Right-click an image in the Explorer → "Show Feature Maps", or F1 → "Feature Maps: Show Feature Maps".
Open that exact URL: it carries the extension's path (code-server has no --extensionDevelopmentPath flag).
Log: ${server.logFile}
Ctrl-C stops it.`);

// Stay in the foreground until Ctrl-C.
setInterval(() => {}, 1 << 30);

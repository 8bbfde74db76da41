// Entry point of the in-host suite: VS Code loads this file (extensionTestsPath) inside the
// extension host and calls run(). Used by both hosts: code-server (test/vscode/run.mjs) and
// Electron (electron.ts). esbuild compiles test/integration/*.ts to dist/test/integration/*.js.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { format } from 'node:util';
import Mocha from 'mocha';

// Reporters print through Base.consoleLog with printf-style arguments; the web workbench
// forwards console arguments unformatted, so format them here.
const base = Mocha.reporters.Base as unknown as { consoleLog: (...args: unknown[]) => void };
base.consoleLog = (...args: unknown[]) => console.log(format(...args));

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', color: false, timeout: 60_000, reporter: 'spec' });
  const grep = process.env.FEATURE_MAPS_TEST_GREP;
  if (grep) mocha.grep(grep);
  const files = fs
    .readdirSync(__dirname)
    .filter((file) => file.endsWith('.test.js'))
    .sort();
  for (const file of files) mocha.addFile(path.join(__dirname, file));

  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      // test/vscode/run.mjs reads this line to add the counts to its total.
      console.log(`FEATURE_MAPS_RESULTS ${JSON.stringify({ passes: runner.stats?.passes ?? 0, failures })}`);
      if (failures > 0) reject(new Error(`${failures} integration test(s) failed`));
      else resolve();
    });
  });
}

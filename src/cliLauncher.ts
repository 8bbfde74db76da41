#!/usr/bin/env node
// dist/cli.js, the feature-maps command: runs the CLI (src/cli.ts, dist/cli-main.js). On Linux it
// first starts itself again with glibc's malloc asking for huge pages (see hugePages.ts), which
// must be set before a process starts: one more Node start (~0.1 s) saves several tenths.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { wantsHugePages, withHugePages } from './engine/hugePages';

function runHere(): void {
  // Left to Node at run time (not bundled into this file): the CLI is its own bundle.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a path known at run time
  require(path.join(__dirname, 'cli-main.js'));
}

if (wantsHugePages(process.env)) {
  const run = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: withHugePages(process.env),
  });
  if (run.error) {
    runHere();
  } else if (run.signal) {
    process.kill(process.pid, run.signal);
  } else {
    process.exitCode = run.status ?? 1;
  }
} else {
  runHere();
}

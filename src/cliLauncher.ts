#!/usr/bin/env node
// dist/cli.js, the feature-maps command: runs the CLI (src/cli.ts, dist/cli-main.js). On Linux it
// first starts itself again with glibc's malloc keeping freed memory for reuse (see
// mallocTuning.ts), which must be set before a process starts: one more Node start (~0.1 s).
// dist/feature-maps (src/feature-maps.sh) sets it in the shell instead, with no second start,
// where there is a POSIX shell.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { LAUNCHER_FD_ENV, wantsMallocTuning, withMallocTuning } from './engine/mallocTuning';

function runHere(): void {
  // Left to Node at run time (not bundled into this file): the CLI is its own bundle.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a path known at run time
  require(path.join(__dirname, 'cli-main.js'));
}

if (wantsMallocTuning(process.env)) {
  const run = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    // fd 3: a socket the CLI watches, so that it ends with this process however it ends (even killed).
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
    env: { ...withMallocTuning(process.env), [LAUNCHER_FD_ENV]: '3' },
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

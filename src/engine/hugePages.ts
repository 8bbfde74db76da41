// Fresh memory costs the kernel a page fault per 4 KB page the first time it is touched, and on
// some machines (virtual ones above all) a fault is dear: onnxruntime's session setup and first
// pass touch tens of MB of new memory. glibc's malloc can ask for transparent huge pages (2 MB,
// 512 times fewer faults) where the kernel grants them on request (THP "madvise", the usual
// default): a process started with GLIBC_TUNABLES=glibc.malloc.hugetlb=1. The engine process
// and the CLI start that way on Linux. On the 2-core benchmark VM (2026-12-03) a MobileNetV2
// session was made in ~110 ms instead of ~280 and its first pass took ~30 ms instead of ~225.
// Other C libraries (musl) ignore the variable; a user's own glibc.malloc.hugetlb setting wins.

import * as net from 'node:net';

const TUNABLE = 'glibc.malloc.hugetlb';

/** Whether a process started with `env` would not yet ask glibc for huge pages (Linux only). */
export function wantsHugePages(env: NodeJS.ProcessEnv, platform = process.platform): boolean {
  return platform === 'linux' && !(env.GLIBC_TUNABLES ?? '').includes(TUNABLE);
}

/** `env` with glibc's malloc asking for huge pages, beside any tunables it sets already. */
export function withHugePages(env: NodeJS.ProcessEnv, platform = process.platform): NodeJS.ProcessEnv {
  if (!wantsHugePages(env, platform)) return env;
  const tunables = [env.GLIBC_TUNABLES, `${TUNABLE}=1`].filter(Boolean).join(':');
  return { ...env, GLIBC_TUNABLES: tunables };
}

/** Set by the CLI's launcher for the CLI it starts: the fd of a socket whose end means the launcher is gone. */
export const LAUNCHER_FD_ENV = 'FEATURE_MAPS_LAUNCHER_FD';

/**
 * In a CLI started by the launcher: ends this process as soon as the launcher is gone (killed,
 * even with SIGKILL, which it cannot pass on), as if it had been killed itself.
 */
export function endWithLauncher(): void {
  const fd = Number(process.env[LAUNCHER_FD_ENV]);
  delete process.env[LAUNCHER_FD_ENV];
  if (!Number.isInteger(fd) || fd < 3) return;
  const socket = new net.Socket({ fd, readable: true, writable: false });
  const gone = () => process.kill(process.pid, 'SIGKILL');
  socket.on('end', gone);
  socket.on('error', gone);
  socket.resume();
  socket.unref();
}

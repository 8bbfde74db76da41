// Fresh memory costs the kernel a page fault per 4 KB page the first time it is touched, and on
// some machines (virtual ones above all) a fault is dear: onnxruntime's session setup and first
// pass touch tens of MB of new memory. glibc's malloc can ask for transparent huge pages (2 MB,
// 512 times fewer faults) where the kernel grants them on request (THP "madvise", the usual
// default): a process started with GLIBC_TUNABLES=glibc.malloc.hugetlb=1. The engine process
// and the CLI start that way on Linux. On the 2-core benchmark VM (2026-12-03) a MobileNetV2
// session was made in ~110 ms instead of ~280 and its first pass took ~30 ms instead of ~225.
//
// With it, glibc.malloc.mmap_threshold=2 MB: every buffer of 2 MB or more (an activation, mostly)
// is a mapping of its own, with huge pages from its first byte, given back when freed. Without
// it glibc raises that threshold to the size of the largest buffer freed so far (a model file
// read at open, up to 32 MB), so activations come from its heap instead, where huge pages were
// slow on a 2-core AMD EPYC family 25 VM (2026-12-04, engine bench, catalogue MobileNetV2, every
// layer, median of 10 passes per process): 88–103 ms a pass in each of 5 processes, against
// 22–39 ms in 7 of 8 processes with the threshold fixed (87 ms in one), and 36–39 ms with no
// huge pages; later that day, three alternating pairs: 68, 65, 15 ms without it, 18, 24, 67 ms
// with it. VGG16 (159–277 ms against 168–250) and the bundled model (21–91 against 20–66)
// varied from one process to the next either way.
// Other C libraries (musl) ignore the variable; a user's own glibc.malloc settings win.

import * as net from 'node:net';

const TUNABLE = 'glibc.malloc.hugetlb';
/** Buffers below this come from the heap, above it from a mapping of their own: glibc's maximum, 32 MB. */
const MMAP_THRESHOLD = ['glibc.malloc.mmap_threshold', 32 * 1024 * 1024] as const;
/** Free heap memory kept, not given back, up to 1 GB (a fixed mmap_threshold would make it 128 KB). */
const TRIM_THRESHOLD = ['glibc.malloc.trim_threshold', 1024 * 1024 * 1024] as const;

/** Whether a process started with `env` would not yet ask glibc for huge pages (Linux only). */
export function wantsHugePages(env: NodeJS.ProcessEnv, platform = process.platform): boolean {
  return platform === 'linux' && !(env.GLIBC_TUNABLES ?? '').includes(TUNABLE);
}

/**
 * `env` with glibc's malloc asking for huge pages, taking buffers up to 32 MB from its heap and
 * keeping what is freed there, beside any tunables it sets already (its own thresholds stay).
 */
export function withHugePages(env: NodeJS.ProcessEnv, platform = process.platform): NodeJS.ProcessEnv {
  if (!wantsHugePages(env, platform)) return env;
  const own = env.GLIBC_TUNABLES ?? '';
  const added = [
    `${TUNABLE}=1`,
    ...[MMAP_THRESHOLD, TRIM_THRESHOLD].filter(([name]) => !own.includes(name)).map(([name, n]) => `${name}=${n}`),
  ];
  return { ...env, GLIBC_TUNABLES: [own, ...added].filter(Boolean).join(':') };
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

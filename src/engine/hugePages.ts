// Fresh memory costs the kernel a page fault per 4 KB page the first time it is touched, and on
// some machines (virtual ones above all) a fault is dear: onnxruntime's session setup and first
// pass touch tens of MB of new memory. glibc's malloc can ask for transparent huge pages (2 MB,
// 512 times fewer faults) where the kernel grants them on request (THP "madvise", the usual
// default): a process started with GLIBC_TUNABLES=glibc.malloc.hugetlb=1. The engine process
// and the CLI start that way on Linux. On the 2-core benchmark VM (2026-12-03) a MobileNetV2
// session was made in ~110 ms instead of ~280 and its first pass took ~30 ms instead of ~225.
//
// With it, buffers up to 32 MB (glibc's largest mmap_threshold: every activation of the usual
// models) come from glibc's heap, and what is freed there is kept (trim_threshold 1 GB) for the
// next buffers instead of given back. The engine process collects garbage as soon as its
// activation cache lets an image go (engineProcess.ts), so once the cache is full a pass's outputs
// reuse the memory of the images let go: no fresh page at all. Until 2026-12-05 every buffer of
// 2 MB or more was a mapping of its own instead, given back when freed, so every pass was fresh
// memory. Engine bench, every layer, median of 10 passes, alternating processes:
// - 2-core AMD EPYC family 25 VM, 2026-12-04: VGG16 255–304 ms before, 156–166 ms after (cache
//   of 128 MB); fresh huge pages cost about 2 ms per MB there, fresh 4 KB pages 0.4.
// - 2-core AMD EPYC family 26 VM, 2026-12-05 (cache of 512 MB, three processes each way): VGG16's
//   passes 111–161 ms before; after, 81–97 ms once the cache was full but 141–217 ms while it
//   filled (fresh heap is dearer there than fresh mappings); MobileNetV2 12.7–16.4 ms median
//   against 14.7–20.7, the bundled model 12.8–35.9 against 16.0–18.3. So the cache is 256 MB.
// Before 2026-12-04 glibc raised the threshold itself to the largest buffer freed (a model file
// read at open), trimming its heap as it went: MobileNetV2's pass took 88–103 ms in each of 5
// processes on the family 25 VM, 22–39 ms in 7 of 8 with the threshold fixed.
// Other C libraries (musl) ignore the variable; a user's own glibc.malloc settings win.

import * as net from 'node:net';

const TUNABLE = 'glibc.malloc.hugetlb';
/** Buffers below this come from the heap, above it from a mapping of their own: glibc's maximum, 32 MB. */
const MMAP_THRESHOLD = ['glibc.malloc.mmap_threshold', 32 * 1024 * 1024] as const;
/** Free heap memory kept, not given back, up to 1 GB (a fixed mmap_threshold would make it 128 KB). */
const TRIM_THRESHOLD = ['glibc.malloc.trim_threshold', 1024 * 1024 * 1024] as const;
/**
 * One heap for every thread (the engine process, which makes sessions in a worker thread too).
 * glibc gives other threads heaps of their own, made of 64 MB mappings that neither the huge
 * pages nor the thresholds above help: VGG16's session, made in the engine's session worker
 * (sessionWorker.ts), took 0.8–1.1 s there against 0.23–0.32 s on the main thread, and
 * 0.24–0.50 s with one heap (2-core AMD EPYC family 26 VM, 2026-12-05, 5 processes each).
 */
const ARENA_MAX = ['glibc.malloc.arena_max', 1] as const;

/** Whether a process started with `env` would not yet ask glibc for huge pages (Linux only). */
export function wantsHugePages(env: NodeJS.ProcessEnv, platform = process.platform): boolean {
  return platform === 'linux' && !(env.GLIBC_TUNABLES ?? '').includes(TUNABLE);
}

/**
 * `env` with glibc's malloc asking for huge pages, taking buffers up to 32 MB from its heap and
 * keeping what is freed there, beside any tunables it sets already (its own thresholds stay).
 * `oneHeap`: every thread's buffers from that one heap (ARENA_MAX).
 */
export function withHugePages(
  env: NodeJS.ProcessEnv,
  platform = process.platform,
  { oneHeap = false }: { oneHeap?: boolean } = {},
): NodeJS.ProcessEnv {
  if (!wantsHugePages(env, platform)) return env;
  const own = env.GLIBC_TUNABLES ?? '';
  const added = [
    `${TUNABLE}=1`,
    ...[MMAP_THRESHOLD, TRIM_THRESHOLD, ...(oneHeap ? [ARENA_MAX] : [])]
      .filter(([name]) => !own.includes(name))
      .map(([name, n]) => `${name}=${n}`),
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

// How glibc's malloc serves the engine process and the CLI (Linux): a pass's outputs are tens of
// MB (onnxruntime-node copies each into a new buffer), and fresh memory is dear on some machines,
// virtual ones above all, so the aim is to reuse memory rather than fault in new pages.
// - Buffers up to 32 MB (glibc's largest mmap_threshold: every activation of the usual models)
//   come from glibc's heap, and what is freed there is kept (trim_threshold 1 GB) for the next
//   buffers instead of given back. The engine process collects garbage as soon as its activation
//   cache lets an image go (engineProcess.ts), so once the cache is full a pass's outputs reuse
//   the memory of the images let go: no fresh page at all. Until 2026-12-05 every buffer of 2 MB
//   or more was a mapping of its own instead, given back when freed, so every pass was fresh
//   memory: VGG16's every-layer pass took 255–304 ms median before, 156–166 ms after (engine
//   bench, 2-core AMD EPYC family 25 VM, 2026-12-04, a cache of 128 MB then). Before 2026-12-04
//   glibc raised the threshold itself to the largest buffer freed (a model file read at open),
//   trimming its heap as it went.
// - One heap for every thread (the engine process makes sessions in a worker thread too: see
//   ARENA_MAX).
// - No transparent huge pages (glibc.malloc.hugetlb=1), which the engine process and the CLI
//   asked for from 2026-12-03 to 2026-12-06. On these VMs fresh huge pages cost about 3 ms per
//   MB at times, fresh 4 KB pages 0.35 ms, with no compaction in /proc/vmstat. Most likely the
//   cause is the kernel handing free 8 MB blocks back to the host (Firecracker,
//   page_reporting.page_reporting_order=11): a huge page is carved from such a block, which the
//   host must back again at first touch, while 4 KB pages come first from smaller free blocks
//   it still backs. A process growing its heap with huge pages was either as fast or several
//   times slower, from one run to the next. Measured on a 2-core Intel Xeon VM, 2026-12-06:
//   - onnxruntime alone, the bundled MobileNetV2 with every output kept (83 MB a pass): passes
//     while the heap grew: with huge pages 54–70 ms for the first few, then 230–310 ms (3
//     processes of 3); without, 73–110 ms; 45–55 ms either way once memory was reused.
//   - the engine bench, Keras' MobileNetV2, every layer, 10 passes while the cache filled: medians
//     29, 30 and 103 ms with huge pages (passes of 25–30 or 98–112 ms), 31, 38 and 34 without.
//   - the real UI (test/bench/ui.mjs, this build against the one before, alternating, three runs
//     each), VGG16: cold first use 1,741–1,933 ms with huge pages, 1,049–1,379 without; a
//     folder used before 688–751 against 600–625; warm median 237–329 against 186–220; a
//     cached image 146–177 against 130–251. The bundled model: cold first use 670–743 against
//     576–729; warm median 112–151 against 151–165 and a cached image 103–144 against 128–164,
//     a little slower. The CLI on the bundled model: 362–374 ms against 350–401 (six each).
//   The same held on an AMD EPYC family 25 VM (2026-12-03/04: VGG16's every-layer pass 233–241 ms
//   median with huge pages, 173–177 without). On a family 26 VM fresh memory was dear either way
//   (1.8 ms per MB with huge pages, 2.6 without, 2026-12-05), and on the VM where huge pages were
//   first measured (2026-12-03, before the fixed thresholds above) they took a MobileNetV2
//   session from 280 to 110 ms. Huge pages risk several times slower passes; 4 KB pages at worst
//   about 1.4 times dearer fresh memory. `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` in the
//   environment asks for them anyway (the thresholds below are still added).
// A user's own glibc.malloc settings win. Other C libraries (musl) ignore the variable.

import * as net from 'node:net';

/** Buffers below this come from the heap, above it from a mapping of their own: glibc's maximum, 32 MB. */
const MMAP_THRESHOLD = ['glibc.malloc.mmap_threshold', 32 * 1024 * 1024] as const;
/** Free heap memory kept, not given back, up to 1 GB (a fixed mmap_threshold would make it 128 KB). */
const TRIM_THRESHOLD = ['glibc.malloc.trim_threshold', 1024 * 1024 * 1024] as const;
/**
 * One heap for every thread (the engine process, which makes sessions in a worker thread too).
 * glibc gives other threads heaps of their own, made of 64 MB mappings that the thresholds above
 * do not help: VGG16's session, made in the engine's session worker (sessionWorker.ts), took
 * 0.8–1.1 s there against 0.23–0.32 s on the main thread, and 0.24–0.50 s with one heap (2-core
 * AMD EPYC family 26 VM, 2026-12-05, 5 processes each, with huge pages).
 */
const ARENA_MAX = ['glibc.malloc.arena_max', 1] as const;

type Tunable = readonly [name: string, value: number];

function missing(env: NodeJS.ProcessEnv, tunables: readonly Tunable[]): Tunable[] {
  const own = env.GLIBC_TUNABLES ?? '';
  return tunables.filter(([name]) => !own.includes(name));
}

/** Whether a process started with `env` would still lack the CLI's malloc tunables (Linux only). */
export function wantsMallocTuning(env: NodeJS.ProcessEnv, platform = process.platform): boolean {
  return platform === 'linux' && missing(env, [MMAP_THRESHOLD, TRIM_THRESHOLD]).length > 0;
}

/**
 * `env` with glibc's malloc taking buffers up to 32 MB from its heap and keeping what is freed
 * there, beside any tunables it sets already (its own thresholds stay). `oneHeap`: every
 * thread's buffers from that one heap (ARENA_MAX).
 */
export function withMallocTuning(
  env: NodeJS.ProcessEnv,
  platform = process.platform,
  { oneHeap = false }: { oneHeap?: boolean } = {},
): NodeJS.ProcessEnv {
  if (platform !== 'linux') return env;
  const added = missing(env, [MMAP_THRESHOLD, TRIM_THRESHOLD, ...(oneHeap ? [ARENA_MAX] : [])]);
  if (added.length === 0) return env;
  const own = env.GLIBC_TUNABLES ?? '';
  return {
    ...env,
    GLIBC_TUNABLES: [own, ...added.map(([name, n]) => `${name}=${n}`)].filter(Boolean).join(':'),
  };
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

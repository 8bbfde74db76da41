// One model, one engine path, in a fresh process: extraction of every layer through the real
// engine process (as the extension host runs it), timed over several images after warm-up.
// Memory is given for both sides: this process (the client, in the extension host's place) and
// the engine process it forks. Prints one JSON line. Run by test/bench/run.mjs; by hand:
//   node dist/test/bench/engine.bench.js --model vgg16|mobilenet_v2|bundled --weights FILE --runs 10
// --conversions DIR: where converted models are kept (as the extension keeps them), so a second
// run opens the conversion the first made; none by default (every run converts).
// FEATURE_MAPS_NATIVE=0 in the environment forces the tfjs path (see src/engine/engine.ts);
// BENCH_LOG=1 prints the engine's log on stderr, each line with this process's clock.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { EngineClient, type EngineStats } from '../../src/engine/client';
import type { ModelSource } from '../../src/engine/model';

const DIST = path.resolve(__dirname, '..', '..');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      weights: { type: 'string' },
      image: { type: 'string' },
      runs: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      layers: { type: 'string' },
      conversions: { type: 'string' },
    },
  });
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  const layerPatterns = values.layers ? values.layers.split(',') : [];
  const source: ModelSource =
    values.model === 'bundled'
      ? { kind: 'bundled' }
      : { kind: 'catalog', id: String(values.model), weightsPath: path.resolve(String(values.weights)) };

  // A distinct copy of the image per pass: the engine caches by (model, image), and we want passes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-'));
  const images = Array.from({ length: runs + warmup + 1 }, (_, i) => {
    const file = path.join(dir, `image-${i}${path.extname(String(values.image))}`);
    fs.copyFileSync(String(values.image), file);
    return file;
  });

  const client = new EngineClient({
    enginePath: path.join(DIST, 'engine.js'),
    assetsDir: DIST,
    conversionsDir: values.conversions && path.resolve(values.conversions),
    log: process.env.BENCH_LOG ? (line) => console.error(`${performance.now().toFixed(0)} ${line}`) : undefined,
  });
  const loop = monitorEventLoopDelay({ resolution: 5 });
  try {
    const started = performance.now();
    const request = { model: source, layerPatterns, onlyListedLayers: layerPatterns.length > 0 };
    const first = await client.extract({ ...request, imagePath: images[0] });
    const firstMs = performance.now() - started;
    const forward: number[] = [];
    const wall: number[] = [];
    let last = first;
    loop.enable();
    for (let i = 1; i < images.length; i++) {
      const t = performance.now();
      const result = await client.extract({ ...request, imagePath: images[i] });
      last = result;
      if (i > warmup) {
        wall.push(performance.now() - t);
        forward.push(result.elapsedMs);
      }
    }
    loop.disable();
    // A layer switch: the quantised channels the grid asks for, from the cache (the last image
    // is the one surely still cached).
    const spatial = last.layers.filter((l) => l.spatial && (layerPatterns.length === 0 || l.matched));
    const switches: number[] = [];
    for (const layer of spatial.slice(0, 20)) {
      const t = performance.now();
      await client.layerData(last.resultKey, layer.name, 16);
      switches.push(performance.now() - t);
    }
    console.log(
      JSON.stringify({
        model: values.model,
        layersAsked: layerPatterns,
        backend: first.model.backend ?? 'tfjs',
        layers: first.layers.length,
        firstMs: round(firstMs),
        forward: stats(forward),
        passes: forward.map(round),
        wall: stats(wall),
        layerSwitch: stats(switches),
        // What the engine keeps of one image's every layer (layers derived from others keep nothing).
        keptMB: Math.round((last.keptBytes / 2 ** 20) * 10) / 10,
        mainThreadMaxBlockMs: round(loop.max / 1e6),
        // The client's side: what the extension host would hold.
        clientRssMB: mb(process.memoryUsage.rss()),
        clientPeakRssMB: mb(process.resourceUsage().maxRSS * 1024),
        // The engine process: where the model, the image and the activations live.
        ...engineMemory(client.stats()),
      }),
    );
  } finally {
    client.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The engine process's resident memory now and at its peak, from the kernel when it can be read. */
function engineMemory(stats: EngineStats): { engineRssMB: number; enginePeakRssMB: number; engineStarts: number } {
  let rss = stats.rssBytes;
  let peak = stats.peakRssBytes;
  if (stats.pid !== undefined) {
    try {
      // The heartbeat's figures are up to a second old; /proc's are exact (Linux).
      const status = fs.readFileSync(`/proc/${stats.pid}/status`, 'utf8');
      rss = kilobytes(status, 'VmRSS') ?? rss;
      peak = Math.max(peak, kilobytes(status, 'VmHWM') ?? 0);
    } catch {
      // no /proc: the heartbeat's figures
    }
  }
  return { engineRssMB: mb(rss), enginePeakRssMB: mb(peak), engineStarts: stats.starts };
}

function kilobytes(status: string, field: string): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

function mb(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}

function stats(values: number[]): { min: number; median: number; max: number; n: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { min: round(sorted[0]), median: round(median), max: round(sorted.at(-1) ?? NaN), n: sorted.length };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

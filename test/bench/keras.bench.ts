// A Keras file (.h5 or .keras), opened as the engine opens it: the file read, its architecture
// and weights written into an ONNX graph (kerasToOnnx.ts) and an onnxruntime session made on it.
// The first open is this fresh process's (modules, wasm and ORT start with it); the second opens
// the same file again, in the same process, after the first engine was disposed. Then every
// layer's pass on one image, timed over several images after warm-up, and a pass that computes
// only the model's first layer (after the input), as Keras' first-layer-only model does; the
// process's resident memory after the first open and at its peak (the engine keeping one image's
// activations, as Keras holds one pass's outputs). All of
// it by the engine itself, in this process: the code the engine process runs. Prints one JSON
// line. Run by test/bench/run.mjs; by hand:
//   node dist/test/bench/keras.bench.js --file efficientnetb0.h5 --image chelsea.png --runs 10 --warmup 2
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FeatureMapEngine } from '../../src/engine/engine';
import { decodeImage } from '../../src/engine/image';
import type { LoadedModel, ModelSource } from '../../src/engine/model';
import { preprocess } from '../../src/engine/preprocess';

const DIST = path.resolve(__dirname, '..', '..');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      file: { type: 'string' },
      image: { type: 'string' },
      runs: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
    },
  });
  if (!values.file || !values.image) throw new Error('usage: keras.bench.js --file MODEL --image IMAGE');
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  const source: ModelSource = { kind: 'file', path: path.resolve(values.file) };
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-keras-'));
  // The engine says which runtime the model runs on, and why not onnxruntime when it does not.
  const log: string[] = [];
  try {
    // First open: the first Keras file this process reads.
    const first = await open(source, log);
    const { model, ms: firstOpenMs } = first;
    const layers = model.layers.map((l) => l.name);
    const backend = model.backend ?? 'tfjs';
    const convertedInMs = model.convertedInMs;
    const rssAfterOpenMB = mb(process.memoryUsage.rss());
    first.engine.dispose();
    if (backend !== 'onnxruntime') {
      throw new Error(`${path.basename(source.path)} did not open on onnxruntime:\n${log.join('\n')}`);
    }

    // Second open: the same file, a new engine, in the same process.
    const second = await open(source, log);
    const engine = second.engine;
    try {
      // Every layer of one image, as the panel asks for it: a distinct copy of the image per pass
      // (the engine caches by model and image).
      const images = Array.from({ length: runs + warmup + 1 }, (_, i) => {
        const file = path.join(work, `image-${i}${path.extname(values.image ?? '')}`);
        fs.copyFileSync(String(values.image), file);
        return file;
      });
      const forward: number[] = [];
      const wall: number[] = [];
      let firstImageMs = 0;
      let computed = 0;
      for (let i = 0; i < images.length; i++) {
        const t = performance.now();
        const result = await engine.extract({ model: source, imagePath: images[i], layerPatterns: [] });
        const ms = performance.now() - t;
        if (result.partial) throw new Error('the pass left layers out');
        if (i === 0) {
          firstImageMs = ms;
          computed = result.layers.filter((l) => engine.activation(result.resultKey, l.name)).length;
        } else if (i > warmup) {
          wall.push(ms);
          forward.push(result.elapsedMs);
        }
      }

      // The first layer alone: the engine runs such a pass on a copy of the graph cut down to it
      // (made at the first such pass, which is timed apart).
      const firstLayer = await firstLayerPass(second.model, String(values.image), runs, warmup);

      console.log(
        JSON.stringify({
          file: source.path,
          fileMB: round(fs.statSync(source.path).size / 2 ** 20),
          backend,
          layers: layers.length,
          layersComputed: computed,
          firstOpenMs: round(firstOpenMs),
          firstConvertedInMs: convertedInMs === undefined ? undefined : round(convertedInMs),
          secondOpenMs: round(second.ms),
          secondConvertedInMs: second.model.convertedInMs === undefined ? undefined : round(second.model.convertedInMs),
          rssAfterOpenMB,
          preprocessing: second.model.preprocessing,
          firstImageMs: round(firstImageMs),
          forward: stats(forward),
          wall: stats(wall),
          firstLayer,
          peakRssMB: mb(process.resourceUsage().maxRSS * 1024),
          log,
        }),
      );
    } finally {
      engine.dispose();
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** A new engine and the model it opens: the file read, converted and ORT's session made. */
async function open(
  source: ModelSource,
  log: string[],
): Promise<{ engine: FeatureMapEngine; model: LoadedModel; ms: number }> {
  const t = performance.now();
  // The activation cache at its least (the latest image's layers), as Keras holds one pass's
  // outputs: the extension's engine keeps up to DEFAULT_CACHE_BYTES of recent images' on top.
  const engine = new FeatureMapEngine({ assetsDir: DIST, cacheBytes: 0, log: (line) => log.push(line) });
  const model = await engine.loadModel(source);
  return { engine, model, ms: performance.now() - t };
}

/**
 * The model's first layer alone, on the image as the engine preprocesses it: `run` with only that
 * layer, the call the engine makes for a pass that stops early.
 */
async function firstLayerPass(
  model: LoadedModel,
  image: string,
  runs: number,
  warmup: number,
): Promise<{ layer: string; firstMs: number; pass: ReturnType<typeof stats> }> {
  const layer = model.layers[0].name;
  const { height, width, channels } = model.inputSize;
  if (channels !== 3) throw new Error(`the bench feeds RGB images; ${model.summary.name} takes ${channels} channels`);
  const decoded = await decodeImage(image, { width, height, kernel: model.resizeKernel ?? 'bilinear' });
  const input = preprocess(decoded.rgb, model.preprocessing);
  const only = new Set([layer]);
  const times: number[] = [];
  for (let i = 0; i < warmup + 1 + runs; i++) {
    const t = performance.now();
    const activations = await model.run(input, only);
    times.push(performance.now() - t);
    if (!activations.has(layer)) throw new Error(`the pass of ${layer} alone did not compute it`);
  }
  return { layer, firstMs: round(times[0]), pass: stats(times.slice(warmup + 1)) };
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

function mb(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

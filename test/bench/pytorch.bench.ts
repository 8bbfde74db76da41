// A PyTorch file, opened as the engine opens it: the first open converts it (the user's Python
// loads the checkpoint and exports it to ONNX, then an onnxruntime session is made), the second
// comes from the conversion cache without Python; then every layer's pass on one image, timed over
// several images after warm-up, by the engine itself (in this process: the code the engine process
// runs). Prints one JSON line. Run by test/bench/run.mjs; by hand:
//   node dist/test/bench/pytorch.bench.js --file resnet50.pth --arch torchvision:resnet50 \
//     --python PY --image chelsea.png --runs 10 --warmup 2
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FeatureMapEngine } from '../../src/engine/engine';
import type { FileModelHints, ModelSource } from '../../src/engine/model';
import { locateModel } from '../../src/engine/modelSources';

const DIST = path.resolve(__dirname, '..', '..');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      file: { type: 'string' },
      arch: { type: 'string' },
      python: { type: 'string' },
      image: { type: 'string' },
      runs: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
    },
  });
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-torch-'));
  const cacheDir = path.join(work, 'cache');
  const hints: FileModelHints = { python: values.python, architecture: values.arch, cacheDir };
  const source: ModelSource = { kind: 'file', path: path.resolve(String(values.file)), hints };
  try {
    // First open: Python starts, imports torch, loads the file and exports it; ORT opens the result.
    let t = performance.now();
    const first = await (await locateModel(source, DIST)).open();
    const firstOpenMs = performance.now() - t;
    const description = first.summary.description ?? '';
    const layers = first.layers.length;
    const backend = first.backend ?? '';
    first.dispose();
    if (!/converted now/i.test(description)) throw new Error(`the first open did not convert: ${description}`);
    const conversion = readConversion(cacheDir);

    // Second open: the same file and hints, from the conversion on disk.
    t = performance.now();
    const second = await (await locateModel(source, DIST)).open();
    const secondOpenMs = performance.now() - t;
    const secondDescription = second.summary.description ?? '';
    second.dispose();
    if (!/cached/i.test(secondDescription)) throw new Error(`the second open was not cached: ${secondDescription}`);

    // Every layer of one image, as the panel asks for it: a distinct copy of the image per pass
    // (the engine caches by model and image). The engine opens the model a third time, from the cache.
    const images = Array.from({ length: runs + warmup + 1 }, (_, i) => {
      const file = path.join(work, `image-${i}${path.extname(String(values.image))}`);
      fs.copyFileSync(String(values.image), file);
      return file;
    });
    const engine = new FeatureMapEngine({ assetsDir: DIST });
    const forward: number[] = [];
    const wall: number[] = [];
    let firstImageMs = 0;
    let computed = 0;
    try {
      for (let i = 0; i < images.length; i++) {
        t = performance.now();
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
    } finally {
      engine.dispose();
    }

    console.log(
      JSON.stringify({
        file: source.path,
        fileMB: Math.round(fs.statSync(source.path).size / 2 ** 20),
        architecture: values.arch,
        backend,
        layers,
        layersComputed: computed,
        firstOpenMs: round(firstOpenMs),
        conversion,
        secondOpenMs: round(secondOpenMs),
        firstImageMs: round(firstImageMs),
        forward: stats(forward),
        wall: stats(wall),
        peakRssMB: Math.round((process.resourceUsage().maxRSS * 1024) / 2 ** 20),
      }),
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** What the bridge wrote beside the converted model: its own seconds (checkpoint load and export) and the ONNX file's size. */
function readConversion(cacheDir: string): { pythonSeconds?: number; torch?: string; onnxMB: number } {
  const root = path.join(cacheDir, 'conversions');
  const [dir] = fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'layers.json')));
  if (!dir) throw new Error(`no conversion in ${root}`);
  const info = JSON.parse(fs.readFileSync(path.join(root, dir, 'layers.json'), 'utf8')) as {
    seconds?: number;
    torch?: string;
  };
  const onnxMB = Math.round(fs.statSync(path.join(root, dir, 'model.onnx')).size / 2 ** 20);
  return { pythonSeconds: info.seconds, torch: info.torch, onnxMB };
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

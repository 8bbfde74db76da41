// Investigating a layer: how long ranking a 512-channel 56×56 layer takes (every channel's
// statistics, then the order by max), and paging through all of it (each page of 16 channels
// quantised for drawing), in the engine, where the panel has it done. The layer is VGG16's
// block4_conv1 at 448×448 input (56×56×512), from the Keras oracle's VGG16 no-top model file. Each repetition is a fresh pass on a copy of the
// image, so nothing is cached. Writes the layer as .npy for the peer (rank_peer.py: NumPy, as
// MMEngine's draw_featmap and keract rank channels). Prints one JSON line.
//   node dist/test/bench/rank.bench.js --model ORACLE/vgg16_notop.h5 --image photo.png --npy out.npy --runs 5
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FeatureMapEngine } from '../../src/engine/engine';
import { layerNpy } from '../../src/engine/npy';
import { channelOrder } from '../../src/shared/channelOrder';

const DIST = path.resolve(__dirname, '..', '..');
const LAYER = 'block4_conv1';
const PAGE = 16;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      image: { type: 'string' },
      npy: { type: 'string' },
      runs: { type: 'string', default: '5' },
    },
  });
  const runs = Number(values.runs);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-rank-'));
  const engine = new FeatureMapEngine({ assetsDir: DIST });
  const model = {
    kind: 'file',
    path: path.resolve(String(values.model)),
    inputSize: { height: 448, width: 448 },
  } as const;
  const rank: number[] = [];
  const pages: number[] = [];
  const wholeLayer: number[] = [];
  let shape: number[] = [];
  try {
    for (let i = 0; i <= runs; i++) {
      const image = path.join(dir, `image-${i}${path.extname(String(values.image))}`);
      fs.copyFileSync(String(values.image), image);
      const result = await engine.extract({
        imagePath: image,
        model,
        layerPatterns: [LAYER],
        onlyListedLayers: true,
      });
      shape = result.layers.find((l) => l.name === LAYER)?.shape ?? [];
      let t = performance.now();
      const stats = engine.channelStats(result.resultKey, LAYER);
      const order = channelOrder(stats.totalChannels, 'max', false, stats);
      const rankMs = performance.now() - t;
      t = performance.now();
      const times: number[] = [];
      for (let p = 0; p < order.length; p += PAGE) {
        const started = performance.now();
        const channels = order.slice(p, p + PAGE);
        engine.layerData(result.resultKey, LAYER, channels.length, channels);
        times.push(performance.now() - started);
      }
      const allMs = performance.now() - t;
      if (i === 0) {
        // The first is warm-up; its layer goes to the peer.
        const activation = engine.activation(result.resultKey, LAYER);
        if (activation && values.npy) fs.writeFileSync(String(values.npy), layerNpy(activation, 'hwc').bytes);
        continue;
      }
      rank.push(rankMs);
      pages.push(...times);
      wholeLayer.push(allMs);
    }
  } finally {
    engine.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    JSON.stringify({
      layer: LAYER,
      shape,
      pageChannels: PAGE,
      rankMs: summary(rank),
      pageMs: summary(pages),
      everyPageMs: summary(wholeLayer),
    }),
  );
}

function summary(values: number[]): { min: number; median: number; max: number; n: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const round = (x: number) => Math.round(x * 100) / 100;
  return { min: round(sorted[0]), median: round(median), max: round(sorted.at(-1) ?? NaN), n: sorted.length };
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

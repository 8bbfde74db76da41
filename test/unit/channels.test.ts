import * as assert from 'node:assert/strict';
import { FeatureMapEngine } from '../../src/engine/engine';
import { UserFacingError } from '../../src/engine/errors';
import { channelsLast } from '../../src/engine/model';
import { channelOrder } from '../../src/shared/channelOrder';
import type { ExtractionResult } from '../../src/shared/protocol';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { ExportKind, ExportRequest } from '../../src/shared/protocol';
import { DIST, image, tempDir } from './fixtures';
import { readNpy } from './npy';

const BUNDLED = { kind: 'bundled' } as const;

/** One channel's values, read here from the engine's float activations (H×W×C). */
function channelOf(engine: FeatureMapEngine, result: ExtractionResult, layer: string, c: number): Float64Array {
  const activation = engine.activation(result.resultKey, layer);
  assert.ok(activation, `${layer} is computed`);
  const [h, w, channels] = activation.shape;
  const hwc = channelsLast(activation);
  return Float64Array.from({ length: h * w }, (_, p) => hwc[p * channels + c]);
}

describe('every channel of a layer: statistics, pages in any order, one channel exactly', () => {
  let engine: FeatureMapEngine;
  let result: ExtractionResult;
  const layer = 'Conv1_relu';
  before(async () => {
    engine = new FeatureMapEngine({ assetsDir: DIST });
    result = await engine.extract({ imagePath: image('horse.png'), model: BUNDLED, layerPatterns: [] });
  });
  after(() => engine.dispose());

  it('gives each channel the min, max, mean, standard deviation and fraction above zero of its values', () => {
    const stats = engine.channelStats(result.resultKey, layer);
    const total = result.layers.find((l) => l.name === layer)!.shape[2];
    assert.equal(stats.totalChannels, total);
    for (let c = 0; c < total; c++) {
      const v = channelOf(engine, result, layer, c);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
      assert.equal(stats.min[c], Math.fround(Math.min(...v)), `min of ${c}`);
      assert.equal(stats.max[c], Math.fround(Math.max(...v)), `max of ${c}`);
      assert.ok(Math.abs(stats.mean[c] - mean) <= 1e-5 * Math.max(1, Math.abs(mean)), `mean of ${c}`);
      assert.ok(Math.abs(stats.std[c] - std) <= 1e-5 * Math.max(1, std), `std of ${c}`);
      assert.equal(stats.active[c], Math.fround(v.filter((x) => x > 0).length / v.length), `active of ${c}`);
    }
  });

  it('draws and ranks from the same min and max in either layout the engine keeps (ONNX Runtime C×H×W, TensorFlow.js H×W×C)', async () => {
    for (const [nativeLayers, layout] of [
      [true, 'chw'],
      [false, 'hwc'],
    ] as const) {
      const fresh = new FeatureMapEngine({ assetsDir: DIST, nativeLayers });
      try {
        const other = await fresh.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
        assert.equal(fresh.activation(other.resultKey, layer)?.layout, layout);
        const total = other.layers.find((l) => l.name === layer)!.shape[2];
        // The grid first (min and max alone), the statistics after: both agree with the values.
        const grid = fresh.layerData(other.resultKey, layer, total);
        const stats = fresh.channelStats(other.resultKey, layer);
        for (let c = 0; c < total; c++) {
          const v = channelOf(fresh, other, layer, c);
          const mean = v.reduce((a, b) => a + b, 0) / v.length;
          const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
          assert.equal(grid.min[c], Math.fround(Math.min(...v)), `${layout}: the grid's min of ${c}`);
          assert.equal(grid.max[c], Math.fround(Math.max(...v)), `${layout}: the grid's max of ${c}`);
          assert.equal(stats.min[c], grid.min[c], `${layout}: min of ${c}`);
          assert.equal(stats.max[c], grid.max[c], `${layout}: max of ${c}`);
          assert.ok(Math.abs(stats.mean[c] - mean) <= 1e-5 * Math.max(1, Math.abs(mean)), `${layout}: mean of ${c}`);
          assert.ok(Math.abs(stats.std[c] - std) <= 1e-5 * Math.max(1, std), `${layout}: std of ${c}`);
          assert.equal(
            stats.active[c],
            Math.fround(v.filter((x) => x > 0).length / v.length),
            `${layout}: active of ${c}`,
          );
        }
        assert.equal(grid.layerMin, Math.min(...grid.min));
        assert.equal(grid.layerMax, Math.max(...grid.max));
      } finally {
        fresh.dispose();
      }
    }
  });

  it('sends the channels asked for, in that order, each as the first page has it', () => {
    const all = engine.layerData(result.resultKey, layer, 32);
    const picked = [31, 3, 20, 0];
    const page = engine.layerData(result.resultKey, layer, picked.length, picked);
    assert.deepEqual([...page.channels], picked);
    const plane = page.width * page.height;
    picked.forEach((c, k) => {
      assert.deepEqual(
        page.values.subarray(k * plane, (k + 1) * plane),
        all.values.subarray(c * plane, (c + 1) * plane),
      );
      assert.equal(page.min[k], all.min[c]);
      assert.equal(page.max[k], all.max[c]);
    });
    assert.throws(() => engine.layerData(result.resultKey, layer, 1, [32]), UserFacingError);
  });

  it('orders by a statistic, largest first, and hides constant channels', () => {
    const stats = engine.channelStats(result.resultKey, layer);
    const byMax = channelOrder(stats.totalChannels, 'max', false, stats);
    assert.equal(byMax.length, stats.totalChannels);
    for (let i = 1; i < byMax.length; i++) assert.ok(stats.max[byMax[i - 1]] >= stats.max[byMax[i]]);
    const constant = [...stats.max.keys()].filter((c) => !(stats.max[c] > stats.min[c]));
    assert.ok(constant.length > 0, 'MobileNetV2’s first convolution has dead filters');
    const shown = channelOrder(stats.totalChannels, 'index', true, stats);
    assert.deepEqual(
      shown,
      [...stats.max.keys()].filter((c) => !constant.includes(c)),
    );
  });

  it('gives one channel’s exact values for the zoomed view', () => {
    const values = engine.channelValues(result.resultKey, layer, 17);
    assert.deepEqual([...values.values], [...channelOf(engine, result, layer, 17)].map(Math.fround));
    assert.throws(() => engine.channelValues(result.resultKey, layer, 1000), /has no channel 1000/);
  });

  it('exports the layer as .npy in either layout, exactly its values, and the statistics as CSV', async () => {
    const activation = engine.activation(result.resultKey, layer)!;
    const [h, w, channels] = activation.shape;
    const hwc = channelsLast(activation);
    const dir = tempDir();
    const base = { layer, colormap: 'viridis', normalization: 'channel' } as const;
    const write = async (kind: ExportKind, name: string) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, await engine.exportFile(result.resultKey, { ...base, kind }));
      return file;
    };
    const keras = readNpy(await write('npy-hwc', 'hwc.npy'));
    assert.equal(keras.descr, '<f4');
    assert.deepEqual(keras.shape, [h, w, channels]);
    assert.deepEqual(keras.data, hwc);
    const torch = readNpy(await write('npy-chw', 'chw.npy'));
    assert.deepEqual(torch.shape, [channels, h, w]);
    for (let c = 0; c < channels; c += 7) {
      for (let p = 0; p < h * w; p += 13) assert.equal(torch.data[c * h * w + p], hwc[p * channels + c]);
    }
    const csv = fs
      .readFileSync(await write('stats-csv', 'stats.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(csv.length, channels + 1);
    const stats = engine.channelStats(result.resultKey, layer);
    assert.deepEqual(csv[4].split(',').map(Number), [
      3,
      stats.min[3],
      stats.max[3],
      stats.mean[3],
      stats.std[3],
      stats.active[3],
    ]);
  });

  it('draws the grid and one channel as PNG, over the image when asked', async () => {
    const base = { layer, colormap: 'viridis', normalization: 'channel', channels: [5, 1, 30, 2] } satisfies Omit<
      ExportRequest,
      'kind'
    >;
    const grid = await sharp(await engine.exportFile(result.resultKey, { ...base, kind: 'grid-png' })).metadata();
    assert.deepEqual([grid.format, grid.width], ['png', 12 * 2 + 2 * 128 + 4]);
    const plain = await engine.exportFile(result.resultKey, { ...base, kind: 'channel-png', channel: 5 });
    const over = await engine.exportFile(result.resultKey, { ...base, kind: 'channel-png', channel: 5, overlay: 0.5 });
    const [a, b] = await Promise.all(
      [plain, over].map((png) => sharp(png).raw().toBuffer({ resolveWithObject: true })),
    );
    assert.deepEqual([a.info.width, a.info.height], [224, 224]);
    assert.deepEqual([b.info.width, b.info.height], [224, 224]);
    assert.ok(!a.data.equals(b.data), 'the overlay is not the plain map');
  });
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { estimatePass, formatMemory } from '../../src/engine/budget';
import { FeatureMapEngine } from '../../src/engine/engine';
import { UserFacingError } from '../../src/engine/errors';
import { isSpatial } from '../../src/engine/layers';
import { type ModelSource, channelsLast } from '../../src/engine/model';
import { TRIAL_PASS_BYTES, toOnnxRuntime } from '../../src/engine/models/layersToOnnx';
import { loadOnnxModel } from '../../src/engine/models/onnx';
import { wrapLayersModel } from '../../src/engine/models/tfjsLayers';
import { getTf } from '../../src/engine/tf';
import * as tfl from '@tensorflow/tfjs-layers';
import { DIST, image, tempDir } from './fixtures';
import { writeFullyConvolutionalModel } from './hostileInputs';
import { relErr } from './npy';

const MB = 1024 * 1024;
const CAT = () => image('chelsea.png');
/** A hang or a gigabyte allocation takes far longer than this; a refusal takes milliseconds. */
const BOUND_MS = 10_000;
/** A refused pass allocates next to nothing: far less than the smallest layer of the hostile models. */
const RSS_BOUND = 512 * MB;

/**
 * Runs `work` and reports how far the process's peak RSS rose above its peak before (0 when it
 * stayed below an earlier peak: either way the work itself peaked no higher than that bound).
 */
async function measured<T>(
  label: string,
  work: () => Promise<T>,
): Promise<{ value: T; ms: number; rssGrowth: number }> {
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  const started = performance.now();
  const value = await work();
  const ms = performance.now() - started;
  const rssGrowth = process.resourceUsage().maxRSS * 1024 - peakBefore;
  console.log(`      ${label}: ${ms.toFixed(0)} ms, peak RSS +${(rssGrowth / MB).toFixed(0)} MB`);
  return { value, ms, rssGrowth };
}

/** The UserFacingError `promise` rejects with. */
async function refusal(promise: Promise<unknown>): Promise<UserFacingError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof UserFacingError, `a UserFacingError, not ${String(error)}`);
    return error;
  }
  assert.fail('expected a refusal');
}

describe('the memory budget', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: FeatureMapEngine;
  before(() => {
    dir = tempDir();
    engine = new FeatureMapEngine({ assetsDir: DIST });
  });
  after(() => {
    engine.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, bytes: Uint8Array): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes);
    return file;
  };
  const onnxFile = (file: string, inputSize?: { height: number; width: number }): ModelSource => ({
    kind: 'file',
    path: file,
    inputSize,
  });

  describe('a 1 KB ONNX file whose one convolution needs 32 GB', () => {
    const EXPECTED =
      /^The forward pass of (huge-fixed|huge-symbolic)\.onnx on chelsea\.png needs about ([\d.]+) GB \(layer "conv1": 4096×4096×512 float32 is 32 GB\); the memory budget is 2 GB \(featureMaps\.memoryBudget\)\.$/;

    it('with a fixed 1×3×4096×4096 input: refused before the pass, naming the layer, quickly, RSS low', async () => {
      const file = write('huge-fixed.onnx', convModel({ inputDims: [1, 3, 4096, 4096], convs: [['conv1', 512]] }));
      assert.ok(fs.statSync(file).size < 1024, `a ${fs.statSync(file).size}-byte file`);
      const {
        value: error,
        ms,
        rssGrowth,
      } = await measured('fixed 4096×4096, conv to 512 channels', () =>
        refusal(engine.extract({ imagePath: CAT(), model: onnxFile(file), layerPatterns: [] })),
      );
      console.log(`      ${error.message}\n      (${error.detail})`);
      const total = EXPECTED.exec(error.message);
      assert.ok(total, error.message);
      assert.ok(Number(total[2]) >= 64, 'the pass holds conv1 and its Relu, 32 GB each');
      assert.ok(ms < BOUND_MS, `${ms} ms`);
      assert.ok(rssGrowth < RSS_BOUND, `peak RSS grew by ${rssGrowth} bytes`);
    });

    it('the same with symbolic N, H, W and featureMaps.inputSize [4096, 4096], the first grid only too', async () => {
      const file = write('huge-symbolic.onnx', convModel({ inputDims: ['N', 3, 'H', 'W'], convs: [['conv1', 512]] }));
      const model = onnxFile(file, { height: 4096, width: 4096 });
      for (const onlyListedLayers of [false, true]) {
        const {
          value: error,
          ms,
          rssGrowth,
        } = await measured(`symbolic at 4096×4096, ${onlyListedLayers ? 'first grid' : 'every layer'}`, () =>
          refusal(engine.extract({ imagePath: CAT(), model, layerPatterns: [], onlyListedLayers })),
        );
        // An ONNX file's graph keeps every layer whatever the pass fetches: the first grid needs as much.
        const expected = onlyListedLayers
          ? new RegExp(EXPECTED.source.replace('chelsea\\.png', 'chelsea\\.png \\(2 of its 4 layers\\)'))
          : EXPECTED;
        assert.match(error.message, expected);
        assert.ok(ms < BOUND_MS, `${ms} ms`);
        assert.ok(rssGrowth < RSS_BOUND, `peak RSS grew by ${rssGrowth} bytes`);
      }
      // ONNX Runtime inferred every shape at load, from the input size alone.
      const loaded = await engine.loadModel(model);
      assert.deepEqual(
        loaded.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
        ['conv1:4096×4096×512', 'relu1:4096×4096×512', 'gap:1×1×512', 'head:512'],
      );
    });

    it('a model whose input alone is over the budget is refused before the image is decoded, naming the size', async () => {
      const symbolic = write('wide.onnx', convModel({ inputDims: ['N', 3, 'H', 'W'], convs: [['conv1', 8]] }));
      const fromSetting = await measured('featureMaps.inputSize [100000, 100000]', () =>
        refusal(
          engine.extract({
            imagePath: CAT(),
            model: onnxFile(symbolic, { height: 100_000, width: 100_000 }),
            layerPatterns: [],
          }),
        ),
      );
      assert.equal(
        fromSetting.value.message,
        'The input of wide.onnx alone needs 112 GB (100000×100000×3 float32), at the size featureMaps.inputSize sets ' +
          'for models whose input size is not fixed; the memory budget is 2 GB (featureMaps.memoryBudget).',
      );
      const fixed = write('fixed-wide.onnx', convModel({ inputDims: [1, 3, 30_000, 30_000], convs: [['conv1', 8]] }));
      const declared = await measured('a declared 30000×30000 input', () =>
        refusal(engine.extract({ imagePath: CAT(), model: onnxFile(fixed), layerPatterns: [] })),
      );
      assert.equal(
        declared.value.message,
        'The input of fixed-wide.onnx alone needs 10.1 GB (30000×30000×3 float32); the memory budget is 2 GB (featureMaps.memoryBudget).',
      );
      // Decoding chelsea.png to 30000×30000 would take 2.5 GB for its RGB bytes alone.
      for (const { ms, rssGrowth } of [fromSetting, declared]) {
        assert.ok(ms < BOUND_MS, `${ms} ms`);
        assert.ok(rssGrowth < RSS_BOUND, `peak RSS grew by ${rssGrowth} bytes`);
      }
    });
  });

  describe('a model within the budget', () => {
    it('runs, with every layer’s shape known at load (ONNX Runtime’s shape inference, no pass)', async () => {
      const file = write('small.onnx', convModel({ inputDims: ['N', 3, 'H', 'W'], convs: [['conv1', 8]] }));
      const model = onnxFile(file, { height: 96, width: 128 });
      const loaded = await engine.loadModel(model);
      const shapes = loaded.layers.map((l) => `${l.name}:${l.shape.join('×')}`);
      assert.deepEqual(shapes, ['conv1:96×128×8', 'relu1:96×128×8', 'gap:1×1×8', 'head:8']);
      const result = await engine.extract({ imagePath: CAT(), model, layerPatterns: [] });
      assert.equal(result.partial, false);
      for (const layer of result.layers) {
        assert.deepEqual(engine.activation(result.resultKey, layer.name)?.shape, layer.shape, layer.name);
      }
    });

    it('loads a model that fails when run: loading runs no pass, the first image says it failed', async () => {
      // Gather picks channel 9 of 8: ONNX Runtime checks the index only when it runs.
      const file = write(
        'fails-when-run.onnx',
        convModel({ inputDims: ['N', 3, 'H', 'W'], convs: [['conv1', 8]], gather: 9 }),
      );
      const model = await loadOnnxModel({
        modelPath: file,
        key: 'fails',
        summary: { name: 'fails-when-run.onnx', description: 'test' },
        preprocessing: 'raw01',
        inputSize: { height: 40, width: 30 },
      });
      try {
        assert.deepEqual(
          model.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
          ['conv1:40×30×8', 'relu1:40×30×8', 'pick:40×30×1', 'gap:1×1×1', 'head:1'],
        );
      } finally {
        model.dispose();
      }
      const error = await refusal(
        engine.extract({ imagePath: CAT(), model: onnxFile(file, { height: 40, width: 30 }), layerPatterns: [] }),
      );
      assert.equal(error.message, 'The model failed to run on chelsea.png.');
      assert.match(error.detail ?? '', /indices|out of (data )?bounds|range/i);
    });
  });

  describe('a TF.js model moved to ONNX Runtime', () => {
    it('at 2048×2048 with 64 filters: checked by the shapes ORT infers, without a trial pass at load', async () => {
      const { tf } = await getTf(DIST);
      const convert = async (trialPassBytes: number) => {
        const layers = tfl.sequential({
          layers: [tfl.layers.conv2d({ inputShape: [2048, 2048, 3], filters: 64, kernelSize: 1, name: 'conv' })],
        });
        const tfjs = wrapLayersModel(tf, layers, {
          key: 'wide',
          summary: { name: 'wide', description: 'test' },
          preprocessing: 'raw01',
        });
        const residentBefore = process.memoryUsage().rss;
        const native = await toOnnxRuntime(tfjs, { trialPassBytes });
        // ONNX Runtime keeps the memory a pass took in its arena: a trial pass would show here.
        const grew = process.memoryUsage().rss - residentBefore;
        tfjs.dispose();
        assert.ok(!('unsupported' in native), JSON.stringify(native));
        native.dispose();
        return { native, grew };
      };
      const { native, grew } = await convert(TRIAL_PASS_BYTES);
      console.log(`      converted without a trial pass: resident memory +${(grew / MB).toFixed(0)} MB`);
      assert.equal(native.backend, 'onnxruntime');
      assert.deepEqual(native.layers[0].shape, [2048, 2048, 64]);
      assert.ok(estimatePass(native).bytes > TRIAL_PASS_BYTES);
      assert.ok(grew < RSS_BOUND, `resident memory grew by ${grew} bytes`);
    });
  });

  describe('a budget set per request', () => {
    it('wins over the engine’s, both ways', async () => {
      const file = write('per-request.onnx', convModel({ inputDims: ['N', 3, 'H', 'W'], convs: [['conv1', 64]] }));
      const model = onnxFile(file, { height: 256, width: 256 });
      const error = await refusal(
        engine.extract({ imagePath: CAT(), model, layerPatterns: [], memoryBudgetBytes: 64 * MB }),
      );
      assert.match(
        error.message,
        /^The forward pass of per-request\.onnx on chelsea\.png needs about [\d.]+ MB \(layer "conv1": 256×256×64 float32 is 16 MB\); the memory budget is 64 MB \(featureMaps\.memoryBudget\)\.$/,
      );
      const strict = new FeatureMapEngine({ assetsDir: DIST, memoryBudgetBytes: 64 * MB });
      try {
        await refusal(strict.extract({ imagePath: CAT(), model, layerPatterns: [] }));
        const result = await strict.extract({
          imagePath: CAT(),
          model,
          layerPatterns: [],
          memoryBudgetBytes: 1024 * MB,
        });
        assert.deepEqual(result.layers[0].shape, [256, 256, 64]);
      } finally {
        strict.dispose();
      }
    });
  });

  describe('when the first grid fits but every layer at once does not', () => {
    it('the bundled model: the background pass is refused in words, a layer clicked later is computed alone', async () => {
      const bundled = { kind: 'bundled' } as const;
      const model = await engine.loadModel(bundled);
      const head = model.layers.at(-1)!.name;
      const full = estimatePass(model).bytes;
      const firstGrid = estimatePass(model, new Set(['Conv1', head])).bytes;
      const oneLayer = Math.max(
        ...model.layers.filter((l) => isSpatial(l.shape)).map((l) => estimatePass(model, new Set([l.name])).bytes),
      );
      // A converted model runs a pass over some layers on a graph cut down to them.
      assert.ok(firstGrid <= oneLayer && oneLayer < full / 2, `${firstGrid} ${oneLayer} ${full}`);
      const budget = Math.round((oneLayer + full) / 2 / MB) * MB;
      console.log(
        `      estimates: first grid ${formatMemory(firstGrid)}, any one layer at most ${formatMemory(oneLayer)}, ` +
          `every layer ${formatMemory(full)}; budget ${formatMemory(budget)}`,
      );
      const request = { imagePath: CAT(), model: bundled, layerPatterns: [], memoryBudgetBytes: budget };
      const first = await engine.extract({ ...request, onlyListedLayers: true });
      assert.equal(first.partial, true);

      const error = await refusal(engine.complete(first.resultKey));
      assert.match(
        error.message,
        new RegExp(
          `^Computing every layer of MobileNetV2 \\(bundled\\) on chelsea\\.png needs about [\\d.]+ MB ` +
            `\\(layer "block_1_pad": 113×113×96 float32 is 4\\.68 MB\\); the memory budget is ${formatMemory(budget)} ` +
            `\\(featureMaps\\.memoryBudget\\)\\.$`,
        ),
      );

      // The panel's click on another layer: ensureLayer, then layerData.
      await engine.ensureLayer(first.resultKey, 'block_16_project');
      assert.equal(engine.layerData(first.resultKey, 'block_16_project', 4).count, 4);
      assert.equal(engine.activation(first.resultKey, 'block_15_add'), undefined, 'only the layer clicked');
      const reference = new FeatureMapEngine({ assetsDir: DIST });
      try {
        const whole = await reference.extract({ imagePath: CAT(), model: bundled, layerPatterns: [] });
        const error = relErr(
          engine.activation(first.resultKey, 'block_16_project')!.data,
          reference.activation(whole.resultKey, 'block_16_project')!.data,
        );
        assert.ok(error <= 1e-5, `block_16_project: ${error}`);
      } finally {
        reference.dispose();
      }

      // A layer listed later (featureMaps.layers) is computed alone too, not with every other.
      const listed = await engine.extract({ ...request, layerPatterns: ['block_15_project'], onlyListedLayers: true });
      assert.equal(listed.resultKey, first.resultKey);
      assert.ok(engine.activation(first.resultKey, 'block_15_project'));
      assert.equal(engine.activation(first.resultKey, 'block_15_add'), undefined);
      assert.equal(listed.partial, true);
    });

    it('the budget of the latest request applies to a cached result (featureMaps.memoryBudget changed since)', async () => {
      const bundled = { kind: 'bundled' } as const;
      const model = await engine.loadModel(bundled);
      const full = estimatePass(model).bytes;
      const generous = { imagePath: CAT(), model: bundled, layerPatterns: [], onlyListedLayers: true };
      const first = await engine.extract({ ...generous, memoryBudgetBytes: 4 * full });
      assert.equal(first.partial, true);
      // The user lowers the budget below every layer at once, and shows the same image again.
      const lowered = Math.round(full / 2 / MB) * MB;
      const again = await engine.extract({ ...generous, memoryBudgetBytes: lowered });
      assert.equal(again.resultKey, first.resultKey, 'the same cached result');
      const error = await refusal(engine.complete(again.resultKey));
      assert.match(
        error.message,
        new RegExp(`the memory budget is ${formatMemory(lowered)} \\(featureMaps\\.memoryBudget\\)\\.$`),
      );
      // And raised again: the pass runs.
      await engine.extract({ ...generous, memoryBudgetBytes: 4 * full });
      await engine.complete(first.resultKey);
      assert.ok(engine.activation(first.resultKey, 'block_15_add'), 'every layer computed');
    });

    it('an ONNX file: a layer clicked that alone is over the budget gets a message, a smaller one its maps', async () => {
      const file = write(
        'two-convs.onnx',
        convModel({
          inputDims: ['N', 3, 'H', 'W'],
          convs: [
            ['small', 4],
            ['big', 256],
          ],
        }),
      );
      const source = onnxFile(file, { height: 256, width: 256 });
      const model = await engine.loadModel(source);
      const estimate = (...names: string[]) => estimatePass(model, new Set(names)).bytes;
      const firstGrid = estimate('small', 'head');
      const smallLayer = estimate('relu1');
      const bigLayer = estimate('big');
      const full = estimatePass(model).bytes;
      assert.ok(
        Math.max(firstGrid, smallLayer) < bigLayer && bigLayer < full,
        `${firstGrid} ${smallLayer} ${bigLayer}`,
      );
      const budget = Math.round((Math.max(firstGrid, smallLayer) + bigLayer) / 2 / MB) * MB;
      const request = { imagePath: CAT(), model: source, layerPatterns: [], memoryBudgetBytes: budget };
      const first = await engine.extract({ ...request, onlyListedLayers: true });
      assert.equal(first.partial, true);
      assert.ok(engine.activation(first.resultKey, 'small'));

      await refusal(engine.complete(first.resultKey));
      const error = await refusal(engine.ensureLayer(first.resultKey, 'big'));
      assert.match(
        error.message,
        new RegExp(
          `^Computing layer "big" of two-convs\\.onnx on chelsea\\.png needs about [\\d.]+ MB ` +
            `\\(layer "big": 256×256×256 float32 is 64 MB\\); the memory budget is ${formatMemory(budget)} ` +
            `\\(featureMaps\\.memoryBudget\\)\\.$`,
        ),
      );
      assert.throws(() => engine.layerData(first.resultKey, 'big', 4), /not computed yet/);

      await engine.ensureLayer(first.resultKey, 'relu1');
      assert.equal(engine.layerData(first.resultKey, 'relu1', 4).count, 4);
    });
  });

  describe('a fully convolutional TF.js model (input size not fixed) at featureMaps.inputSize [4096, 4096]', () => {
    // Issue 9: loading ran a blank pass to learn the shapes (VGG16 at 1024×1024: 48 s and 5.9 GB),
    // before the budget could be checked. Each layer's shape rule gives them without running.
    const EXPECTED =
      /^The forward pass of fcn on chelsea\.png needs about ([\d.]+) GB \(layer "conv2": 4096×4096×64 float32 is 4 GB\); the memory budget is 2 GB \(featureMaps\.memoryBudget\)\.$/;
    for (const nativeLayers of [true, false]) {
      const runtime = nativeLayers ? 'onnxruntime' : 'tfjs-wasm';
      it(`on ${runtime}: loads without a pass, every shape known (4096×4096×C), the extract refused in words`, async () => {
        const file = writeFullyConvolutionalModel(path.join(dir, `fcn-${runtime}`, 'fcn'));
        assert.ok(fs.statSync(path.join(path.dirname(file), 'weights.bin')).size < 64 * 1024);
        const source: ModelSource = { kind: 'file', path: file, inputSize: { height: 4096, width: 4096 } };
        const lines: string[] = [];
        const fresh = new FeatureMapEngine({ assetsDir: DIST, nativeLayers, log: (line) => lines.push(line) });
        try {
          const residentBefore = process.memoryUsage().rss;
          const {
            value: model,
            ms,
            rssGrowth,
          } = await measured(`load on ${runtime} at 4096×4096`, () => fresh.loadModel(source));
          const resident = process.memoryUsage().rss - residentBefore;
          console.log(`      resident memory after loading: +${(resident / MB).toFixed(0)} MB; ${lines.join('; ')}`);
          assert.equal(model.backend, runtime, lines.join('\n'));
          assert.deepEqual(
            model.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
            ['conv1:4096×4096×16', 'conv2:4096×4096×64', 'pool:2048×2048×64'],
          );
          // A pass at this size holds 4 GB for conv2 alone: one at load would show here.
          assert.ok(ms < BOUND_MS, `${ms} ms`);
          assert.ok(rssGrowth < RSS_BOUND, `peak RSS grew by ${rssGrowth} bytes`);
          assert.ok(resident < RSS_BOUND, `resident memory grew by ${resident} bytes`);

          for (const onlyListedLayers of [false, true]) {
            const refused = await measured(
              `extract on ${runtime}, ${onlyListedLayers ? 'first grid' : 'every layer'}`,
              () => refusal(fresh.extract({ imagePath: CAT(), model: source, layerPatterns: [], onlyListedLayers })),
            );
            console.log(`      ${refused.value.message}`);
            if (onlyListedLayers && nativeLayers) {
              // A converted model prunes the pass to conv1 (the first grid) and what it needs: 1 GB
              // maps, 3 copies of a 192 MB input, working memory: still over 2 GB.
              assert.match(
                refused.value.message,
                /^The forward pass of fcn on chelsea\.png \(1 of its 3 layers\) needs about [\d.]+ GB \(layer "conv1": 4096×4096×16 float32 is 1 GB\); the memory budget is 2 GB/,
              );
            } else {
              assert.match(refused.value.message.replace(/ \(\d of its 3 layers\)/, ''), EXPECTED);
            }
            assert.ok(refused.ms < BOUND_MS, `${refused.ms} ms`);
            assert.ok(refused.rssGrowth < RSS_BOUND, `peak RSS grew by ${refused.rssGrowth} bytes`);
          }
        } finally {
          fresh.dispose();
        }
      });
    }

    it('the same model at 256×256 runs, on both runtimes, with the shapes listed at load', async () => {
      const file = writeFullyConvolutionalModel(path.join(dir, 'fcn-small', 'fcn'));
      const source: ModelSource = { kind: 'file', path: file, inputSize: { height: 256, width: 192 } };
      const values: Float32Array[] = [];
      for (const nativeLayers of [true, false]) {
        const fresh = new FeatureMapEngine({ assetsDir: DIST, nativeLayers });
        try {
          const result = await fresh.extract({ imagePath: CAT(), model: source, layerPatterns: [] });
          assert.deepEqual(
            result.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
            ['conv1:256×192×16', 'conv2:256×192×64', 'pool:128×96×64'],
          );
          for (const layer of result.layers) {
            assert.deepEqual(fresh.activation(result.resultKey, layer.name)?.shape, layer.shape, layer.name);
          }
          values.push(channelsLast(fresh.activation(result.resultKey, 'pool')!));
        } finally {
          fresh.dispose();
        }
      }
      const error = relErr(values[0], values[1]);
      assert.ok(error <= 1e-4, `onnxruntime and tfjs differ by ${error}`);
    });
  });
});

/**
 * A small float32 NCHW model made in memory: each convolution (1×1, weights all 0.01, made by a
 * ConstantOfShape node so the file stays tiny however many channels) is followed by a Relu;
 * then, with `gather`, a Gather of that channel index; then GlobalAveragePool and Flatten (the
 * head). Layers: conv names, relu1…, (pick), gap, head.
 */
function convModel(options: {
  inputDims: (number | string)[];
  convs: [name: string, channels: number][];
  gather?: number;
}): Uint8Array {
  const node: onnx.INodeProto[] = [];
  const initializer: onnx.ITensorProto[] = [];
  let x = 'image';
  let channels = 3;
  options.convs.forEach(([name, out], i) => {
    initializer.push({
      name: `${name}_shape`,
      dataType: onnx.TensorProto.DataType.INT64,
      dims: [4],
      int64Data: [out, channels, 1, 1],
    });
    node.push({
      opType: 'ConstantOfShape',
      input: [`${name}_shape`],
      output: [`${name}_w`],
      attribute: [
        {
          name: 'value',
          type: onnx.AttributeProto.AttributeType.TENSOR,
          t: { dataType: 1, dims: [1], floatData: [0.01] },
        },
      ],
    });
    node.push({ opType: 'Conv', name, input: [x, `${name}_w`], output: [`${name}_out`] });
    node.push({ opType: 'Relu', input: [`${name}_out`], output: [`relu${i + 1}`] });
    x = `relu${i + 1}`;
    channels = out;
  });
  if (options.gather !== undefined) {
    initializer.push({
      name: 'index',
      dataType: onnx.TensorProto.DataType.INT64,
      dims: [1],
      int64Data: [options.gather],
    });
    node.push({
      opType: 'Gather',
      input: [x, 'index'],
      output: ['pick'],
      attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
    });
    x = 'pick';
  }
  node.push({ opType: 'GlobalAveragePool', input: [x], output: ['gap'] });
  node.push({ opType: 'Flatten', input: ['gap'], output: ['head'] });
  const dims = options.inputDims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  const graph: onnx.IGraphProto = {
    name: 'budget-test',
    node,
    initializer,
    input: [{ name: 'image', type: { tensorType: { elemType: 1, shape: { dim: dims } } } }],
    output: [{ name: 'head', type: { tensorType: { elemType: 1 } } }],
  };
  return onnx.ModelProto.encode({ irVersion: 7, opsetImport: [{ domain: '', version: 13 }], graph }).finish();
}

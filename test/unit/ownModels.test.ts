import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { FeatureMapEngine, type ExtractRequest } from '../../src/engine/engine';
import { UserFacingError } from '../../src/engine/errors';
import { loadOnnxModel } from '../../src/engine/models/onnx';
import { getTf } from '../../src/engine/tf';
import { rejectsWith } from './assertions';
import { DIST, image, saveLayersModel, shared, tempDir } from './fixtures';

const darknet = () => shared('fixtures', 'models', 'darknet-tiny-imagenet.tfjs', 'model.json');

/** Class names of the labels file that contain `word` (so the check follows the file, not indices). */
function labelsWith(labelsFile: string, word: RegExp): Set<string> {
  return new Set(
    fs
      .readFileSync(labelsFile, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => word.test(l)),
  );
}

describe('your own model: TF.js LayersModel (Darknet Tiny, ImageNet)', () => {
  let engine: FeatureMapEngine;
  before(() => {
    engine = new FeatureMapEngine({ assetsDir: DIST });
  });
  after(() => engine.dispose());

  it('loads shards named without an extension and lists its layers', async () => {
    const result = await engine.extract({
      imagePath: image('chelsea.png'),
      model: { kind: 'file', path: darknet() },
      layerPatterns: [],
    });
    assert.equal(result.model.name, 'darknet-tiny-imagenet.tfjs');
    assert.deepEqual(result.model.inputShape, [224, 224, 3]);
    assert.match(result.model.preprocessing, /^raw01/);
    assert.equal(result.layers.filter((l) => l.op === 'Conv2D').length, 16);
    assert.equal(result.layers.filter((l) => l.op === 'BatchNormalization').length, 15);
  });

  it('puts a cat in the top 5 for chelsea.png and a cup or espresso for coffee.png, from labels.txt beside it', async () => {
    const labels = path.join(path.dirname(darknet()), 'labels.txt');
    const expected: [string, RegExp][] = [
      ['chelsea.png', /\b(cat|tabby)\b/i],
      ['coffee.png', /\b(cup|espresso|coffee)/i],
    ];
    for (const [name, word] of expected) {
      const result = await engine.extract({
        imagePath: image(name),
        model: { kind: 'file', path: darknet() },
        layerPatterns: [],
      });
      const top5 = result.predictions?.map((p) => p.label) ?? [];
      assert.equal(top5.length, 5, `${name}: top-5 shown`);
      const wanted = labelsWith(labels, word);
      assert.ok(
        top5.some((l) => wanted.has(l)),
        `${name}: top 5 were ${top5.join(', ')}`,
      );
    }
  });

  it('uses the preprocessing the user set instead of its guess, as a separate result', async () => {
    const auto = await engine.extract({
      imagePath: image('coffee.png'),
      model: { kind: 'file', path: darknet() },
      layerPatterns: [],
    });
    const tf = await engine.extract({
      imagePath: image('coffee.png'),
      model: { kind: 'file', path: darknet() },
      layerPatterns: [],
      preprocessing: 'tf',
    });
    assert.notEqual(tf.resultKey, auto.resultKey);
    assert.match(tf.model.preprocessing, /^tf: .*set by featureMaps\.preprocessing/);
  });

  it('uses featureMaps.mean/std in place of a preset: torchvision numbers give the torch preset maps', async () => {
    const base: ExtractRequest = {
      imagePath: image('chelsea.png'),
      model: { kind: 'file', path: darknet() },
      layerPatterns: [],
    };
    const preset = await engine.extract({ ...base, preprocessing: 'torch' });
    const custom = await engine.extract({
      ...base,
      customNormalization: { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
    });
    assert.notEqual(custom.resultKey, preset.resultKey);
    assert.match(custom.model.preprocessing, /^custom: .*mean 123\.675, 116\.28, 103\.53/);
    const a = engine.activation(preset.resultKey, 'conv2d_1')!.data;
    const b = engine.activation(custom.resultKey, 'conv2d_1')!.data;
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < a.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      maxAbs = Math.max(maxAbs, Math.abs(a[i]));
    }
    assert.ok(maxDiff / maxAbs < 1e-5, `same maps up to rounding (${maxDiff / maxAbs})`);
  });

  it('loads a model file again when it is rewritten (a checkpoint saved during training)', async () => {
    const dir = path.join(tempDir(), 'darknet');
    fs.cpSync(path.dirname(darknet()), dir, { recursive: true });
    const request: ExtractRequest = {
      imagePath: image('coffee.png'),
      model: { kind: 'file', path: path.join(dir, 'model.json') },
      layerPatterns: [],
    };
    const before = await engine.extract(request);
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, 'model.json'), later, later);
    const after = await engine.extract(request);
    assert.notEqual(after.resultKey, before.resultKey, 'a new model version gives new maps');
    assert.ok(after.elapsedMs > 0, 'computed again, not from the cache');
    assert.deepEqual(after.predictions, before.predictions, 'same weights, same answer');
  });

  it('refuses, by name, a model that has no layer with spatial maps', async () => {
    // A real TF.js LayersModel whose only layer maps a 1×1 pixel to two numbers.
    const dir = path.join(tempDir(), 'pixel-classifier');
    fs.mkdirSync(dir);
    const layers = [
      { class_name: 'InputLayer', config: { name: 'pixel', batch_input_shape: [null, 1, 1, 3], dtype: 'float32' } },
      { class_name: 'Dense', config: { name: 'dense', units: 2, activation: 'linear', use_bias: true } },
    ];
    const topology = { class_name: 'Sequential', config: { name: 'pixel_classifier', layers } };
    fs.writeFileSync(
      path.join(dir, 'model.json'),
      JSON.stringify({
        format: 'layers-model',
        modelTopology: { model_config: topology },
        weightsManifest: [
          {
            paths: ['weights.bin'],
            weights: [
              { name: 'dense/kernel', shape: [3, 2], dtype: 'float32' },
              { name: 'dense/bias', shape: [2], dtype: 'float32' },
            ],
          },
        ],
      }),
    );
    fs.writeFileSync(
      path.join(dir, 'weights.bin'),
      Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6, 0.5, -0.5]).buffer),
    );
    await assert.rejects(
      engine.extract({ imagePath: image('coffee.png'), model: { kind: 'file', path: dir }, layerPatterns: [] }),
      (e: unknown) => e instanceof UserFacingError && /model\.json has no layer with spatial maps/.test(e.message),
    );
  });

  it('names the file when a model cannot be read', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'broken'));
    fs.writeFileSync(path.join(dir, 'broken', 'model.json'), 'not json');
    fs.writeFileSync(path.join(dir, 'weights.pt'), 'not really a PyTorch file');
    fs.writeFileSync(path.join(dir, 'weights.npz'), 'a NumPy archive');
    fs.mkdirSync(path.join(dir, 'empty'));
    const cases: [string, RegExp][] = [
      [path.join(dir, 'broken', 'model.json'), /model\.json is not a readable TF\.js model\.json/],
      [path.join(dir, 'missing.onnx'), /missing\.onnx does not exist/],
      [path.join(dir, 'weights.pt'), /^weights\.pt is not a valid PyTorch model file\.$/],
      [path.join(dir, 'weights.npz'), /weights\.npz is not a model file this extension reads \(.*PyTorch/],
      [path.join(dir, 'empty'), /empty is a folder without a model\.json/],
    ];
    for (const [file, message] of cases) {
      await assert.rejects(
        engine.extract({ imagePath: image('coffee.png'), model: { kind: 'file', path: file }, layerPatterns: [] }),
        (e: unknown) => e instanceof UserFacingError && message.test(e.message),
        file,
      );
    }
  });
});

describe('your own model: ONNX (SqueezeNet fp16, ImageNet)', () => {
  let engine: FeatureMapEngine;
  const squeezenet = () => shared('fixtures', 'models', 'squeezenet-imagenet.onnx', 'SqueezeNet_fp16.onnx');
  before(() => {
    engine = new FeatureMapEngine({ assetsDir: DIST });
  });
  after(() => engine.dispose());

  it('guesses Caffe preprocessing and finds <model>.labels.txt: a cat for chelsea.png, espresso or a cup for coffee.png', async () => {
    const labels = path.join(path.dirname(squeezenet()), 'SqueezeNet_fp16.labels.txt');
    for (const [name, word] of [
      ['chelsea.png', /\b(cat|tabby)\b/i],
      ['coffee.png', /\b(cup|espresso|coffee)/i],
    ] as const) {
      const result = await engine.extract({
        imagePath: image(name),
        model: { kind: 'file', path: squeezenet() },
        layerPatterns: [],
      });
      assert.match(result.model.preprocessing, /^caffe: .*data_0/);
      const top5 = result.predictions?.map((p) => p.label) ?? [];
      const wanted = [...labelsWith(labels, word)].map((line) => line.replace(/^\d+,/, '').trim());
      assert.ok(
        top5.some((l) => wanted.includes(l)),
        `${name}: top 5 were ${top5.join(', ')}`,
      );
      assert.ok(
        result.layers.some((l) => l.spatial && l.op === 'Conv'),
        'convolutions have maps',
      );
    }
  });
});

describe('your own model: ONNX files are read only when they are regular files of at most 2 GB', () => {
  // loadOnnxModel reads through files.ts' readRegularFile: the opened descriptor is checked, so a
  // file swapped after the engine resolved it is refused all the same.
  const load = (modelPath: string) =>
    loadOnnxModel({
      modelPath,
      key: `test:${modelPath}`,
      summary: { name: path.basename(modelPath), description: 'test' },
      preprocessing: 'raw01',
    });

  it('refuses a FIFO, a symlink to /dev/zero, a folder and a 3 GB file in words, without reading them', async () => {
    const dir = tempDir();
    const fifo = path.join(dir, 'pipe.onnx');
    execFileSync('mkfifo', [fifo]);
    const zero = path.join(dir, 'zero.onnx');
    fs.symlinkSync('/dev/zero', zero);
    const folder = path.join(dir, 'folder.onnx');
    fs.mkdirSync(folder);
    const big = path.join(dir, 'big.onnx');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 3e9); // sparse: costs no disk
    const cases: [string, RegExp][] = [
      [fifo, /^Cannot read the ONNX model pipe\.onnx: it is a named pipe \(FIFO\), not a regular file\.$/],
      [
        zero,
        /^Cannot read the ONNX model zero\.onnx: it is a device \(it leads to \/dev\/zero\), not a regular file\.$/,
      ],
      [folder, /^Cannot read the ONNX model folder\.onnx: it is a folder, not a regular file\.$/],
      [big, /^Cannot read the ONNX model big\.onnx: it is 3 GB, more than the 2 GB Feature Maps reads\.$/],
    ];
    for (const [file, message] of cases) {
      const started = performance.now();
      await rejectsWith(load(file), message);
      const ms = performance.now() - started;
      assert.ok(ms < 10_000, `${path.basename(file)}: ${ms} ms`);
    }
  });
});

describe('your own model: a fully convolutional VGG16 (input size not fixed) at featureMaps.inputSize [1024, 1024]', function () {
  // Issue 9: "VGG16 with featureMaps.inputSize [1024, 1024]: 48 s and 5.9 GB to show block1_conv1".
  // Loading ran a blank pass over every layer to learn the shapes; it now runs none.
  this.timeout(180_000);
  let engine: FeatureMapEngine;
  let modelJson: string;
  before(async () => {
    engine = new FeatureMapEngine({ assetsDir: DIST });
    modelJson = await writeVgg16NoTop(path.join(tempDir(), 'vgg16_fcn'));
  });
  after(() => engine.dispose());

  it('shows block1_conv1 first (the rest over the 2 GB budget is refused in words), loading with no pass', async () => {
    const source = { kind: 'file', path: modelJson, inputSize: { height: 1024, width: 1024 } } as const;
    const peakBefore = process.resourceUsage().maxRSS / 1024;
    const started = performance.now();
    const model = await engine.loadModel(source);
    const loadMs = performance.now() - started;
    const loadPeak = process.resourceUsage().maxRSS / 1024 - peakBefore;
    assert.equal(model.backend, 'onnxruntime');
    assert.deepEqual(model.layers[0], { name: 'block1_conv1', op: 'Conv2D', shape: [1024, 1024, 64] });
    assert.deepEqual(model.layers.at(-1), { name: 'block5_pool', op: 'MaxPooling2D', shape: [32, 32, 512] });

    const first = await engine.extract({
      imagePath: image('chelsea.png'),
      model: source,
      layerPatterns: [],
      onlyListedLayers: true,
    });
    const totalMs = performance.now() - started;
    const totalPeak = process.resourceUsage().maxRSS / 1024 - peakBefore;
    console.log(
      `      loaded (converted to ONNX, no pass) in ${loadMs.toFixed(0)} ms, peak RSS +${loadPeak.toFixed(0)} MB; ` +
        `block1_conv1 shown after ${totalMs.toFixed(0)} ms in all (its pass ${first.elapsedMs.toFixed(0)} ms), peak RSS +${totalPeak.toFixed(0)} MB`,
    );
    assert.equal(first.partial, true);
    assert.equal(engine.layerData(first.resultKey, 'block1_conv1', 4).count, 4);
    // Generous: the issue measured 48 s; a pass at load over every layer takes far more than this here.
    assert.ok(totalMs < 30_000, `${totalMs} ms`);

    const error = await rejectsWith(
      engine.complete(first.resultKey),
      /^Computing every layer of vgg16_fcn on chelsea\.png needs about [\d.]+ GB \(layer "block1_conv1": 1024×1024×64 float32 is 256 MB\); the memory budget is 2 GB \(featureMaps\.memoryBudget\)\.$/,
    );
    console.log(`      ${error.message}`);
  });
});

/**
 * Keras' VGG16 without top with its input size not fixed ([null, null, 3]), layer for layer (same
 * names), saved as a TF.js LayersModel (model.json and one 59 MB shard of random weights).
 */
async function writeVgg16NoTop(dir: string): Promise<string> {
  const { tf } = await getTf(DIST);
  const input = tfl.input({ shape: [null, null, 3], name: 'input_1' });
  let x = input;
  [
    [64, 64],
    [128, 128],
    [256, 256, 256],
    [512, 512, 512],
    [512, 512, 512],
  ].forEach((filters, b) => {
    filters.forEach((count, c) => {
      x = tfl.layers
        .conv2d({
          filters: count,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          name: `block${b + 1}_conv${c + 1}`,
        })
        .apply(x) as tfl.SymbolicTensor;
    });
    x = tfl.layers.maxPooling2d({ poolSize: 2, strides: 2, name: `block${b + 1}_pool` }).apply(x) as tfl.SymbolicTensor;
  });
  const model = tfl.model({ inputs: input, outputs: x, name: 'vgg16' });
  const modelJson = await saveLayersModel(tf, model, dir);
  model.dispose();
  return modelJson;
}

describe('your own model: Keras HDF5 (fer2013 mini-Xception, 64×64 grayscale)', () => {
  let engine: FeatureMapEngine;
  before(() => {
    engine = new FeatureMapEngine({ assetsDir: DIST });
  });
  after(() => engine.dispose());

  it('feeds a photo to a grayscale model as luma, with Keras [-1, 1] scaling guessed', async () => {
    const result = await engine.extract({
      imagePath: image('astronaut.png'),
      model: { kind: 'file', path: shared('fixtures', 'models', 'fer2013_mini_XCEPTION.102-0.66.hdf5') },
      layerPatterns: [],
    });
    assert.deepEqual(result.model.inputShape, [64, 64, 1]);
    assert.match(result.model.preprocessing, /^tf: /);
    for (const op of ['SeparableConv2D', 'BatchNormalization', 'Add']) {
      assert.ok(
        result.layers.some((l) => l.op === op),
        `${op} layers listed`,
      );
    }
    const head = engine.activation(result.resultKey, result.layers.at(-1)!.name)!;
    assert.equal(head.data.length, 7, 'seven emotions');
    const sum = head.data.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `softmax sums to 1 (${sum})`);
  });
});

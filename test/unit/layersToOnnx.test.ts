import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { onnx } from 'onnx-proto';
import sharp from 'sharp';
import { channelsLast } from '../../src/engine/model';
import { FeatureMapEngine } from '../../src/engine/engine';
import { decodeImage } from '../../src/engine/image';
import type { Activation, LoadedModel } from '../../src/engine/model';
import { loadKerasApplication } from '../../src/engine/models/kerasApplications';
import { loadKerasModel } from '../../src/engine/models/keras';
import { DerivedActivation } from '../../src/engine/models/derivedLayers';
import { layersModelToOnnx, toOnnxRuntime } from '../../src/engine/models/layersToOnnx';
import { pruneGraph } from '../../src/engine/models/onnx';
import { loadTfjsLayersModel, wrapLayersModel } from '../../src/engine/models/tfjsLayers';
import { loadVgg16NoTop } from '../../src/engine/models/vgg16';
import { preprocess, type PreprocessMode } from '../../src/engine/preprocess';
import { type Tf, getTf } from '../../src/engine/tf';
import { DIST, ORACLE_TOLERANCE, image, oracle, oracleCacheFile, saveLayersModel, shared, tempDir } from './fixtures';
import { readNpy, relErr } from './npy';

/** ONNX Runtime against TensorFlow.js, per layer: max|ort − tfjs| / max|tfjs|. */
const TOLERANCE = 1e-4;

const BUNDLED = () => path.join(DIST, 'models', 'mobilenet_v2', 'model.json');
const DARKNET = () => shared('fixtures', 'models', 'darknet-tiny-imagenet.tfjs', 'model.json');
const FER2013 = () => shared('fixtures', 'models', 'fer2013_mini_XCEPTION.102-0.66.hdf5');

const identity = (modelPath: string) => ({
  key: `test:${modelPath}`,
  summary: { name: path.basename(modelPath), description: 'test' },
});

/** A photo as the model takes it. */
async function photo(name: string, size: number, mode: PreprocessMode): Promise<Float32Array> {
  const decoded = await decodeImage(image(name), { width: size, height: size });
  return preprocess(decoded.rgb, mode);
}

/** The median of `runs` timed passes, after the one already done. */
async function timed(model: LoadedModel, input: Float32Array, runs = 2): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await model.run(input);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)];
}

interface Comparison {
  /** The ORT model's activations. */
  ours: Map<string, Activation>;
  native: LoadedModel;
  worst: { layer: string; error: number };
}

/**
 * Converts a loaded tfjs model to ONNX Runtime, runs both on `input` and checks every layer:
 * same names, order and shapes, values within TOLERANCE. Prints both timings. The caller
 * disposes `native`; the tfjs model is disposed here.
 */
async function compareWithTfjs(
  label: string,
  tfjs: LoadedModel,
  input: Float32Array,
  /** The same model as its loader opened it on onnxruntime (a Keras file); else converted from `tfjs`. */
  opened?: () => Promise<LoadedModel>,
): Promise<Comparison> {
  let native: LoadedModel | { unsupported: string };
  const converting = performance.now();
  try {
    native = opened ? await opened() : await toOnnxRuntime(tfjs);
    const convertMs = performance.now() - converting;
    if ('unsupported' in native) assert.fail(`${label} does not convert: ${native.unsupported}`);
    assert.equal(native.backend, 'onnxruntime');
    assert.equal(native.layersModel, undefined);
    assert.deepEqual(native.layers, tfjs.layers);
    assert.deepEqual(native.inputSize, tfjs.inputSize);

    const reference = await tfjs.run(input);
    const ours = await native.run(input);
    const tfjsMs = await timed(tfjs, input);
    const ortMs = await timed(native, input, 5);
    assert.deepEqual([...ours.keys()], [...reference.keys()], 'same layers in the same order');
    let worst = { layer: '', error: 0 };
    for (const layer of tfjs.layers) {
      const [a, b] = [ours.get(layer.name)!, reference.get(layer.name)!];
      assert.deepEqual(a.shape, b.shape, `${layer.name} shape`);
      assert.deepEqual(a.shape, layer.shape, `${layer.name} shape as listed`);
      const error = relErr(channelsLast(a), channelsLast(b));
      assert.ok(error <= TOLERANCE, `${label} ${layer.name} (${layer.op}): ORT differs from tfjs by ${error}`);
      if (error > worst.error) worst = { layer: layer.name, error };
    }
    console.log(
      `      ${label}: ${tfjs.backend} ${tfjsMs.toFixed(0)} ms, onnxruntime ${ortMs.toFixed(0)} ms ` +
        `(${(tfjsMs / ortMs).toFixed(1)}×; converted and checked in ${convertMs.toFixed(0)} ms); ` +
        `${tfjs.layers.length} layers, worst ${worst.layer} ${worst.error.toExponential(1)}`,
    );
    return { ours, native, worst };
  } finally {
    tfjs.dispose();
  }
}

/** Keras' own outputs (the oracle's .npy files) against ONNX Runtime's. */
function matchesKeras(ours: Map<string, Activation>, refs: [layer: string, file: string][]): string {
  const errors: string[] = [];
  for (const [layer, file] of refs) {
    const ref = readNpy(file);
    const activation = ours.get(layer);
    assert.ok(activation, `no activations for ${layer}`);
    assert.deepEqual([1, ...activation.shape], ref.shape, `${layer} shape`);
    const error = relErr(channelsLast(activation), ref.data);
    assert.ok(error <= ORACLE_TOLERANCE, `${layer}: ORT differs from Keras by ${error}`);
    errors.push(error.toExponential(1));
  }
  return errors.reduce((a, b) => (Number(a) > Number(b) ? a : b), '0');
}

describe('TF.js and Keras models on onnxruntime (converted to ONNX in memory)', function () {
  this.timeout(240_000);
  let tf: Tf;
  before(async () => {
    tf = (await getTf(DIST)).tf;
  });

  it('the bundled MobileNetV2 gives tfjs’ activations on every layer, with no pass at load (ORT infers every shape)', async () => {
    const tfjs = await loadTfjsLayersModel(tf, {
      ...identity('bundled'),
      modelJsonPath: BUNDLED(),
      preprocessing: 'raw01',
    });
    const { native } = await compareWithTfjs('bundled MobileNetV2', tfjs, await photo('chelsea.png', 224, 'raw01'));
    assert.equal((native as { trialPassMs?: number }).trialPassMs, undefined, 'no trial pass before the first image');
    native.dispose();
  });

  it('a pass over an early layer runs a graph cut after it: nothing behind it, and its values', async () => {
    const tfjs = await loadTfjsLayersModel(tf, {
      ...identity('bundled'),
      modelJsonPath: BUNDLED(),
      preprocessing: 'raw01',
    });
    const conversion = layersModelToOnnx(tfjs.layersModel!, tfjs.inputSize);
    assert.ok(!('unsupported' in conversion));
    const full = onnx.ModelProto.decode(conversion.bytes);
    const cut = pruneGraph(full, ['block_1_expand_relu']);
    const kept = new Set(cut.graph!.node!.map((n) => n.name));
    const fullOrder = full.graph!.node!.map((n) => n.name);
    // Exactly the nodes up to that layer, and the weights they use.
    assert.deepEqual([...kept], fullOrder.slice(0, fullOrder.indexOf('block_1_expand_relu') + 1));
    assert.ok(cut.graph!.initializer!.length < full.graph!.initializer!.length / 5);
    assert.deepEqual(
      cut.graph!.output!.map((o) => o.name),
      ['block_1_expand_relu'],
    );
    // And the engine's pass over that layer alone gives tfjs' values.
    const native = await toOnnxRuntime(tfjs);
    assert.ok(!('unsupported' in native));
    const input = await photo('coffee.png', 224, 'raw01');
    const ours = (await native.run(input, new Set(['block_1_expand_relu']))).get('block_1_expand_relu')!;
    const reference = await loadTfjsLayersModel(tf, {
      ...identity('bundled'),
      modelJsonPath: BUNDLED(),
      preprocessing: 'raw01',
    });
    const expected = (await reference.run(input)).get('block_1_expand_relu')!;
    assert.ok(relErr(channelsLast(ours), channelsLast(expected)) <= TOLERANCE);
    native.dispose();
    reference.dispose();
    tfjs.dispose();
  });

  it('Darknet Tiny (a user’s TF.js LayersModel: LeakyReLU, "same" max pooling) gives tfjs’ activations', async () => {
    const tfjs = await loadTfjsLayersModel(tf, {
      ...identity(DARKNET()),
      modelJsonPath: DARKNET(),
      preprocessing: 'raw01',
    });
    const { native } = await compareWithTfjs('Darknet Tiny', tfjs, await photo('coffee.png', 224, 'raw01'));
    native.dispose();
  });

  it('the Keras 2.0.5 mini-Xception .hdf5 (SeparableConv2D, grayscale input) gives tfjs’ activations', async () => {
    const options = { ...identity(FER2013()), modelPath: FER2013(), preprocessing: 'none' } as const;
    const tfjs = await loadKerasModel(tf, { ...options, native: false });
    const gray = await sharp(image('camera.png')).resize(64, 64).grayscale().raw().toBuffer();
    const input = Float32Array.from(gray, (v) => (v / 255) * 2 - 1);
    const { native } = await compareWithTfjs('mini-Xception', tfjs, input, () => loadKerasModel(tf, options));
    native.dispose();
  });

  for (const file of ['zoo.h5', 'zoo.keras']) {
    it(`${file} (every supported layer kind) gives tfjs’ activations and matches Keras within ${ORACLE_TOLERANCE}`, async () => {
      const options = { ...identity(file), modelPath: oracle(file), preprocessing: 'none' } as const;
      const tfjs = await loadKerasModel(tf, { ...options, native: false });
      const names = tfjs.layers.map((l) => l.name);
      const { ours, native } = await compareWithTfjs(file, tfjs, readNpy(oracle('zoo.input.npy')).data, () =>
        loadKerasModel(tf, options),
      );
      try {
        const worst = matchesKeras(
          ours,
          names.map((name) => [name, oracle(`zoo.${name}.npy`)]),
        );
        console.log(`      ${file}: against Keras, worst ${worst}`);
      } finally {
        native.dispose();
      }
    });
  }

  it(`VGG16 (catalogue, built in code) gives tfjs’ activations and matches Keras within ${ORACLE_TOLERANCE}`, async function () {
    const weights = oracleCacheFile('vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5', this);
    const cache = path.dirname(weights);
    const tfjs = await loadVgg16NoTop(tf, weights, identity(weights));
    const names = tfjs.layers.map((l) => l.name);
    const { ours, native } = await compareWithTfjs('VGG16', tfjs, readNpy(path.join(cache, 'chelsea.input.npy')).data);
    try {
      const worst = matchesKeras(
        ours,
        names.map((name) => [name, path.join(cache, `chelsea.${name}.npy`)]),
      );
      console.log(`      VGG16: against Keras, worst ${worst}`);
    } finally {
      native.dispose();
    }
  });

  for (const [id, file] of [
    ['mobilenet_v2', 'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5'],
    ['resnet50', 'resnet50_weights_tf_dim_ordering_tf_kernels.h5'],
  ] as const) {
    it(`${id} (catalogue, built in code) gives tfjs’ activations and matches Keras where the oracle saved them`, async function () {
      const weights = oracleCacheFile(path.join('applications', file), this);
      const dir = path.dirname(weights);
      const tfjs = await loadKerasApplication(tf, id, weights, identity(weights));
      const names = new Set(tfjs.layers.map((l) => l.name));
      const { ours, native } = await compareWithTfjs(
        `catalogue ${id}`,
        tfjs,
        readNpy(path.join(dir, `${id}.input.npy`)).data,
      );
      try {
        const refs = fs
          .readdirSync(dir)
          .map((f) => new RegExp(`^${id}\\.(.+)\\.npy$`).exec(f)?.[1])
          .filter((name): name is string => name !== undefined && names.has(name));
        assert.ok(refs.length > 5, `the oracle has ${refs.length} of ${id}'s layers`);
        const worst = matchesKeras(
          ours,
          refs.map((name) => [name, path.join(dir, `${id}.${name}.npy`)]),
        );
        console.log(`      ${id}: against Keras on ${refs.length} layers, worst ${worst}`);
      } finally {
        native.dispose();
      }
    });
  }

  describe('layers converted one by one, against tfjs', () => {
    /** A one-input model [H, W, C] → layers, wrapped like any TF.js model. */
    function small(
      build: (x: tfl.SymbolicTensor) => tfl.SymbolicTensor,
      shape: [number | null, number | null, number] = [9, 11, 4],
      inputSize?: { height: number; width: number },
    ): LoadedModel {
      const input = tfl.input({ shape, name: 'in' });
      const model = tfl.model({ inputs: input, outputs: build(input) });
      // Random weights everywhere (BN statistics too), so no layer is an identity by accident.
      for (const layer of model.layers) {
        const values = layer.weights.map(({ name, shape }) =>
          name.includes('variance')
            ? tf.randomUniform(shape as number[], 0.5, 2)
            : tf.randomNormal(shape as number[], 0, 0.5),
        );
        layer.setWeights(values);
        tf.dispose(values);
      }
      return wrapLayersModel(tf, model, { ...identity('small'), preprocessing: 'none', inputSize });
    }

    const randomInput = (model: LoadedModel) => {
      const { height, width, channels } = model.inputSize;
      return tf.randomNormal([height * width * channels], 0, 1).dataSync() as Float32Array;
    };

    const cases: [string, (x: tfl.SymbolicTensor) => tfl.SymbolicTensor][] = [
      [
        'Conv2D: strided "same" (odd sizes), dilation, every activation',
        (x) => {
          let y = tfl.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same' }).apply(x);
          y = tfl.layers
            .conv2d({ filters: 5, kernelSize: [3, 2], dilationRate: 2, padding: 'same', activation: 'elu' })
            .apply(y);
          for (const activation of [
            'selu',
            'sigmoid',
            'hardSigmoid',
            'softplus',
            'softsign',
            'tanh',
            'swish',
            'mish',
            'gelu',
            'gelu_new',
            'relu6',
            'softmax',
          ] as const) {
            y = tfl.layers.activation({ activation }).apply(y);
          }
          return tfl.layers
            .conv2d({ filters: 3, kernelSize: 4, strides: [2, 1], useBias: false })
            .apply(y) as tfl.SymbolicTensor;
        },
      ],
      [
        'DepthwiseConv2D (multiplier 3) and SeparableConv2D (multiplier 2, strided)',
        (x) => {
          const y = tfl.layers
            .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 3, padding: 'same', activation: 'relu' })
            .apply(x);
          return tfl.layers
            .separableConv2d({ filters: 7, kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same' })
            .apply(y) as tfl.SymbolicTensor;
        },
      ],
      [
        'BatchNormalization without scale or centre, ReLU with a cap, LeakyReLU, ELU, PReLU, ThresholdedReLU',
        (x) => {
          let y = tfl.layers.batchNormalization({ scale: false, center: false, epsilon: 0.01 }).apply(x);
          y = tfl.layers.reLU({ maxValue: 0.5 }).apply(y);
          y = tfl.layers.batchNormalization({}).apply(y);
          y = tfl.layers.leakyReLU({ alpha: 0.2 }).apply(y);
          y = tfl.layers.elu({}).apply(y);
          y = tfl.layers.prelu({ sharedAxes: [1, 2] }).apply(y);
          y = tfl.layers.prelu({}).apply(y);
          return tfl.layers.thresholdedReLU({ theta: 0.1 }).apply(y) as tfl.SymbolicTensor;
        },
      ],
      [
        'pooling (same/valid), zero padding, cropping, up-sampling, global pooling, softmax layer',
        (x) => {
          let y = tfl.layers
            .zeroPadding2d({
              padding: [
                [1, 2],
                [0, 3],
              ],
            })
            .apply(x);
          y = tfl.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(y);
          y = tfl.layers.maxPooling2d({ poolSize: [2, 3], strides: 1, padding: 'same' }).apply(y);
          y = tfl.layers
            .cropping2D({
              cropping: [
                [1, 0],
                [2, 1],
              ],
            })
            .apply(y);
          y = tfl.layers.upSampling2d({ size: [2, 3] }).apply(y);
          y = tfl.layers.upSampling2d({ size: [2, 2], interpolation: 'bilinear' }).apply(y);
          y = tfl.layers.maxPooling2d({ poolSize: 2 }).apply(y);
          y = tfl.layers.softmax({ axis: -1 }).apply(y);
          const avg = tfl.layers.globalAveragePooling2d({}).apply(y) as tfl.SymbolicTensor;
          const max = tfl.layers.globalMaxPooling2d({}).apply(y) as tfl.SymbolicTensor;
          return tfl.layers.concatenate({ axis: -1 }).apply([avg, max]) as tfl.SymbolicTensor;
        },
      ],
      [
        'merges (add, multiply, average, maximum, minimum, concatenate on H and C) and Rescaling on the input',
        (x) => {
          const scaled = tfl.layers.rescaling({ scale: 0.5, offset: -0.25 }).apply(x) as tfl.SymbolicTensor;
          const a = tfl.layers.conv2d({ filters: 4, kernelSize: 1 }).apply(scaled) as tfl.SymbolicTensor;
          const b = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(x) as tfl.SymbolicTensor;
          const merged = [
            tfl.layers.add().apply([a, b, scaled]),
            tfl.layers.multiply().apply([a, b, scaled]),
            tfl.layers.average().apply([a, b]),
            tfl.layers.maximum().apply([a, scaled]),
            tfl.layers.minimum().apply([scaled, b]),
          ] as tfl.SymbolicTensor[];
          const onH = tfl.layers.concatenate({ axis: 1 }).apply(merged) as tfl.SymbolicTensor;
          return tfl.layers.concatenate({ axis: 3 }).apply([onH, onH]) as tfl.SymbolicTensor;
        },
      ],
      [
        'Flatten (in Keras’ order), Reshape, Permute, Dense on a map and on a vector, dropout',
        (x) => {
          let y = tfl.layers.dense({ units: 5, activation: 'tanh' }).apply(x);
          y = tfl.layers.permute({ dims: [2, 1, 3] }).apply(y);
          y = tfl.layers.conv2d({ filters: 3, kernelSize: 2 }).apply(y);
          y = tfl.layers.flatten().apply(y);
          y = tfl.layers.dropout({ rate: 0.5 }).apply(y);
          y = tfl.layers.dense({ units: 24, activation: 'relu' }).apply(y);
          y = tfl.layers.reshape({ targetShape: [2, 3, 4] }).apply(y);
          y = tfl.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(y);
          y = tfl.layers.reshape({ targetShape: [12] }).apply(y);
          return tfl.layers.dense({ units: 4, activation: 'softmax' }).apply(y) as tfl.SymbolicTensor;
        },
      ],
    ];
    for (const [title, build] of cases) {
      it(title, async () => {
        const tfjs = small(build);
        const { native } = await compareWithTfjs(title.split(':')[0].split(' (')[0], tfjs, randomInput(tfjs));
        native.dispose();
      });
    }

    it('layers derived from others when read (activations, batch norms either way, sums, zero padding, widening 1×1 convolutions) equal tfjs’; a batch norm with a zero scale is not inverted', async () => {
      const tfjs = small((x) => {
        const a = tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'conv_a' }).apply(x);
        const aNorm = tfl.layers.batchNormalization({ name: 'bn_a' }).apply(a);
        const aRelu = tfl.layers.reLU({ maxValue: 6, name: 'relu6_a' }).apply(aNorm);
        const b = tfl.layers.conv2d({ filters: 6, kernelSize: 1, name: 'conv_b' }).apply(aRelu);
        const bNorm = tfl.layers.batchNormalization({ name: 'bn_b' }).apply(b);
        const sum = tfl.layers.add({ name: 'sum' }).apply([bNorm, aNorm] as tfl.SymbolicTensor[]);
        const leaky = tfl.layers.leakyReLU({ alpha: 0.1, name: 'leaky' }).apply(sum);
        // Widened 6 → 12 by a 1×1 convolution, as MobileNetV2's expand layers are, with its norm.
        const expand = tfl.layers.conv2d({ filters: 12, kernelSize: 1, name: 'expand' }).apply(leaky);
        const expandNorm = tfl.layers.batchNormalization({ name: 'bn_e' }).apply(expand);
        const expandRelu = tfl.layers.reLU({ name: 'relu_e' }).apply(expandNorm);
        // Padded unevenly, as MobileNetV2's stride-2 blocks are, then read by a convolution.
        const padded = tfl.layers
          .zeroPadding2d({
            padding: [
              [1, 2],
              [0, 3],
            ],
            name: 'pad',
          })
          .apply(expandRelu);
        return tfl.layers.conv2d({ filters: 3, kernelSize: 3, name: 'conv_c' }).apply(padded) as tfl.SymbolicTensor;
      });
      // Batch norms with statistics (fresh ones are the identity), and one channel of bn_b scaled
      // by 0: conv_b cannot be computed back from it.
      for (const name of ['bn_a', 'bn_b', 'bn_e']) {
        const layer = tfjs.layersModel!.getLayer(name);
        const weights = layer.getWeights().map((w, k) => {
          // gamma (never 0: a zero one is not inverted), beta, mean, variance.
          const stat = [(c: number) => 1 + Math.sin(c) / 2, Math.sin, Math.cos, (c: number) => 0.5 + c / 10][k];
          const values = Float32Array.from(w.dataSync(), (_, c) => stat(c));
          return tf.tensor1d(values);
        });
        layer.setWeights(weights);
        for (const w of weights) w.dispose();
      }
      const bn = tfjs.layersModel!.getLayer('bn_b');
      const [gamma, ...rest] = bn.getWeights();
      const zeroed = gamma.dataSync().slice();
      zeroed[2] = 0;
      const replaced = tf.tensor1d(zeroed);
      bn.setWeights([replaced, ...rest]);
      replaced.dispose();

      const [kernel, bias] = tfjs.layersModel!.getLayer('expand').getWeights();
      const hwio = kernel.dataSync().slice();
      const expandBias = Float32Array.from(bias.dataSync());
      const input = randomInput(tfjs);
      const { native } = await compareWithTfjs('derived layers', tfjs, input);
      const activations = await native.run(input);
      const derived = [...activations].filter(([, a]) => a.derived).map(([name]) => name);
      // conv_a from bn_a (inverted), relu6_a from bn_a, bn_b from conv_b (bn_b has a zero scale),
      // sum from bn_b and bn_a, leaky from sum, expand and bn_e from leaky (1×1), relu_e from
      // bn_e, pad from relu_e: only bn_a, conv_b and conv_c are fetched.
      assert.deepEqual(derived, ['conv_a', 'relu6_a', 'bn_b', 'sum', 'leaky', 'expand', 'bn_e', 'relu_e', 'pad']);
      // The 9×11 input, 1 + 2 rows and 0 + 3 columns more.
      const pad = activations.get('pad')!;
      assert.deepEqual(pad.shape, [12, 14, 12]);
      // The same padding, and the same 1×1 convolution, of the same maps held channels last (as
      // TF.js graphs' NHWC maps are) give the same values, channels last.
      const relu = activations.get('relu_e')!;
      const padHwc = new DerivedActivation(
        [12, 14, 12],
        'hwc',
        { kind: 'pad', source: 'relu_e', top: 1, bottom: 2, left: 0, right: 3, value: 0 },
        new Map([['relu_e', { shape: relu.shape, layout: 'hwc', data: channelsLast(relu) } as Activation]]),
      );
      assert.deepEqual(padHwc.data, channelsLast(pad));
      const leaky = activations.get('leaky')!;
      const expandHwc = new DerivedActivation(
        [9, 11, 12],
        'hwc',
        {
          kind: 'pointwise',
          source: 'leaky',
          inputs: 6,
          outputs: 12,
          matrix: () => ({
            weights: Float32Array.from({ length: 72 }, (_, k) => hwio[(k % 6) * 12 + Math.floor(k / 6)]),
            bias: expandBias,
          }),
        },
        new Map([['leaky', { shape: leaky.shape, layout: 'hwc', data: channelsLast(leaky) } as Activation]]),
      );
      assert.ok(relErr(expandHwc.data, channelsLast(activations.get('expand')!)) <= TOLERANCE);
      native.dispose();
    });

    describe('with an input size not fixed ([null, null, 4]) run at 9×11: every shape from the layers’ rules at load', () => {
      // No pass at load: compareWithTfjs checks each layer's shape when run against the one listed.
      // Flatten into Dense and a PReLU slope per pixel need a fixed size, as in Keras.
      const anySize = cases.filter(([title]) => !title.startsWith('Flatten') && !title.includes('PReLU'));
      for (const [title, build] of anySize) {
        it(title.split(':')[0].split(' (')[0], async () => {
          const tfjs = small(build, [null, null, 4], { height: 9, width: 11 });
          assert.ok(
            tfjs.layers.every((l) => l.shape.length > 0),
            JSON.stringify(tfjs.layers.map((l) => l.shape)),
          );
          const { native } = await compareWithTfjs(
            `${title.split(':')[0].split(' (')[0]} (not fixed)`,
            tfjs,
            randomInput(tfjs),
          );
          native.dispose();
        });
      }

      it('Conv2DTranspose and a strided Conv2D (on tfjs): the shapes listed are the shapes computed', async () => {
        const tfjs = small(
          (x) => {
            const y = tfl.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, name: 'down' }).apply(x);
            return tfl.layers
              .conv2dTranspose({ filters: 2, kernelSize: 3, strides: 2, padding: 'same', name: 'up' })
              .apply(y) as tfl.SymbolicTensor;
          },
          [null, null, 4],
          { height: 33, width: 20 },
        );
        try {
          assert.deepEqual(
            tfjs.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
            ['down:16×9×4', 'up:32×18×2'],
          );
          const activations = await tfjs.run(randomInput(tfjs));
          for (const layer of tfjs.layers) assert.deepEqual(activations.get(layer.name)?.shape, layer.shape);
        } finally {
          tfjs.dispose();
        }
      });

      it('a layer whose shape rule fails: it and the layers it feeds are listed unknown until the first pass', async () => {
        /** Doubles its input; its shape rule knows only symbolic sizes (as a custom layer's might). */
        class Doubling extends tfl.layers.Layer {
          static readonly className = 'Doubling';
          override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
            const shape = inputShape as tfl.Shape;
            if (shape.slice(1).every((d) => d !== null)) throw new Error('no rule for a fixed size');
            return shape;
          }
          override call(inputs: tfc.Tensor | tfc.Tensor[]): tfc.Tensor {
            return tf.mul(Array.isArray(inputs) ? inputs[0] : inputs, 2);
          }
        }
        const tfjs = small(
          (x) => {
            const y = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'before' }).apply(x) as tfl.SymbolicTensor;
            const doubled = new Doubling({ name: 'double' }).apply(y);
            return tfl.layers.maxPooling2d({ poolSize: 2, name: 'after' }).apply(doubled) as tfl.SymbolicTensor;
          },
          [null, null, 4],
          { height: 9, width: 11 },
        );
        try {
          assert.deepEqual(
            tfjs.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
            ['before:9×11×3', 'double:', 'after:'],
          );
          const activations = await tfjs.run(randomInput(tfjs));
          assert.deepEqual(
            tfjs.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
            ['before:9×11×3', 'double:9×11×3', 'after:4×5×3'],
          );
          for (const layer of tfjs.layers) assert.deepEqual(activations.get(layer.name)?.shape, layer.shape);
        } finally {
          tfjs.dispose();
        }
      });
    });

    it('a Sequential model', async () => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.conv2d({ inputShape: [10, 10, 3], filters: 4, kernelSize: 3, activation: 'relu' }),
          tfl.layers.maxPooling2d({ poolSize: 2 }),
          tfl.layers.flatten(),
          tfl.layers.dense({ units: 3, activation: 'softmax' }),
        ],
      });
      const tfjs = wrapLayersModel(tf, model, { ...identity('sequential'), preprocessing: 'none' });
      const { native } = await compareWithTfjs('Sequential', tfjs, randomInput(tfjs));
      native.dispose();
    });

    it('a layer it cannot convert leaves the model on tfjs, and says which', async () => {
      const tfjs = small((x) => {
        const y = tfl.layers.conv2d({ filters: 4, kernelSize: 3 }).apply(x);
        const flat = tfl.layers.flatten().apply(y);
        return tfl.layers.repeatVector({ n: 2, name: 'repeat' }).apply(flat) as tfl.SymbolicTensor;
      });
      try {
        const conversion = layersModelToOnnx(tfjs.layersModel!, tfjs.inputSize);
        assert.ok('unsupported' in conversion);
        assert.match(conversion.unsupported, /"repeat" \(RepeatVector\) has no ONNX conversion/);
        const native = await toOnnxRuntime(tfjs);
        assert.ok('unsupported' in native);
      } finally {
        tfjs.dispose();
      }
    });

    it('channels-first data and shared layers stay on tfjs', () => {
      const input = tfl.input({ shape: [6, 6, 3] });
      const conv = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'shared' });
      const twice = tfl.model({ inputs: input, outputs: conv.apply(conv.apply(input)) as tfl.SymbolicTensor });
      const first = tfl.layers.conv2d({ filters: 2, kernelSize: 1, dataFormat: 'channelsFirst', name: 'first' });
      const channelsFirst = tfl.model({ inputs: input, outputs: first.apply(input) as tfl.SymbolicTensor });
      try {
        // Converted (each call is a layer, `shared#2`), but tfjs taps only layers called once.
        const conversion = layersModelToOnnx(twice, { height: 6, width: 6, channels: 3 });
        assert.ok(!('unsupported' in conversion));
        assert.deepEqual(
          conversion.outputs.map((o) => o.layer),
          ['shared', 'shared#2'],
        );
        assert.match(unsupportedReason(channelsFirst), /"first" \(Conv2D\) uses data format channels_first/);
      } finally {
        twice.dispose();
        channelsFirst.dispose();
      }
    });
  });

  describe('the engine', () => {
    const engines: FeatureMapEngine[] = [];
    after(() => engines.forEach((e) => e.dispose()));
    const engine = (nativeLayers: boolean) => {
      const e = new FeatureMapEngine({ assetsDir: DIST, nativeLayers });
      engines.push(e);
      return e;
    };

    it('gives the same activations with nativeLayers on and off, and says which runtime ran', async () => {
      const lines: string[] = [];
      const native = new FeatureMapEngine({ assetsDir: DIST, log: (line) => lines.push(line) });
      engines.push(native);
      const tfjs = engine(false);
      for (const model of [
        { kind: 'bundled' } as const,
        { kind: 'file', path: DARKNET() } as const,
        { kind: 'file', path: oracle('zoo.keras') } as const,
      ]) {
        const request = { imagePath: image('chelsea.png'), model, layerPatterns: [] };
        const [a, b] = [await native.extract(request), await tfjs.extract(request)];
        assert.equal(a.model.backend, 'onnxruntime');
        assert.equal(b.model.backend, 'tfjs-wasm');
        assert.deepEqual(a.layers, b.layers);
        assert.deepEqual(
          a.predictions?.map((p) => p.label),
          b.predictions?.map((p) => p.label),
        );
        for (const layer of a.layers) {
          const [x, y] = [native.activation(a.resultKey, layer.name)!, tfjs.activation(b.resultKey, layer.name)!];
          assert.deepEqual(x.shape, y.shape);
          const error = relErr(channelsLast(x), channelsLast(y));
          assert.ok(error <= TOLERANCE, `${a.model.name} ${layer.name}: ${error}`);
        }
        console.log(
          `      engine, ${a.model.name}: forward pass ${b.elapsedMs.toFixed(0)} ms on tfjs-wasm, ${a.elapsedMs.toFixed(0)} ms on onnxruntime`,
        );
      }
      // The bundled model from the ONNX form the build ships, the other two converted at open.
      assert.equal(
        lines.filter((l) => /runs on onnxruntime \(converted in \d+ ms\)/.test(l)).length,
        2,
        lines.join('\n'),
      );
      assert.match(
        lines.join('\n'),
        /MobileNetV2 \(bundled\) runs on onnxruntime \(its ONNX form shipped with the extension/,
      );
    });

    it('keeps a TF.js model it cannot convert on tfjs, and says so in the log', async () => {
      const input = tfl.input({ shape: [8, 8, 3] });
      const y = tfl.layers.conv2d({ filters: 4, kernelSize: 3, name: 'conv' }).apply(input);
      const flat = tfl.layers.flatten({ name: 'flatten' }).apply(y);
      const output = tfl.layers.repeatVector({ n: 2, name: 'repeat' }).apply(flat) as tfl.SymbolicTensor;
      const dir = path.join(tempDir(), 'layer-norm');
      await saveLayersModel(tf, tfl.model({ inputs: input, outputs: output }), dir);
      const lines: string[] = [];
      const e = new FeatureMapEngine({ assetsDir: DIST, log: (line) => lines.push(line) });
      engines.push(e);
      const result = await e.extract({
        imagePath: image('chelsea.png'),
        model: { kind: 'file', path: path.join(dir, 'model.json') },
        layerPatterns: [],
      });
      assert.equal(result.model.backend, 'tfjs-wasm');
      assert.deepEqual(
        result.layers.map((l) => l.name),
        ['conv', 'flatten', 'repeat'],
      );
      assert.match(
        lines.join('\n'),
        /runs on tfjs-wasm, not onnxruntime: layer "repeat" \(RepeatVector\) has no ONNX conversion/,
      );
    });

    it('FEATURE_MAPS_NATIVE=0 keeps TF.js models on tfjs', async () => {
      process.env.FEATURE_MAPS_NATIVE = '0';
      try {
        const e = new FeatureMapEngine({ assetsDir: DIST });
        engines.push(e);
        const result = await e.extract({
          imagePath: image('chelsea.png'),
          model: { kind: 'bundled' },
          layerPatterns: [],
        });
        assert.equal(result.model.backend, 'tfjs-wasm');
      } finally {
        delete process.env.FEATURE_MAPS_NATIVE;
      }
    });
  });
});

function unsupportedReason(model: tfl.LayersModel): string {
  const conversion = layersModelToOnnx(model, { height: 6, width: 6, channels: 3 });
  assert.ok('unsupported' in conversion, 'expected the conversion to refuse');
  return conversion.unsupported;
}

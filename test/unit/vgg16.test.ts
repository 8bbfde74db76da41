import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { channelsLast } from '../../src/engine/model';
import { decodeImage } from '../../src/engine/image';
import type { LoadedModel } from '../../src/engine/model';
import { buildVgg16NoTop, loadVgg16NoTop } from '../../src/engine/models/vgg16';
import { preprocess } from '../../src/engine/preprocess';
import { type Tf, getTf } from '../../src/engine/tf';
import { rejectsWith } from './assertions';
import { DIST, ORACLE_TOLERANCE, image, oracle, oracleCacheFile, writeH5, type H5File } from './fixtures';
import { loadApplicationOnOnnx } from './legacyWeights';
import { readNpy, relErr } from './npy';

const TOLERANCE = ORACLE_TOLERANCE;
/** Against the committed float16 files, whose rounding alone costs up to 4.9e-4. */
const F16_TOLERANCE = 1e-3;

const LAYERS = [1, 2, 3, 4, 5].flatMap((b) => [
  ...Array.from({ length: b <= 2 ? 2 : 3 }, (_, c) => `block${b}_conv${c + 1}`),
  `block${b}_pool`,
]);
const CONVS = LAYERS.filter((name) => name.includes('conv'));

/** Kernel and bias shapes of each VGG16 convolution, in order. */
function convShapes(): [string, number[], number[]][] {
  let inChannels = 3;
  return CONVS.map((name) => {
    const filters = [64, 128, 256, 512, 512][Number(name[5]) - 1];
    const shapes: [string, number[], number[]] = [name, [3, 3, inChannels, filters], [filters]];
    inChannels = filters;
    return shapes;
  });
}

/** A legacy weights-only layout (tf.keras 2 spelling) from `layers`: name → [kernel, bias]. */
function fillLegacy(root: H5File, layers: [string, number[], number[]][]): void {
  root.create_attribute(
    'layer_names',
    layers.map(([name]) => name),
  );
  for (const [name, kernel, bias] of layers) {
    const group = root.create_group(name);
    group.create_attribute('weight_names', [`${name}/kernel:0`, `${name}/bias:0`]);
    const inner = group.create_group(name);
    for (const [weight, shape] of [
      ['kernel:0', kernel],
      ['bias:0', bias],
    ] as const) {
      inner.create_dataset({ name: weight, data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape });
    }
  }
}

describe('VGG16 without top, from legacy Keras weights', function () {
  this.timeout(120_000);
  let tf: Tf;
  before(async () => {
    tf = (await getTf(DIST)).tf;
  });

  const load = (file: string): Promise<LoadedModel> =>
    loadVgg16NoTop(tf, file, { key: `test:${file}`, summary: { name: path.basename(file), description: 'test' } });

  /** Runs `model` on chelsea's oracle input and checks all 18 layers against Keras' float32 outputs. */
  async function matchesKeras(model: LoadedModel, label: string, cache: string): Promise<void> {
    const outputs = await model.run(readNpy(path.join(cache, 'chelsea.input.npy')).data);
    const errors: string[] = [];
    for (const name of LAYERS) {
      const ref = readNpy(path.join(cache, `chelsea.${name}.npy`));
      const ours = outputs.get(name);
      assert.ok(ours, `no activations for ${name}`);
      assert.deepEqual([1, ...ours.shape], ref.shape, `${name} shape`);
      const error = relErr(channelsLast(ours), ref.data);
      errors.push(`${name} ${error.toExponential(1)}`);
      assert.ok(error <= TOLERANCE, `${name}: relative error ${error} > ${TOLERANCE}`);
    }
    console.log(`      ${label}: ${errors.join(', ')}`);
  }

  it('builds Keras’ architecture: its 18 layer names, shapes and op types', async () => {
    const model = await buildVgg16NoTop(tf);
    try {
      assert.deepEqual(
        model.layers.slice(1).map((l) => l.name),
        LAYERS,
      );
      assert.deepEqual(model.outputs[0].shape, [null, 7, 7, 512]);
      assert.equal(model.countParams(), 14_714_688); // Keras' VGG16(include_top=False)
    } finally {
      model.dispose();
    }
  });

  // As tests build it in TensorFlow.js, and as the catalogue opens it where ONNX Runtime runs:
  // converted to ONNX without TensorFlow.js.
  const loaders: [string, (file: string) => Promise<LoadedModel>][] = [
    ['TensorFlow.js', (file) => load(file)],
    ['ONNX Runtime', (file) => loadApplicationOnOnnx('vgg16_notop', file)],
  ];

  for (const [runtime, open] of loaders)
    for (const file of [
      'vgg16_notop.legacy.weights.h5',
      'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5',
      'vgg16_notop.h5',
    ]) {
      it(`${file} on ${runtime}: every one of the 18 layers matches Keras within ${TOLERANCE} (relative to the layer's max)`, async function () {
        const weights = oracleCacheFile(file, this);
        const model = await open(weights);
        try {
          assert.deepEqual(model.inputSize, { height: 224, width: 224, channels: 3 });
          assert.equal(model.preprocessing, 'caffe');
          assert.deepEqual(
            model.layers.map((l) => l.name),
            LAYERS,
          );
          await matchesKeras(model, `${file} on ${runtime}`, path.dirname(weights));
        } finally {
          model.dispose();
        }
      });
    }

  it('reads all three generations’ weight names and a split layer_names attribute', async function () {
    const source = oracleCacheFile('vgg16_notop.legacy.weights.h5', this);
    const h5 = await import('h5wasm');
    const module = await h5.ready;
    module.FS.writeFile('/vgg16-source.h5', fs.readFileSync(source));
    const original = new h5.File('/vgg16-source.h5', 'r');
    try {
      const rewritten = await writeH5('mixed.h5', (root) => {
        // Keras splits big attributes into layer_names0, layer_names1…
        root.create_attribute('layer_names0', ['input_layer', ...CONVS.slice(0, 6)]);
        root.create_attribute('layer_names1', CONVS.slice(6));
        root.create_group('input_layer');
        CONVS.forEach((name, i) => {
          const group = root.create_group(name);
          const kernel = original.get(`${name}/${name}/kernel`) as InstanceType<typeof h5.Dataset>;
          const bias = original.get(`${name}/${name}/bias`) as InstanceType<typeof h5.Dataset>;
          // Keras 1 (the real download): flat `<layer>_W_1:0`; tf.keras 2: `<layer>/kernel:0`; Keras 3: `<layer>/kernel`.
          const names =
            i % 3 === 0
              ? [`${name}_W_1:0`, `${name}_b_1:0`]
              : i % 3 === 1
                ? [`${name}/kernel:0`, `${name}/bias:0`]
                : [`${name}/kernel`, `${name}/bias`];
          group.create_attribute('weight_names', names);
          [kernel, bias].forEach((dataset, j) => {
            const [dir, leaf] = names[j].includes('/') ? names[j].split('/') : [undefined, names[j]];
            const target = dir ? (group.get(dir) ?? group.create_group(dir)) : group;
            (target as InstanceType<typeof h5.Group>).create_dataset({
              name: leaf,
              data: dataset.value as Float32Array,
              shape: dataset.shape ?? [],
            });
          });
        });
      });
      const model = await load(rewritten);
      try {
        await matchesKeras(model, 'mixed spellings', path.dirname(source));
      } finally {
        model.dispose();
      }
    } finally {
      original.close();
      module.FS.unlink('/vgg16-source.h5');
    }
  });

  it('decodes chelsea.png like Keras’ load_img (nearest) and preprocesses it like caffe mode, exactly', async () => {
    const decoded = await decodeImage(image('chelsea.png'), {
      width: 224,
      height: 224,
      resize: 'stretch',
      kernel: 'nearest',
    });
    const rgb = readNpy(oracle('chelsea.rgb224.npy'));
    assert.deepEqual(rgb.shape, [1, 224, 224, 3]);
    assert.equal(decoded.rgb.length, rgb.data.length);
    let differing = 0;
    for (let i = 0; i < rgb.data.length; i++) if (decoded.rgb[i] !== rgb.data[i]) differing++;
    assert.equal(differing, 0, `${differing} bytes differ from load_img's`);

    const input = preprocess(decoded.rgb, 'caffe');
    const ref = readNpy(oracle('chelsea.input.npy'));
    let mismatched = 0;
    for (let i = 0; i < ref.data.length; i++) if (!Object.is(input[i], ref.data[i])) mismatched++;
    assert.equal(mismatched, 0, `${mismatched} float32 values differ from preprocess_input's`);
  });

  it(`end to end, chelsea.png through our VGG16 matches the committed float16 seed layers within ${F16_TOLERANCE}`, async function () {
    const model = await load(oracleCacheFile('vgg16_notop.legacy.weights.h5', this));
    try {
      const decoded = await decodeImage(image('chelsea.png'), {
        width: 224,
        height: 224,
        resize: 'stretch',
        kernel: 'nearest',
      });
      const outputs = await model.run(preprocess(decoded.rgb, model.preprocessing));
      const errors: string[] = [];
      for (const name of ['block1_conv1', 'block2_conv1', 'block3_conv1']) {
        const ref = readNpy(oracle(`chelsea.${name}.f16.npy`));
        const ours = outputs.get(name)!;
        assert.deepEqual([1, ...ours.shape], ref.shape, `${name} shape`);
        const error = relErr(channelsLast(ours), ref.data);
        errors.push(`${name} ${error.toExponential(1)}`);
        assert.ok(error <= F16_TOLERANCE, `${name}: relative error ${error} > ${F16_TOLERANCE}`);
      }
      console.log(`      seed layers vs float16: ${errors.join(', ')}`);
    } finally {
      model.dispose();
    }
  });

  for (const [runtime, open] of loaders) {
    describe(`a wrong file, on ${runtime}`, () => {
      it('names the layer whose weights have the wrong shape', async () => {
        const shapes = convShapes();
        shapes[1] = ['block1_conv2', [3, 3, 64, 32], [32]];
        const file = await writeH5('wrong_shape.h5', (root) => fillLegacy(root, shapes));
        await rejectsWith(open(file), /wrong_shape\.h5/, /block1_conv2/, /\[3,3,64,64\]/, /\[3,3,64,32\]/);
      });

      it('names a missing layer', async () => {
        const shapes = convShapes().filter(([name]) => name !== 'block3_conv2');
        const file = await writeH5('missing.h5', (root) => fillLegacy(root, shapes));
        await rejectsWith(open(file), /missing\.h5/, /block3_conv2 is missing/, /12 layers/);
      });

      it('names extra layers (weights of VGG16 with its classifier)', async () => {
        const shapes = [...convShapes(), ['fc1', [25088, 1], [1]] as [string, number[], number[]]];
        const file = await writeH5('with_top.h5', (root) => fillLegacy(root, shapes));
        await rejectsWith(open(file), /with_top\.h5/, /not fc1/);
      });

      it('refuses files that are not legacy Keras weights, naming them', async () => {
        await rejectsWith(open(oracle('zoo.keras')), /zoo\.keras/, /not a Keras HDF5 weights file/);
        await rejectsWith(open(oracle('zoo.h5')), /zoo\.h5/, /VGG16 without top needs 13/);
        const empty = await writeH5('empty.h5', (root) =>
          root.create_dataset({ name: 'x', data: new Float32Array(1) }),
        );
        await rejectsWith(open(empty), /empty\.h5/, /not Keras weights/);
      });
    });
  }
});

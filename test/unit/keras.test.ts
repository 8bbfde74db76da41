import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import sharp from 'sharp';
import { channelsLast } from '../../src/engine/model';
import type { LoadedModel } from '../../src/engine/model';
import { loadKerasModel } from '../../src/engine/models/keras';
import { type Tf, getTf } from '../../src/engine/tf';
import { assertFiniteAndVaried, rejectsWith } from './assertions';
import { DIST, ORACLE_TOLERANCE, image, oracle, oracleCacheFile, shared, tempDir, writeH5 } from './fixtures';
import { readNpy, relErr } from './npy';

const TOLERANCE = ORACLE_TOLERANCE;

interface ZooManifest {
  layer_names_in_order: string[];
  layers: { name: string; class_name: string }[];
}

const FER2013 = 'fer2013_mini_XCEPTION.102-0.66.hdf5';

function zooManifest(): ZooManifest {
  const manifest = JSON.parse(fs.readFileSync(oracle('manifest.json'), 'utf8')) as {
    models: { zoo: ZooManifest };
  };
  return manifest.models.zoo;
}

function load(tf: Tf, modelPath: string): Promise<LoadedModel> {
  return loadKerasModel(tf, {
    modelPath,
    key: `test:${modelPath}`,
    summary: { name: path.basename(modelPath), description: 'test' },
    preprocessing: 'none',
  });
}

/** zoo.keras with its config.json changed by `edit`, written to a temp file. */
function editedZooKeras(
  edit: (config: { config: { layers: { class_name: string; config: Record<string, unknown> }[] } }) => void,
): string {
  const entries = unzipSync(fs.readFileSync(oracle('zoo.keras')));
  const config = JSON.parse(new TextDecoder().decode(entries['config.json'])) as Parameters<typeof edit>[0];
  edit(config);
  entries['config.json'] = new TextEncoder().encode(JSON.stringify(config));
  const file = path.join(tempDir(), 'edited.keras');
  fs.writeFileSync(file, zipSync(entries));
  return file;
}

describe('Keras models (.h5, .hdf5, .keras)', function () {
  this.timeout(60_000);
  let tf: Tf;
  before(async () => {
    tf = (await getTf(DIST)).tf;
  });

  for (const file of ['zoo.h5', 'zoo.keras']) {
    it(`${file}: every layer matches Keras within ${TOLERANCE} (relative to the layer's max)`, async () => {
      const zoo = zooManifest();
      const started = performance.now();
      const model = await load(tf, oracle(file));
      const loadedMs = performance.now() - started;
      try {
        const expected = zoo.layer_names_in_order.filter((name) => name !== 'zoo_input');
        assert.deepEqual(
          model.layers.map((l) => l.name),
          expected,
        );
        assert.deepEqual(model.inputSize, { height: 64, width: 64, channels: 3 });
        const input = readNpy(oracle('zoo.input.npy'));
        const runStarted = performance.now();
        const outputs = await model.run(input.data);
        const runMs = performance.now() - runStarted;
        const errors: string[] = [];
        for (const name of expected) {
          const ref = readNpy(oracle(`zoo.${name}.npy`));
          const ours = outputs.get(name);
          assert.ok(ours, `no activations for ${name}`);
          assert.deepEqual([1, ...ours.shape], ref.shape, `${name} shape`);
          assert.ok(!ours.data.some(Number.isNaN), `${name} has NaN`);
          const error = relErr(channelsLast(ours), ref.data);
          errors.push(`${name} ${error.toExponential(1)}`);
          assert.ok(error <= TOLERANCE, `${name}: relative error ${error} > ${TOLERANCE}`);
        }
        console.log(`      ${file}: load ${loadedMs.toFixed(0)} ms, run ${runMs.toFixed(0)} ms; ${errors.join(', ')}`);
      } finally {
        model.dispose();
      }
    });
  }

  // VGG16's files (59 MB each) are not committed: `bash ../shared/oracle/make-oracle.sh ../.oracle-cache`
  // makes them, or set ORACLE_CACHE to where they are.
  for (const file of ['vgg16_notop.h5', 'vgg16_notop.keras']) {
    it(`${file}: every VGG16 layer matches Keras within ${TOLERANCE}, input size left free gets 224`, async function () {
      const cache = path.dirname(oracleCacheFile(file, this));
      const model = await load(tf, path.join(cache, file));
      try {
        assert.deepEqual(model.inputSize, { height: 224, width: 224, channels: 3 });
        const outputs = await model.run(readNpy(path.join(cache, 'chelsea.input.npy')).data);
        const errors: string[] = [];
        for (const layer of model.layers) {
          const ref = readNpy(path.join(cache, `chelsea.${layer.name}.npy`));
          const ours = outputs.get(layer.name)!;
          assert.deepEqual([1, ...ours.shape], ref.shape, `${layer.name} shape`);
          const error = relErr(channelsLast(ours), ref.data);
          errors.push(`${layer.name} ${error.toExponential(1)}`);
          assert.ok(error <= TOLERANCE, `${layer.name}: relative error ${error} > ${TOLERANCE}`);
        }
        console.log(`      ${file}: ${errors.join(', ')}`);
      } finally {
        model.dispose();
      }
    });
  }

  it('loads the Keras 2.0.5 fer2013 mini-Xception and classifies a grayscale photo', async () => {
    const started = performance.now();
    const model = await load(tf, shared('fixtures', 'models', FER2013));
    const loadedMs = performance.now() - started;
    try {
      assert.deepEqual(model.inputSize, { height: 64, width: 64, channels: 1 });
      const ops = new Set(model.layers.map((l) => l.op));
      for (const op of ['Conv2D', 'SeparableConv2D', 'BatchNormalization', 'Add', 'MaxPooling2D', 'Activation']) {
        assert.ok(ops.has(op), `a ${op} layer is listed`);
      }
      assert.equal(model.layers.length, 45, 'every layer but the input');

      // The model was trained on grayscale faces scaled to [-1, 1].
      const gray = await sharp(image('camera.png')).resize(64, 64).grayscale().raw().toBuffer();
      assert.equal(gray.length, 64 * 64);
      const input = Float32Array.from(gray, (v) => (v / 255) * 2 - 1);
      const runStarted = performance.now();
      const outputs = await model.run(input);
      const runMs = performance.now() - runStarted;
      for (const layer of model.layers) {
        const activation = outputs.get(layer.name);
        assert.ok(activation, layer.name);
        assert.deepEqual(activation.shape, layer.shape, layer.name);
        assertFiniteAndVaried(layer.name, activation.data);
      }
      const softmax = outputs.get(model.layers.at(-1)!.name)!;
      assert.deepEqual(softmax.shape, [7]);
      const sum = softmax.data.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5, `softmax sums to ${sum}`);
      console.log(
        `      ${FER2013}: load ${loadedMs.toFixed(0)} ms, run ${runMs.toFixed(0)} ms; softmax ${Array.from(softmax.data, (p) => p.toFixed(3)).join(' ')}`,
      );
    } finally {
      model.dispose();
    }
  });

  it('loads a Keras 3 Sequential model and applies its weights', async () => {
    // Sequential configs carry the input as a leading InputLayer; tfjs wants it on the first layer.
    const policy = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' }, registered_name: null };
    const layer = (className: string, config: Record<string, unknown>) => ({
      module: 'keras.layers',
      class_name: className,
      config: { dtype: policy, trainable: true, ...config },
      registered_name: null,
    });
    const config = {
      module: 'keras',
      class_name: 'Sequential',
      config: {
        name: 'tiny',
        layers: [
          { module: 'keras.layers', class_name: 'InputLayer', config: { batch_shape: [null, 5, 5, 3], name: 'in' } },
          layer('Conv2D', { name: 'conv', filters: 2, kernel_size: [3, 3], strides: [1, 1], padding: 'valid' }),
          layer('Conv2D', { name: 'conv_b', filters: 1, kernel_size: [1, 1], use_bias: false }),
          layer('Flatten', { name: 'flat' }),
        ],
      },
      registered_name: null,
    };
    const weightsFile = await writeH5('model.weights.h5', (file) => {
      const root = file.create_group('layers');
      const vars = (group: string, ...arrays: [number[], number[]][]) => {
        const g = root.create_group(group).create_group('vars');
        arrays.forEach(([shape, data], i) =>
          g.create_dataset({ name: String(i), data: new Float32Array(data), shape }),
        );
      };
      vars('conv2d', [[3, 3, 3, 2], new Array<number>(54).fill(1)], [[2], [0.5, -1]]);
      vars('conv2d_1', [
        [1, 1, 2, 1],
        [1, 2],
      ]);
    });
    const file = path.join(tempDir(), 'tiny.keras');
    fs.writeFileSync(
      file,
      zipSync({
        'config.json': new TextEncoder().encode(JSON.stringify(config)),
        'model.weights.h5': new Uint8Array(fs.readFileSync(weightsFile)),
      }),
    );
    const model = await load(tf, file);
    try {
      assert.deepEqual(model.inputSize, { height: 5, width: 5, channels: 3 });
      assert.deepEqual(
        model.layers.map((l) => `${l.name}:${l.op}`),
        ['conv:Conv2D', 'conv_b:Conv2D', 'flat:Flatten'],
      );
      const outputs = await model.run(new Float32Array(5 * 5 * 3).fill(1));
      // Each 3×3×3 window of ones sums to 27: channel 0 is 27.5, channel 1 is 26; then 27.5 + 2 × 26.
      assert.deepEqual(Array.from(channelsLast(outputs.get('conv')!).subarray(0, 2)), [27.5, 26]);
      assert.deepEqual(Array.from(outputs.get('flat')!.data), new Array<number>(9).fill(79.5));
    } finally {
      model.dispose();
    }
  });

  it('refuses a weights-only file (Keras 3 model.weights.h5), naming it', async () => {
    const file = path.join(tempDir(), 'zoo.weights.h5');
    fs.writeFileSync(file, unzipSync(fs.readFileSync(oracle('zoo.keras')))['model.weights.h5']);
    await rejectsWith(load(tf, file), /zoo\.weights\.h5/, /only weights/);
  });

  it('refuses a file that is not HDF5 or a zip, naming it', async () => {
    const file = path.join(tempDir(), 'photo.h5');
    fs.copyFileSync(image('camera.png'), file);
    await rejectsWith(load(tf, file), /photo\.h5/, /not a Keras model/);
  });

  it('refuses a legacy weights-only .h5 (layer_names at the root), naming it', async () => {
    const file = await writeH5('vgg_weights.h5', (root) => {
      root.create_attribute('layer_names', ['block1_conv1']);
      root.create_group('block1_conv1').create_attribute('weight_names', ['block1_conv1/kernel:0']);
    });
    await rejectsWith(load(tf, file), /vgg_weights\.h5/, /only weights/);
  });

  it('refuses an HDF5 file that is not a Keras model, naming it', async () => {
    const file = await writeH5('data.hdf5', (root) => {
      root.create_dataset({ name: 'x', data: new Float32Array([1, 2, 3]) });
    });
    await rejectsWith(load(tf, file), /data\.hdf5/, /not a Keras model/);
  });

  it('refuses a .keras zip without its weights, naming it', async () => {
    const entries = unzipSync(fs.readFileSync(oracle('zoo.keras')));
    delete entries['model.weights.h5'];
    const file = path.join(tempDir(), 'no-weights.keras');
    fs.writeFileSync(file, zipSync(entries));
    await rejectsWith(load(tf, file), /no-weights\.keras/, /model\.weights\.h5/);
  });

  it('names the layer and its class when TensorFlow.js has no such layer', async () => {
    const file = editedZooKeras((config) => {
      const leaky = config.config.layers.find((l) => l.config.name === 'leaky')!;
      leaky.class_name = 'PReLUish';
    });
    await rejectsWith(load(tf, file), /edited\.keras/, /"leaky"/, /PReLUish/);
  });

  it('names the layer when a weight does not fit the architecture', async () => {
    const file = editedZooKeras((config) => {
      const conv = config.config.layers.find((l) => l.config.name === 'conv_valid')!;
      conv.config.filters = 4;
    });
    await rejectsWith(load(tf, file), /edited\.keras/, /"conv_valid"/, /\[4,4,16,4\]/, /\[4,4,16,8\]/);
  });
});

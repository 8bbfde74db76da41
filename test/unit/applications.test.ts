import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { channelsLast } from '../../src/engine/model';
import { decodeImage } from '../../src/engine/image';
import type { LoadedModel } from '../../src/engine/model';
import {
  type ApplicationId,
  buildKerasApplication,
  loadKerasApplication,
} from '../../src/engine/models/kerasApplications';
import { preprocess } from '../../src/engine/preprocess';
import { type Tf, getTf } from '../../src/engine/tf';
import { rejectsWith } from './assertions';
import { DIST, ORACLE_TOLERANCE, image, oracleCacheFile, tempDir, writeH5 } from './fixtures';
import { fillLegacy, legacyLayersOf, loadApplicationOnOnnx, type LegacyLayer } from './legacyWeights';
import { readNpy, relErr } from './npy';

type AppId = Exclude<ApplicationId, 'vgg16_notop'>;

/** What tools/make-app-oracle.sh records per model in applications/applications.manifest.json. */
interface AppManifest {
  weights_file: string;
  file_sha256: string;
  param_count: number;
  preprocessing: string;
  input: string;
  layer_names_in_order: string[];
  layers: { name: string; class_name: string; output_shape: number[]; weights: number[][] }[];
  legacy_layout: {
    layer_names: string[];
    layers_with_weights: { layer: string; weights: { name: string; shape: number[] }[] }[];
  };
  saved_layers: string[];
  outputs: Record<string, { file: string; shape: number[] }>;
  top5: number[];
}

const APPS: Record<AppId, { label: string; file: string; preprocessing: string; layers: number; params: number }> = {
  // Counts and parameters as Keras reports them (len(model.layers) without the input, count_params()).
  mobilenet_v2: {
    label: 'MobileNetV2',
    file: 'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5',
    preprocessing: 'tf',
    layers: 155,
    params: 3_538_984,
  },
  resnet50: {
    label: 'ResNet50',
    file: 'resnet50_weights_tf_dim_ordering_tf_kernels.h5',
    preprocessing: 'caffe',
    layers: 176,
    params: 25_636_712,
  },
};

const TOLERANCE = ORACLE_TOLERANCE;

describe('Keras applications MobileNetV2 and ResNet50, from Keras’ legacy weights files', function () {
  this.timeout(300_000);
  let tf: Tf;
  before(async () => {
    tf = (await getTf(DIST)).tf;
  });

  const load = (id: ApplicationId, file: string): Promise<LoadedModel> =>
    loadKerasApplication(tf, id, file, {
      key: `test:${id}:${file}`,
      summary: { name: path.basename(file), description: 'test' },
    });

  /** The oracle's manifest for `id`, skipping (or failing under ORACLE_CACHE) when it has not been made. */
  function manifest(id: AppId, context: Mocha.Context): { dir: string; app: AppManifest } {
    const file = oracleCacheFile(path.join('applications', 'applications.manifest.json'), context);
    const all = JSON.parse(fs.readFileSync(file, 'utf8')) as { models: Record<AppId, AppManifest> };
    return { dir: path.dirname(file), app: all.models[id] };
  }

  /** Runs `model` on Keras' own input and checks every saved layer; returns the top-5 class indices. */
  async function matchesKeras(model: LoadedModel, id: AppId, label: string, dir: string, app: AppManifest) {
    const input = readNpy(path.join(dir, app.input));
    assert.deepEqual(input.shape, [1, 224, 224, 3]);
    const outputs = await model.run(input.data);
    const errors: string[] = [];
    const failed: string[] = [];
    for (const name of app.saved_layers) {
      const ref = readNpy(path.join(dir, app.outputs[name].file));
      const ours = outputs.get(name);
      assert.ok(ours, `no activations for ${name}`);
      assert.deepEqual([1, ...ours.shape], ref.shape, `${name} shape`);
      const error = relErr(channelsLast(ours), ref.data);
      errors.push(`${name} ${error.toExponential(1)}`);
      if (!(error <= TOLERANCE)) failed.push(`${name} ${error}`);
    }
    // All layers' errors first: where the error starts says more than the first failure.
    console.log(`      ${label}: ${errors.join(', ')}`);
    assert.deepEqual(failed, [], `${id}: relative error > ${TOLERANCE}`);
    const probabilities = outputs.get('predictions')!.data;
    const top5 = [...probabilities.keys()].sort((a, b) => probabilities[b] - probabilities[a]).slice(0, 5);
    assert.deepEqual(top5, app.top5, 'top-5 classes');
  }

  describe('architecture, without weights', () => {
    it('MobileNetV2 has Keras’ layers: Conv1 … block_16_project_BN, out_relu, predictions (1000), and its 3,538,984 parameters', async () => {
      const { model, kerasOrder } = await buildKerasApplication(tf, 'mobilenet_v2');
      try {
        assert.equal(kerasOrder.length, APPS.mobilenet_v2.layers);
        assert.equal(model.countParams(), APPS.mobilenet_v2.params);
        const shapes: [string, (number | null)[]][] = [
          ['Conv1', [112, 112, 32]],
          ['bn_Conv1', [112, 112, 32]],
          ['Conv1_relu', [112, 112, 32]],
          ['expanded_conv_depthwise', [112, 112, 32]],
          ['expanded_conv_project_BN', [112, 112, 16]],
          ['block_1_expand', [112, 112, 96]],
          // correct_pad on an even size: 0 before, 1 after.
          ['block_1_pad', [113, 113, 96]],
          ['block_1_depthwise', [56, 56, 96]],
          ['block_2_add', [56, 56, 24]],
          ['block_13_pad', [15, 15, 576]],
          ['block_16_project_BN', [7, 7, 320]],
          ['Conv_1', [7, 7, 1280]],
          ['out_relu', [7, 7, 1280]],
          ['global_average_pooling2d', [1280]],
          ['predictions', [1000]],
        ];
        for (const [name, shape] of shapes) {
          assert.deepEqual(model.getLayer(name).outputShape, [null, ...shape], name);
        }
        // Residual adds only where the block keeps its size and channels.
        assert.deepEqual(
          kerasOrder.filter((n) => n.endsWith('_add')),
          [2, 4, 5, 7, 8, 9, 11, 12, 14, 15].map((b) => `block_${b}_add`),
        );
        const relu6 = model.getLayer('block_5_expand_relu').getConfig();
        assert.equal(relu6.maxValue, 6);
        assert.equal(model.getLayer('bn_Conv1').getConfig().epsilon, 1e-3);
      } finally {
        model.dispose();
      }
    });

    it('ResNet50 has Keras’ layers: conv1_pad … conv5_block3_out (7×7×2048), avg_pool, predictions, and its 25,636,712 parameters', async () => {
      const { model, kerasOrder } = await buildKerasApplication(tf, 'resnet50');
      try {
        assert.equal(kerasOrder.length, APPS.resnet50.layers);
        assert.equal(model.countParams(), APPS.resnet50.params);
        const shapes: [string, (number | null)[]][] = [
          ['conv1_pad', [230, 230, 3]],
          ['conv1_conv', [112, 112, 64]],
          ['pool1_pad', [114, 114, 64]],
          ['pool1_pool', [56, 56, 64]],
          ['conv2_block1_0_conv', [56, 56, 256]],
          ['conv2_block1_out', [56, 56, 256]],
          ['conv3_block1_0_conv', [28, 28, 512]],
          ['conv3_block1_1_conv', [28, 28, 128]],
          ['conv4_block6_out', [14, 14, 1024]],
          ['conv5_block3_out', [7, 7, 2048]],
          ['avg_pool', [2048]],
          ['predictions', [1000]],
        ];
        for (const [name, shape] of shapes) {
          assert.deepEqual(model.getLayer(name).outputShape, [null, ...shape], name);
        }
        // A projection shortcut only in each stage's first block, listed where Keras lists it.
        assert.deepEqual(
          kerasOrder.filter((n) => n.includes('_0_')),
          [2, 3, 4, 5].flatMap((s) => [`conv${s}_block1_0_conv`, `conv${s}_block1_0_bn`]),
        );
        assert.deepEqual(kerasOrder.slice(6, 18), [
          'conv2_block1_1_conv',
          'conv2_block1_1_bn',
          'conv2_block1_1_relu',
          'conv2_block1_2_conv',
          'conv2_block1_2_bn',
          'conv2_block1_2_relu',
          'conv2_block1_0_conv',
          'conv2_block1_3_conv',
          'conv2_block1_0_bn',
          'conv2_block1_3_bn',
          'conv2_block1_add',
          'conv2_block1_out',
        ]);
        assert.equal(model.getLayer('conv1_bn').getConfig().epsilon, 1.001e-5);
      } finally {
        model.dispose();
      }
    });

    for (const id of ['mobilenet_v2', 'resnet50'] as const) {
      it(`${APPS[id].label}: every layer’s name, order, class, output shape and weight shapes are Keras’`, async function () {
        const { app } = manifest(id, this);
        const { model, kerasOrder, weights } = await buildKerasApplication(tf, id);
        try {
          assert.deepEqual(['input_layer', ...kerasOrder], app.layer_names_in_order);
          // The weights the topology says each layer has (what a file is checked against without
          // TensorFlow.js) are those Keras lists, in its order and shapes.
          assert.deepEqual(
            [...weights].map(([layer, arrays]) => ({ layer, shapes: arrays.map((w) => w.shape) })),
            app.legacy_layout.layers_with_weights.map(({ layer, weights: w }) => ({
              layer,
              shapes: w.map((array) => array.shape),
            })),
          );
          // tfjs orders the model's layers as Keras does, so the layer tree reads like Keras' summary.
          assert.deepEqual(
            model.layers.map((l) => l.name),
            app.layer_names_in_order,
          );
          for (const ref of app.layers.slice(1)) {
            const layer = model.getLayer(ref.name);
            assert.equal(layer.getClassName(), ref.class_name, `${ref.name} class`);
            assert.deepEqual((layer.outputShape as number[]).slice(1), ref.output_shape, `${ref.name} shape`);
            assert.deepEqual(
              layer.weights.map((w) => w.shape),
              ref.weights,
              `${ref.name} weights`,
            );
          }
        } finally {
          model.dispose();
        }
      });
    }
  });

  describe('against Keras (tools/make-app-oracle.sh)', () => {
    for (const id of ['mobilenet_v2', 'resnet50'] as const) {
      for (const [runtime, open] of [
        ['TensorFlow.js', load],
        ['ONNX Runtime, converted without TensorFlow.js', loadApplicationOnOnnx],
      ] as const) {
        it(`${APPS[id].file} on ${runtime}: every saved layer matches Keras within ${TOLERANCE} (relative to the layer’s max), and the top-5 classes are Keras’`, async function () {
          const { dir, app } = manifest(id, this);
          const weights = oracleCacheFile(path.join('applications', APPS[id].file), this);
          assert.equal(app.weights_file, APPS[id].file);
          const model = await open(id, weights);
          try {
            assert.deepEqual(model.inputSize, { height: 224, width: 224, channels: 3 });
            assert.equal(model.preprocessing, APPS[id].preprocessing);
            assert.equal(app.preprocessing, APPS[id].preprocessing);
            assert.match(model.preprocessingReason ?? '', new RegExp(APPS[id].label));
            assert.equal(model.layers.length, APPS[id].layers);
            assert.deepEqual(
              model.layers.map((l) => l.name),
              app.layer_names_in_order.slice(1),
            );
            await matchesKeras(model, id, `${APPS[id].label} on ${runtime}`, dir, app);
          } finally {
            model.dispose();
          }
        });
      }

      it(`${APPS[id].label}: chelsea.png decoded like load_img and preprocessed in ${APPS[id].preprocessing} mode is exactly Keras’ input`, async function () {
        const { dir, app } = manifest(id, this);
        const decoded = await decodeImage(image('chelsea.png'), {
          width: 224,
          height: 224,
          resize: 'stretch',
          kernel: 'nearest',
        });
        const ours = preprocess(decoded.rgb, app.preprocessing as 'tf' | 'caffe');
        const ref = readNpy(path.join(dir, app.input)).data;
        let mismatched = 0;
        for (let i = 0; i < ref.length; i++) if (!Object.is(ours[i], ref[i])) mismatched++;
        assert.equal(mismatched, 0, `${mismatched} float32 values differ from preprocess_input's`);
      });
    }

    it('MobileNetV2 weights written by an older Keras (classifier named "Logits", `name/kernel:0` weights, another layer order) still load right', async function () {
      // Keras' legacy loader pairs layers by position only; we pair by name where names match and
      // by position for the rest, so both the renamed classifier and the reordered layers land right.
      const { dir, app } = manifest('mobilenet_v2', this);
      const source = oracleCacheFile(path.join('applications', APPS.mobilenet_v2.file), this);
      const h5 = await import('h5wasm');
      const module = await h5.ready;
      module.FS.writeFile('/mobilenet-source.h5', fs.readFileSync(source));
      const original = new h5.File('/mobilenet-source.h5', 'r');
      try {
        const layers: LegacyLayer[] = app.legacy_layout.layers_with_weights.map(({ layer, weights }) => {
          const name = layer === 'predictions' ? 'Logits' : layer;
          return {
            name,
            weights: weights.map((w) => ({
              name: `${name}/${w.name.split('/').pop()}:0`,
              shape: w.shape,
              data: (original.get(`${layer}/${w.name}`) as InstanceType<typeof h5.Dataset>).value as Float32Array,
            })),
          };
        });
        // Two layers with weights of the same shapes, listed the other way round.
        const a = layers.findIndex((l) => l.name === 'block_1_expand_BN');
        const b = layers.findIndex((l) => l.name === 'block_1_depthwise_BN');
        [layers[a], layers[b]] = [layers[b], layers[a]];
        const rewritten = await writeH5('older_mobilenet_v2.h5', (root) => fillLegacy(root, layers));
        const model = await load('mobilenet_v2', rewritten);
        try {
          await matchesKeras(model, 'mobilenet_v2', 'older spelling', dir, app);
        } finally {
          model.dispose();
        }
      } finally {
        original.close();
        module.FS.unlink('/mobilenet-source.h5');
      }
    });

    it('names the other model when given ResNet50’s weights for MobileNetV2 and the reverse', async function () {
      const resnet = oracleCacheFile(path.join('applications', APPS.resnet50.file), this);
      const mobilenet = oracleCacheFile(path.join('applications', APPS.mobilenet_v2.file), this);
      await rejectsWith(
        load('mobilenet_v2', resnet),
        /resnet50_weights_tf_dim_ordering_tf_kernels\.h5 has weights for 107 layers; MobileNetV2 needs 105/,
        /another model/,
      );
      await rejectsWith(
        load('resnet50', mobilenet),
        /has weights for 105 layers; ResNet50 needs 107/,
        /conv1_conv/,
        /Conv1/,
      );
    });
  });

  // A wrong file is refused in the same words whether the model is built in TensorFlow.js or
  // converted straight to ONNX (as the catalogue opens it where ONNX Runtime runs).
  const loaders: [string, (id: ApplicationId, file: string) => Promise<LoadedModel>][] = [
    ['TensorFlow.js', (id, file) => load(id, file)],
    ['ONNX Runtime (no TensorFlow.js)', loadApplicationOnOnnx],
  ];
  for (const [runtime, open] of loaders) {
    describe(`files that are not the right weights, on ${runtime}`, () => {
      let mobilenetLayers: LegacyLayer[];
      before(async () => {
        const built = await buildKerasApplication(tf, 'mobilenet_v2');
        mobilenetLayers = legacyLayersOf(built);
        built.model.dispose();
      });

      it('refuses a file that is not HDF5, naming it', async () => {
        const png = path.join(tempDir(), 'mobilenet_v2.h5');
        fs.copyFileSync(image('chelsea.png'), png);
        await rejectsWith(
          open('mobilenet_v2', png),
          /mobilenet_v2\.h5/,
          /not a Keras HDF5 weights file/,
          /MobileNetV2/,
        );
        await rejectsWith(
          open('resnet50', path.join(tempDir(), 'absent.h5')),
          /Cannot read the ResNet50 weights absent\.h5/,
        );
      });

      it('refuses a damaged HDF5 file (cut short), without crashing', async () => {
        const whole = await writeH5('whole.h5', (root) => fillLegacy(root, mobilenetLayers));
        const cut = path.join(tempDir(), 'cut.h5');
        const bytes = fs.readFileSync(whole);
        fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
        await rejectsWith(open('mobilenet_v2', cut), /cut\.h5 (is damaged|is not a readable HDF5 file)/);
      });

      it('says which model VGG16 weights given to MobileNetV2 are not for', async () => {
        let inChannels = 3;
        const vgg: LegacyLayer[] = [1, 2, 3, 4, 5].flatMap((b) =>
          Array.from({ length: b <= 2 ? 2 : 3 }, (_, c) => {
            const name = `block${b}_conv${c + 1}`;
            const filters = [64, 128, 256, 512, 512][b - 1];
            const layer = {
              name,
              weights: [
                { name: `${name}/kernel:0`, shape: [3, 3, inChannels, filters] },
                { name: `${name}/bias:0`, shape: [filters] },
              ],
            };
            inChannels = filters;
            return layer;
          }),
        );
        const file = await writeH5('vgg16.h5', (root) => fillLegacy(root, vgg));
        const error = await rejectsWith(
          open('mobilenet_v2', file),
          /vgg16\.h5 has weights for 13 layers; MobileNetV2 needs 105/,
          /block1_conv1/,
          /another model/,
        );
        assert.match(error.detail ?? '', /block5_conv3/);
      });

      it('names the layer whose weights have the wrong shape, and the shapes', async () => {
        const layers = mobilenetLayers.map((l) =>
          l.name === 'block_16_project'
            ? { ...l, weights: [{ name: 'block_16_project/kernel:0', shape: [1, 1, 960, 300] }] }
            : l,
        );
        const file = await writeH5('wrong_shape.h5', (root) => fillLegacy(root, layers));
        const before = tf.memory().numTensors;
        await rejectsWith(
          open('mobilenet_v2', file),
          /wrong_shape\.h5/,
          /block_16_project/,
          /kernel/,
          /\[1,1,960,320\]/,
          /\[1,1,960,300\]/,
        );
        assert.equal(tf.memory().numTensors, before, 'the half-built model is freed');
      });

      it('names the layer with too few weight arrays (a BatchNormalization without its variance)', async () => {
        const layers = mobilenetLayers.map((l) =>
          l.name === 'Conv_1_bn' ? { ...l, weights: l.weights.slice(0, 3) } : l,
        );
        const file = await writeH5('three_arrays.h5', (root) => fillLegacy(root, layers));
        await rejectsWith(
          open('mobilenet_v2', file),
          /three_arrays\.h5/,
          /Conv_1_bn/,
          /needs 4 weight arrays \(gamma, beta, moving_mean, moving_variance\), the file has 3/,
        );
      });

      it('names what is missing when a layer is left out, and refuses Keras 3’s model.weights.h5 layout', async () => {
        const missing = await writeH5('missing.h5', (root) =>
          fillLegacy(
            root,
            mobilenetLayers.filter((l) => l.name !== 'block_3_project_BN'),
          ),
        );
        await rejectsWith(
          open('mobilenet_v2', missing),
          /missing\.h5 has weights for 104 layers; MobileNetV2 needs 105: block_3_project_BN is missing/,
        );
        const keras3 = await writeH5('model.weights.h5', (root) => {
          root.create_group('layers').create_group('conv2d').create_group('vars');
        });
        await rejectsWith(open('resnet50', keras3), /model\.weights\.h5/, /Keras 3 weights layout/, /ResNet50/);
      });
    });
  }
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dequantize } from '../../src/shared/protocol';
import { FeatureMapEngine } from '../../src/engine/engine';
import { UserFacingError } from '../../src/engine/errors';
import { groupLayers, isSpatial, matchLayers } from '../../src/engine/layers';
import { channelsLast } from '../../src/engine/model';
import { quantizeChannels } from '../../src/engine/quantize';
import { firstLayerToShow } from '../../src/shared/selection';
import { DIST, image } from './fixtures';
import { assertFiniteAndVaried } from './assertions';
import { relErr } from './npy';

const BUNDLED = { kind: 'bundled' } as const;

interface KerasLayerConfig {
  class_name: string;
  config: { name: string };
}

/** The bundled model's own layer list, straight from its model.json. */
function modelJsonLayers(): KerasLayerConfig[] {
  const json = JSON.parse(fs.readFileSync(path.join(DIST, 'models', 'mobilenet_v2', 'model.json'), 'utf8'));
  return json.modelTopology.model_config.config.layers as KerasLayerConfig[];
}

describe('the bundled MobileNetV2 engine', () => {
  let engine: FeatureMapEngine;
  before(() => {
    engine = new FeatureMapEngine({ assetsDir: DIST });
  });
  after(() => engine.dispose());

  it('lists every layer of the model in model order, with its op type', async () => {
    const result = await engine.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    const expected = modelJsonLayers().filter((l) => l.class_name !== 'InputLayer');
    assert.deepEqual(
      result.layers.map((l) => `${l.name}:${l.op}`),
      expected.map((l) => `${l.config.name}:${l.class_name}`),
    );
    assert.equal(result.model.name, 'MobileNetV2 (bundled)');
    assert.deepEqual(result.model.inputShape, [224, 224, 3]);
    assert.equal(result.input.width, 224);
    assert.equal(result.input.rgba.length, 224 * 224 * 4);
  });

  it('returns activations whose shapes are the layer shapes, finite and not constant', async () => {
    const result = await engine.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    const conv1 = result.layers.find((l) => l.name === 'Conv1');
    assert.deepEqual(conv1?.shape, [112, 112, 32], 'MobileNetV2 Conv1 halves 224 and has 32 filters');
    let spatial = 0;
    for (const layer of result.layers) {
      const activation = engine.activation(result.resultKey, layer.name);
      assert.ok(activation, `activations of ${layer.name}`);
      assert.deepEqual(activation.shape, layer.shape, layer.name);
      assert.equal(
        activation.data.length,
        layer.shape.reduce((a, b) => a * b, 1),
      );
      assertFiniteAndVaried(layer.name, activation.data);
      if (layer.spatial) spatial++;
    }
    assert.ok(spatial > 100, `most layers have maps (${spatial})`);
    const head = result.layers.at(-1);
    assert.equal(head?.spatial, false, 'the classifier head has no maps');
  });

  it('gives bit-identical activations for the same image in a fresh engine', async () => {
    const other = new FeatureMapEngine({ assetsDir: DIST });
    try {
      const a = await engine.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
      const b = await other.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
      assert.equal(a.resultKey, b.resultKey);
      for (const layer of a.layers) {
        const x = engine.activation(a.resultKey, layer.name)!.data;
        const y = other.activation(b.resultKey, layer.name)!.data;
        assert.ok(
          Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength)),
          layer.name,
        );
      }
    } finally {
      other.dispose();
    }
  });

  it('gives different maps for different photos', async () => {
    const cat = await engine.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    const cup = await engine.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
    const a = engine.activation(cat.resultKey, 'Conv1_relu')!.data;
    const b = engine.activation(cup.resultKey, 'Conv1_relu')!.data;
    let differ = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differ++;
    assert.ok(differ > a.length / 2);
  });

  it('serves a second request for the same image from the cache, with no forward pass', async () => {
    const first = await engine.extract({ imagePath: image('astronaut.png'), model: BUNDLED, layerPatterns: [] });
    const again = await engine.extract({
      imagePath: image('astronaut.png'),
      model: BUNDLED,
      layerPatterns: ['block_1_*'],
    });
    assert.equal(again.resultKey, first.resultKey);
    assert.equal(again.elapsedMs, 0);
    assert.ok(first.elapsedMs > 0);
    assert.deepEqual(
      again.layers.filter((l) => l.matched).map((l) => l.name),
      again.layers.filter((l) => l.name.startsWith('block_1_') && l.spatial).map((l) => l.name),
    );
  });

  it('quantises the first N channels of a layer so they decode back within half a step', async () => {
    const result = await engine.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    const layer = 'block_2_expand_relu';
    const data = engine.layerData(result.resultKey, layer, 16);
    const activation = engine.activation(result.resultKey, layer)!;
    const hwc = channelsLast(activation);
    const [h, w, c] = activation.shape;
    assert.equal(data.count, 16);
    assert.equal(data.totalChannels, c);
    assert.equal(data.values.length, 16 * h * w);
    for (let ch = 0; ch < 16; ch++) {
      const step = (data.max[ch] - data.min[ch]) / 255;
      for (let p = 0; p < h * w; p += 97) {
        const original = hwc[p * c + ch];
        const decoded = dequantize(data.values[ch * h * w + p], data.min[ch], data.max[ch]);
        assert.ok(Math.abs(decoded - original) <= step / 2 + 1e-6, `channel ${ch} pixel ${p}`);
      }
    }
    let layerMax = -Infinity;
    for (const v of activation.data) layerMax = Math.max(layerMax, v);
    assert.equal(data.layerMax, layerMax);
    // Asking for more channels than the layer has gives them all.
    assert.equal(engine.layerData(result.resultKey, 'Conv1', 500).count, 32);
    // The same tiles whichever order the runtime kept the values in.
    const other = activation.layout === 'chw' ? { ...activation, data: hwc, layout: 'hwc' as const } : undefined;
    assert.ok(other, 'onnxruntime keeps maps channels first');
    assert.deepEqual(quantizeChannels(layer, other, 16), data);
  });

  it('refuses layer data for a layer without maps or one that does not exist', async () => {
    const result = await engine.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    const head = result.layers.at(-1)!.name;
    assert.throws(() => engine.layerData(result.resultKey, head, 4), UserFacingError);
    assert.throws(() => engine.layerData(result.resultKey, 'no_such_layer', 4), /no layer named "no_such_layer"/);
  });

  it('handles every odd fixture image with a result or a clear message', async () => {
    const outcomes: string[] = [];
    for (const name of [
      'horse.png',
      'camera.png',
      'chessboard_GRAY_U16.tif',
      'no_time_for_that_tiny.gif',
      'palette_color.png',
      'hubble_deep_field.jpg',
      'truncated.jpg',
      'multipage_rgb.tif',
    ]) {
      try {
        const result = await engine.extract({ imagePath: image(name), model: BUNDLED, layerPatterns: [] });
        assert.equal(result.layers.length, modelJsonLayers().length - 1);
        outcomes.push(`${name}: ok`);
      } catch (error) {
        assert.ok(error instanceof UserFacingError, `${name}: ${String(error)}`);
        assert.ok(error.message.includes(name), `the message names the file: ${error.message}`);
        outcomes.push(`${name}: message`);
      }
    }
    assert.ok(outcomes.includes('truncated.jpg: message'), outcomes.join('\n'));
  });
});

describe('an activation cache too small for two images', () => {
  it('keeps the latest image, lets the older go and says so (the engine process then collects it)', async () => {
    let released = 0;
    const engine = new FeatureMapEngine({ assetsDir: DIST, cacheBytes: 1, releaseMemory: () => released++ });
    const request = (file: string) => ({ imagePath: image(file), model: BUNDLED, layerPatterns: [] });
    try {
      assert.ok((await engine.extract(request('chelsea.png'))).elapsedMs > 0);
      assert.equal((await engine.extract(request('chelsea.png'))).elapsedMs, 0, 'the latest image is kept');
      assert.equal(released, 0, 'nothing let go yet');
      assert.ok((await engine.extract(request('coffee.png'))).elapsedMs > 0);
      assert.equal(released, 1, 'chelsea.png let go for coffee.png');
      assert.ok((await engine.extract(request('chelsea.png'))).elapsedMs > 0, 'chelsea.png computed again');
      assert.equal(released, 2);
    } finally {
      engine.dispose();
    }
    assert.equal(released, 3, 'disposing lets the last image go');
  });
});

describe('layer grouping and selection', () => {
  const layers = modelJsonLayers()
    .filter((l) => l.class_name !== 'InputLayer')
    .map((l) => ({ name: l.config.name, op: l.class_name, shape: [] as number[] }));

  it('groups MobileNetV2 layers by block, and the stem by its convolution', () => {
    const groups = groupLayers(layers);
    const groupOf = (name: string) => groups[layers.findIndex((l) => l.name === name)];
    for (const layer of layers.filter((l) => l.name.startsWith('block_3_')))
      assert.equal(groupOf(layer.name), 'block_3');
    assert.equal(groupOf('block_13_pad'), 'block_13');
    assert.equal(groupOf('expanded_conv_project_BN'), 'expanded_conv');
    assert.equal(groupOf('bn_Conv1'), 'Conv1');
    assert.equal(groupOf('Conv1_relu'), 'Conv1');
  });

  it('groups scoped names (ONNX, TF graphs) by their scope', () => {
    const scoped = [
      'conv1_1',
      'fire2/squeeze1x1_1',
      'fire2/concat_1',
      'Net/block_1/depthwise/Relu6',
      'Net/block_1/add',
    ].map((name) => ({ name, op: 'Conv', shape: [] }));
    assert.deepEqual(groupLayers(scoped), ['conv1_1', 'fire2', 'fire2', 'Net/block_1', 'Net/block_1']);
  });

  it('groups Keras VGG16 names by block', () => {
    const vgg = ['block1_conv1', 'block1_conv2', 'block1_pool', 'block2_conv1'].map((name) => ({
      name,
      op: 'Conv2D',
      shape: [],
    }));
    assert.deepEqual(groupLayers(vgg), ['block1', 'block1', 'block1', 'block2']);
  });

  it('groups PyTorch module paths by the module tree, down to the numbered block', () => {
    const modules: [string, string][] = [
      ['conv1', 'Conv2d'],
      ['bn1', 'BatchNorm2d'],
      ['layer1.0.conv1', 'Conv2d'],
      ['layer1.0.relu#2', 'ReLU'],
      ['layer1.0', 'BasicBlock'],
      ['features.3.block.0.0', 'Conv2d'],
      ['fc', 'Linear'],
    ];
    const layers = modules.map(([name, op]) => ({ name, op, shape: [] }));
    assert.deepEqual(groupLayers(layers), ['conv1', 'conv1', 'layer1.0', 'layer1.0', 'layer1.0', 'features.3', 'fc']);
  });

  it('matches names and globs, never layers without maps; empty matches every map layer', () => {
    const some = [
      { name: 'block1_conv1', op: 'Conv2D', shape: [224, 224, 64] },
      { name: 'block2_conv1', op: 'Conv2D', shape: [112, 112, 128] },
      { name: 'block2_pool', op: 'MaxPooling2D', shape: [56, 56, 128] },
      { name: 'flatten', op: 'Flatten', shape: [401408] },
    ];
    assert.deepEqual(matchLayers(some, ['block*_conv1']), [true, true, false, false]);
    assert.deepEqual(matchLayers(some, ['BLOCK2_POOL', 'flatten']), [false, false, true, false]);
    assert.deepEqual(matchLayers(some, []), [true, true, true, false]);
    assert.deepEqual(matchLayers(some, ['  ']), [true, true, true, false]);
    assert.equal(isSpatial([1, 1, 1280]), false);
  });
});

describe('a pass that stops at the deepest listed layer', function () {
  this.timeout(60_000);
  let engine: FeatureMapEngine;
  let full: FeatureMapEngine;
  before(() => {
    engine = new FeatureMapEngine({ assetsDir: DIST });
    full = new FeatureMapEngine({ assetsDir: DIST });
  });
  after(() => {
    engine.dispose();
    full.dispose();
  });
  const LISTED = ['Conv1', 'block_2_add'];

  /**
   * `computed` is the `asked` layers, and the few they are derived from (a convolution from its
   * batch norm, an addition from its addends: models/derivedLayers.ts), none past the deepest
   * asked one (or the batch norm right after it) but the head (the last one asked, unless
   * `withHead` is false): the pass stopped there.
   */
  function assertComputedOnly(
    computed: string[],
    asked: string[],
    layers: readonly { name: string }[],
    withHead = true,
  ): void {
    const order = new Map(layers.map((l, i) => [l.name, i]));
    for (const name of asked) assert.ok(computed.includes(name), `${name} is computed: ${computed.join(', ')}`);
    const deepest = Math.max(...(withHead ? asked.slice(0, -1) : asked).map((name) => order.get(name)!));
    const extra = computed.filter((name) => !asked.includes(name));
    assert.ok(
      extra.every((name) => order.get(name)! <= deepest + 1),
      `nothing past the deepest asked layer: ${extra.join(', ')}`,
    );
    assert.ok(extra.length <= 2 * asked.length, `only what the asked layers derive from: ${extra.join(', ')}`);
  }

  // The cut-down graph lets ONNX Runtime fuse each convolution with its batch norm, so its
  // numbers may differ from a full pass's in the last bits.
  const CLOSE = 1e-5;

  it('answers with the grid a new panel shows first (its first convolution), as layerData gives it', async () => {
    const result = await engine.extract({
      imagePath: image('brick.png'),
      model: BUNDLED,
      layerPatterns: [],
      onlyListedLayers: true,
      firstGridChannels: 16,
    });
    const first = result.firstGrid;
    assert.ok(first, 'a first grid');
    assert.equal(first.layer, firstLayerToShow(result.layers));
    assert.equal(first.count, 16);
    assert.deepEqual(first, engine.layerData(result.resultKey, first.layer, 16));
  });

  it('answers with the grid of the layer the panel showed last, all its channels when it has fewer', async () => {
    const result = await engine.extract({
      imagePath: image('camera.png'),
      model: BUNDLED,
      layerPatterns: [],
      onlyListedLayers: true,
      firstLayer: 'expanded_conv_project',
      firstGridChannels: 64,
    });
    assert.equal(result.firstGrid?.layer, 'expanded_conv_project');
    assert.equal(result.firstGrid?.count, 16, 'expanded_conv_project has 16 channels');
    const plain = await engine.extract({
      imagePath: image('hubble_deep_field.jpg'),
      model: BUNDLED,
      layerPatterns: [],
    });
    assert.equal(plain.firstGrid, undefined, 'none unless asked for');
  });

  it('computes only the listed layers (and the head), each equal to a full pass’s', async () => {
    const request = { imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: LISTED };
    const partial = await engine.extract({ ...request, onlyListedLayers: true });
    const whole = await full.extract(request);
    assert.equal(partial.model.backend, 'onnxruntime', 'the runtime that can stop early');
    const head = partial.layers.at(-1)!.name;
    const computed = partial.layers.filter((l) => engine.activation(partial.resultKey, l.name)).map((l) => l.name);
    assertComputedOnly(computed, [...LISTED, head], partial.layers);
    for (const name of [...LISTED, head]) {
      const error = relErr(
        engine.activation(partial.resultKey, name)!.data,
        full.activation(whole.resultKey, name)!.data,
      );
      assert.ok(error <= CLOSE, `${name}: ${error}`);
    }
    assert.deepEqual(
      partial.predictions?.map((p) => p.label),
      whole.predictions?.map((p) => p.label),
    );
  });

  it('with no layer listed, computes the layer on screen and the head first, the rest in complete()', async () => {
    const request = { imagePath: image('astronaut.png'), model: BUNDLED, layerPatterns: [], onlyListedLayers: true };
    const first = await engine.extract({ ...request, firstLayer: 'block_3_expand_relu' });
    const head = first.layers.at(-1)!.name;
    const computed = () => first.layers.filter((l) => engine.activation(first.resultKey, l.name)).map((l) => l.name);
    assert.equal(first.partial, true);
    assertComputedOnly(computed(), ['block_3_expand_relu', head], first.layers);
    // Asked for while the rest is computing: both wait for the same pass.
    await Promise.all([engine.complete(first.resultKey), engine.ensureLayer(first.resultKey, 'Conv1')]);
    assert.deepEqual(
      computed(),
      first.layers.map((l) => l.name),
    );
    const again = await engine.extract({ ...request, firstLayer: 'block_3_expand_relu' });
    assert.equal(again.partial, false);
    const whole = await full.extract({ ...request, onlyListedLayers: false });
    for (const layer of first.layers) {
      assert.deepEqual(
        engine.activation(first.resultKey, layer.name)?.data,
        full.activation(whole.resultKey, layer.name)?.data,
      );
    }
  });

  it('with the head left for later, stops at the layer on screen; predictions() then computes the head alone', async () => {
    // The bundled model's head has 5 classes and no labels file: these name them.
    const labelsPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fm-labels-')), 'labels.txt');
    fs.writeFileSync(labelsPath, ['drawing', 'hentai', 'neutral', 'porn', 'sexy'].join('\n'));
    const request = { imagePath: image('palette_color.png'), model: BUNDLED, layerPatterns: [], labelsPath };
    const first = await engine.extract({ ...request, onlyListedLayers: true, headLater: true, firstGridChannels: 16 });
    const head = first.layers.at(-1)!.name;
    const computed = () => first.layers.filter((l) => engine.activation(first.resultKey, l.name)).map((l) => l.name);
    assertComputedOnly(computed(), ['Conv1'], first.layers, false);
    assert.equal(first.firstGrid?.layer, 'Conv1');
    assert.equal(first.predictions, undefined, 'no top-5 before the head is computed');

    const predictions = await engine.predictions(first.resultKey, labelsPath);
    const whole = await full.extract(request);
    assert.equal(predictions?.length, 5);
    assert.deepEqual(
      predictions?.map((p) => p.label),
      whole.predictions?.map((p) => p.label),
    );
    // The head alone: the layers in between still wait for complete().
    assert.ok(computed().includes(head));
    assert.ok(!computed().includes('block_8_project'), 'a middle layer is not computed by predictions()');
    assert.equal(
      (await engine.extract({ ...request, onlyListedLayers: true, headLater: true })).predictions?.length,
      5,
    );
  });

  it('without a layer on screen yet, computes the one a new panel shows: the first convolution', async () => {
    const request = { imagePath: image('horse.png'), model: BUNDLED, layerPatterns: [], onlyListedLayers: true };
    const first = await engine.extract(request);
    const computed = first.layers.filter((l) => engine.activation(first.resultKey, l.name)).map((l) => l.name);
    assertComputedOnly(computed, ['Conv1', first.layers.at(-1)!.name], first.layers);
    assert.equal(firstLayerToShow(first.layers), 'Conv1');
  });

  it('computes the rest once, when another layer is first asked for', async () => {
    const request = { imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: LISTED, onlyListedLayers: true };
    const partial = await engine.extract(request);
    assert.throws(() => engine.layerData(partial.resultKey, 'block_16_project', 4), /not computed yet/);
    await engine.ensureLayer(partial.resultKey, 'block_16_project');
    const whole = await full.extract({ ...request, onlyListedLayers: false });
    for (const layer of partial.layers) {
      assert.deepEqual(
        engine.activation(partial.resultKey, layer.name)?.data,
        full.activation(whole.resultKey, layer.name)?.data,
        layer.name,
      );
    }
    assert.equal(engine.layerData(partial.resultKey, 'block_16_project', 4).count, 4);
  });
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { channelsLast } from '../../src/engine/model';
import { UserFacingError } from '../../src/engine/errors';
import { decodeImage } from '../../src/engine/image';
import { readLabels, topK } from '../../src/engine/labels';
import type { Activation, LoadedModel } from '../../src/engine/model';
import { float16ToFloat32, float32ToFloat16, loadOnnxModel } from '../../src/engine/models/onnx';
import { preprocess } from '../../src/engine/preprocess';
import { image, shared, tempDir } from './fixtures';
import { assertFiniteAndVaried } from './assertions';

const SQUEEZENET = shared('fixtures', 'models', 'squeezenet-imagenet.onnx', 'SqueezeNet_fp16.onnx');
const SQUEEZENET_LABELS = shared('fixtures', 'models', 'squeezenet-imagenet.onnx', 'SqueezeNet_fp16.labels.txt');
const SUMMARY = { name: 'SqueezeNet', description: 'test', preprocessing: 'caffe' };

function loadSqueezeNet(): Promise<LoadedModel> {
  return loadOnnxModel({ modelPath: SQUEEZENET, key: 'squeezenet', summary: SUMMARY, preprocessing: 'caffe' });
}

async function inputFor(model: LoadedModel, imageName: string): Promise<Float32Array> {
  const { height, width } = model.inputSize;
  const decoded = await decodeImage(image(imageName), { width, height });
  return preprocess(decoded.rgb, model.preprocessing);
}

function assertLoadError(error: unknown, fileName: string): true {
  assert.ok(error instanceof UserFacingError, `a UserFacingError, not ${String(error)}`);
  assert.ok(error.message.includes(fileName), `the message names ${fileName}: ${error.message}`);
  return true;
}

describe('ONNX models through onnxruntime-node', () => {
  let model: LoadedModel;
  let labels: string[];
  let loadMs: number;
  before(async () => {
    const started = performance.now();
    model = await loadSqueezeNet();
    loadMs = performance.now() - started;
    labels = await readLabels(SQUEEZENET_LABELS);
  });
  after(() => model?.dispose());

  it('loads SqueezeNet fp16 and sees its NCHW float16 input as 224×224×3', () => {
    console.log(`      SqueezeNet loaded in ${loadMs.toFixed(0)} ms`);
    assert.deepEqual(model.inputSize, { height: 224, width: 224, channels: 3 });
    assert.deepEqual(model.summary.inputShape, [224, 224, 3]);
    assert.equal(model.preprocessing, 'caffe');
  });

  it('lists the node outputs in graph order, convolutions and concats as H×W×C', () => {
    const nodes = onnx.ModelProto.decode(fs.readFileSync(SQUEEZENET)).graph?.node ?? [];
    const graphOrder = nodes.flatMap((n) => n.output);
    const positions = model.layers.map((l) => graphOrder.indexOf(l.name));
    assert.ok(
      positions.every((p, i) => p >= 0 && (i === 0 || p > positions[i - 1])),
      'every layer is a node output, in graph order',
    );
    // Every node's feature map, but not Dropout's mask.
    assert.equal(model.layers.length, nodes.length);
    assert.ok(!model.layers.some((l) => l.name.includes('mask')));
    assert.equal(model.layers.filter((l) => l.op === 'Conv').length, 26);
    assert.equal(model.layers.filter((l) => l.op === 'Concat').length, 8);
    const byName = new Map(model.layers.map((l) => [l.name, l]));
    assert.deepEqual(byName.get('conv1_1'), { name: 'conv1_1', op: 'Conv', shape: [111, 111, 64] });
    assert.deepEqual(byName.get('fire2/concat_1'), { name: 'fire2/concat_1', op: 'Concat', shape: [55, 55, 128] });
    assert.deepEqual(model.layers.at(-1), { name: 'softmaxout_1', op: 'Softmax', shape: [1, 1, 1000] });
  });

  it('returns exactly the listed layers, finite and not constant', async () => {
    const started = performance.now();
    const activations = await model.run(await inputFor(model, 'chelsea.png'));
    console.log(
      `      SqueezeNet forward pass with ${activations.size} outputs: ${(performance.now() - started).toFixed(0)} ms`,
    );
    assert.deepEqual(
      [...activations.keys()],
      model.layers.map((l) => l.name),
    );
    for (const layer of model.layers) {
      const activation = activations.get(layer.name) as Activation;
      assert.deepEqual(activation.shape, layer.shape, layer.name);
      assert.ok(activation.data instanceof Float32Array);
      assert.equal(
        activation.data.length,
        layer.shape.reduce((a, b) => a * b, 1),
        layer.name,
      );
      assert.equal(activation.data.byteLength, activation.data.buffer.byteLength, `${layer.name} is a tight array`);
      assertFiniteAndVaried(layer.name, activation.data);
    }
  });

  it('gives identical activations for the same input twice', async () => {
    const input = await inputFor(model, 'coffee.png');
    const a = await model.run(input);
    const b = await model.run(input);
    for (const [name, activation] of a) assert.deepEqual(b.get(name)?.data, activation.data, name);
  });

  it('classifies the cat as a cat and the coffee as a cup', async () => {
    const isCat = (label: string) => /\b(tabby|tiger cat|egyptian cat|persian cat|siamese cat)\b/i.test(label);
    const isCup = (label: string) => /\b(cup|espresso|coffee mug)\b/i.test(label);
    assert.ok(labels.some(isCat) && labels.some(isCup), 'the labels name cats and cups');
    const top5: Record<string, string[]> = {};
    for (const name of ['chelsea.png', 'coffee.png', 'astronaut.png', 'hubble_deep_field.jpg']) {
      const softmax = (await model.run(await inputFor(model, name))).get('softmaxout_1') as Activation;
      top5[name] = topK(softmax.data, 5).map(({ index, score }) => `${labels[index]} ${score.toFixed(3)}`);
      console.log(`      ${name}: ${top5[name].join(' | ')}`);
    }
    assert.ok(top5['chelsea.png'].some(isCat), top5['chelsea.png'].join('; '));
    assert.ok(top5['coffee.png'].some(isCup), top5['coffee.png'].join('; '));
  });

  describe('files that are not usable models', () => {
    let dir: string;
    before(() => {
      dir = tempDir();
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('rejects a text file named .onnx, naming it', async () => {
      const file = path.join(dir, 'notes.onnx');
      fs.writeFileSync(file, 'This is not a model.\nJust some text.\n');
      await assert.rejects(loadOnnxModel({ ...squeezeOptions(), modelPath: file }), (e) =>
        assertLoadError(e, 'notes.onnx'),
      );
    });

    it('rejects a truncated model, naming it', async () => {
      const file = path.join(dir, 'truncated.onnx');
      fs.writeFileSync(file, fs.readFileSync(SQUEEZENET).subarray(0, 1000));
      await assert.rejects(loadOnnxModel({ ...squeezeOptions(), modelPath: file }), (e) =>
        assertLoadError(e, 'truncated.onnx'),
      );
    });

    it('rejects a missing file, naming it', async () => {
      await assert.rejects(loadOnnxModel({ ...squeezeOptions(), modelPath: path.join(dir, 'gone.onnx') }), (e) =>
        assertLoadError(e, 'gone.onnx'),
      );
    });

    it('rejects a model whose input is not rank 4, saying so', async () => {
      const file = path.join(dir, 'rank3.onnx');
      fs.writeFileSync(file, tinyModel({ inputDims: [1, 3, 224] }));
      await assert.rejects(loadOnnxModel({ ...squeezeOptions(), modelPath: file }), (e) => {
        assertLoadError(e, 'rank3.onnx');
        assert.match((e as Error).message, /rank 4/);
        return true;
      });
    });

    it('puts ONNX Runtime’s own words in the detail when it refuses a model', async () => {
      const file = path.join(dir, 'unknown-op.onnx');
      fs.writeFileSync(file, tinyModel({ reluOp: 'NoSuchOp' }));
      await assert.rejects(loadOnnxModel({ ...squeezeOptions(), modelPath: file }), (e) => {
        assertLoadError(e, 'unknown-op.onnx');
        assert.match((e as UserFacingError).message, /operator NoSuchOp/);
        assert.match((e as UserFacingError).detail ?? '', /No Op registered for NoSuchOp/);
        return true;
      });
    });
  });

  describe('a float32 NHWC model with symbolic height and width', () => {
    let dir: string;
    before(() => {
      dir = tempDir();
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('uses the asked input size, follows the layout through transposes, skips shape arithmetic', async () => {
      const file = path.join(dir, 'tiny.onnx');
      fs.writeFileSync(file, tinyModel({}));
      const tiny = await loadOnnxModel({ ...squeezeOptions(), modelPath: file, inputSize: { height: 5, width: 7 } });
      try {
        assert.deepEqual(tiny.inputSize, { height: 5, width: 7, channels: 3 });
        assert.deepEqual(
          tiny.layers.map((l) => `${l.name}:${l.op}:${l.shape.join('x')}`),
          [
            'nchw:Transpose:5x7x3',
            'conv1:Conv:5x7x2',
            'relu:Relu:5x7x2',
            'nhwc:Transpose:5x7x2',
            'gap:GlobalAveragePool:1x1x2',
            'flat:Flatten:2',
          ],
        );
        const input = Float32Array.from({ length: 5 * 7 * 3 }, (_, i) => (i % 11) / 10);
        const out = await tiny.run(input);
        // conv1 = [R, 2G − 1] per pixel, in H×W×C whichever layout the tensor had inside.
        const expected = new Float32Array(5 * 7 * 2);
        for (let p = 0; p < 5 * 7; p++) {
          expected[p * 2] = input[p * 3];
          expected[p * 2 + 1] = 2 * input[p * 3 + 1] - 1;
        }
        assert.deepEqual(channelsLast(out.get('conv1')!), expected);
        const relu = expected.map((v) => Math.max(0, v));
        assert.deepEqual(channelsLast(out.get('relu')!), relu);
        assert.deepEqual(channelsLast(out.get('nhwc')!), relu);
        assert.deepEqual(channelsLast(out.get('nchw')!), input);
      } finally {
        tiny.dispose();
      }
    });

    it('finds weights stored beside the model (external data) wherever the process runs', async () => {
      const file = path.join(dir, 'external.onnx');
      fs.writeFileSync(path.join(dir, 'external.weights'), Buffer.from(CONV_WEIGHTS.buffer));
      fs.writeFileSync(file, tinyModel({ externalWeights: 'external.weights' }));
      const tiny = await loadOnnxModel({ ...squeezeOptions(), modelPath: file });
      try {
        const out = await tiny.run(new Float32Array(224 * 224 * 3).fill(1));
        assert.deepEqual(out.get('flat')?.data, Float32Array.from([1, 1]));
      } finally {
        tiny.dispose();
      }
    });
  });
});

describe('float16 conversion', () => {
  it('round-trips every half value (NaN aside)', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = float32ToFloat16(float16ToFloat32(all));
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (!isNaN) assert.equal(back[h], h, `0x${h.toString(16)}`);
    }
  });

  it('rounds to nearest even, overflows to infinity, keeps subnormals', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [1 + 2 ** -11, 0x3c00], // tie → even
      [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00],
      [1e6, 0x7c00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie → even (zero)
      [3 * 2 ** -25, 0x0002],
      [-0, 0x8000],
      [-Infinity, 0xfc00],
      [103.939, 0x567f],
    ];
    const halves = float32ToFloat16(Float32Array.from(cases.map(([v]) => v)));
    cases.forEach(([v, h], i) => assert.equal(halves[i], h, `${v} → 0x${halves[i].toString(16)}`));
    assert.ok(Number.isNaN(float16ToFloat32(float32ToFloat16(Float32Array.of(NaN)))[0]));
  });
});

describe('labels and top-k', () => {
  it('reads "index,name" labels, names with commas kept whole', async () => {
    const labels = await readLabels(SQUEEZENET_LABELS);
    assert.equal(labels.length, 1000);
    assert.equal(labels[0], 'tench, Tinca tinca');
    assert.match(labels[281], /tabby/);
  });

  it('reads one name per line, in line order', async () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'labels.txt');
      fs.writeFileSync(file, 'background\r\n3 kittens\r\n\r\ndog\r\n\r\n');
      assert.deepEqual(await readLabels(file), ['background', '3 kittens', '', 'dog']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names an unreadable labels file', async () => {
    await assert.rejects(readLabels('/nonexistent/classes.txt'), (e) => assertLoadError(e, 'classes.txt'));
  });

  it('returns the k best scores, best first, NaN ignored, ties by index', () => {
    const scores = Float32Array.of(0.1, NaN, 0.5, 0.2, 0.5, 0.05);
    assert.deepEqual(
      topK(scores, 3).map((t) => t.index),
      [2, 4, 3],
    );
    assert.equal(topK(scores, 10).length, 5);
    assert.deepEqual(topK(scores, 0), []);
  });
});

function squeezeOptions() {
  return { modelPath: SQUEEZENET, key: 'test', summary: SUMMARY, preprocessing: 'caffe' as const };
}

const CONV_WEIGHTS = Float32Array.of(1, 0, 0, 0, 2, 0); // [2 out, 3 in, 1, 1]: R, and 2·G

/**
 * A small float32 model with an NHWC input [1, h, w, 3] (symbolic h, w):
 * Transpose → Conv 1×1 (named conv1) → Relu → Transpose back, and GAP → Flatten,
 * plus a Shape output that is bookkeeping, not a feature map.
 */
function tinyModel(options: {
  inputDims?: (number | string)[];
  reluOp?: string;
  externalWeights?: string;
}): Uint8Array {
  const dims = options.inputDims ?? [1, 'h', 'w', 3];
  const weights: onnx.ITensorProto = options.externalWeights
    ? {
        name: 'W',
        dataType: 1,
        dims: [2, 3, 1, 1],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [{ key: 'location', value: options.externalWeights }],
      }
    : { name: 'W', dataType: 1, dims: [2, 3, 1, 1], floatData: Array.from(CONV_WEIGHTS) };
  const graph: onnx.IGraphProto = {
    name: 'tiny',
    node: [
      { opType: 'Transpose', input: ['image'], output: ['nchw'], attribute: [ints('perm', [0, 3, 1, 2])] },
      { opType: 'Conv', name: 'conv1', input: ['nchw', 'W', 'B'], output: ['conv'] },
      { opType: options.reluOp ?? 'Relu', input: ['conv'], output: ['relu'] },
      { opType: 'Shape', input: ['relu'], output: ['relu_shape'] },
      { opType: 'Transpose', input: ['relu'], output: ['nhwc'], attribute: [ints('perm', [0, 2, 3, 1])] },
      { opType: 'GlobalAveragePool', input: ['relu'], output: ['gap'] },
      { opType: 'Flatten', input: ['gap'], output: ['flat'] },
    ],
    initializer: [weights, { name: 'B', dataType: 1, dims: [2], floatData: [0, -1] }],
    input: [valueInfo('image', 1, dims)],
    output: [valueInfo('nhwc', 1, [1, 'h', 'w', 2]), valueInfo('flat', 1, [1, 2]), valueInfo('relu_shape', 7, [4])],
  };
  return onnx.ModelProto.encode({ irVersion: 7, opsetImport: [{ domain: '', version: 13 }], graph }).finish();
}

function ints(name: string, values: number[]): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: values };
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

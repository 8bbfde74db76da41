import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import { channelsLast } from '../../src/engine/model';
import { FeatureMapEngine } from '../../src/engine/engine';
import type { LoadedModel } from '../../src/engine/model';
import { loadTfjsGraphModel } from '../../src/engine/models/tfjsGraph';
import { type Tf, getTf } from '../../src/engine/tf';
import { rejectsWith } from './assertions';
import { type NodeDef, type Weight, random } from './graphDefs';
import { DIST, image, tempDir } from './fixtures';
import { relErr } from './npy';

const TOLERANCE = 1e-5;
const SIZE = 16;

const next = random(1234);
const floats = (count: number, scale: number): Float32Array =>
  Float32Array.from({ length: count }, () => (next() * 2 - 1) * scale);

// GraphDef attributes: strings are base64 bytes, integers decimal strings.
const str = (s: string) => ({ s: Buffer.from(s).toString('base64') });
const ints = (...values: number[]) => ({ list: { i: values.map(String) } });
const FLOAT = { type: 'DT_FLOAT' };
const dims = (shape: number[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });

const WEIGHTS: Weight[] = [
  { name: 'conv1/kernel', shape: [3, 3, 3, 4], dtype: 'float32', values: floats(3 * 3 * 3 * 4, 0.5) },
  { name: 'conv1/bias', shape: [4], dtype: 'float32', values: floats(4, 0.1) },
  { name: 'conv2/kernel', shape: [3, 3, 4, 6], dtype: 'float32', values: floats(3 * 3 * 4 * 6, 0.5) },
  { name: 'gap/axes', shape: [2], dtype: 'int32', values: Int32Array.from([1, 2]) },
  { name: 'fc/kernel', shape: [6, 5], dtype: 'float32', values: floats(6 * 5, 1) },
];

function constNode(weight: Weight): NodeDef {
  const dtype = weight.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT';
  return {
    name: weight.name,
    op: 'Const',
    attr: { value: { tensor: { dtype, tensorShape: dims(weight.shape) } }, dtype: { type: dtype } },
  };
}

const conv = (name: string, input: string, kernel: string, padding: string): NodeDef => ({
  name,
  op: 'Conv2D',
  input: [input, kernel],
  attr: {
    T: FLOAT,
    strides: ints(1, 1, 1, 1),
    dilations: ints(1, 1, 1, 1),
    padding: str(padding),
    data_format: str('NHWC'),
    use_cudnn_on_gpu: { b: true },
  },
});

/** Placeholder → Conv2D → BiasAdd → Relu → MaxPool → Conv2D → Relu → Mean → MatMul → Softmax. */
function graphNodes(placeholderShape: number[]): NodeDef[] {
  const [conv1Kernel, conv1Bias, conv2Kernel, gapAxes, fcKernel] = WEIGHTS.map(constNode);
  return [
    { name: 'input', op: 'Placeholder', attr: { dtype: FLOAT, shape: { shape: dims(placeholderShape) } } },
    conv1Kernel,
    conv('conv1/Conv2D', 'input', 'conv1/kernel', 'SAME'),
    conv1Bias,
    {
      name: 'conv1/BiasAdd',
      op: 'BiasAdd',
      input: ['conv1/Conv2D', 'conv1/bias'],
      attr: { T: FLOAT, data_format: str('NHWC') },
    },
    { name: 'conv1/Relu', op: 'Relu', input: ['conv1/BiasAdd'], attr: { T: FLOAT } },
    {
      name: 'pool1/MaxPool',
      op: 'MaxPool',
      input: ['conv1/Relu'],
      attr: {
        T: FLOAT,
        ksize: ints(1, 2, 2, 1),
        strides: ints(1, 2, 2, 1),
        padding: str('VALID'),
        data_format: str('NHWC'),
      },
    },
    conv2Kernel,
    conv('conv2/Conv2D', 'pool1/MaxPool', 'conv2/kernel', 'VALID'),
    { name: 'conv2/Relu', op: 'Relu', input: ['conv2/Conv2D'], attr: { T: FLOAT } },
    gapAxes,
    {
      name: 'gap/Mean',
      op: 'Mean',
      input: ['conv2/Relu', 'gap/axes'],
      attr: { T: FLOAT, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } },
    },
    fcKernel,
    {
      name: 'fc/MatMul',
      op: 'MatMul',
      input: ['gap/Mean', 'fc/kernel'],
      attr: { T: FLOAT, transpose_a: { b: false }, transpose_b: { b: false } },
    },
    { name: 'fc/Softmax', op: 'Softmax', input: ['fc/MatMul'], attr: { T: FLOAT } },
  ];
}

/** Writes model.json (format graph-model) and its one weight shard into a new folder. */
function writeGraphModel(nodes: NodeDef[], folder = 'graph'): string {
  const dir = path.join(tempDir(), folder);
  fs.mkdirSync(dir);
  const shard = Buffer.concat(
    WEIGHTS.map((w) => Buffer.from(w.values.buffer, w.values.byteOffset, w.values.byteLength)),
  );
  fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), shard);
  const modelJson = {
    format: 'graph-model',
    generatedBy: 'feature-maps test',
    convertedBy: 'hand',
    modelTopology: { node: nodes, library: {}, versions: { producer: 1 } },
    weightsManifest: [
      {
        paths: ['group1-shard1of1.bin'],
        weights: WEIGHTS.map(({ name, shape, dtype }) => ({ name, shape, dtype })),
      },
    ],
  };
  const file = path.join(dir, 'model.json');
  fs.writeFileSync(file, JSON.stringify(modelJson));
  return file;
}

/** The same network written with tfjs ops directly, every node's output by name. */
function reference(tf: Tf, input: Float32Array, height: number, width: number): Map<string, tfc.Tensor> {
  const w = new Map(WEIGHTS.map((weight) => [weight.name, weight]));
  const t = (name: string) => {
    const weight = w.get(name)!;
    return tf.tensor(weight.values, weight.shape, weight.dtype);
  };
  const out = new Map<string, tfc.Tensor>();
  const x = tf.tensor4d(input, [1, height, width, 3]);
  const c1 = tf.conv2d(x, t('conv1/kernel') as tfc.Tensor4D, 1, 'same');
  out.set('conv1/Conv2D', c1);
  const b1 = tf.add(c1, t('conv1/bias'));
  out.set('conv1/BiasAdd', b1);
  const r1 = tf.relu(b1);
  out.set('conv1/Relu', r1);
  const p1 = tf.maxPool(r1 as tfc.Tensor4D, 2, 2, 'valid');
  out.set('pool1/MaxPool', p1);
  const c2 = tf.conv2d(p1, t('conv2/kernel') as tfc.Tensor4D, 1, 'valid');
  out.set('conv2/Conv2D', c2);
  const r2 = tf.relu(c2);
  out.set('conv2/Relu', r2);
  const gap = tf.mean(r2, [1, 2]);
  out.set('gap/Mean', gap);
  const fc = tf.matMul(gap as tfc.Tensor2D, t('fc/kernel') as tfc.Tensor2D);
  out.set('fc/MatMul', fc);
  out.set('fc/Softmax', tf.softmax(fc));
  return out;
}

/** conv1 (3×3, SAME, stride 1) in plain loops: a check that does not share tfjs' kernels. */
function plainConv1(input: Float32Array, height: number, width: number): Float32Array {
  const kernel = WEIGHTS[0].values;
  const [, , cin, cout] = WEIGHTS[0].shape;
  const out = new Float32Array(height * width * cout);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let o = 0; o < cout; o++) {
        let sum = 0;
        for (let ky = 0; ky < 3; ky++)
          for (let kx = 0; kx < 3; kx++) {
            const iy = y + ky - 1;
            const ix = x + kx - 1;
            if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
            for (let c = 0; c < cin; c++)
              sum += input[(iy * width + ix) * cin + c] * kernel[((ky * 3 + kx) * cin + c) * cout + o];
          }
        out[(y * width + x) * cout + o] = sum;
      }
  return out;
}

const ORDER = [
  'conv1/Conv2D',
  'conv1/BiasAdd',
  'conv1/Relu',
  'pool1/MaxPool',
  'conv2/Conv2D',
  'conv2/Relu',
  'gap/Mean',
  'fc/MatMul',
  'fc/Softmax',
];

function load(tf: Tf, modelJsonPath: string, inputSize?: { height: number; width: number }): Promise<LoadedModel> {
  return loadTfjsGraphModel(tf, {
    modelJsonPath,
    key: `test:${modelJsonPath}`,
    summary: { name: 'graph', description: 'test' },
    preprocessing: 'none',
    inputSize,
  });
}

/** Runs the model and the reference on one fixed-seed image and compares every node. */
async function compare(tf: Tf, model: LoadedModel, height: number, width: number): Promise<string[]> {
  const input = floats(height * width * 3, 1);
  const outputs = await model.run(input);
  const expected = reference(tf, input, height, width);
  const plain = relErr(channelsLast(outputs.get('conv1/Conv2D')!), plainConv1(input, height, width));
  assert.ok(plain <= TOLERANCE, `conv1/Conv2D against plain loops: relative error ${plain}`);
  const errors: string[] = [`conv1/Conv2D vs plain loops ${plain.toExponential(1)}`];
  try {
    for (const name of ORDER) {
      const ours = outputs.get(name);
      const ref = expected.get(name)!;
      assert.ok(ours, `no activations for ${name}`);
      assert.deepEqual([1, ...ours.shape], ref.shape, `${name} shape`);
      const error = relErr(channelsLast(ours), ref.dataSync());
      errors.push(`${name} ${error.toExponential(1)}`);
      assert.ok(error <= TOLERANCE, `${name}: relative error ${error} > ${TOLERANCE}`);
    }
  } finally {
    tf.dispose([...expected.values()]);
  }
  return errors;
}

describe('TF.js GraphModel (model.json, format graph-model)', function () {
  this.timeout(60_000);
  let tf: Tf;
  before(async () => {
    tf = (await getTf(DIST)).tf;
  });

  it('lists every computing node in graph order and matches tfjs ops on the same weights', async () => {
    const model = await load(tf, writeGraphModel(graphNodes([-1, SIZE, SIZE, 3])));
    try {
      assert.deepEqual(model.inputSize, { height: SIZE, width: SIZE, channels: 3 });
      assert.deepEqual(
        model.layers.map((l) => [l.name, l.op, l.shape.join('×')]),
        [
          ['conv1/Conv2D', 'Conv2D', '16×16×4'],
          ['conv1/BiasAdd', 'BiasAdd', '16×16×4'],
          ['conv1/Relu', 'Relu', '16×16×4'],
          ['pool1/MaxPool', 'MaxPool', '8×8×4'],
          ['conv2/Conv2D', 'Conv2D', '6×6×6'],
          ['conv2/Relu', 'Relu', '6×6×6'],
          ['gap/Mean', 'Mean', '6'],
          ['fc/MatMul', 'MatMul', '5'],
          ['fc/Softmax', 'Softmax', '5'],
        ],
      );
      const errors = await compare(tf, model, SIZE, SIZE);
      console.log(`      ${errors.join(', ')}`);
      const before = tf.memory().numTensors;
      await model.run(new Float32Array(SIZE * SIZE * 3));
      assert.equal(tf.memory().numTensors, before, 'a run leaves no tensors behind');
    } finally {
      model.dispose();
    }
  });

  it('keeps graph order when model.json lists the nodes out of order', async () => {
    const model = await load(tf, writeGraphModel(graphNodes([-1, SIZE, SIZE, 3]).reverse()));
    try {
      assert.deepEqual(
        model.layers.map((l) => l.name),
        ORDER,
      );
    } finally {
      model.dispose();
    }
  });

  it('runs a fully dynamic [-1,-1,-1,3] input at the asked size, 224×224 when none is asked', async () => {
    const file = writeGraphModel(graphNodes([-1, -1, -1, 3]));
    const model = await load(tf, file, { height: 20, width: 12 });
    try {
      assert.deepEqual(model.inputSize, { height: 20, width: 12, channels: 3 });
      assert.deepEqual(model.layers[3].shape, [10, 6, 4]);
      await compare(tf, model, 20, 12);
    } finally {
      model.dispose();
    }
    const fallback = await load(tf, file);
    try {
      assert.deepEqual(fallback.inputSize, { height: 224, width: 224, channels: 3 });
      assert.deepEqual(fallback.layers[0].shape, [224, 224, 4]);
    } finally {
      fallback.dispose();
    }
  });

  it('at featureMaps.inputSize [4096, 4096]: every shape from the graph at load, no pass; the pass refused in words', async () => {
    const file = writeGraphModel(graphNodes([-1, -1, -1, 3]), 'graph_4096');
    const engine = new FeatureMapEngine({ assetsDir: DIST });
    try {
      const source = { kind: 'file', path: file, inputSize: { height: 4096, width: 4096 } } as const;
      const peakBefore = process.resourceUsage().maxRSS * 1024;
      const residentBefore = process.memoryUsage().rss;
      const started = performance.now();
      const model = await engine.loadModel(source);
      const ms = performance.now() - started;
      const peak = process.resourceUsage().maxRSS * 1024 - peakBefore;
      const resident = process.memoryUsage().rss - residentBefore;
      console.log(
        `      loaded in ${ms.toFixed(0)} ms, peak RSS +${(peak / 2 ** 20).toFixed(0)} MB, resident +${(resident / 2 ** 20).toFixed(0)} MB`,
      );
      assert.deepEqual(
        model.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
        [
          'conv1/Conv2D:4096×4096×4',
          'conv1/BiasAdd:4096×4096×4',
          'conv1/Relu:4096×4096×4',
          'pool1/MaxPool:2048×2048×4',
          'conv2/Conv2D:2046×2046×6',
          'conv2/Relu:2046×2046×6',
          'gap/Mean:6',
          'fc/MatMul:5',
          'fc/Softmax:5',
        ],
      );
      // A pass at this size allocates gigabytes: one at load would show here. Generous bounds.
      assert.ok(ms < 10_000, `${ms} ms`);
      assert.ok(resident < 256 * 2 ** 20, `resident memory grew by ${resident} bytes`);
      const error = await rejectsWith(
        engine.extract({ imagePath: image('chelsea.png'), model: source, layerPatterns: [] }),
        /^The forward pass of graph_4096 on chelsea\.png needs about [\d.]+ GB \(layer "conv1\/Conv2D": 4096×4096×4 float32 is 256 MB\); the memory budget is 2 GB \(featureMaps\.memoryBudget\)\.$/,
      );
      console.log(`      ${error.message}`);
    } finally {
      engine.dispose();
    }
  });

  it('an op the shape rules do not know: the layers after it are listed unknown, and the first pass tells them', async () => {
    const nodes = graphNodes([-1, -1, -1, 3]);
    // Cos runs on tfjs but has no shape rule here: everything fed by it waits for the first pass.
    nodes.splice(
      nodes.findIndex((n) => n.name === 'pool1/MaxPool'),
      0,
      {
        name: 'wave',
        op: 'Cos',
        input: ['conv1/Relu'],
        attr: { T: FLOAT },
      },
    );
    nodes.find((n) => n.name === 'pool1/MaxPool')!.input = ['wave'];
    const file = writeGraphModel(nodes, 'unknown_op');
    const model = await load(tf, file, { height: 20, width: 12 });
    try {
      assert.deepEqual(
        model.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
        [
          'conv1/Conv2D:20×12×4',
          'conv1/BiasAdd:20×12×4',
          'conv1/Relu:20×12×4',
          'pool1/MaxPool:',
          'conv2/Conv2D:',
          'conv2/Relu:',
          'gap/Mean:',
          'fc/MatMul:',
          'fc/Softmax:',
        ],
      );
    } finally {
      model.dispose();
    }
    const engine = new FeatureMapEngine({ assetsDir: DIST });
    try {
      const result = await engine.extract({
        imagePath: image('chelsea.png'),
        model: { kind: 'file', path: file, inputSize: { height: 20, width: 12 } },
        layerPatterns: [],
      });
      assert.deepEqual(
        result.layers.map((l) => `${l.name}:${l.shape.join('×')}`),
        [
          'conv1/Conv2D:20×12×4',
          'conv1/BiasAdd:20×12×4',
          'conv1/Relu:20×12×4',
          'pool1/MaxPool:10×6×4',
          'conv2/Conv2D:8×4×6',
          'conv2/Relu:8×4×6',
          'gap/Mean:6',
          'fc/MatMul:5',
          'fc/Softmax:5',
        ],
      );
      assert.equal(engine.layerData(result.resultKey, 'conv2/Relu', 6).count, 6);
    } finally {
      engine.dispose();
    }
  });

  it('a corrupt model.json is a UserFacingError naming the file', async () => {
    const file = writeGraphModel(graphNodes([-1, SIZE, SIZE, 3]), 'corrupt');
    fs.writeFileSync(file, '{"format": "graph-model", "modelTopology": {"node": [');
    const error = await rejectsWith(load(tf, file), /model\.json/);
    assert.ok(error.detail, 'the parser’s words are kept as detail');
  });

  it('a missing weight shard is a UserFacingError naming the shard and the file', async () => {
    const file = writeGraphModel(graphNodes([-1, SIZE, SIZE, 3]), 'noshard');
    fs.rmSync(path.join(path.dirname(file), 'group1-shard1of1.bin'));
    await rejectsWith(load(tf, file), /group1-shard1of1\.bin/, /model\.json/);
  });

  it('an op tfjs lacks is refused at load (no pass runs), naming the file and the op', async () => {
    const nodes = graphNodes([-1, SIZE, SIZE, 3]);
    // Digamma is a TensorFlow op that tfjs-converter does not implement.
    nodes.splice(1, 0, { name: 'digamma', op: 'Digamma', input: ['input'], attr: { T: FLOAT } });
    const conv1 = nodes.find((n) => n.name === 'conv1/Conv2D')!;
    conv1.input = ['digamma', 'conv1/kernel'];
    const error = await rejectsWith(load(tf, writeGraphModel(nodes, 'unsupported')), /model\.json/);
    assert.match(error.detail ?? '', /Digamma/);
  });

  it('refuses a graph with two inputs', async () => {
    const nodes = graphNodes([-1, SIZE, SIZE, 3]);
    nodes.push(
      { name: 'input2', op: 'Placeholder', attr: { dtype: FLOAT, shape: { shape: dims([-1, 5]) } } },
      { name: 'sum', op: 'AddV2', input: ['fc/Softmax', 'input2'], attr: { T: FLOAT } },
    );
    await rejectsWith(load(tf, writeGraphModel(nodes, 'twoinputs')), /model\.json/, /one image input of rank 4/);
  });

  it('is picked by the engine for a graph-model model.json, and its layers come back', async () => {
    const file = writeGraphModel(graphNodes([-1, -1, -1, 3]), 'tiny_graph');
    const engine = new FeatureMapEngine({ assetsDir: DIST });
    try {
      const result = await engine.extract({
        imagePath: image('chelsea.png'),
        model: { kind: 'file', path: file, inputSize: { height: 32, width: 32 } },
        layerPatterns: [],
      });
      assert.equal(result.model.name, 'tiny_graph');
      assert.deepEqual(result.model.inputShape, [32, 32, 3]);
      assert.deepEqual(
        result.layers.map((l) => l.name),
        ORDER,
      );
      assert.deepEqual(result.layers[2].shape, [32, 32, 4]);
      const softmax = engine.activation(result.resultKey, 'fc/Softmax');
      assert.ok(softmax);
      assert.ok(Math.abs(softmax.data.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'softmax sums to 1');
      const maps = engine.layerData(result.resultKey, 'conv1/Relu', 4);
      assert.ok(maps);
    } finally {
      engine.dispose();
    }
  });
});

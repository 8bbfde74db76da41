import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { FeatureMapEngine } from '../../src/engine/engine';
import { decodeImage } from '../../src/engine/image';
import { type Activation, type LoadedModel, channelsLast } from '../../src/engine/model';
import { float32ToFloat16 } from '../../src/engine/models/onnx';
import { loadTfjsGraphModel } from '../../src/engine/models/tfjsGraph';
import { graphModelToOnnx, graphModelToOnnxRuntime } from '../../src/engine/models/tfjsGraphToOnnx';
import { preprocess } from '../../src/engine/preprocess';
import { type Tf, getTf } from '../../src/engine/tf';
import { type NodeDef, type Weight, random } from './graphDefs';
import { DIST, REPO, image, tempDir } from './fixtures';
import { relErr } from './npy';

/** ONNX Runtime against TensorFlow.js, per layer: max|ort − tfjs| / max|tfjs| (issue 11). */
const TOLERANCE = 1e-4;

// ---------------------------------------------------------------- nsfwjs' GraphModel

/**
 * nsfwjs@4.4.0 (MIT, a dependency) ships MobileNetV2 "mid" as a TF.js GraphModel: model.json
 * from the TF.js converter 1.7.4 with uint8-quantized weights in two shards, each wrapped in a
 * JS module (a JSON object, base64 strings). Written out as model.json and .bin shards into a
 * temporary folder, never into the repository (5.7 MB of modules).
 */
function nsfwjsGraphModel(): string {
  const load = createRequire(path.join(REPO, 'package.json'));
  // nsfwjs' "exports" hides its files: its folder from its main entry.
  let root = path.dirname(load.resolve('nsfwjs'));
  while (path.basename(root) !== 'nsfwjs') {
    if (path.dirname(root) === root) throw new Error('nsfwjs is not installed: run npm ci');
    root = path.dirname(root);
  }
  const source = path.join(root, 'dist', 'models', 'mobilenet_v2_mid');
  const modelJs = path.join(source, 'model.min.js');
  if (!fs.existsSync(modelJs)) throw new Error(`${modelJs} is missing: is nsfwjs@4.4.0 installed?`);
  const model = load(modelJs) as {
    format: string;
    modelTopology: unknown;
    weightsManifest: { paths: string[]; weights: unknown[] }[];
  };
  assert.equal(model.format, 'graph-model');
  const dir = path.join(tempDir(), 'nsfwjs_mobilenet_v2_mid');
  fs.mkdirSync(dir);
  const weightsManifest = model.weightsManifest.map((group) => ({
    ...group,
    paths: group.paths.map((shard) => {
      const base64 = load(path.join(source, `${shard}.min.js`)) as unknown;
      assert.equal(typeof base64, 'string', `${shard}.min.js holds a base64 string`);
      fs.writeFileSync(path.join(dir, `${shard}.bin`), Buffer.from(base64 as string, 'base64'));
      return `${shard}.bin`;
    }),
  }));
  const file = path.join(dir, 'model.json');
  fs.writeFileSync(file, JSON.stringify({ ...model, weightsManifest }));
  return file;
}

// ---------------------------------------------------------------- graphs written here

// GraphDef attributes in protobuf's JSON: strings base64, integers decimal strings.
const base64 = (s: string) => Buffer.from(s).toString('base64');
const str = (s: string) => ({ s: base64(s) });
const list = (...values: number[]) => ({ list: { i: values.map(String) } });
const strings = (...values: string[]) => ({ list: { s: values.map(base64) } });
const FLOAT = { type: 'DT_FLOAT' };
const NHWC = str('NHWC');
const dims = (shape: number[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });

/** A GraphModel in the making: a Placeholder "input", constants and ops. */
class Graph {
  readonly nodes: NodeDef[] = [];
  readonly weights: Weight[] = [];
  private readonly next: () => number;

  constructor(
    readonly size: number,
    seed: number,
  ) {
    this.next = random(seed);
    this.nodes.push({
      name: 'input',
      op: 'Placeholder',
      attr: { dtype: FLOAT, shape: { shape: dims([-1, size, size, 3]) } },
    });
  }

  /** A float constant: fixed-seed values in [offset − scale, offset + scale], or the given ones. */
  floats(name: string, shape: number[], scale = 0.5, offset = 0): string {
    const count = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: count }, () => offset + (this.next() * 2 - 1) * scale);
    return this.constant({ name, shape, dtype: 'float32', values });
  }

  ints(name: string, values: number[], shape = [values.length]): string {
    return this.constant({ name, shape, dtype: 'int32', values: Int32Array.from(values) });
  }

  private constant(weight: Weight): string {
    const dtype = weight.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT';
    this.weights.push(weight);
    this.nodes.push({
      name: weight.name,
      op: 'Const',
      attr: { value: { tensor: { dtype, tensorShape: dims(weight.shape) } }, dtype: { type: dtype } },
    });
    return weight.name;
  }

  op(name: string, op: string, input: string[], attr: Record<string, unknown> = {}): string {
    this.nodes.push({ name, op, input, attr: { T: FLOAT, ...attr } });
    return name;
  }

  conv(name: string, x: string, filter: number[], options: ConvOptions = {}): string {
    const kernel = this.floats(`${name}/filter`, filter, 0.6);
    const depthwise = options.depthwise === true;
    const fused = options.fused ?? [];
    const args = [];
    if (fused[0] === 'BiasAdd')
      args.push(this.floats(`${name}/bias`, [depthwise ? filter[2] * filter[3] : filter[3]], 0.3));
    if (fused.includes('Prelu'))
      args.push(this.floats(`${name}/alpha`, [depthwise ? filter[2] * filter[3] : filter[3]], 0.3));
    const op =
      fused.length > 0
        ? depthwise
          ? 'FusedDepthwiseConv2dNative'
          : '_FusedConv2D'
        : depthwise
          ? 'DepthwiseConv2dNative'
          : 'Conv2D';
    const stride = options.strides ?? 1;
    const dilation = options.dilations ?? 1;
    return this.op(name, op, [x, kernel, ...args], {
      strides: list(1, stride, stride, 1),
      dilations: list(1, dilation, dilation, 1),
      padding: str(options.padding ?? 'SAME'),
      explicit_paddings: list(...(options.explicit ?? [])),
      data_format: NHWC,
      ...(fused.length > 0 ? { fused_ops: strings(...fused), num_args: { i: String(args.length) } } : {}),
      ...(options.alpha !== undefined ? { leakyrelu_alpha: { f: options.alpha } } : {}),
    });
  }

  pool(name: string, op: 'MaxPool' | 'AvgPool', x: string, size: number, stride: number, padding: string): string {
    return this.op(name, op, [x], {
      ksize: list(1, size, size, 1),
      strides: list(1, stride, stride, 1),
      padding: str(padding),
      data_format: NHWC,
    });
  }

  /**
   * model.json (format graph-model) and its one weight shard, in a new folder; `float16`: float
   * weights quantized to float16, as the TF.js converter's --quantize_float16 writes them.
   */
  write(folder: string, { float16 = false } = {}): string {
    const dir = path.join(tempDir(), folder);
    fs.mkdirSync(dir);
    const bytes = (w: Weight) => {
      const values = float16 && w.values instanceof Float32Array ? float32ToFloat16(w.values) : w.values;
      return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    };
    const shard = Buffer.concat(this.weights.map(bytes));
    const spec = ({ name, shape, dtype }: Weight) => ({
      name,
      shape,
      dtype,
      ...(float16 && dtype === 'float32' ? { quantization: { dtype: 'float16' } } : {}),
    });
    fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), shard);
    const modelJson = {
      format: 'graph-model',
      generatedBy: 'feature-maps test',
      convertedBy: 'hand',
      modelTopology: { node: this.nodes, library: {}, versions: { producer: 1 } },
      weightsManifest: [
        {
          paths: ['group1-shard1of1.bin'],
          weights: this.weights.map(spec),
        },
      ],
    };
    const file = path.join(dir, 'model.json');
    fs.writeFileSync(file, JSON.stringify(modelJson));
    return file;
  }
}

interface ConvOptions {
  depthwise?: boolean;
  strides?: number;
  dilations?: number;
  padding?: 'SAME' | 'VALID' | 'EXPLICIT';
  explicit?: number[];
  fused?: string[];
  alpha?: number;
}

const SIZE = 17; // odd: SAME pads one more pixel after than before at stride 2

/** Convolutions as converted CNNs have them: plain, biased, batch-normalised, depthwise, dilated, fused with each activation. */
function convolutions(): Graph {
  const g = new Graph(SIZE, 11);
  const scaled = g.op('pre/Mul', 'Mul', ['input', g.floats('pre/two', [], 0, 2)]);
  const centred = g.op('pre/Sub', 'Sub', [scaled, g.floats('pre/one', [3], 0.1, 1)]);
  const c1 = g.conv('c1/Conv2D', centred, [3, 3, 3, 8], { strides: 2 });
  const b1 = g.op('c1/BiasAdd', 'BiasAdd', [c1, g.floats('c1/bias', [8], 0.3)], { data_format: NHWC });
  const bn = g.op(
    'bn/FusedBatchNormV3',
    'FusedBatchNormV3',
    [
      b1,
      g.floats('bn/scale', [8], 0.5, 1),
      g.floats('bn/offset', [8]),
      g.floats('bn/mean', [8]),
      g.floats('bn/variance', [8], 0.4, 1),
    ],
    { epsilon: { f: 0.001 }, data_format: NHWC, is_training: { b: false } },
  );
  const r6 = g.op('r6/Relu6', 'Relu6', [bn]);
  const dw = g.conv('dw/depthwise', r6, [3, 3, 8, 2], { depthwise: true, dilations: 2 });
  const leaky = g.conv('pw/LeakyRelu', dw, [1, 1, 16, 8], { fused: ['BiasAdd', 'LeakyRelu'], alpha: 0.1 });
  const elu = g.conv('fdw/Elu', leaky, [5, 5, 8, 1], {
    depthwise: true,
    strides: 2,
    padding: 'VALID',
    fused: ['BiasAdd', 'Elu'],
  });
  const sigmoid = g.conv('explicit/Sigmoid', elu, [3, 3, 8, 6], {
    padding: 'EXPLICIT',
    explicit: [0, 0, 1, 2, 2, 1, 0, 0],
    fused: ['BiasAdd', 'Sigmoid'],
  });
  const prelu = g.conv('prelu/Prelu', sigmoid, [3, 3, 6, 6], { fused: ['BiasAdd', 'Prelu'] });
  const relu = g.conv('fdw/Relu6', prelu, [3, 3, 6, 1], { depthwise: true, fused: ['BiasAdd', 'Relu6'] });
  g.conv('head/Relu', relu, [1, 1, 6, 4], { fused: ['BiasAdd', 'Relu'] });
  return g;
}

/** Residual, squeeze-excitation and pooling blocks, elementwise arithmetic, padding, concatenation, activations. */
function blocks(): Graph {
  const g = new Graph(SIZE, 22);
  const stem = g.conv('stem/Relu', 'input', [3, 3, 3, 8], { fused: ['BiasAdd', 'Relu'] });
  const max = g.pool('pool/MaxPool', 'MaxPool', stem, 3, 2, 'SAME');
  const avg = g.pool('pool/AvgPool', 'AvgPool', max, 3, 1, 'SAME');
  // Squeeze-excitation: the mean over H, W (kept), two 1×1 convolutions, a sigmoid gate.
  const squeezed = g.op('se/Mean', 'Mean', [avg, g.ints('se/axes', [1, 2])], { keep_dims: { b: true } });
  const reduced = g.conv('se/Relu', squeezed, [1, 1, 8, 4], { fused: ['BiasAdd', 'Relu'] });
  const expanded = g.conv('se/Conv2D', reduced, [1, 1, 4, 8]);
  const gate = g.op('se/Sigmoid', 'Sigmoid', [expanded]);
  const excited = g.op('se/Mul', 'Mul', [avg, gate]);
  const residual = g.op('res/AddV2', 'AddV2', [excited, max]);
  const sum = g.op('res/AddN', 'AddN', [residual, avg, excited], { N: { i: '3' } });
  const channelScale = g.op('arith/Mul', 'Mul', [sum, g.floats('arith/scale', [8], 0.5, 1)]);
  const divided = g.op('arith/RealDiv', 'RealDiv', [channelScale, g.floats('arith/divisor', [1, 1, 1, 8], 0.4, 1.5)]);
  const floor = g.op('arith/Maximum', 'Maximum', [divided, g.floats('arith/low', [], 0, -0.5)]);
  const ceiling = g.op('arith/Minimum', 'Minimum', [floor, g.floats('arith/high', [], 0, 2.5)]);
  const squared = g.op('arith/SquaredDifference', 'SquaredDifference', [ceiling, max]);
  const rsqrt = g.op('arith/Rsqrt', 'Rsqrt', [
    g.op('arith/AddV2_1', 'AddV2', [squared, g.floats('arith/eps', [], 0, 1)]),
  ]);
  const prelu = g.op('act/Prelu', 'Prelu', [
    g.op('act/Sub', 'Sub', [rsqrt, ceiling]),
    g.floats('act/alpha', [8], 0.3, 0.2),
  ]);
  const elu = g.op('act/Elu', 'Elu', [prelu]);
  const selu = g.op('act/Selu', 'Selu', [elu]);
  const tanh = g.op('act/Tanh', 'Tanh', [selu]);
  const softplus = g.op('act/Softplus', 'Softplus', [prelu]);
  const leaky = g.op('act/LeakyRelu', 'LeakyRelu', [softplus], { alpha: { f: 0.3 } });
  const padded = g.op('pad/Pad', 'Pad', [leaky, g.ints('pad/paddings', [0, 0, 1, 2, 2, 1, 0, 0], [4, 2])], {
    Tpaddings: { type: 'DT_INT32' },
  });
  const paddedV2 = g.op('pad/PadV2', 'PadV2', [
    tanh,
    g.ints('pad/paddings2', [0, 0, 2, 1, 1, 2, 0, 0], [4, 2]),
    g.floats('pad/value', [], 0, -1),
  ]);
  const reflect = g.op('pad/MirrorPad', 'MirrorPad', [padded, g.ints('pad/mirror', [0, 0, 1, 1, 2, 0, 0, 0], [4, 2])], {
    mode: str('REFLECT'),
  });
  const symmetric = g.op(
    'pad/MirrorPad_1',
    'MirrorPad',
    [paddedV2, g.ints('pad/mirror1', [0, 0, 1, 1, 1, 1, 0, 0], [4, 2])],
    {
      mode: str('SYMMETRIC'),
    },
  );
  const joined = g.op('cat/concat', 'ConcatV2', [reflect, symmetric, g.ints('cat/axis', [-1], [])], {
    N: { i: '2' },
    Tidx: { type: 'DT_INT32' },
  });
  g.op('cat/Relu', 'Relu', [joined]);
  return g;
}

/** Resizes in each of TensorFlow's coordinate modes, transposed convolutions and depth-to-space. */
function upsampling(): Graph {
  const g = new Graph(SIZE, 33);
  const x = g.conv('stem/Relu', 'input', [3, 3, 3, 8], { strides: 2, fused: ['BiasAdd', 'Relu'] });
  const modes = { asymmetric: {}, align: { align_corners: { b: true } }, half: { half_pixel_centers: { b: true } } };
  for (const [mode, attr] of Object.entries(modes)) {
    for (const [size, label] of [
      [[23, 14], 'up'],
      [[5, 7], 'down'],
    ] as const) {
      const sizeName = g.ints(`resize/${mode}_${label}/size`, [...size]);
      g.op(`resize/${mode}_${label}/ResizeBilinear`, 'ResizeBilinear', [x, sizeName], attr);
      g.op(`resize/${mode}_${label}/ResizeNearestNeighbor`, 'ResizeNearestNeighbor', [x, sizeName], attr);
    }
  }
  const transposed = (
    name: string,
    input: string,
    outSize: number,
    stride: number,
    padding: string,
    channels: number,
  ) =>
    g.op(
      name,
      'Conv2DBackpropInput',
      [
        g.ints(`${name}/output_shape`, [1, outSize, outSize, channels]),
        g.floats(`${name}/filter`, [3, 3, channels, 8], 0.5),
        input,
      ],
      {
        strides: list(1, stride, stride, 1),
        padding: str(padding),
        data_format: NHWC,
        dilations: list(1, 1, 1, 1),
        explicit_paddings: list(),
      },
    );
  // 9×9 maps: SAME at stride 2 gives 17 or 18 (odd and even), VALID 19 or 20.
  transposed('deconv/same17', x, 17, 2, 'SAME', 6);
  transposed('deconv/same18', x, 18, 2, 'SAME', 5);
  transposed('deconv/valid19', x, 19, 2, 'VALID', 4);
  transposed('deconv/valid20', x, 20, 2, 'VALID', 4);
  const d2s = g.op('shuffle/DepthToSpace', 'DepthToSpace', [x], { block_size: { i: '2' }, data_format: NHWC });
  g.op('shuffle/Relu', 'Relu', [d2s]);
  return g;
}

/** A classifier head: reductions, slices, reshapes, squeezes, matrix products, softmax. */
function head(): Graph {
  const g = new Graph(SIZE, 44);
  const x = g.conv('stem/Relu', 'input', [3, 3, 3, 8], { strides: 2, fused: ['BiasAdd', 'Relu'] });
  const lrn = g.op('norm/LRN', 'LRN', [x], {
    depth_radius: { i: '2' },
    bias: { f: 1 },
    alpha: { f: 0.2 },
    beta: { f: 0.75 },
  });
  const sliced = g.op(
    'slice/StridedSlice',
    'StridedSlice',
    [
      lrn,
      g.ints('slice/begin', [0, 1, 0, 2]),
      g.ints('slice/end', [0, 8, 0, 7]),
      g.ints('slice/strides', [1, 2, 1, 1]),
    ],
    {
      Index: { type: 'DT_INT32' },
      begin_mask: { i: '5' },
      end_mask: { i: '5' },
      ellipsis_mask: { i: '0' },
      new_axis_mask: { i: '0' },
      shrink_axis_mask: { i: '0' },
    },
  );
  const relu = g.op('slice/Relu', 'Relu', [sliced]);
  const maxed = g.op('gmp/Max', 'Max', [relu, g.ints('gmp/axes', [1, 2])], { keep_dims: { b: true } });
  const squeezed = g.op('gmp/Squeeze', 'Squeeze', [maxed], { squeeze_dims: list(1, 2) });
  const flat = g.op('flat/Reshape', 'Reshape', [lrn, g.ints('flat/shape', [-1, 9 * 9 * 8])]);
  const dense = g.op('flat/MatMul', 'MatMul', [flat, g.floats('flat/kernel', [9 * 9 * 8, 6], 0.05)], {
    transpose_a: { b: false },
    transpose_b: { b: false },
  });
  const mean = g.op('gap/Mean', 'Mean', [x, g.ints('gap/axes', [1, 2])], { keep_dims: { b: false } });
  const joined = g.op('head/concat', 'ConcatV2', [mean, dense, squeezed, g.ints('head/axis', [1], [])], {
    N: { i: '3' },
  });
  const hidden = g.op(
    'head/Relu',
    '_FusedMatMul',
    [joined, g.floats('head/kernel', [19, 12]), g.floats('head/bias', [12], 0.2)],
    {
      transpose_a: { b: false },
      transpose_b: { b: false },
      fused_ops: strings('BiasAdd', 'Relu'),
      num_args: { i: '1' },
    },
  );
  const logits = g.op('head/MatMul', 'MatMul', [hidden, g.floats('head/kernel2', [5, 12])], {
    transpose_a: { b: false },
    transpose_b: { b: true },
  });
  g.op('head/Softmax', 'Softmax', [logits]);
  return g;
}

/** Shape arithmetic (a flatten that reads the batch from Shape), transposes, slices, expand dims, unary math. */
function reshaping(): Graph {
  const g = new Graph(SIZE, 66);
  const x = g.conv('stem/Relu', 'input', [3, 3, 3, 8], { strides: 2, fused: ['BiasAdd', 'Relu'] });
  const transposed = g.op('swap/transpose', 'Transpose', [x, g.ints('swap/perm', [0, 2, 1, 3])], {
    Tperm: { type: 'DT_INT32' },
  });
  const swapped = g.conv('swap/Conv2D', transposed, [3, 1, 8, 4]);
  g.op('swap/Relu', 'Relu', [swapped]);
  // A per-channel gate made from a vector: Mean → ExpandDims → Reshape back to a map.
  const mean = g.op('gate/Mean', 'Mean', [x, g.ints('gate/axes', [1, 2])], { keep_dims: { b: false } });
  const expanded = g.op('gate/ExpandDims', 'ExpandDims', [mean, g.ints('gate/axis', [1], [])], {
    Tdim: { type: 'DT_INT32' },
  });
  const map = g.op('gate/Reshape', 'Reshape', [expanded, g.ints('gate/shape', [1, 1, 1, 8])]);
  g.op('gate/Mul', 'Mul', [x, g.op('gate/Sigmoid', 'Sigmoid', [map])]);
  const cut = g.op('cut/Slice', 'Slice', [x, g.ints('cut/begin', [0, 2, 1, 0]), g.ints('cut/size', [-1, 5, -1, 4])], {
    Index: { type: 'DT_INT32' },
  });
  g.op('cut/Relu', 'Relu', [cut]);
  const clipped = g.op('math/ClipByValue', 'ClipByValue', [
    x,
    g.floats('math/low', [], 0, 0.1),
    g.floats('math/high', [], 0, 0.6),
  ]);
  const square = g.op('math/Square', 'Square', [g.op('math/Neg', 'Neg', [x])]);
  const sum = g.op('math/AddV2', 'AddV2', [clipped, square]);
  const root = g.op('math/Sqrt', 'Sqrt', [g.op('math/Abs', 'Abs', [sum])]);
  const log = g.op('math/Log', 'Log', [g.op('math/Exp', 'Exp', [root])]);
  const recip = g.op('math/Reciprocal', 'Reciprocal', [
    g.op('math/AddV2_1', 'AddV2', [log, g.floats('math/one', [], 0, 1)]),
  ]);
  // Floor and Round are left out: a value at a step could land either side on another CPU.
  const erf = g.op('math/Erf', 'Erf', [g.op('math/Mul_1', 'Mul', [recip, g.floats('math/two', [], 0, 2)])]);
  const cast = g.op('math/Cast', 'Cast', [erf], { SrcT: FLOAT, DstT: FLOAT, Truncate: { b: false } });
  g.op('math/Tanh', 'Tanh', [cast]);
  // Keras' Flatten with an unknown batch: Shape → StridedSlice (the batch) → Pack [batch, -1] → Reshape.
  const shape = g.op('flat/Shape', 'Shape', [x], { out_type: { type: 'DT_INT32' } });
  const batch = g.op(
    'flat/strided_slice',
    'StridedSlice',
    [shape, g.ints('flat/begin', [0]), g.ints('flat/end', [1]), g.ints('flat/strides', [1])],
    { T: { type: 'DT_INT32' }, Index: { type: 'DT_INT32' }, shrink_axis_mask: { i: '1' } },
  );
  const target = g.op('flat/stack', 'Pack', [batch, g.ints('flat/rest', [-1], [])], {
    T: { type: 'DT_INT32' },
    N: { i: '2' },
    axis: { i: '0' },
  });
  const flat = g.op('flat/Reshape', 'Reshape', [x, target], { Tshape: { type: 'DT_INT32' } });
  g.op('flat/MatMul', 'MatMul', [flat, g.floats('flat/kernel', [9 * 9 * 8, 5], 0.05)], {
    transpose_a: { b: false },
    transpose_b: { b: false },
  });
  return g;
}

// ---------------------------------------------------------------- comparing

function load(tf: Tf, modelJsonPath: string): Promise<LoadedModel> {
  return loadTfjsGraphModel(tf, {
    modelJsonPath,
    key: `test:${modelJsonPath}`,
    summary: { name: path.basename(path.dirname(modelJsonPath)), description: 'test' },
    preprocessing: 'raw01',
  });
}

/** The photo as the model takes it: H×W RGB in [0, 1]. */
async function photo(size: { height: number; width: number }): Promise<Float32Array> {
  const decoded = await decodeImage(image('chelsea.png'), size);
  return preprocess(decoded.rgb, 'raw01');
}

/**
 * The model moved to onnxruntime, run on `input` beside TensorFlow.js: same layers (names, ops,
 * shapes, order), every layer within TOLERANCE of its largest value. The worst layer and the
 * ORT model (the caller disposes it; the tfjs one is disposed here).
 */
async function matchesTfjs(
  tfjs: LoadedModel,
  input: Float32Array,
): Promise<{ native: LoadedModel; worst: { layer: string; error: number }; tfjsOut: Map<string, Activation> }> {
  try {
    const native = await graphModelToOnnxRuntime(tfjs);
    if ('unsupported' in native) assert.fail(`${tfjs.summary.name} does not convert: ${native.unsupported}`);
    assert.equal(native.backend, 'onnxruntime');
    assert.equal(native.graphModel, undefined);
    const tfjsOut = await tfjs.run(input);
    // After its first pass tfjs knows every shape, including those its rules could not tell.
    assert.deepEqual(native.layers, tfjs.layers, 'the same layer list');
    const ours = await native.run(input);
    assert.deepEqual([...ours.keys()], [...tfjsOut.keys()], 'the same layers in the same order');
    let worst = { layer: '', error: 0 };
    for (const layer of tfjs.layers) {
      const [a, b] = [ours.get(layer.name)!, tfjsOut.get(layer.name)!];
      assert.deepEqual(a.shape, b.shape, `${layer.name} shape`);
      assert.deepEqual(a.shape, layer.shape, `${layer.name} shape as listed`);
      const error = relErr(channelsLast(a), channelsLast(b));
      assert.ok(
        error <= TOLERANCE,
        `${layer.name} (${layer.op}): ORT differs from tfjs by ${error} of its largest value`,
      );
      if (error > worst.error) worst = { layer: layer.name, error };
    }
    return { native, worst, tfjsOut };
  } finally {
    tfjs.dispose();
  }
}

describe('TF.js GraphModels on onnxruntime (TF ops converted to ONNX in memory)', function () {
  this.timeout(300_000);
  let tf: Tf;
  before(async () => {
    tf = (await getTf(DIST)).tf;
  });

  it("nsfwjs' MobileNetV2 GraphModel (uint8-quantized): every node as tfjs has it, on chelsea.png", async () => {
    const file = nsfwjsGraphModel();
    const startedTfjs = performance.now();
    const tfjs = await load(tf, file);
    const input = await photo(tfjs.inputSize);
    await tfjs.run(input);
    const tfjsFirst = performance.now() - startedTfjs;
    const layers = tfjs.layers.map((l) => ({ ...l }));
    assert.equal(tfjs.backend, 'tfjs-wasm');
    assert.equal(layers.length, 67, 'the nodes tfjsGraph.ts taps: 35 convolutions, 17 depthwise, 10 adds, …');
    assert.ok(
      layers.filter((l) => l.op === 'FusedDepthwiseConv2dNative').length === 17 &&
        layers.some((l) => l.op === '_FusedMatMul'),
      'fused depthwise convolutions and the fused dense layer are tapped',
    );

    // Channels first from the first convolution on: the only transpose is the input's.
    const probe = await load(tf, file);
    try {
      const conversion = graphModelToOnnx(probe.graphModel!, probe.inputSize, probe.layers);
      assert.ok('bytes' in conversion, 'unsupported' in conversion ? conversion.unsupported : '');
      const ops = onnx.ModelProto.decode(conversion.bytes).graph!.node!.map((n) => n.opType);
      assert.equal(ops.filter((op) => op === 'Transpose').length, 1, 'one transpose');
      assert.deepEqual(
        [...new Set(conversion.outputs.map((o) => o.layout))],
        ['nhwc', 'nchw', 'vector'],
        'the scaled input channels last, maps channels first, the head vectors',
      );
    } finally {
      probe.dispose();
    }

    const started = performance.now();
    const reloaded = await load(tf, file);
    const { native, worst, tfjsOut } = await matchesTfjs(reloaded, input);
    try {
      await native.run(input);
      const ortFirst = performance.now() - started;
      // Steady state: the median of three passes on each.
      const tfjsAgain = await load(tf, file);
      const median = async (model: LoadedModel) => {
        const times: number[] = [];
        for (let i = 0; i < 3; i++) {
          const t0 = performance.now();
          await model.run(input);
          times.push(performance.now() - t0);
        }
        return times.sort((a, b) => a - b)[1];
      };
      let tfjsPass: number;
      try {
        tfjsPass = await median(tfjsAgain);
      } finally {
        tfjsAgain.dispose();
      }
      const ortPass = await median(native);
      // The classifier still says what it said on tfjs: the same top class.
      const top = (out: Map<string, Activation>) => {
        const softmax = out.get('StatefulPartitionedCall/sequential/prediction/Softmax')!.data;
        return softmax.indexOf(Math.max(...softmax));
      };
      assert.equal(top(await native.run(input)), top(tfjsOut));
      console.log(
        `      ${layers.length} layers, worst ${worst.layer.split('/').slice(-3).join('/')} ${worst.error.toExponential(1)}; ` +
          `load + first pass: tfjs-wasm ${tfjsFirst.toFixed(0)} ms, onnxruntime ${ortFirst.toFixed(0)} ms (tfjs load, conversion, session, and a trial pass only where ORT cannot infer a shape); ` +
          `pass: tfjs-wasm ${tfjsPass.toFixed(0)} ms, onnxruntime ${ortPass.toFixed(0)} ms`,
      );
    } finally {
      native.dispose();
    }
  });

  for (const [label, build] of [
    [
      'convolutions: plain, biased, batch-normalised, depthwise, dilated, explicit pads, every fused activation',
      convolutions,
    ],
    [
      'blocks: pooling, squeeze-excitation, residual adds, arithmetic, activations, pads, mirror pads, concatenation',
      blocks,
    ],
    [
      'upsampling: bilinear and nearest resizes in each coordinate mode, transposed convolutions, depth-to-space',
      upsampling,
    ],
    ['a head: LRN, strided slice, reductions, squeeze, reshape, concatenation, matrix products, softmax', head],
    ['reshaping: shape arithmetic, transposes, slices, expand dims, unary math', reshaping],
  ] as const) {
    it(`${label}: every node as tfjs has it`, async () => {
      const graph = build();
      const tfjs = await load(tf, graph.write(build.name));
      const ops = new Set(graph.nodes.map((n) => n.op));
      const input = await photo(tfjs.inputSize);
      const { native, worst } = await matchesTfjs(tfjs, input);
      native.dispose();
      console.log(
        `      ${native.layers.length} layers, ${ops.size} ops; worst ${worst.layer} ${worst.error.toExponential(1)}`,
      );
    });
  }

  it('float16-quantized weights: read as tfjs dequantizes them', async () => {
    const graph = convolutions();
    const tfjs = await load(tf, graph.write('float16', { float16: true }));
    const { native, worst } = await matchesTfjs(tfjs, await photo(tfjs.inputSize));
    native.dispose();
    console.log(`      worst ${worst.layer} ${worst.error.toExponential(1)}`);
  });

  it('the engine runs a GraphModel on onnxruntime and says so; an op with no ONNX form stays on tfjs, the log saying which', async () => {
    const lines: string[] = [];
    const engine = new FeatureMapEngine({ assetsDir: DIST, log: (line) => lines.push(line) });
    try {
      const good = await engine.extract({
        imagePath: image('chelsea.png'),
        model: { kind: 'file', path: convolutions().write('engine_convolutions') },
        layerPatterns: [],
      });
      assert.equal(good.model.backend, 'onnxruntime');
      assert.match(lines.join('\n'), /engine_convolutions runs on onnxruntime \(converted in \d+ ms\)/);

      // Cos runs on tfjs; nothing here writes it as ONNX.
      const graph = convolutions();
      graph.op('wave', 'Cos', ['r6/Relu6']);
      graph.nodes.find((n) => n.name === 'dw/depthwise')!.input![0] = 'wave';
      const fallback = await engine.extract({
        imagePath: image('chelsea.png'),
        model: { kind: 'file', path: graph.write('engine_cos') },
        layerPatterns: [],
      });
      assert.equal(fallback.model.backend, 'tfjs-wasm');
      assert.ok(
        fallback.layers.some((l) => l.name === 'head/Relu'),
        'every layer is still shown',
      );
      const line = lines.find((l) => l.startsWith('engine_cos'));
      assert.equal(
        line,
        'engine_cos runs on tfjs-wasm, not onnxruntime: op "Cos" (node "wave"): it has no ONNX conversion',
      );
    } finally {
      engine.dispose();
    }
  });

  it('sizes the file declares are checked before anything is made: a resize to 100000×100000 is refused', async () => {
    const g = new Graph(SIZE, 55);
    const x = g.conv('stem/Relu', 'input', [3, 3, 3, 4], { fused: ['BiasAdd', 'Relu'] });
    g.op('huge/ResizeBilinear', 'ResizeBilinear', [x, g.ints('huge/size', [100_000, 100_000])]);
    const tfjs = await load(tf, g.write('huge'));
    try {
      const conversion = graphModelToOnnx(tfjs.graphModel!, tfjs.inputSize, tfjs.layers);
      assert.ok('unsupported' in conversion);
      assert.equal(
        conversion.unsupported,
        'op "ResizeBilinear" (node "huge/ResizeBilinear"): it makes a tensor of 40000000000 values [1,100000,100000,4]',
      );
    } finally {
      tfjs.dispose();
    }
  });
});

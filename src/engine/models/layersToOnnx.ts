// Turns a TensorFlow.js Layers model (a TF.js LayersModel, a Keras file, or a catalogue model
// built in code) into an ONNX model in memory with the same weights, so that onnxruntime-node
// runs it on every core instead of tfjs' single-threaded wasm backend (VGG16, every layer at
// 224×224 on 2 cores: 190 ms instead of 1,040 ms).
// Anything this file does not know stays on TensorFlow.js: see `toOnnxRuntime`.
import { onnx } from 'onnx-proto';
import type * as tfl from '@tensorflow/tfjs-layers';
import { type PassCosts, estimatePass } from '../budget';
import { errorText } from '../errors';
import { learnShapes, type LayerMeta } from '../layers';
import type { LoadedModel } from '../model';
import { type OnnxGraphSession, openOnnxGraph } from './onnx';

/** A layer's output: a 1×C×H×W map (as ONNX computes it), a 1×H×W×C map (as Keras has it) or a 1×N vector. */
export type OutputLayout = 'nchw' | 'nhwc' | 'vector';

export interface ConvertedOutput {
  /** The Keras layer name. */
  layer: string;
  /** Its class, e.g. Conv2D. */
  op: string;
  /** The graph output with the layer's output: named as the layer. */
  tensor: string;
  layout: OutputLayout;
}

export interface ConvertedModel {
  /** A serialised ONNX ModelProto (opset 17). */
  bytes: Uint8Array;
  /** The graph input: N×H×W×C float32 with N = 1, as the Keras model takes it. */
  input: string;
  /** Every layer but the input, in `model.layers` order (the layers `wrapLayersModel` taps). */
  outputs: ConvertedOutput[];
}

const OPSET = 17;
const IR_VERSION = 8; // the IR version of opset 17 (ONNX 1.12)
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const ATTR = onnx.AttributeProto.AttributeType;

/**
 * The ONNX form of `model` at the given input size, or why it has none. Supported: one image
 * input, every layer used once (no shared layers), channels-last data, and the layer classes
 * in LAYERS below with the activations in ACTIVATIONS.
 */
export function layersModelToOnnx(
  model: tfl.LayersModel,
  inputSize: { height: number; width: number; channels: number },
): ConvertedModel | { unsupported: string } {
  try {
    return convert(model, inputSize);
  } catch (error) {
    if (error instanceof Unsupported) return { unsupported: error.message };
    throw error;
  }
}

class Unsupported extends Error {}

function unsupported(why: string): never {
  throw new Unsupported(why);
}

/** A Keras tensor in the ONNX graph: its name, whether it is held channels first, its Keras shape without batch. */
interface Value {
  name: string;
  nchw: boolean;
  shape: number[];
}

function convert(
  model: tfl.LayersModel,
  { height, width, channels }: { height: number; width: number; channels: number },
): ConvertedModel {
  if (model.inputs.length !== 1) unsupported(`the model has ${model.inputs.length} inputs`);
  const graph = new GraphBuilder(model.layers.map((layer) => layer.name));
  const input: Value = { name: graph.fresh('image'), nchw: false, shape: [height, width, channels] };
  const values = new Map<number, Value>([[model.inputs[0].id, input]]);
  const outputs: ConvertedOutput[] = [];

  for (const layer of model.layers) {
    const op = layer.getClassName();
    const where = `layer "${layer.name}" (${op})`;
    if (layer.inboundNodes.length !== 1) unsupported(`${where} is used ${layer.inboundNodes.length} times`);
    if (op === 'InputLayer') {
      if (Array.isArray(layer.output) || !values.has(layer.output.id)) unsupported(`${where} is a second input`);
      continue;
    }
    const convertLayer = LAYERS[op];
    if (!convertLayer) unsupported(`${where} has no ONNX conversion`);
    const inputs = layer.inboundNodes[0].inputTensors.map(
      (t) => values.get(t.id) ?? unsupported(`${where}: unknown input`),
    );
    const output = layer.output;
    if (Array.isArray(output)) unsupported(`${where} has several outputs`);
    const config = layer.getConfig();
    if (config.dataFormat !== undefined && config.dataFormat !== 'channelsLast') {
      unsupported(`${where} uses data format ${String(config.dataFormat)}`);
    }
    const outShape = outputShape(layer, inputs, where);
    try {
      const value = convertLayer({ layer, config, inputs, out: layer.name, outShape, graph });
      // Maps stay channels first, inside the graph and out of it: a transpose of every layer's
      // output back to Keras' order would cost more than MobileNetV2's whole fused pass.
      values.set(output.id, value);
      const layout = value.shape.length !== 3 ? 'vector' : value.nchw ? 'nchw' : 'nhwc';
      outputs.push({ layer: layer.name, op, tensor: value.name, layout });
    } catch (error) {
      if (error instanceof Unsupported) unsupported(`${where} ${error.message}`);
      throw error;
    }
  }
  return { bytes: graph.encode(model.name, input, outputs), input: input.name, outputs };
}

/** The Keras output shape without batch, for inputs of `inputs`' shapes; only images (H, W, C) and vectors. */
function outputShape(layer: tfl.layers.Layer, inputs: Value[], where: string): number[] {
  const shapes = inputs.map((v) => [1, ...v.shape]);
  const shape = layer.computeOutputShape(shapes.length === 1 ? shapes[0] : shapes);
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || d <= 0)) {
    unsupported(`${where} has an output shape of ${JSON.stringify(shape)}`);
  }
  const dims = (shape as number[]).slice(1);
  if (dims.length !== 3 && dims.length !== 1) unsupported(`${where} gives a tensor of rank ${dims.length + 1}`);
  return dims;
}

// ---------------------------------------------------------------- the graph

type Attribute = onnx.IAttributeProto;
const int = (name: string, i: number): Attribute => ({ name, type: ATTR.INT, i });
const ints = (name: string, values: number[]): Attribute => ({ name, type: ATTR.INTS, ints: values });
const float = (name: string, f: number): Attribute => ({ name, type: ATTR.FLOAT, f });
const str = (name: string, s: string): Attribute => ({ name, type: ATTR.STRING, s: new TextEncoder().encode(s) });

/** Nodes and weights in the making, with unique tensor names (layer names are reserved for layer outputs). */
class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly names: Set<string>;
  /** A tensor's other layout, made once however many layers need it. */
  private readonly transposed = new Map<string, string>();

  constructor(reserved: string[]) {
    this.names = new Set(reserved);
  }

  /** A new tensor name starting with `base`. */
  fresh(base: string): string {
    let name = base;
    for (let n = 2; this.names.has(name); n++) name = `${base}_${n}`;
    this.names.add(name);
    return name;
  }

  node(op: string, inputs: string[], output: string, attribute: Attribute[] = []): string {
    this.nodes.push({ opType: op, name: output, input: inputs, output: [output], attribute });
    return output;
  }

  /** A float32 weight; `data` is read when the model is encoded, not copied. */
  floats(base: string, dims: number[], data: Float32Array | number[]): string {
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    const name = this.fresh(base);
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: bytesOf(values) });
    return name;
  }

  scalar(base: string, value: number): string {
    return this.floats(base, [], [value]);
  }

  /** A 1-D int64 constant (pads, shapes, axes). */
  int64s(base: string, values: number[]): string {
    const name = this.fresh(base);
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    this.initializers.push({ name, dims: [values.length], dataType: INT64, rawData: bytesOf(data) });
    return name;
  }

  /** `v` channels first (4-D only). */
  nchw(v: Value): string {
    return v.nchw ? v.name : this.transpose(v.name, [0, 3, 1, 2], 'nchw');
  }

  /** `v` in Keras' own layout. */
  keras(v: Value): string {
    return v.nchw ? this.transpose(v.name, [0, 2, 3, 1], 'nhwc') : v.name;
  }

  private transpose(name: string, perm: number[], suffix: string): string {
    const key = `${name}\0${suffix}`;
    let out = this.transposed.get(key);
    if (!out) {
      out = this.node('Transpose', [name], this.fresh(`${name}/${suffix}`), [ints('perm', perm)]);
      this.transposed.set(key, out);
    }
    return out;
  }

  encode(name: string, input: Value, outputs: ConvertedOutput[]): Uint8Array {
    const tensorType = (dims?: number[]): onnx.ITypeProto => ({
      tensorType: { elemType: FLOAT, ...(dims ? { shape: { dim: dims.map((d) => ({ dimValue: d })) } } : {}) },
    });
    return onnx.ModelProto.encode({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: 'feature-maps layersToOnnx',
      graph: {
        name,
        node: this.nodes,
        initializer: this.initializers,
        input: [{ name: input.name, type: tensorType([1, ...input.shape]) }],
        // ORT works out each output's shape; a declared one would only be checked against it.
        output: outputs.map((o) => ({ name: o.tensor, type: tensorType() })),
      },
    }).finish();
  }
}

function bytesOf(array: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

// ---------------------------------------------------------------- layers

interface LayerContext {
  layer: tfl.layers.Layer;
  config: Record<string, unknown>;
  inputs: Value[];
  /** The name the layer's output tensor must have. */
  out: string;
  /** The layer's Keras output shape without batch. */
  outShape: number[];
  graph: GraphBuilder;
}

type LayerConversion = (c: LayerContext) => Value;

/** Layers that pass their input through at inference. */
const identity: LayerConversion = ({ inputs, out, outShape, graph }) => {
  const [x] = one(inputs);
  return { name: graph.node('Identity', [x.name], out), nchw: x.nchw, shape: outShape };
};

const LAYERS: Record<string, LayerConversion> = {
  Conv2D: conv2d,
  DepthwiseConv2D: depthwiseConv2d,
  SeparableConv2D: separableConv2d,
  BatchNormalization: batchNormalization,
  Dense: dense,

  Activation: (c) => elementwise(c, (x, out) => activation(c.graph, activationName(c.config), x, out, axisOf(c, -1))),
  ReLU: (c) =>
    elementwise(c, (x, out) => {
      const max = c.config.maxValue;
      if (max === undefined || max === null) return c.graph.node('Relu', [x], out);
      if (typeof max !== 'number') unsupported(`has max_value ${String(max)}`);
      return clip(c.graph, x, out, 0, max);
    }),
  LeakyReLU: (c) => elementwise(c, (x, out) => c.graph.node('LeakyRelu', [x], out, [float('alpha', num(c, 'alpha'))])),
  ELU: (c) => elementwise(c, (x, out) => c.graph.node('Elu', [x], out, [float('alpha', num(c, 'alpha'))])),
  ThresholdedReLU: (c) =>
    elementwise(c, (x, out) => c.graph.node('ThresholdedRelu', [x], out, [float('alpha', num(c, 'theta'))])),
  PReLU: prelu,
  Softmax: (c) => {
    const axis = Array.isArray(c.config.axis) && c.config.axis.length === 1 ? c.config.axis[0] : c.config.axis;
    if (typeof axis !== 'number') unsupported(`has axis ${JSON.stringify(c.config.axis)}`);
    return elementwise(c, (x, out) => c.graph.node('Softmax', [x], out, [int('axis', axisOf(c, axis))]));
  },
  Rescaling: (c) =>
    elementwise(c, (x, out) => {
      const scale = c.graph.scalar(`${out}/scale`, num(c, 'scale'));
      const offset = c.graph.scalar(`${out}/offset`, num(c, 'offset'));
      const scaled = c.graph.node('Mul', [x, scale], c.graph.fresh(`${out}/scaled`));
      return c.graph.node('Add', [scaled, offset], out);
    }),

  Dropout: identity,
  GaussianNoise: identity,
  GaussianDropout: identity,
  AlphaDropout: identity,

  MaxPooling2D: (c) => pooling(c, 'MaxPool'),
  AveragePooling2D: (c) => pooling(c, 'AveragePool'),
  GlobalAveragePooling2D: (c) => globalPooling(c, 'ReduceMean'),
  GlobalMaxPooling2D: (c) => globalPooling(c, 'ReduceMax'),
  ZeroPadding2D: zeroPadding2d,
  Cropping2D: cropping2d,
  UpSampling2D: upSampling2d,

  Add: (c) => merge(c, 'Sum'),
  Multiply: (c) => merge(c, 'Mul'),
  Average: (c) => merge(c, 'Mean'),
  Maximum: (c) => merge(c, 'Max'),
  Minimum: (c) => merge(c, 'Min'),
  Concatenate: concatenate,

  Flatten: ({ inputs, out, outShape, graph }) => {
    const [x] = one(inputs);
    // Keras flattens H, W, C in that order: back to channels last first.
    return { name: graph.node('Flatten', [graph.keras(x)], out, [int('axis', 1)]), nchw: false, shape: outShape };
  },
  Reshape: (c) => {
    const [x] = one(c.inputs);
    const shape = c.graph.int64s(`${c.out}/shape`, [1, ...c.outShape]);
    return { name: c.graph.node('Reshape', [c.graph.keras(x), shape], c.out), nchw: false, shape: c.outShape };
  },
  Permute: (c) => {
    const [x] = one(c.inputs);
    const dims = c.config.dims;
    if (!Array.isArray(dims) || !dims.every((d) => typeof d === 'number')) unsupported('has unreadable dims');
    const perm = [0, ...(dims as number[])];
    return {
      name: c.graph.node('Transpose', [c.graph.keras(x)], c.out, [ints('perm', perm)]),
      nchw: false,
      shape: c.outShape,
    };
  },
};

function one(inputs: Value[]): [Value] {
  if (inputs.length !== 1) unsupported(`has ${inputs.length} inputs`);
  return [inputs[0]];
}

function num(c: LayerContext, key: string): number {
  const value = c.config[key];
  if (typeof value !== 'number' || !Number.isFinite(value)) unsupported(`has ${key} ${JSON.stringify(value)}`);
  return value;
}

function pair(c: LayerContext, key: string): [number, number] {
  const value = c.config[key];
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number')) {
    return [value[0] as number, value[1] as number];
  }
  return unsupported(`has ${key} ${JSON.stringify(value)}`);
}

/** [[top, bottom], [left, right]] from a number, [vertical, horizontal] or the full form. */
function sides(c: LayerContext, key: string): [[number, number], [number, number]] {
  const value = c.config[key];
  if (typeof value === 'number') {
    return [
      [value, value],
      [value, value],
    ];
  }
  if (Array.isArray(value) && value.length === 2) {
    const [v, h] = value as unknown[];
    if (typeof v === 'number' && typeof h === 'number') {
      return [
        [v, v],
        [h, h],
      ];
    }
    const isPair = (p: unknown): p is [number, number] =>
      Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'number');
    if (isPair(v) && isPair(h)) return [v, h];
  }
  return unsupported(`has ${key} ${JSON.stringify(value)}`);
}

/** A Keras axis (counting the batch, may be negative) in the ONNX tensor's layout. */
function axisOf(c: LayerContext, kerasAxis: number): number {
  const rank = c.outShape.length + 1;
  const axis = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
  if (axis <= 0 || axis >= rank) unsupported(`has axis ${kerasAxis}`);
  return c.inputs.every((v) => v.nchw) && rank === 4 ? [0, 2, 3, 1][axis] : axis;
}

/** A one-input layer that keeps its input's layout (activations, rescaling). */
function elementwise(c: LayerContext, emit: (x: string, out: string) => string): Value {
  const [x] = one(c.inputs);
  return { name: emit(x.name, c.out), nchw: x.nchw, shape: c.outShape };
}

function clip(graph: GraphBuilder, x: string, out: string, min: number, max: number): string {
  return graph.node('Clip', [x, graph.scalar(`${out}/min`, min), graph.scalar(`${out}/max`, max)], out);
}

function activationName(config: Record<string, unknown>): string {
  const name = config.activation ?? 'linear';
  if (typeof name !== 'string') unsupported(`has activation ${JSON.stringify(name)}`);
  if (!ACTIVATIONS.has(name)) unsupported(`uses the activation "${name}"`);
  return name;
}

/** tfjs' activation class names (what `getConfig()` gives); each is defined as tfjs computes it. */
const ACTIVATIONS = new Set([
  'linear',
  'relu',
  'relu6',
  'elu',
  'selu',
  'sigmoid',
  'hardSigmoid',
  'softplus',
  'softsign',
  'tanh',
  'softmax',
  'logSoftmax',
  'swish',
  'mish',
  'gelu',
  'gelu_new',
]);

/** `name` applied to tensor `x`, written to `out`; `axis` is the softmax axis (the last Keras axis). */
function activation(graph: GraphBuilder, name: string, x: string, out: string, axis: number): string {
  const tmp = (suffix: string) => graph.fresh(`${out}/${suffix}`);
  switch (name) {
    case 'linear':
      return x === out ? out : graph.node('Identity', [x], out);
    case 'relu':
      return graph.node('Relu', [x], out);
    case 'relu6':
      return clip(graph, x, out, 0, 6);
    case 'elu':
      return graph.node('Elu', [x], out, [float('alpha', 1)]);
    case 'selu': // ONNX's default alpha and gamma are TF's constants
      return graph.node('Selu', [x], out);
    case 'sigmoid':
      return graph.node('Sigmoid', [x], out);
    case 'hardSigmoid': // tfjs (and Keras 2): clip(0.2 x + 0.5, 0, 1)
      return graph.node('HardSigmoid', [x], out, [float('alpha', 0.2), float('beta', 0.5)]);
    case 'softplus':
      return graph.node('Softplus', [x], out);
    case 'softsign':
      return graph.node('Softsign', [x], out);
    case 'tanh':
      return graph.node('Tanh', [x], out);
    case 'softmax':
      return graph.node('Softmax', [x], out, [int('axis', axis)]);
    case 'logSoftmax':
      return graph.node('LogSoftmax', [x], out, [int('axis', axis)]);
    case 'swish':
      return graph.node('Mul', [x, graph.node('Sigmoid', [x], tmp('sigmoid'))], out);
    case 'mish': {
      const softplus = graph.node('Softplus', [x], tmp('softplus'));
      return graph.node('Mul', [x, graph.node('Tanh', [softplus], tmp('tanh'))], out);
    }
    case 'gelu': {
      // x · ½(1 + erf(x / √2))
      const erf = graph.node(
        'Erf',
        [graph.node('Div', [x, graph.scalar(tmp('sqrt2'), Math.SQRT2)], tmp('div'))],
        tmp('erf'),
      );
      const cdf = graph.node('Add', [erf, graph.scalar(tmp('one'), 1)], tmp('add'));
      const half = graph.node('Mul', [cdf, graph.scalar(tmp('half'), 0.5)], tmp('cdf'));
      return graph.node('Mul', [x, half], out);
    }
    case 'gelu_new': {
      // ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))
      const cube = graph.node('Mul', [x, graph.node('Mul', [x, x], tmp('square'))], tmp('cube'));
      const inner = graph.node(
        'Add',
        [x, graph.node('Mul', [cube, graph.scalar(tmp('c'), 0.044715)], tmp('scaled_cube'))],
        tmp('inner'),
      );
      const tanh = graph.node(
        'Tanh',
        [graph.node('Mul', [inner, graph.scalar(tmp('k'), Math.sqrt(2 / Math.PI))], tmp('arg'))],
        tmp('tanh'),
      );
      const onePlus = graph.node('Add', [tanh, graph.scalar(tmp('one'), 1)], tmp('one_plus'));
      const halfX = graph.node('Mul', [x, graph.scalar(tmp('half'), 0.5)], tmp('half_x'));
      return graph.node('Mul', [halfX, onePlus], out);
    }
    default:
      return unsupported(`uses the activation "${name}"`);
  }
}

/** The layer's weights by their short name (kernel, bias, gamma…), as float32 arrays. */
function weights(layer: tfl.layers.Layer): Map<string, { shape: number[]; data: Float32Array }> {
  const result = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const variable of layer.weights) {
    if (variable.dtype !== 'float32') unsupported(`has a ${variable.dtype} weight`);
    const short = (variable.originalName ?? variable.name).split('/').pop()!.replace(/:\d+$/, '');
    result.set(short, { shape: [...variable.shape] as number[], data: variable.read().dataSync() as Float32Array });
  }
  return result;
}

function weight(
  all: Map<string, { shape: number[]; data: Float32Array }>,
  name: string,
): { shape: number[]; data: Float32Array } {
  return all.get(name) ?? unsupported(`has no weight "${name}" (it has ${[...all.keys()].join(', ') || 'none'})`);
}

/** TF's padding of one spatial axis: "same" puts the odd pixel at the end. */
function axisPads(padding: unknown, size: number, kernel: number, stride: number, dilation: number): [number, number] {
  if (padding === 'valid') return [0, 0];
  if (padding !== 'same') unsupported(`has padding ${JSON.stringify(padding)}`);
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** ONNX `pads` ([top, left, bottom, right]) for a 2-D window on `x` (an H×W×C Keras shape). */
function windowPads(
  padding: unknown,
  x: Value,
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number] = [1, 1],
): number[] {
  const [top, bottom] = axisPads(padding, x.shape[0], kernel[0], strides[0], dilations[0]);
  const [left, right] = axisPads(padding, x.shape[1], kernel[1], strides[1], dilations[1]);
  return [top, left, bottom, right];
}

function image(inputs: Value[]): Value {
  const [x] = one(inputs);
  if (x.shape.length !== 3) unsupported(`takes a tensor of rank ${x.shape.length + 1}, not an image`);
  return x;
}

/** Keras HWIO → ONNX OIHW. */
function hwioToOihw(kernel: { shape: number[]; data: Float32Array }): { dims: number[]; data: Float32Array } {
  const [h, w, i, o] = kernel.shape;
  const data = new Float32Array(kernel.data.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < i; c++)
        for (let f = 0; f < o; f++) data[((f * i + c) * h + y) * w + x] = kernel.data[((y * w + x) * i + c) * o + f];
  return { dims: [o, i, h, w], data };
}

/**
 * A depthwise kernel [h, w, in, multiplier] as an ONNX grouped-conv weight [in·multiplier, 1, h, w]:
 * TF's output channel c·multiplier + m is ONNX group c's m-th output.
 */
function depthwiseToGrouped(kernel: { shape: number[]; data: Float32Array }): { dims: number[]; data: Float32Array } {
  const [h, w, i, m] = kernel.shape;
  const data = new Float32Array(kernel.data.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < i; c++)
        for (let k = 0; k < m; k++) data[((c * m + k) * h + y) * w + x] = kernel.data[((y * w + x) * i + c) * m + k];
  return { dims: [i * m, 1, h, w], data };
}

/** A Conv node on `x` (channels first) then the layer's activation, output `c.out`. */
function convWithActivation(
  c: LayerContext,
  x: string,
  weight: { dims: number[]; data: Float32Array },
  bias: Float32Array | undefined,
  attributes: Attribute[],
): Value {
  const { graph, out } = c;
  const act = activationName(c.config);
  const inputs = [x, graph.floats(`${out}/kernel`, weight.dims, weight.data)];
  if (bias) inputs.push(graph.floats(`${out}/bias`, [bias.length], bias));
  const pre = act === 'linear' ? out : graph.fresh(`${out}/preactivation`);
  graph.node('Conv', inputs, pre, attributes);
  activation(graph, act, pre, out, 1);
  return { name: out, nchw: true, shape: c.outShape };
}

function convAttributes(
  c: LayerContext,
  x: Value,
  kernel: [number, number],
  group: number,
  strides = pair(c, 'strides'),
  dilations = pair(c, 'dilationRate'),
): Attribute[] {
  return [
    ints('kernel_shape', kernel),
    ints('strides', strides),
    ints('dilations', dilations),
    ints('pads', windowPads(c.config.padding, x, kernel, strides, dilations)),
    int('group', group),
  ];
}

function conv2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const w = weights(c.layer);
  const kernel = weight(w, 'kernel');
  const bias = c.config.useBias ? weight(w, 'bias').data : undefined;
  const [kh, kw] = kernel.shape;
  return convWithActivation(c, c.graph.nchw(x), hwioToOihw(kernel), bias, convAttributes(c, x, [kh, kw], 1));
}

function depthwiseConv2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const w = weights(c.layer);
  const kernel = weight(w, 'depthwise_kernel');
  const bias = c.config.useBias ? weight(w, 'bias').data : undefined;
  const [kh, kw, channels] = kernel.shape;
  return convWithActivation(
    c,
    c.graph.nchw(x),
    depthwiseToGrouped(kernel),
    bias,
    convAttributes(c, x, [kh, kw], channels),
  );
}

/** A depthwise convolution (strides, dilation, padding) then a 1×1 convolution (bias, activation). */
function separableConv2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const w = weights(c.layer);
  const depthwise = weight(w, 'depthwise_kernel');
  const pointwise = weight(w, 'pointwise_kernel');
  const bias = c.config.useBias ? weight(w, 'bias').data : undefined;
  const [kh, kw, channels] = depthwise.shape;
  const grouped = depthwiseToGrouped(depthwise);
  const depthwiseOut = c.graph.node(
    'Conv',
    [c.graph.nchw(x), c.graph.floats(`${c.out}/depthwise_kernel`, grouped.dims, grouped.data)],
    c.graph.fresh(`${c.out}/depthwise`),
    convAttributes(c, x, [kh, kw], channels),
  );
  const unit: [number, number] = [1, 1];
  return convWithActivation(c, depthwiseOut, hwioToOihw(pointwise), bias, [
    ints('kernel_shape', unit),
    ints('strides', unit),
    ints('dilations', unit),
    ints('pads', [0, 0, 0, 0]),
    int('group', 1),
  ]);
}

function batchNormalization(c: LayerContext): Value {
  const [x] = one(c.inputs);
  const axis = c.config.axis;
  const rank = x.shape.length + 1;
  if (
    axis !== -1 &&
    axis !== rank - 1 &&
    !(Array.isArray(axis) && axis.length === 1 && [-1, rank - 1].includes(axis[0] as number))
  ) {
    unsupported(`normalises axis ${JSON.stringify(axis)}, not the channels`);
  }
  const w = weights(c.layer);
  const mean = weight(w, 'moving_mean').data;
  const channels = mean.length;
  const gamma = c.config.scale ? weight(w, 'gamma').data : new Float32Array(channels).fill(1);
  const beta = c.config.center ? weight(w, 'beta').data : new Float32Array(channels);
  const { graph, out } = c;
  const input = rank === 4 ? graph.nchw(x) : x.name;
  graph.node(
    'BatchNormalization',
    [
      input,
      graph.floats(`${out}/gamma`, [channels], gamma),
      graph.floats(`${out}/beta`, [channels], beta),
      graph.floats(`${out}/moving_mean`, [channels], mean),
      graph.floats(`${out}/moving_variance`, [channels], weight(w, 'moving_variance').data),
    ],
    out,
    [float('epsilon', num(c, 'epsilon'))],
  );
  return { name: out, nchw: rank === 4, shape: c.outShape };
}

/** On a vector, a Gemm; on an image (Keras applies it to the channels), a 1×1 convolution. */
function dense(c: LayerContext): Value {
  const [x] = one(c.inputs);
  const w = weights(c.layer);
  const kernel = weight(w, 'kernel');
  const bias = c.config.useBias ? weight(w, 'bias').data : undefined;
  const [inputs, units] = kernel.shape;
  if (x.shape.length === 3) {
    const conv = hwioToOihw({ shape: [1, 1, inputs, units], data: kernel.data });
    const unit: [number, number] = [1, 1];
    return convWithActivation(c, c.graph.nchw(x), conv, bias, [
      ints('kernel_shape', unit),
      ints('strides', unit),
      ints('pads', [0, 0, 0, 0]),
    ]);
  }
  const { graph, out } = c;
  const act = activationName(c.config);
  const pre = act === 'linear' ? out : graph.fresh(`${out}/preactivation`);
  const operands = [x.name, graph.floats(`${out}/kernel`, kernel.shape, kernel.data)];
  if (bias) operands.push(graph.floats(`${out}/bias`, [bias.length], bias));
  graph.node('Gemm', operands, pre);
  activation(graph, act, pre, out, -1);
  return { name: out, nchw: false, shape: c.outShape };
}

/** A learned slope per element (or shared over some axes), laid out like the input. */
function prelu(c: LayerContext): Value {
  const [x] = one(c.inputs);
  const alpha = weight(weights(c.layer), 'alpha');
  let slope = { dims: alpha.shape, data: alpha.data };
  if (x.nchw) {
    const [h, w, ch] = alpha.shape;
    const data = new Float32Array(alpha.data.length);
    for (let y = 0; y < h; y++)
      for (let i = 0; i < w; i++)
        for (let k = 0; k < ch; k++) data[(k * h + y) * w + i] = alpha.data[(y * w + i) * ch + k];
    slope = { dims: [ch, h, w], data };
  }
  const name = c.graph.node('PRelu', [x.name, c.graph.floats(`${c.out}/alpha`, slope.dims, slope.data)], c.out);
  return { name, nchw: x.nchw, shape: c.outShape };
}

function pooling(c: LayerContext, op: 'MaxPool' | 'AveragePool'): Value {
  const x = image(c.inputs);
  const size = pair(c, 'poolSize');
  const strides = pair(c, 'strides');
  const attributes = [
    ints('kernel_shape', size),
    ints('strides', strides),
    ints('pads', windowPads(c.config.padding, x, size, strides)),
  ];
  // TF averages over the pixels inside the image only (ONNX's default, said for clarity).
  if (op === 'AveragePool') attributes.push(int('count_include_pad', 0));
  return { name: c.graph.node(op, [c.graph.nchw(x)], c.out, attributes), nchw: true, shape: c.outShape };
}

function globalPooling(c: LayerContext, op: 'ReduceMean' | 'ReduceMax'): Value {
  const x = image(c.inputs);
  if (c.config.keepdims === true || c.config.keepDims === true) unsupported('keeps the spatial dimensions');
  const axes = x.nchw ? [2, 3] : [1, 2];
  return {
    name: c.graph.node(op, [x.name], c.out, [ints('axes', axes), int('keepdims', 0)]),
    nchw: false,
    shape: c.outShape,
  };
}

/** Pads on H and W in whichever layout the input has. */
function zeroPadding2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const [[top, bottom], [left, right]] = sides(c, 'padding');
  const pads = x.nchw ? [0, 0, top, left, 0, 0, bottom, right] : [0, top, left, 0, 0, bottom, right, 0];
  const name = c.graph.node('Pad', [x.name, c.graph.int64s(`${c.out}/pads`, pads)], c.out, [str('mode', 'constant')]);
  return { name, nchw: x.nchw, shape: c.outShape };
}

function cropping2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const [[top, bottom], [left, right]] = sides(c, 'cropping');
  const [height, width] = x.shape;
  const { graph, out } = c;
  const name = graph.node(
    'Slice',
    [
      x.name,
      graph.int64s(`${out}/starts`, [top, left]),
      graph.int64s(`${out}/ends`, [height - bottom, width - right]),
      graph.int64s(`${out}/axes`, x.nchw ? [2, 3] : [1, 2]),
    ],
    out,
  );
  return { name, nchw: x.nchw, shape: c.outShape };
}

/** tfjs' resizeNearestNeighbor and resizeBilinear without align-corners or half-pixel centres: ONNX "asymmetric". */
function upSampling2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const [sh, sw] = pair(c, 'size');
  const interpolation = c.config.interpolation ?? 'nearest';
  if (interpolation !== 'nearest' && interpolation !== 'bilinear')
    unsupported(`interpolates "${String(interpolation)}"`);
  const { graph, out } = c;
  const scales = graph.floats(`${out}/scales`, [4], x.nchw ? [1, 1, sh, sw] : [1, sh, sw, 1]);
  const name = graph.node('Resize', [x.name, '', scales], out, [
    str('mode', interpolation === 'nearest' ? 'nearest' : 'linear'),
    str('coordinate_transformation_mode', 'asymmetric'),
    str('nearest_mode', 'floor'),
  ]);
  return { name, nchw: x.nchw, shape: c.outShape };
}

/** Inputs in one layout: channels first if any is, for images. */
function sameLayout(c: LayerContext): { names: string[]; nchw: boolean } {
  const rank = c.inputs[0].shape.length;
  if (c.inputs.some((v) => v.shape.length !== rank)) unsupported('merges tensors of different ranks');
  const nchw = rank === 3 && c.inputs.some((v) => v.nchw);
  return { names: c.inputs.map((v) => (nchw ? c.graph.nchw(v) : v.name)), nchw };
}

function merge(c: LayerContext, op: 'Sum' | 'Mul' | 'Mean' | 'Max' | 'Min'): Value {
  if (c.inputs.length < 2) unsupported(`merges ${c.inputs.length} tensor`);
  const { names, nchw } = sameLayout(c);
  const { graph, out } = c;
  let name: string;
  if (op === 'Mul') {
    // Mul takes two inputs: a chain, left to right as tfjs does.
    let acc = names[0];
    for (let i = 1; i < names.length; i++) {
      acc = graph.node('Mul', [acc, names[i]], i === names.length - 1 ? out : graph.fresh(`${out}/product`));
    }
    name = acc;
  } else if (op === 'Sum' && names.length === 2) {
    name = graph.node('Add', names, out);
  } else {
    name = graph.node(op, names, out);
  }
  return { name, nchw, shape: c.outShape };
}

function concatenate(c: LayerContext): Value {
  const axis = c.config.axis;
  if (typeof axis !== 'number') unsupported(`has axis ${JSON.stringify(axis)}`);
  const { names, nchw } = sameLayout(c);
  const rank = c.outShape.length + 1;
  const kerasAxis = axis < 0 ? axis + rank : axis;
  if (kerasAxis <= 0 || kerasAxis >= rank) unsupported(`has axis ${axis}`);
  const onnxAxis = nchw ? [0, 2, 3, 1][kerasAxis] : kerasAxis;
  return { name: c.graph.node('Concat', names, c.out, [int('axis', onnxAxis)]), nchw, shape: c.outShape };
}

// ---------------------------------------------------------------- running it

/**
 * The most a trial pass at load may allocate (as budget.ts estimates it). Below it, one pass on a
 * blank image checks that the converted graph runs like the original (and warms ORT up for the
 * user's first image); above it, a pass at load would cost what the user's own pass costs, before
 * the budget is checked, so only the shapes ORT infers are checked, and a graph that fails when
 * run fails on the first image.
 */
export const TRIAL_PASS_BYTES = 256 * 1024 * 1024;

/**
 * The same model on onnxruntime when every layer converts: same key, layers, preprocessing and
 * so on, with `run` on ORT. Otherwise the reason it stays on TensorFlow.js. The caller disposes
 * the TensorFlow.js model when it is replaced. `trialPassBytes`: at most what the trial pass may
 * allocate (default TRIAL_PASS_BYTES).
 */
export async function toOnnxRuntime(
  model: LoadedModel,
  options: { trialPassBytes?: number } = {},
): Promise<(LoadedModel & PassCosts) | { unsupported: string }> {
  if (!model.layersModel) return { unsupported: 'it is not a TensorFlow.js Layers model' };
  const conversion = layersModelToOnnx(model.layersModel, model.inputSize);
  if ('unsupported' in conversion) return conversion;
  const names = conversion.outputs.map((o) => o.layer).join('\n');
  if (names !== model.layers.map((l) => l.name).join('\n')) {
    return { unsupported: 'its layer list differs from the one TensorFlow.js reads' };
  }
  const { height, width, channels } = model.inputSize;
  let session: OnnxGraphSession;
  try {
    session = await openOnnxGraph(
      conversion.bytes,
      { name: conversion.input, layout: 'NHWC', height, width, channels, type: 'float32' },
      conversion.outputs.map((o) => ({
        tensor: o.tensor,
        layer: o.layer,
        op: o.op,
        layout: o.layout === 'nchw' ? 'NCHW' : 'NHWC',
      })),
    );
  } catch (error) {
    return { unsupported: `ONNX Runtime refused the converted model: ${errorText(error)}` };
  }
  const differs = (layer: LayerMeta, shape: number[] | undefined) =>
    shape?.join() !== layer.shape.join()
      ? `layer "${layer.name}" is ${JSON.stringify(shape)} on ONNX Runtime, ${JSON.stringify(layer.shape)} on TensorFlow.js`
      : undefined;
  // A shape tfjs' rules could not tell (listed empty) is ORT's, once the model is on ORT.
  const shapes = model.layers.map((layer) =>
    layer.shape.length > 0 ? layer : { ...layer, shape: session.shapes.get(layer.name) ?? [] },
  );
  try {
    // Every shape ORT infers at load must be tfjs' (it infers them all: the input's size is fixed).
    for (const layer of shapes) {
      const inferred = session.shapes.get(layer.name);
      const difference = inferred && differs(layer, inferred);
      if (difference) throw new Error(difference);
    }
    if (estimatePass(model).bytes <= (options.trialPassBytes ?? TRIAL_PASS_BYTES)) {
      const activations = await session.run(new Float32Array(height * width * channels));
      for (const layer of shapes) {
        if (layer.shape.length === 0) continue; // known only once it runs
        const difference = differs(layer, activations.get(layer.name)?.shape);
        if (difference) throw new Error(difference);
      }
    }
  } catch (error) {
    session.release();
    return { unsupported: `the converted model does not run like the original: ${errorText(error)}` };
  }
  return {
    ...model,
    layers: shapes,
    backend: 'onnxruntime',
    layersModel: undefined,
    // A pass over some layers runs on a graph cut down to them (openOnnxGraph).
    prunesPartialPasses: true,
    async run(input, only) {
      const activations = await session.run(input, only);
      learnShapes(shapes, activations);
      return activations;
    },
    dispose: () => session.release(),
  };
}

// Runs TF.js GraphModels (the TensorFlow converter's model.json: a TensorFlow GraphDef and its
// weights) on onnxruntime: the TF ops a converted CNN uses are written as ONNX ops in memory, so
// onnxruntime-node runs the model on every core instead of tfjs' single-threaded wasm backend.
// Maps are held channels first inside the graph wherever an op computes on them (convolutions,
// pooling, batch norm, resizes), channels last where the graph reads them as TensorFlow does
// (reshapes, matrix products). A graph with an op not written here stays on TensorFlow.js, and
// the reason names the op and the node (`graphModelToOnnxRuntime`).
import type { PassCosts } from '../budget';
import type { LayerMeta } from '../layers';
import type { GraphModelArtifacts, LoadedModel } from '../model';
import type { ConvertedModel, ConvertedOutput } from './kerasToOnnx';
import { replaceWithConverted } from './layersToOnnx';
import { type Attribute, GraphBuilder, Unsupported, float, int, ints, str, unsupported } from './onnxBuilder';
import { type AttrValue, type GraphNode, producer, topological } from './tfjsGraph';

/**
 * The most values one tensor of the converted graph may hold. Sizes come from the file (a
 * Reshape's target, a Resize's size, a Pad's widths): a larger one is refused before anything
 * is allocated for it. 2³¹ − 1 float32 values are 8 GB, far beyond any memory budget.
 */
const MAX_TENSOR_VALUES = 2 ** 31 - 1;

/** TF axis of an N×H×W×C map → its axis in the channels-first tensor. */
const NCHW_AXIS = [0, 2, 3, 1];

/**
 * The ONNX form (opset 17) of a TF.js GraphModel at the given input size, or why it has none.
 * Its outputs are `layers` (the nodes tfjsGraph.ts taps, same names and order); only the nodes
 * they need are converted.
 */
export function graphModelToOnnx(
  model: GraphModelArtifacts,
  inputSize: { height: number; width: number; channels: number },
  layers: readonly Pick<LayerMeta, 'name' | 'op'>[],
): ConvertedModel | { unsupported: string } {
  try {
    return new Converter(model, inputSize).convert(layers);
  } catch (error) {
    if (error instanceof Unsupported) return { unsupported: error.message };
    throw error;
  }
}

/**
 * A TF tensor in the ONNX graph. `shape` is TensorFlow's (batch included); a 4-D map may be held
 * channels first. A constant keeps its values (weights, folded shape arithmetic) and becomes an
 * initializer, in whichever layout its consumer needs, when an op takes it as a tensor.
 */
interface Tensor {
  shape: number[];
  dtype: 'float32' | 'int32';
  nchw: boolean;
  /** The ONNX tensor (for a constant: once written in TF's layout). */
  name?: string;
  data?: Float32Array | Int32Array;
}

type Constant = Tensor & { data: Float32Array | Int32Array };

class Converter {
  private readonly graph: GraphBuilder;
  private readonly byName: Map<string, GraphNode>;
  private readonly values = new Map<string, Tensor>();
  /** A constant written channels first, or shaped to broadcast against a channels-first map. */
  private readonly constantsChw = new Map<Tensor, string>();
  private readonly input: { name: string; nchw: false; shape: number[] };

  constructor(
    private readonly model: GraphModelArtifacts,
    private readonly inputSize: { height: number; width: number; channels: number },
  ) {
    this.byName = new Map(model.nodes.map((node) => [node.name, node]));
    this.graph = new GraphBuilder(this.byName.keys());
    const { height, width, channels } = inputSize;
    this.input = { name: model.input, nchw: false, shape: [height, width, channels] };
  }

  convert(layers: readonly Pick<LayerMeta, 'name' | 'op'>[]): ConvertedModel {
    const needed = this.ancestors(layers.map((l) => l.name));
    for (const node of topological(this.model.nodes, this.byName)) {
      if (!needed.has(node.name)) continue;
      try {
        this.values.set(node.name, this.convertNode(node));
      } catch (error) {
        if (!(error instanceof Unsupported)) throw error;
        unsupported(`op "${node.op}" (node "${node.name}"): ${error.message}`);
      }
    }
    const outputs = layers.map((layer) => this.output(layer));
    const { height, width, channels } = this.inputSize;
    return {
      bytes: this.graph.encode('tfjs_graph_model', 'feature-maps tfjsGraphToOnnx', this.input, outputs),
      input: this.input.name,
      inputShape: [height, width, channels],
      outputs,
    };
  }

  /** The nodes `names` read, directly or not, themselves included (data inputs only). */
  private ancestors(names: string[]): Set<string> {
    const needed = new Set<string>();
    const stack = [...names];
    for (let name = stack.pop(); name !== undefined; name = stack.pop()) {
      if (needed.has(name)) continue;
      const node = this.byName.get(name);
      if (!node) unsupported(`the graph has no node "${name}"`);
      needed.add(name);
      for (const input of node.input ?? []) {
        const source = producer(input);
        if (source !== undefined) stack.push(source);
      }
    }
    return needed;
  }

  /** A tapped node as a graph output named as the node, with its layout and TF shape without batch. */
  private output(layer: Pick<LayerMeta, 'name' | 'op'>): ConvertedOutput {
    const t = this.values.get(layer.name)!;
    const where = `node "${layer.name}" (${layer.op})`;
    if (t.dtype !== 'float32') unsupported(`${where} is not a float tensor`);
    const map = t.shape.length === 4;
    if (map && t.shape[0] !== 1) unsupported(`${where} holds a batch of ${t.shape[0]}`);
    const source = map ? this.ref(t) : this.tf(t);
    const tensor = source === layer.name ? source : this.graph.node('Identity', [source], layer.name);
    return {
      layer: layer.name,
      op: layer.op,
      tensor,
      layout: map ? (t.nchw ? 'nchw' : 'nhwc') : 'vector',
      shape: t.shape.length >= 2 ? t.shape.slice(1) : [...t.shape],
    };
  }

  // ------------------------------------------------------------ tensors and layouts

  /** The node's data inputs (control inputs "^name" are not data). */
  private inputs(node: GraphNode): Tensor[] {
    return (node.input ?? [])
      .filter((input) => !input.startsWith('^'))
      .map((input) => {
        const name = producer(input)!;
        const index = name === input ? 0 : Number(input.slice(name.length + 1));
        if (index !== 0) unsupported(`it reads output ${index} of node "${name}"`);
        return this.values.get(name) ?? unsupported(`its input "${name}" is not converted`);
      });
  }

  private inputCount(node: GraphNode, count: number): Tensor[] {
    const inputs = this.inputs(node);
    if (inputs.length < count) unsupported(`it has ${inputs.length} inputs, not ${count}`);
    return inputs;
  }

  /** A tensor as it is held (a constant in TF's layout). */
  private ref(t: Tensor): string {
    if (t.name !== undefined) return t.name;
    const c = constant(t);
    if (c.dtype !== 'float32') unsupported('it computes on integers');
    t.name = this.graph.floats('const', c.shape, c.data as Float32Array);
    return t.name;
  }

  /** A tensor in TensorFlow's layout. */
  private tf(t: Tensor): string {
    return t.nchw ? this.graph.nhwc({ name: t.name!, nchw: true, shape: t.shape }) : this.ref(t);
  }

  /** A 4-D tensor channels first. */
  private chw(t: Tensor): string {
    if (t.shape.length !== 4) unsupported(`it takes a tensor of rank ${t.shape.length}, not a map`);
    if (t.nchw) return t.name!;
    if (t.data) return this.constantChw(t as Constant, t.shape);
    return this.graph.nchw({ name: this.ref(t), nchw: false, shape: t.shape });
  }

  /** A tensor shaped to broadcast against a channels-first map as it did against the channels-last one. */
  private broadcastChw(t: Tensor): string {
    const rank = t.shape.length;
    if (rank === 4) return this.chw(t);
    if (rank === 0) return this.ref(t);
    if (rank > 4) unsupported(`it broadcasts a tensor of rank ${rank} against a map`);
    const padded = [...Array<number>(4 - rank).fill(1), ...t.shape];
    if (t.data) return this.constantChw(t as Constant, padded);
    const [n, h, w, c] = padded;
    const name = this.ref(t);
    if (h === 1 && w === 1) return this.reshapeNode(name, [n, c, 1, 1]);
    const reshaped = this.reshapeNode(name, padded);
    return this.graph.nchw({ name: reshaped, nchw: false, shape: padded });
  }

  private constantChw(t: Constant, shape4: number[]): string {
    let name = this.constantsChw.get(t);
    if (name === undefined) {
      if (t.dtype !== 'float32') unsupported('it computes on integers');
      const data = permute(t.data, shape4, [0, 3, 1, 2]) as Float32Array;
      name = this.graph.floats('const_nchw', [shape4[0], shape4[3], shape4[1], shape4[2]], data);
      this.constantsChw.set(t, name);
    }
    return name;
  }

  private reshapeNode(x: string, shape: number[], out?: string): string {
    return this.graph.node('Reshape', [x, this.graph.int64s('shape', shape)], out ?? this.graph.fresh(`${x}/reshaped`));
  }

  /** Inputs of an elementwise op in one layout: channels first when the result is a map and one of them is. */
  private sameLayout(ts: Tensor[]): { names: string[]; nchw: boolean; shape: number[] } {
    const shape = broadcast(ts.map((t) => t.shape));
    const nchw = shape.length === 4 && ts.some((t) => t.nchw);
    return { names: ts.map((t) => (nchw ? this.broadcastChw(t) : this.tf(t))), nchw, shape };
  }

  // ------------------------------------------------------------ ops

  private convertNode(node: GraphNode): Tensor {
    const op = node.op;
    const out = node.name;
    if (node.name === this.model.input) {
      return { name: this.input.name, nchw: false, dtype: 'float32', shape: [1, ...this.input.shape] };
    }
    switch (op) {
      case 'Const':
        return this.constantNode(node);
      case 'Placeholder':
        return unsupported('a second input');
      case 'Identity':
      case 'Snapshot':
      case 'StopGradient':
      case 'EnsureShape':
        return this.inputCount(node, 1)[0];
      case 'Cast':
        return this.cast(node);
      case 'Shape': {
        const { shape } = this.inputCount(node, 1)[0];
        return intConstant(shape, [shape.length]);
      }
      case 'Size':
        return intConstant([product(this.inputCount(node, 1)[0].shape)], []);
      case 'Rank':
        return intConstant([this.inputCount(node, 1)[0].shape.length], []);

      case 'Conv2D':
      case '_FusedConv2D':
      case 'DepthwiseConv2d':
      case 'DepthwiseConv2dNative':
      case 'FusedDepthwiseConv2dNative':
      case '_FusedDepthwiseConv2dNative':
        return this.conv(node, op.includes('Depthwise'), op.includes('Fused'));
      case 'Conv2DBackpropInput':
        return this.convTranspose(node);
      case 'MaxPool':
      case 'AvgPool':
        return this.pool(node, op === 'MaxPool' ? 'MaxPool' : 'AveragePool');
      case 'FusedBatchNorm':
      case 'FusedBatchNormV2':
      case 'FusedBatchNormV3':
        return this.batchNorm(node);
      case 'LRN':
        return this.lrn(node);
      case 'MatMul':
      case '_FusedMatMul':
        return this.matMul(node, op === '_FusedMatMul');

      case 'BiasAdd':
        if (!isNhwc(node)) unsupported('its data format is not NHWC');
        return this.binary(node, 'Add');
      case 'Add':
      case 'AddV2':
        return this.binary(node, 'Add');
      case 'Sub':
        return this.binary(node, 'Sub');
      case 'Mul':
        return this.binary(node, 'Mul');
      case 'RealDiv':
      case 'Div':
        return this.binary(node, 'Div');
      case 'FloorDiv':
        return this.binary(node, 'FloorDiv');
      case 'Maximum':
        return this.binary(node, 'Max');
      case 'Minimum':
        return this.binary(node, 'Min');
      case 'Pow':
        return this.binary(node, 'Pow');
      case 'SquaredDifference':
        return this.binary(node, 'SquaredDifference');
      case 'Prelu':
        return this.binary(node, 'PRelu');
      case 'AddN': {
        const inputs = this.inputCount(node, 1);
        if (inputs.length === 1) return inputs[0];
        const { names, nchw, shape } = this.sameLayout(inputs);
        return this.made(this.graph.node('Sum', names, out), shape, nchw);
      }

      case 'Relu':
      case 'Relu6':
      case 'Elu':
      case 'Selu':
      case 'LeakyRelu':
      case 'Sigmoid':
      case 'Tanh':
      case 'Softplus':
        return this.unary(node, (x) => this.activation(op.toLowerCase(), x, out, { alpha: attrFloat(node, 'alpha') }));
      case 'Neg':
      case 'Abs':
      case 'Sqrt':
      case 'Exp':
      case 'Log':
      case 'Floor':
      case 'Ceil':
      case 'Round':
      case 'Sign':
      case 'Reciprocal':
      case 'Erf':
        return this.unary(node, (x) => this.graph.node(op, [x], out));
      case 'Rsqrt':
        return this.unary(node, (x) =>
          this.graph.node('Reciprocal', [this.graph.node('Sqrt', [x], this.graph.fresh(`${out}/sqrt`))], out),
        );
      case 'Square':
        return this.unary(node, (x) => this.graph.node('Mul', [x, x], out));
      case 'ClipByValue': {
        const [, low, high] = this.inputCount(node, 3);
        const [min, max] = [scalarOf(low, 'its minimum'), scalarOf(high, 'its maximum')];
        return this.unary(node, (x) => this.clip(x, out, min, max));
      }
      case 'Softmax':
      case 'LogSoftmax': {
        const [x] = this.inputCount(node, 1);
        // TensorFlow's softmax is over the last axis: the channels of a map.
        const axis = x.nchw ? 1 : x.shape.length - 1;
        return this.unary(node, (name) => this.graph.node(op, [name], out, [int('axis', axis)]));
      }

      case 'Mean':
      case 'Max':
      case 'Min':
      case 'Sum':
      case 'Prod':
        return this.reduce(node);
      case 'Pad':
      case 'PadV2':
      case 'MirrorPad':
        return this.pad(node);
      case 'ConcatV2':
      case 'Concat':
        return this.concat(node);
      case 'Pack':
        return this.pack(node);
      case 'Reshape': {
        const [x, target] = this.inputCount(node, 2);
        return this.reshape(x, resolveShape(intsOf(target, 'its shape'), x.shape), out);
      }
      case 'Squeeze':
        return this.squeeze(node);
      case 'ExpandDims': {
        const [x, axisInput] = this.inputCount(node, 2);
        const axes = intsOf(axisInput, 'its axis');
        if (axes.length !== 1) unsupported(`it has ${axes.length} axes`);
        const rank = x.shape.length + 1;
        const axis = normalizeAxis(axes[0], rank);
        const shape = [...x.shape];
        shape.splice(axis, 0, 1);
        return this.reshape(x, shape, out);
      }
      case 'Transpose':
        return this.transpose(node);
      case 'StridedSlice':
        return this.stridedSlice(node);
      case 'Slice':
        return this.slice(node);
      case 'ResizeBilinear':
      case 'ResizeNearestNeighbor':
        return this.resize(node, op === 'ResizeBilinear');
      case 'DepthToSpace':
      case 'SpaceToDepth':
        return this.depthToSpace(node, op);
      default:
        return unsupported('it has no ONNX conversion');
    }
  }

  /** A new tensor `name`, checked for size. */
  private made(name: string, shape: number[], nchw: boolean): Tensor {
    return { name, shape: checkShape(shape), nchw: nchw && shape.length === 4, dtype: 'float32' };
  }

  private constantNode(node: GraphNode): Tensor {
    const weight = this.model.weights[node.name]?.[0];
    if (!weight) unsupported('the weights hold no value for it');
    // tfjs' io has decoded the shards: quantized weights (uint8, uint16, float16) arrive as float32.
    if (weight.dtype !== 'float32' && weight.dtype !== 'int32') unsupported(`it is a ${weight.dtype} tensor`);
    const shape = checkShape([...weight.shape], true);
    const data = weight.dataSync() as Float32Array | Int32Array;
    if (data.length !== product(shape))
      unsupported(`it holds ${data.length} values for the shape ${JSON.stringify(shape)}`);
    return { shape, data, dtype: weight.dtype, nchw: false };
  }

  private cast(node: GraphNode): Tensor {
    const [x] = this.inputCount(node, 1);
    const to = node.attr?.DstT?.type;
    const dtype = to === 'DT_FLOAT' ? 'float32' : to === 'DT_INT32' || to === 'DT_INT64' ? 'int32' : undefined;
    if (!dtype) unsupported(`it casts to ${to ?? 'an unnamed type'}`);
    if (x.dtype === dtype) return x;
    if (!x.data) unsupported(`it casts a computed ${x.dtype} tensor to ${dtype}`);
    const data = dtype === 'float32' ? Float32Array.from(x.data) : Int32Array.from(x.data, Math.trunc);
    return { shape: x.shape, data, dtype, nchw: false };
  }

  /** An activation on its own or fused into a convolution or matrix product: tfjs' names, lower case. */
  private activation(
    kind: string,
    x: string,
    out: string,
    options: { alpha?: number; prelu?: Tensor; nchw?: boolean } = {},
  ): string {
    switch (kind) {
      case 'relu':
        return this.graph.node('Relu', [x], out);
      case 'relu6':
        return this.clip(x, out, 0, 6);
      case 'elu':
        return this.graph.node('Elu', [x], out, [float('alpha', 1)]);
      case 'selu': // ONNX's default alpha and gamma are TensorFlow's constants
        return this.graph.node('Selu', [x], out);
      case 'leakyrelu':
        return this.graph.node('LeakyRelu', [x], out, [float('alpha', options.alpha ?? 0.2)]);
      case 'sigmoid':
        return this.graph.node('Sigmoid', [x], out);
      case 'tanh':
        return this.graph.node('Tanh', [x], out);
      case 'softplus':
        return this.graph.node('Softplus', [x], out);
      case 'prelu': {
        const alpha = options.prelu ?? unsupported('its PReLU has no slopes');
        return this.graph.node('PRelu', [x, options.nchw ? this.broadcastChw(alpha) : this.tf(alpha)], out);
      }
      default:
        return unsupported(`it applies the activation "${kind}"`);
    }
  }

  private clip(x: string, out: string, min: number, max: number): string {
    return this.graph.node(
      'Clip',
      [x, this.graph.scalar(`${out}/min`, min), this.graph.scalar(`${out}/max`, max)],
      out,
    );
  }

  /** A one-input op that keeps its input's shape and layout. */
  private unary(node: GraphNode, emit: (x: string) => string): Tensor {
    const [x] = this.inputCount(node, 1);
    if (x.dtype !== 'float32') unsupported('it computes on integers');
    return this.made(emit(this.ref(x)), x.shape, x.nchw);
  }

  private binary(node: GraphNode, op: string): Tensor {
    const [a, b] = this.inputCount(node, 2);
    const out = node.name;
    if (a.data && b.data && op !== 'PRelu') {
      const folded = foldBinary(op, a as Constant, b as Constant);
      if (folded) return folded;
    }
    if (a.dtype !== 'float32' || b.dtype !== 'float32') unsupported('it computes on integers');
    const { names, nchw, shape } = this.sameLayout([a, b]);
    const [x, y] = names;
    let name: string;
    if (op === 'SquaredDifference') {
      const difference = this.graph.node('Sub', [x, y], this.graph.fresh(`${out}/difference`));
      name = this.graph.node('Mul', [difference, difference], out);
    } else if (op === 'FloorDiv') {
      name = this.graph.node('Floor', [this.graph.node('Div', [x, y], this.graph.fresh(`${out}/quotient`))], out);
    } else {
      if (op === 'PRelu' && product(b.shape) > product(a.shape)) unsupported('its slopes outnumber its input');
      name = this.graph.node(op, [x, y], out);
    }
    return this.made(name, shape, nchw);
  }

  /** Conv2D, DepthwiseConv2dNative and their fused forms (bias, then an activation). */
  private conv(node: GraphNode, depthwise: boolean, fused: boolean): Tensor {
    const [x, filter, ...args] = this.inputCount(node, 2);
    const out = node.name;
    if (!isNhwc(node)) unsupported('its data format is not NHWC');
    if (x.shape.length !== 4) unsupported(`its input has rank ${x.shape.length}`);
    if (filter.shape.length !== 4) unsupported(`its filter has rank ${filter.shape.length}`);
    const [kh, kw, filterIn, filterOut] = filter.shape;
    const channels = x.shape[3];
    let group: number;
    let outChannels: number;
    if (depthwise) {
      if (filterIn !== channels) unsupported(`its filter takes ${filterIn} channels, its input has ${channels}`);
      group = channels;
      outChannels = channels * filterOut;
    } else {
      if (channels % filterIn !== 0 || filterOut % (channels / filterIn) !== 0) {
        unsupported(`its filter takes ${filterIn} channels, its input has ${channels}`);
      }
      group = channels / filterIn;
      outChannels = filterOut;
    }
    const strides = spatial(node, 'strides');
    const dilations = spatial(node, 'dilations');
    const { pads, size } = windowPads(node, [x.shape[1], x.shape[2]], [kh, kw], strides, dilations);
    const shape = [x.shape[0], size[0], size[1], outChannels];

    const { bias, activation, prelu, alpha } = fused ? this.fusedOps(node, args, outChannels) : NO_FUSED_OPS;
    const inputs = [this.chw(x), this.filterOihw(filter, depthwise)];
    if (bias) inputs.push(bias);
    const pre = activation ? this.graph.fresh(`${out}/conv`) : out;
    this.graph.node('Conv', inputs, pre, [
      ints('kernel_shape', [kh, kw]),
      ints('strides', strides),
      ints('dilations', dilations),
      ints('pads', pads),
      int('group', group),
    ]);
    if (activation) this.activation(activation, pre, out, { alpha, prelu, nchw: true });
    return this.made(out, shape, true);
  }

  /**
   * A fused op's extras as tfjs runs them: `fused_ops` [BiasAdd, activation] with the bias (and
   * a PReLU's slopes) in `args`; without BiasAdd the first argument is the slopes.
   */
  private fusedOps(node: GraphNode, args: Tensor[], channels: number): FusedOps {
    const [extra, activation] = (node.attr?.fused_ops?.list?.s ?? []).map((s) => decode(s).toLowerCase());
    if (extra !== undefined && extra !== 'biasadd') unsupported(`it fuses "${extra}"`);
    const isBias = extra === 'biasadd';
    const isPrelu = activation === 'prelu';
    if (args.length !== Number(isBias) + Number(isPrelu)) {
      unsupported(`it fuses ${extra ?? 'nothing'} and ${activation ?? 'no activation'} with ${args.length} arguments`);
    }
    let bias: string | undefined;
    if (isBias) {
      const b = args[0];
      if (b.shape.length !== 1 || b.shape[0] !== channels)
        unsupported(`its bias has the shape ${JSON.stringify(b.shape)}`);
      bias = this.ref(b);
    }
    return {
      bias,
      activation: activation === 'linear' ? undefined : activation,
      prelu: isPrelu ? args[isBias ? 1 : 0] : undefined,
      alpha: attrFloat(node, 'leakyrelu_alpha'),
    };
  }

  /** A TF filter (H×W×in×out, or H×W×in×multiplier for a depthwise one) as ONNX's out×in×H×W. */
  private filterOihw(filter: Tensor, depthwise: boolean): string {
    if (filter.dtype !== 'float32') unsupported('its filter is not float');
    const [h, w, i, o] = filter.shape;
    if (filter.data) {
      // Depthwise: TF's output channel c·multiplier + m is ONNX group c's m-th output, so the
      // multiplier axis reads as the output axis of an H×W×1×(in·multiplier) filter.
      const dims = depthwise ? [h, w, 1, i * o] : filter.shape;
      const data = permute(filter.data, dims, [3, 2, 0, 1]) as Float32Array;
      return this.graph.floats('filter', [dims[3], dims[2], h, w], data);
    }
    const source = depthwise ? this.reshapeNode(this.ref(filter), [h, w, 1, i * o]) : this.ref(filter);
    return this.graph.node('Transpose', [source], this.graph.fresh('filter'), [ints('perm', [3, 2, 0, 1])]);
  }

  /** Conv2DBackpropInput (a transposed convolution): inputs [output size, filter, x]. */
  private convTranspose(node: GraphNode): Tensor {
    const [sizes, filter, x] = this.inputCount(node, 3);
    if (!isNhwc(node)) unsupported('its data format is not NHWC');
    const outShape = checkShape(intsOf(sizes, 'its output size'));
    if (x.shape.length !== 4 || outShape.length !== 4 || filter.shape.length !== 4) unsupported('it is not on maps');
    const [kh, kw, filterOut, filterIn] = filter.shape;
    if (filterIn !== x.shape[3] || filterOut !== outShape[3] || outShape[0] !== x.shape[0]) {
      unsupported(
        `its filter ${JSON.stringify(filter.shape)} does not fit ${JSON.stringify(x.shape)} → ${JSON.stringify(outShape)}`,
      );
    }
    const dilations = spatial(node, 'dilations');
    if (dilations.some((d) => d !== 1)) unsupported('it is dilated');
    const strides = spatial(node, 'strides');
    // The pads of the convolution it is the gradient of, from the output size to the input's.
    const { pads, size } = windowPads(node, [outShape[1], outShape[2]], [kh, kw], strides, [1, 1]);
    if (size[0] !== x.shape[1] || size[1] !== x.shape[2]) {
      unsupported(
        `its output size ${outShape[1]}×${outShape[2]} does not give its input's ${x.shape[1]}×${x.shape[2]}`,
      );
    }
    const extra = [0, 1].map((a) => {
      const made = (x.shape[1 + a] - 1) * strides[a] + [kh, kw][a] - pads[a] - pads[a + 2];
      return outShape[1 + a] - made;
    });
    if (extra.some((e, a) => e < 0 || e >= strides[a]))
      unsupported(`its output size ${outShape[1]}×${outShape[2]} cannot be made`);
    let weight: string;
    if (filter.data) {
      // TF H×W×out×in → ONNX in×out×H×W.
      weight = this.graph.floats(
        'filter',
        [filterIn, filterOut, kh, kw],
        permute(filter.data, filter.shape, [3, 2, 0, 1]) as Float32Array,
      );
    } else {
      weight = this.graph.node('Transpose', [this.ref(filter)], this.graph.fresh('filter'), [
        ints('perm', [3, 2, 0, 1]),
      ]);
    }
    const name = this.graph.node('ConvTranspose', [this.chw(x), weight], node.name, [
      ints('kernel_shape', [kh, kw]),
      ints('strides', strides),
      ints('pads', pads),
      ints('output_padding', extra),
    ]);
    return this.made(name, outShape, true);
  }

  private pool(node: GraphNode, op: 'MaxPool' | 'AveragePool'): Tensor {
    const [x] = this.inputCount(node, 1);
    if (!isNhwc(node)) unsupported('its data format is not NHWC');
    if (x.shape.length !== 4) unsupported(`its input has rank ${x.shape.length}`);
    const kernel = spatial(node, 'ksize');
    const strides = spatial(node, 'strides');
    const { pads, size } = windowPads(node, [x.shape[1], x.shape[2]], kernel, strides, [1, 1]);
    const attributes: Attribute[] = [ints('kernel_shape', kernel), ints('strides', strides), ints('pads', pads)];
    // TensorFlow averages over the pixels inside the image only.
    if (op === 'AveragePool') attributes.push(int('count_include_pad', 0));
    const name = this.graph.node(op, [this.chw(x)], node.name, attributes);
    return this.made(name, [x.shape[0], size[0], size[1], x.shape[3]], true);
  }

  /** FusedBatchNorm(V2, V3) at inference: x, scale, offset, mean, variance, as tfjs' batchNorm. */
  private batchNorm(node: GraphNode): Tensor {
    const [x, scale, offset, mean, variance] = this.inputCount(node, 5);
    if (!isNhwc(node)) unsupported('its data format is not NHWC');
    if (x.shape.length !== 4) unsupported(`its input has rank ${x.shape.length}`);
    const channels = x.shape[3];
    const params = [scale, offset, mean, variance].map((p) => {
      if (p.shape.length !== 1 || p.shape[0] !== channels)
        unsupported(`a parameter has the shape ${JSON.stringify(p.shape)}`);
      return this.ref(p);
    });
    const epsilon = attrFloat(node, 'epsilon') ?? 0.001;
    const name = this.graph.node('BatchNormalization', [this.chw(x), ...params], node.name, [
      float('epsilon', epsilon),
    ]);
    return this.made(name, x.shape, true);
  }

  /** TF's LRN sums squares over 2·radius + 1 channels and scales by alpha; ONNX's by alpha / size. */
  private lrn(node: GraphNode): Tensor {
    const [x] = this.inputCount(node, 1);
    const radius = attrInt(node, 'depth_radius') ?? 5;
    const size = 2 * radius + 1;
    const name = this.graph.node('LRN', [this.chw(x)], node.name, [
      int('size', size),
      float('alpha', (attrFloat(node, 'alpha') ?? 1) * size),
      float('beta', attrFloat(node, 'beta') ?? 0.5),
      float('bias', attrFloat(node, 'bias') ?? 1),
    ]);
    return this.made(name, x.shape, true);
  }

  private matMul(node: GraphNode, fused: boolean): Tensor {
    const [a, b, ...args] = this.inputCount(node, 2);
    if (a.shape.length !== 2 || b.shape.length !== 2) unsupported('it multiplies tensors that are not matrices');
    const transA = attrBool(node, 'transpose_a');
    const transB = attrBool(node, 'transpose_b');
    const [m, k] = transA ? [a.shape[1], a.shape[0]] : a.shape;
    const [k2, n] = transB ? [b.shape[1], b.shape[0]] : b.shape;
    if (k !== k2) unsupported(`it multiplies ${JSON.stringify(a.shape)} by ${JSON.stringify(b.shape)}`);
    const out = node.name;
    let extras: FusedOps = NO_FUSED_OPS;
    if (fused) {
      const [extra, activation] = (node.attr?.fused_ops?.list?.s ?? []).map((s) => decode(s).toLowerCase());
      if (extra !== undefined && extra !== 'biasadd') unsupported(`it fuses "${extra}"`);
      // tfjs reads a fused matrix product's arguments as [bias, slopes] whatever it fuses.
      const [bias, prelu] = args;
      if (extra === 'biasadd' && (!bias || bias.shape.length !== 1 || bias.shape[0] !== n))
        unsupported('its bias does not fit');
      extras = {
        bias: extra === 'biasadd' ? this.ref(bias) : undefined,
        activation: activation === 'linear' ? undefined : activation,
        prelu,
        alpha: attrFloat(node, 'leakyrelu_alpha'),
      };
    }
    const inputs = [this.tf(a), this.tf(b)];
    if (extras.bias) inputs.push(extras.bias);
    const pre = extras.activation ? this.graph.fresh(`${out}/matmul`) : out;
    this.graph.node('Gemm', inputs, pre, [int('transA', transA ? 1 : 0), int('transB', transB ? 1 : 0)]);
    if (extras.activation) this.activation(extras.activation, pre, out, { alpha: extras.alpha, prelu: extras.prelu });
    return this.made(out, [m, n], false);
  }

  private reduce(node: GraphNode): Tensor {
    const [x, axisInput] = this.inputCount(node, 2);
    const rank = x.shape.length;
    const axes = [...new Set(intsOf(axisInput, 'its axes').map((a) => normalizeAxis(a, rank)))].sort((p, q) => p - q);
    const keep = attrBool(node, 'keep_dims');
    if (axes.length === 0) return x;
    const shape = keep
      ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !axes.includes(i));
    // A channels-first map stays so when what is left keeps TensorFlow's order of axes.
    const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const inOrder = kept.every((a, i) => i === 0 || NCHW_AXIS[a] > NCHW_AXIS[kept[i - 1]]);
    const nchw = x.nchw && (keep || inOrder);
    const source = nchw ? x.name! : this.tf(x);
    const onnxAxes = nchw ? axes.map((a) => NCHW_AXIS[a]) : axes;
    const op = { Mean: 'ReduceMean', Max: 'ReduceMax', Min: 'ReduceMin', Sum: 'ReduceSum', Prod: 'ReduceProd' }[
      node.op as 'Mean'
    ];
    const keepdims = int('keepdims', keep ? 1 : 0);
    const name =
      op === 'ReduceSum' // its axes are an input from opset 13, the others' from opset 18
        ? this.graph.node(op, [source, this.graph.int64s('axes', onnxAxes)], node.name, [keepdims])
        : this.graph.node(op, [source], node.name, [ints('axes', onnxAxes), keepdims]);
    return this.made(name, shape, nchw && keep);
  }

  private pad(node: GraphNode): Tensor {
    const [x, paddings, value] = this.inputCount(node, 2);
    const rank = x.shape.length;
    const flat = intsOf(paddings, 'its paddings');
    if (flat.length !== 2 * rank || flat.some((p) => p < 0)) unsupported(`it pads ${JSON.stringify(flat)}`);
    const shape = checkShape(x.shape.map((d, i) => d + flat[2 * i] + flat[2 * i + 1]));
    let mode = 'constant';
    if (node.op === 'MirrorPad') {
      const kind = decode(node.attr?.mode?.s ?? '').toUpperCase();
      // SYMMETRIC repeats the edge pixel: ONNX's "edge" for a pad of one.
      if (kind === 'REFLECT') mode = 'reflect';
      else if (kind === 'SYMMETRIC' && flat.every((p) => p <= 1)) mode = 'edge';
      else unsupported(`it mirrors in mode ${kind || 'unnamed'} by ${Math.max(...flat)}`);
      if (mode === 'reflect' && x.shape.some((d, i) => flat[2 * i] >= d || flat[2 * i + 1] >= d)) {
        unsupported('it reflects by more than the tensor holds');
      }
    }
    const nchw = x.nchw;
    const axisOf = (a: number) => (nchw ? NCHW_AXIS.indexOf(a) : a);
    // ONNX pads: every axis' start, then every axis' end, in the tensor's own order.
    const pads = [...Array(rank).keys()].map((i) => flat[2 * axisOf(i)]);
    pads.push(...[...Array(rank).keys()].map((i) => flat[2 * axisOf(i) + 1]));
    const inputs = [nchw ? x.name! : this.ref(x), this.graph.int64s('pads', pads)];
    if (node.op === 'PadV2' && value) inputs.push(this.graph.scalar('pad_value', scalarOf(value, 'its value')));
    const name = this.graph.node('Pad', inputs, node.name, [str('mode', mode)]);
    return this.made(name, shape, nchw);
  }

  private concat(node: GraphNode): Tensor {
    const inputs = this.inputCount(node, 2);
    const [axisInput, parts] =
      node.op === 'Concat' ? [inputs[0], inputs.slice(1)] : [inputs[inputs.length - 1], inputs.slice(0, -1)];
    const rank = parts[0].shape.length;
    const axis = normalizeAxis(scalarOf(axisInput, 'its axis'), rank);
    if (parts.some((p) => p.shape.length !== rank || p.shape.some((d, i) => i !== axis && d !== parts[0].shape[i]))) {
      unsupported(`it joins ${parts.map((p) => JSON.stringify(p.shape)).join(' and ')}`);
    }
    const shape = [...parts[0].shape];
    shape[axis] = parts.reduce((total, p) => total + p.shape[axis], 0);
    if (parts.every((p) => p.data) && parts.every((p) => p.dtype === parts[0].dtype)) {
      return join(parts as Constant[], axis, shape);
    }
    const nchw = rank === 4 && parts.some((p) => p.nchw);
    const names = parts.map((p) => (nchw ? this.chw(p) : this.tf(p)));
    const name = this.graph.node('Concat', names, node.name, [int('axis', nchw ? NCHW_AXIS[axis] : axis)]);
    return this.made(name, shape, nchw);
  }

  /** Pack (tf.stack): each input gains an axis of 1, then they are joined on it. */
  private pack(node: GraphNode): Tensor {
    const parts = this.inputCount(node, 1);
    const rank = parts[0].shape.length + 1;
    const axis = normalizeAxis(attrInt(node, 'axis') ?? 0, rank);
    if (parts.some((p) => p.shape.join() !== parts[0].shape.join()))
      unsupported('it stacks tensors of different shapes');
    const partShape = [...parts[0].shape];
    partShape.splice(axis, 0, 1);
    const shape = [...partShape];
    shape[axis] = parts.length;
    if (parts.every((p) => p.data) && parts.every((p) => p.dtype === parts[0].dtype)) {
      return join(
        parts.map((p) => ({ ...p, shape: partShape }) as Constant),
        axis,
        shape,
      );
    }
    const names = parts.map((p) => this.reshapeNode(this.tf(p), partShape));
    return this.made(this.graph.node('Concat', names, node.name, [int('axis', axis)]), shape, false);
  }

  private squeeze(node: GraphNode): Tensor {
    const [x] = this.inputCount(node, 1);
    const rank = x.shape.length;
    const listed = node.attr?.squeeze_dims?.list?.i ?? node.attr?.axis?.list?.i ?? [];
    const axes = listed.map((a) => normalizeAxis(Number(a), rank));
    if (axes.some((a) => x.shape[a] !== 1))
      unsupported(`it squeezes an axis longer than 1 of ${JSON.stringify(x.shape)}`);
    const shape = x.shape.filter((d, i) => (axes.length > 0 ? !axes.includes(i) : d !== 1));
    return this.reshape(x, shape, node.name);
  }

  /** `x` with the same values in TensorFlow's order, in `shape`. */
  private reshape(x: Tensor, shape: number[], out: string): Tensor {
    checkShape(shape);
    if (product(shape) !== product(x.shape))
      unsupported(`it reshapes ${JSON.stringify(x.shape)} to ${JSON.stringify(shape)}`);
    if (x.data) return { shape, data: x.data, dtype: x.dtype, nchw: false };
    if (shape.join() === x.shape.join()) return x;
    if (x.dtype !== 'float32') unsupported('it computes on integers');
    // A channels-first map whose channels or pixels are one reads the same in either order.
    const [, h, w, c] = x.shape;
    const source = x.nchw && (h * w === 1 || c === 1) ? x.name! : this.tf(x);
    return this.made(this.reshapeNode(source, shape, out), shape, false);
  }

  private transpose(node: GraphNode): Tensor {
    const [x, permInput] = this.inputCount(node, 2);
    const perm = intsOf(permInput, 'its permutation');
    const rank = x.shape.length;
    if (perm.length !== rank || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
      unsupported(`it permutes by ${JSON.stringify(perm)}`);
    }
    const shape = perm.map((p) => x.shape[p]);
    if (x.data) return { shape, data: permute(x.data, x.shape, perm), dtype: x.dtype, nchw: false };
    return this.made(this.graph.node('Transpose', [this.tf(x)], node.name, [ints('perm', perm)]), shape, false);
  }

  private slice(node: GraphNode): Tensor {
    const [x, beginInput, sizeInput] = this.inputCount(node, 3);
    const begin = intsOf(beginInput, 'its begin');
    const size = intsOf(sizeInput, 'its size');
    const rank = x.shape.length;
    if (begin.length !== rank || size.length !== rank) unsupported('its begin or size does not fit its input');
    const axes = x.shape.map((d, i) => {
      const end = size[i] === -1 ? d : begin[i] + size[i];
      if (begin[i] < 0 || end > d || end <= begin[i]) unsupported(`it slices [${begin[i]}, ${end}) of ${d}`);
      return { begin: begin[i], end, stride: 1, shrink: false };
    });
    return this.sliced(node, x, axes);
  }

  /** StridedSlice with positive strides, no ellipsis and no new axes. */
  private stridedSlice(node: GraphNode): Tensor {
    const [x, beginInput, endInput, stridesInput] = this.inputCount(node, 4);
    const [begin, end, strides] = [
      intsOf(beginInput, 'its begin'),
      intsOf(endInput, 'its end'),
      intsOf(stridesInput, 'its strides'),
    ];
    const mask = (name: string) => attrInt(node, name) ?? 0;
    if (mask('ellipsis_mask') !== 0 || mask('new_axis_mask') !== 0) unsupported('it uses an ellipsis or new axes');
    const rank = x.shape.length;
    if (begin.length > rank || end.length !== begin.length || strides.length !== begin.length) {
      unsupported('its begin, end and strides do not fit its input');
    }
    const axes = x.shape.map((d, i) => {
      if (i >= begin.length) return { begin: 0, end: d, stride: 1, shrink: false };
      const bit = 1 << i;
      const stride = strides[i];
      if (stride <= 0) unsupported(`it has the stride ${stride}`);
      const at = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
      if (mask('shrink_axis_mask') & bit) {
        const index = begin[i] < 0 ? begin[i] + d : begin[i];
        if (index < 0 || index >= d) unsupported(`it takes index ${begin[i]} of ${d}`);
        return { begin: index, end: index + 1, stride: 1, shrink: true };
      }
      const from = mask('begin_mask') & bit ? 0 : at(begin[i]);
      const to = mask('end_mask') & bit ? d : at(end[i]);
      if (to <= from) unsupported(`it slices [${from}, ${to}) of ${d}: nothing`);
      return { begin: from, end: to, stride, shrink: false };
    });
    return this.sliced(node, x, axes);
  }

  private sliced(node: GraphNode, x: Tensor, axes: SliceAxis[]): Tensor {
    const lengths = axes.map((a) => Math.ceil((a.end - a.begin) / a.stride));
    const shape = lengths.filter((_, i) => !axes[i].shrink);
    if (x.data) return { shape, data: gather(x as Constant, axes, lengths), dtype: x.dtype, nchw: false };
    if (x.dtype !== 'float32') unsupported('it computes on integers');
    const shrinks = axes.some((a) => a.shrink);
    const nchw = x.nchw && !shrinks;
    const cut = axes.map((a, i) => ({ ...a, axis: i })).filter((_, i) => lengths[i] !== x.shape[i]);
    let name = nchw ? x.name! : this.tf(x);
    if (cut.length > 0) {
      const out = shrinks ? this.graph.fresh(`${node.name}/slice`) : node.name;
      name = this.graph.node(
        'Slice',
        [
          name,
          this.graph.int64s(
            'starts',
            cut.map((a) => a.begin),
          ),
          this.graph.int64s(
            'ends',
            cut.map((a) => a.end),
          ),
          this.graph.int64s(
            'axes',
            cut.map((a) => (nchw ? NCHW_AXIS[a.axis] : a.axis)),
          ),
          this.graph.int64s(
            'steps',
            cut.map((a) => a.stride),
          ),
        ],
        out,
      );
    }
    if (shrinks) name = this.reshapeNode(name, shape, node.name);
    else if (cut.length === 0) return { ...x, shape };
    return this.made(name, shape, nchw);
  }

  /** TF's resizes as tfjs computes them: asymmetric, align_corners or half-pixel centres. */
  private resize(node: GraphNode, bilinear: boolean): Tensor {
    const [x, sizeInput] = this.inputCount(node, 2);
    const size = intsOf(sizeInput, 'its size');
    if (x.shape.length !== 4 || size.length !== 2) unsupported('it does not resize a map to a height and width');
    const shape = checkShape([x.shape[0], size[0], size[1], x.shape[3]]);
    const alignCorners = attrBool(node, 'align_corners');
    const halfPixel = attrBool(node, 'half_pixel_centers');
    if (alignCorners && halfPixel) unsupported('it both aligns corners and centres half pixels');
    const coordinates = alignCorners ? 'align_corners' : halfPixel ? 'half_pixel' : 'asymmetric';
    const attributes = [
      str('mode', bilinear ? 'linear' : 'nearest'),
      str('coordinate_transformation_mode', coordinates),
    ];
    // Nearest: TF floors the source coordinate, and rounds it (halves up) when aligning corners.
    // With half-pixel centres it floors (x + ½)·scale: ONNX's half-pixel coordinate is ½ less,
    // rounded halves up (ORT deprecates the "tf_half_pixel_for_nn" that says it directly).
    if (!bilinear) attributes.push(str('nearest_mode', alignCorners || halfPixel ? 'round_prefer_ceil' : 'floor'));
    const sizes = this.graph.int64s('sizes', [shape[0], shape[3], shape[1], shape[2]]);
    const name = this.graph.node('Resize', [this.chw(x), '', '', sizes], node.name, attributes);
    return this.made(name, shape, true);
  }

  /** TF's DepthToSpace on NHWC is ONNX's DCR order on NCHW, and SpaceToDepth its inverse. */
  private depthToSpace(node: GraphNode, op: 'DepthToSpace' | 'SpaceToDepth'): Tensor {
    const [x] = this.inputCount(node, 1);
    if (!isNhwc(node)) unsupported('its data format is not NHWC');
    if (x.shape.length !== 4) unsupported(`its input has rank ${x.shape.length}`);
    const block = attrInt(node, 'block_size') ?? 0;
    const [n, h, w, c] = x.shape;
    const shape =
      op === 'DepthToSpace'
        ? [n, h * block, w * block, c / (block * block)]
        : [n, h / block, w / block, c * block * block];
    if (block < 2 || !shape.every(Number.isInteger))
      unsupported(`its block ${block} does not fit ${JSON.stringify(x.shape)}`);
    const attributes = [int('blocksize', block)];
    if (op === 'DepthToSpace') attributes.push(str('mode', 'DCR'));
    return this.made(this.graph.node(op, [this.chw(x)], node.name, attributes), shape, true);
  }
}

interface FusedOps {
  bias?: string;
  activation?: string;
  prelu?: Tensor;
  alpha?: number;
}

const NO_FUSED_OPS: FusedOps = {};

interface SliceAxis {
  begin: number;
  end: number;
  stride: number;
  shrink: boolean;
}

// ---------------------------------------------------------------- attributes

function decode(base64: string): string {
  return Buffer.from(base64, 'base64').toString('utf8');
}

function attr(node: GraphNode, name: string): AttrValue | undefined {
  return node.attr?.[name];
}

function attrFloat(node: GraphNode, name: string): number | undefined {
  const value = attr(node, name)?.f;
  return value === undefined ? undefined : Number(value);
}

function attrInt(node: GraphNode, name: string): number | undefined {
  const value = attr(node, name)?.i;
  return value === undefined ? undefined : Number(value);
}

function attrBool(node: GraphNode, name: string): boolean {
  return attr(node, name)?.b === true;
}

function isNhwc(node: GraphNode): boolean {
  const format = attr(node, 'data_format')?.s;
  return format === undefined || decode(format) === 'NHWC';
}

/** A 4-D NHWC attribute's height and width (strides, dilations, ksize); 1, 1 when absent. */
function spatial(node: GraphNode, name: string): [number, number] {
  const list = attr(node, name)?.list?.i?.map(Number) ?? [1, 1, 1, 1];
  if (list.length !== 4 || list[0] !== 1 || list[3] !== 1 || !list.every((v) => Number.isSafeInteger(v) && v >= 1)) {
    unsupported(`it has ${name} ${JSON.stringify(list)}`);
  }
  return [list[1], list[2]];
}

/** ONNX pads [top, left, bottom, right] and the output's height and width of a 2-D window: SAME, VALID or EXPLICIT. */
function windowPads(
  node: GraphNode,
  size: [number, number],
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
): { pads: number[]; size: [number, number] } {
  const padding = decode(attr(node, 'padding')?.s ?? '');
  const explicit = attr(node, 'explicit_paddings')?.list?.i?.map(Number) ?? [];
  const before: number[] = [];
  const after: number[] = [];
  const out = [0, 1].map((a) => {
    const extent = (kernel[a] - 1) * dilations[a] + 1;
    let [b, e] = [0, 0];
    if (padding === 'SAME') {
      // TensorFlow puts the odd pixel at the end.
      const total = Math.max((Math.ceil(size[a] / strides[a]) - 1) * strides[a] + extent - size[a], 0);
      [b, e] = [Math.floor(total / 2), total - Math.floor(total / 2)];
    } else if (padding === 'EXPLICIT') {
      [b, e] = [explicit[2 + 2 * a] ?? -1, explicit[3 + 2 * a] ?? -1];
      if (b < 0 || e < 0) unsupported(`it has the explicit paddings ${JSON.stringify(explicit)}`);
    } else if (padding !== 'VALID') {
      unsupported(`it has the padding "${padding}"`);
    }
    before.push(b);
    after.push(e);
    const length = Math.floor((size[a] + b + e - extent) / strides[a]) + 1;
    if (!(length >= 1)) unsupported(`its window of ${extent} does not fit ${size[a]} pixels`);
    return length;
  });
  return { pads: [...before, ...after], size: [out[0], out[1]] };
}

// ---------------------------------------------------------------- constants

function constant(t: Tensor): Constant {
  if (!t.data) unsupported('it needs a tensor that is neither computed nor constant');
  return t as Constant;
}

function intConstant(values: number[], shape: number[]): Tensor {
  return { shape, data: Int32Array.from(values), dtype: 'int32', nchw: false };
}

/** A constant's values as integers (axes, sizes, paddings): what a converted graph computes them from must be constant. */
function intsOf(t: Tensor, what: string): number[] {
  if (!t.data) unsupported(`${what} is computed, not constant`);
  const values = Array.from(t.data);
  if (!values.every(Number.isSafeInteger)) unsupported(`${what} is not whole numbers`);
  return values;
}

function scalarOf(t: Tensor, what: string): number {
  if (!t.data || t.data.length !== 1) unsupported(`${what} is not one constant number`);
  return t.data[0];
}

function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) unsupported(`it has the axis ${axis} on a tensor of rank ${rank}`);
  return a;
}

/** A Reshape target with its -1 worked out. */
function resolveShape(target: number[], from: number[]): number[] {
  const unknown = target.filter((d) => d === -1).length;
  if (unknown > 1 || target.some((d) => d < -1)) unsupported(`it reshapes to ${JSON.stringify(target)}`);
  if (unknown === 0) return target;
  const known = product(target.filter((d) => d !== -1));
  const total = product(from);
  if (known === 0 || total % known !== 0)
    unsupported(`it reshapes ${JSON.stringify(from)} to ${JSON.stringify(target)}`);
  return target.map((d) => (d === -1 ? total / known : d));
}

/**
 * The shape, refused unless every size is a positive whole number (or zero, for a constant) and
 * the tensor stays below MAX_TENSOR_VALUES.
 */
function checkShape(shape: number[], empty = false): number[] {
  const least = empty ? 0 : 1;
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= least))
    unsupported(`it makes a tensor of shape ${JSON.stringify(shape)}`);
  if (product(shape) > MAX_TENSOR_VALUES)
    unsupported(`it makes a tensor of ${product(shape)} values ${JSON.stringify(shape)}`);
  return shape;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** NumPy broadcasting; refused when the shapes do not broadcast. */
function broadcast(shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const dims = shapes.map((s) => s[s.length - rank + i] ?? 1);
    const wide = dims.filter((d) => d !== 1);
    if (wide.some((d) => d !== wide[0]))
      unsupported(`it combines the shapes ${shapes.map((s) => JSON.stringify(s)).join(' and ')}`);
    out.push(wide[0] ?? 1);
  }
  return out;
}

/** Elementwise arithmetic of two constants (shape arithmetic), when one is a scalar or both have one shape. */
function foldBinary(op: string, a: Constant, b: Constant): Tensor | undefined {
  const f: Record<string, ((x: number, y: number) => number) | undefined> = {
    Add: (x, y) => x + y,
    Sub: (x, y) => x - y,
    Mul: (x, y) => x * y,
    Max: Math.max,
    Min: Math.min,
    FloorDiv: (x, y) => Math.floor(x / y),
    Div: a.dtype === 'float32' ? (x, y) => x / y : undefined,
  };
  const fn = f[op];
  const same = a.shape.join() === b.shape.join();
  if (!fn || a.dtype !== b.dtype || !(same || a.data.length === 1 || b.data.length === 1)) {
    if (a.dtype === 'int32') unsupported(`it computes ${op} on integer tensors`);
    return undefined;
  }
  const shape = broadcast([a.shape, b.shape]);
  const length = Math.max(a.data.length, b.data.length);
  const data = a.dtype === 'float32' ? new Float32Array(length) : new Int32Array(length);
  for (let i = 0; i < length; i++)
    data[i] = fn(a.data[a.data.length === 1 ? 0 : i], b.data[b.data.length === 1 ? 0 : i]);
  return { shape, data, dtype: a.dtype, nchw: false };
}

/** A constant's values with its axes permuted. */
function permute(data: Float32Array | Int32Array, shape: number[], perm: number[]): Float32Array | Int32Array {
  const rank = shape.length;
  const out = data instanceof Float32Array ? new Float32Array(data.length) : new Int32Array(data.length);
  const strides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1];
  const outShape = perm.map((p) => shape[p]);
  const step = perm.map((p) => strides[p]);
  const index = new Array<number>(rank).fill(0);
  let source = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = data[source];
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]++;
      source += step[axis];
      if (index[axis] < outShape[axis]) break;
      source -= step[axis] * index[axis];
      index[axis] = 0;
    }
  }
  return out;
}

/** Constants joined on `axis`. */
function join(parts: Constant[], axis: number, shape: number[]): Tensor {
  const dtype = parts[0].dtype;
  const out = dtype === 'float32' ? new Float32Array(product(shape)) : new Int32Array(product(shape));
  const outer = product(shape.slice(0, axis));
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const chunk = product(p.shape.slice(axis));
      out.set(p.data.subarray(o * chunk, (o + 1) * chunk), at);
      at += chunk;
    }
  }
  return { shape, data: out, dtype, nchw: false };
}

/** A constant's slice. */
function gather(x: Constant, axes: SliceAxis[], lengths: number[]): Float32Array | Int32Array {
  const total = product(lengths);
  const out = x.data instanceof Float32Array ? new Float32Array(total) : new Int32Array(total);
  const strides = new Array<number>(x.shape.length).fill(1);
  for (let i = x.shape.length - 2; i >= 0; i--) strides[i] = strides[i + 1] * x.shape[i + 1];
  const index = new Array<number>(x.shape.length).fill(0);
  for (let i = 0; i < total; i++) {
    let source = 0;
    for (let a = 0; a < axes.length; a++) source += (axes[a].begin + index[a] * axes[a].stride) * strides[a];
    out[i] = x.data[source];
    for (let a = axes.length - 1; a >= 0; a--) {
      if (++index[a] < lengths[a]) break;
      index[a] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------- running it

/**
 * The same GraphModel on onnxruntime when every node its layers need converts: same key,
 * layers, preprocessing and so on, with `run` on ORT; otherwise why it stays on TensorFlow.js.
 * Each layer's shape must be what tfjs' shape rules say (where they can tell), what ORT infers,
 * and, when a pass fits `trialPassBytes` (default TRIAL_PASS_BYTES), what a pass on a blank
 * image gives. The caller disposes the TensorFlow.js model when it is replaced.
 */
export async function graphModelToOnnxRuntime(
  model: LoadedModel,
  options: { trialPassBytes?: number } = {},
): Promise<(LoadedModel & PassCosts) | { unsupported: string }> {
  if (!model.graphModel) return { unsupported: 'it is not a TensorFlow.js GraphModel' };
  const conversion = graphModelToOnnx(model.graphModel, model.inputSize, model.layers);
  if ('unsupported' in conversion) return conversion;
  return replaceWithConverted(model, conversion, { ...options, graphModel: undefined });
}

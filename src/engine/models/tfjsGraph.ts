import * as path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import { UserFacingError, errorText } from '../errors';
import { learnShapes, type LayerMeta } from '../layers';
import type { Activation, LoadedModel } from '../model';
import { type Tf, tfjsBackendLabel } from '../tf';
import { type TfjsLayersOptions, fileHandler, readActivations } from './tfjsLayers';

/** A NodeDef as the TF.js converter writes it into model.json. */
export interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, AttrValue | undefined>;
}

/** A NodeDef attribute in protobuf's JSON form: strings base64, 64-bit integers decimal strings. */
export interface AttrValue {
  s?: string;
  i?: string | number;
  f?: number;
  b?: boolean;
  type?: string;
  list?: { i?: (string | number)[]; s?: string[] };
  tensor?: { tensorShape?: { dim?: { size?: string | number }[] } };
}

/** Ops whose outputs are worth showing: computation on the image, not constants or shape bookkeeping. */
const TAPPED_OPS = new Set([
  'Conv2D',
  'Conv2DBackpropInput',
  'DepthwiseConv2d',
  'DepthwiseConv2dNative',
  '_FusedConv2D',
  'FusedDepthwiseConv2dNative',
  'Relu',
  'Relu6',
  'LeakyRelu',
  'Prelu',
  'Elu',
  'Selu',
  'Sigmoid',
  'Tanh',
  'Swish',
  'MaxPool',
  'AvgPool',
  'Add',
  'AddV2',
  'AddN',
  'Mul',
  'BiasAdd',
  'ConcatV2',
  'FusedBatchNorm',
  'FusedBatchNormV2',
  'FusedBatchNormV3',
  'Mean',
  'Max',
  'MatMul',
  '_FusedMatMul',
  'Softmax',
  'Pad',
  'PadV2',
  'MirrorPad',
  'Reshape',
  'Squeeze',
  'ResizeBilinear',
  'ResizeNearestNeighbor',
]);

/** Ops that make `execute` refuse the graph: it must run with `executeAsync`. */
const ASYNC_OPS = new Set([
  'Switch',
  'Merge',
  'Enter',
  'Exit',
  'NextIteration',
  'LoopCond',
  'If',
  'StatelessIf',
  'While',
  'StatelessWhile',
  'NonMaxSuppressionV2',
  'NonMaxSuppressionV3',
  'NonMaxSuppressionV4',
  'NonMaxSuppressionV5',
  'Where',
  'ListDiff',
]);

const DEFAULT_INPUT_SIZE = 224;

/** "conv/Relu:0" → "conv/Relu"; control inputs ("^name") are not data and give undefined. */
export function producer(input: string): string | undefined {
  if (input.startsWith('^')) return undefined;
  const colon = input.lastIndexOf(':');
  return colon > 0 && /^\d+$/.test(input.slice(colon + 1)) ? input.slice(0, colon) : input;
}

/** The nodes that compute on `inputName`'s data, in topological order (see `topological`). */
function nodesFromInput(nodes: GraphNode[], inputName: string): GraphNode[] {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const inputsOf = (node: GraphNode): string[] =>
    (node.input ?? []).map(producer).filter((name): name is string => name !== undefined && byName.has(name));
  const fromInput = new Set([inputName]);
  return topological(nodes, byName).filter((node) => {
    if (node.name !== inputName && inputsOf(node).some((name) => fromInput.has(name))) fromInput.add(node.name);
    return fromInput.has(node.name) && node.name !== inputName;
  });
}

/**
 * Every node, each after the nodes it reads. model.json keeps the GraphDef's order, which is
 * usually but not always topological: a depth-first post-order visit in file order keeps it
 * where it is valid and fixes it where not (a cycle, NextIteration in loops, is broken where
 * it is met). Iterative: deep graphs would overflow the call stack.
 */
export function topological(nodes: readonly GraphNode[], byName: Map<string, GraphNode>): GraphNode[] {
  const order: GraphNode[] = [];
  const seen = new Set<string>();
  for (const root of nodes) {
    if (seen.has(root.name)) continue;
    seen.add(root.name);
    const stack: { node: GraphNode; next: number }[] = [{ node: root, next: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const inputs = top.node.input ?? [];
      if (top.next < inputs.length) {
        const child = byName.get(producer(inputs[top.next++]) ?? '');
        if (child && !seen.has(child.name)) {
          seen.add(child.name);
          stack.push({ node: child, next: 0 });
        }
      } else {
        order.push(top.node);
        stack.pop();
      }
    }
  }
  return order;
}

/** Drops the batch axis: [1,H,W,C] → [H,W,C], [1,N] → [N]. */
function withoutBatch(shape: number[]): number[] {
  return shape.length >= 2 ? shape.slice(1) : shape;
}

/** Loads a TF.js GraphModel (the TF converter's output) so one call returns every interesting node's output. */
export async function loadTfjsGraphModel(
  tf: Tf,
  options: Omit<TfjsLayersOptions, 'modelJsonPath'> & { modelJsonPath: string },
): Promise<LoadedModel> {
  const fileName = path.basename(options.modelJsonPath);
  const handler = fileHandler(options.modelJsonPath);
  // The handler always has load(); tfjs' IOHandler type marks it optional.
  const artifacts = await handler.load!();
  const topology = artifacts.modelTopology as { node?: unknown } | undefined;
  if (!topology || !Array.isArray(topology.node)) {
    throw new UserFacingError(`${fileName} is not a TF.js GraphModel (its modelTopology has no node list).`);
  }
  const nodes = (topology.node as GraphNode[]).filter((n) => typeof n?.name === 'string' && typeof n.op === 'string');

  let model: GraphModel;
  try {
    // The artifacts are already read: hand them over rather than reading the files again.
    model = await tf.loadGraphModel({ load: () => Promise.resolve(artifacts) });
  } catch (error) {
    throw new UserFacingError(`${fileName} could not be loaded as a TF.js GraphModel.`, errorText(error));
  }

  try {
    return await wrapGraphModel(tf, model, nodes, fileName, options);
  } catch (error) {
    model.dispose();
    if (error instanceof UserFacingError) throw error;
    throw new UserFacingError(`${fileName} could not be run as a TF.js GraphModel.`, errorText(error));
  }
}

async function wrapGraphModel(
  tf: Tf,
  model: GraphModel,
  nodes: GraphNode[],
  fileName: string,
  options: Omit<TfjsLayersOptions, 'modelJsonPath'>,
): Promise<LoadedModel> {
  const inputs = model.inputs;
  // An unknown shape is taken for NHWC RGB, the usual image input.
  const inputShape = inputs[0]?.shape ?? [-1, -1, -1, 3];
  if (inputs.length !== 1 || inputShape.length !== 4) {
    const shapes = inputs.map((i) => `${i.name} ${JSON.stringify(i.shape ?? 'unknown')}`).join(', ');
    throw new UserFacingError(
      `${fileName}: the model must take one image input of rank 4 (N,H,W,C); it takes ${shapes || 'none'}.`,
    );
  }
  const inputName = inputs[0].name;
  const [, fixedHeight, fixedWidth, channels] = inputShape;
  if (!(channels > 0)) {
    throw new UserFacingError(
      `${fileName}: the model's input has no fixed channel count (${JSON.stringify(inputShape)}).`,
    );
  }
  // -1 (or an unknown size) means any size: run at the asked one.
  const height = fixedHeight > 0 ? fixedHeight : (options.inputSize?.height ?? DEFAULT_INPUT_SIZE);
  const width = fixedWidth > 0 ? fixedWidth : (options.inputSize?.width ?? DEFAULT_INPUT_SIZE);

  const needsAsync = nodes.some((node) => ASYNC_OPS.has(node.op));
  const execute = async (x: tfc.Tensor, names: string[]): Promise<tfc.Tensor[]> => {
    const feed = { [inputName]: x };
    const out = needsAsync ? await model.executeAsync(feed, names) : model.execute(feed, names);
    return Array.isArray(out) ? out : [out];
  };

  // Shapes, and which outputs are float maps worth showing, from the graph itself: each op's
  // shape rule from the input's size, the weights' shapes and the constants (inferShapes). No
  // pass runs at load: a blank pass would cost what the user's pass costs, before the budget is
  // checked. A shape the rules cannot tell (an op they do not know, a size computed from the
  // data) is listed empty, counted large by the budget, and filled in by the first pass.
  const inferred = inferShapes(nodes, inputName, [1, height, width, channels], model.weights);
  const tapped = nodesFromInput(nodes, inputName).filter((node) => TAPPED_OPS.has(node.op));
  checkOps(model, nodes, tapped, fileName);
  const layers: LayerMeta[] = [];
  for (const node of tapped) {
    const info = inferred.get(node.name);
    if (info?.dtype !== undefined && info.dtype !== 'DT_FLOAT') continue;
    if (info?.shape?.includes(0)) continue;
    layers.push({ name: node.name, op: node.op, shape: info?.shape ? withoutBatch(info.shape) : [] });
  }
  const unknown = layers.filter((l) => l.shape.length === 0);
  return {
    key: options.key,
    summary: { ...options.summary, inputShape: [height, width, channels] },
    inputSize: { height, width, channels },
    preprocessing: options.preprocessing,
    inputName,
    backend: tfjsBackendLabel(tf),
    // The engine converts it to ONNX from these (tfjsGraphToOnnx.ts): weights as tfjs decoded them.
    graphModel: { nodes, input: inputName, weights: model.weights },
    layers,
    async run(input: Float32Array): Promise<Map<string, Activation>> {
      const x = tf.tensor4d(input, [1, height, width, channels]);
      try {
        const results = await execute(
          x,
          layers.map((layer) => layer.name),
        );
        // A node whose type the graph did not say is shown as float32 maps all the same.
        const floats = results.map((t) => (t.dtype === 'float32' ? t : tf.cast(t, 'float32')));
        tf.dispose(results.filter((t, i) => t !== floats[i]));
        const activations = await readActivations(tf, layers, floats, withoutBatch);
        learnShapes(unknown, activations);
        return activations;
      } finally {
        x.dispose();
      }
    },
    dispose() {
      model.dispose();
    },
  };
}

/** The graph as tfjs-converter maps it: a node whose op it cannot run has no category. */
interface MappedGraph {
  executor?: { graph?: { nodes?: Record<string, { op?: string; category?: string } | undefined> } };
}

/**
 * Refuses, at load, a graph whose pass needs an op TensorFlow.js cannot run: tfjs-converter
 * says so only when the op runs (an op on a branch never run is fine), and no pass runs at
 * load. The nodes a pass over `tapped` runs are theirs and everything they read. tfjs'
 * own mapping of the graph tells which ops it lacks (a node it maps to no category).
 */
function checkOps(model: GraphModel, nodes: GraphNode[], tapped: GraphNode[], fileName: string): void {
  const mapped = (model as unknown as MappedGraph).executor?.graph?.nodes;
  if (!mapped) return; // another tfjs version: the first pass says it instead
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const needed = new Set(tapped.map((node) => node.name));
  const stack = [...needed];
  for (let name = stack.pop(); name !== undefined; name = stack.pop()) {
    for (const input of byName.get(name)?.input ?? []) {
      const source = input.startsWith('^') ? input.slice(1) : producer(input);
      if (source !== undefined && byName.has(source) && !needed.has(source)) {
        needed.add(source);
        stack.push(source);
      }
    }
  }
  const lacking = [...needed].filter((name) => mapped[name] && mapped[name].category === undefined);
  if (lacking.length === 0) return;
  const ops = [...new Set(lacking.map((name) => byName.get(name)!.op))];
  throw new UserFacingError(
    `${fileName} uses the TensorFlow op${ops.length === 1 ? '' : 's'} ${ops.map((op) => `"${op}"`).join(', ')}, which TensorFlow.js cannot run.`,
    `Nodes: ${lacking
      .slice(0, 10)
      .map((name) => `${name} (${byName.get(name)!.op})`)
      .join(
        ', ',
      )}${lacking.length > 10 ? '…' : ''}. tfjs-converter has no kernel for ${ops.length === 1 ? 'this op' : 'these ops'}.`,
  );
}

// ---------------------------------------------------------------- shapes from the graph

/** What the graph tells of a node's first output without running it. */
interface Inferred {
  /** With the batch axis; undefined: the rules cannot tell. */
  shape?: number[];
  /** TensorFlow's name for its type (DT_FLOAT, DT_INT32…); undefined: not said. */
  dtype?: string;
  /** The values of a small integer tensor (axes, paddings, target shapes, sizes), when known. */
  value?: number[];
}

/** Ops whose output is their first input's shape and type. */
const SAME_SHAPE = new Set([
  'Identity',
  'Snapshot',
  'StopGradient',
  'PreventGradient',
  'Relu',
  'Relu6',
  'LeakyRelu',
  'Elu',
  'Selu',
  'Sigmoid',
  'Tanh',
  'Swish',
  '_FusedSwish',
  'Softmax',
  'LogSoftmax',
  'Softplus',
  'Softsign',
  'Neg',
  'Abs',
  'Sqrt',
  'Rsqrt',
  'Square',
  'Exp',
  'Log',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Reciprocal',
  'Erf',
  'Cast',
  'BiasAdd',
  'ClipByValue',
  'FusedBatchNorm',
  'FusedBatchNormV2',
  'FusedBatchNormV3',
  'LRN',
]);

/** Elementwise ops on two or more inputs: NumPy broadcasting. */
const BROADCAST = new Set([
  'Add',
  'AddV2',
  'AddN',
  'Sub',
  'Mul',
  'Div',
  'RealDiv',
  'DivNoNan',
  'FloorDiv',
  'Maximum',
  'Minimum',
  'Pow',
  'SquaredDifference',
  'Prelu',
]);

const REDUCTIONS = new Set(['Mean', 'Max', 'Min', 'Sum', 'Prod']);

/** The largest constant read for its values (axes, paddings, shapes are a few numbers). */
const MAX_CONSTANT_VALUES = 64;

/**
 * Each node's output shape (input 0 of `inputName` fed as `inputShape`), type and, for small
 * integer constants, values, by name: the usual ops of a converted CNN (convolutions, pooling,
 * elementwise and broadcasting ops, reductions, MatMul, concatenation, padding, reshapes,
 * resizes). An op not known here, or an input of unknown shape, leaves the shape undefined.
 */
function inferShapes(
  nodes: readonly GraphNode[],
  inputName: string,
  inputShape: number[],
  weights: Record<string, tfc.Tensor[] | undefined>,
): Map<string, Inferred> {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const inferred = new Map<string, Inferred>();
  const infer = (node: GraphNode): Inferred => {
    const dtype = attrType(node);
    if (node.name === inputName) return { shape: inputShape, dtype };
    if (node.op === 'Const') {
      const weight = weights[node.name]?.[0];
      const small = weight && weight.dtype === 'int32' && weight.size <= MAX_CONSTANT_VALUES;
      const declared = node.attr?.value?.tensor?.tensorShape?.dim?.map((d) => int(d.size ?? 0));
      return {
        shape: weight?.shape ?? declared,
        dtype,
        value: small ? Array.from(weight.dataSync()) : undefined,
      };
    }
    // Data inputs only: "^name" is a control edge; "name:1" a node's second output, not followed.
    const inputs = (node.input ?? [])
      .filter((input) => !input.startsWith('^'))
      .map((input) => {
        const name = producer(input);
        const second = name !== undefined && name !== input && !input.endsWith(':0');
        return second ? {} : (inferred.get(name ?? '') ?? {});
      });
    const out: Inferred = { dtype: dtype ?? inputs[0]?.dtype };
    try {
      const shape = shapeRule(node, inputs);
      out.shape = shape?.every((d) => Number.isSafeInteger(d) && d >= 0) ? shape : undefined;
    } catch {
      out.shape = undefined;
    }
    if (node.op === 'Shape' && inputs[0]?.shape) out.value = inputs[0].shape;
    if (node.op === 'Identity') out.value = inputs[0]?.value;
    return out;
  };
  for (const node of topological(nodes, byName)) inferred.set(node.name, infer(node));
  return inferred;
}

/** The node's own type: an op's output type attribute, else its `T`, else a Const's or Placeholder's `dtype`. */
function attrType(node: GraphNode): string | undefined {
  const attr = node.attr ?? {};
  if (node.op === 'Shape') return attr.out_type?.type ?? 'DT_INT32';
  return attr.DstT?.type ?? attr.T?.type ?? attr.dtype?.type;
}

const int = (value: string | number | undefined): number => Number(value);

function ints(attr: AttrValue | undefined): number[] | undefined {
  return attr?.list?.i?.map(int);
}

function text(attr: AttrValue | undefined): string | undefined {
  return attr?.s === undefined ? undefined : Buffer.from(attr.s, 'base64').toString('utf8');
}

/** The output shape of `node` (batch included), or undefined when the rules cannot tell. Throws on what they cannot read. */
function shapeRule(node: GraphNode, inputs: Inferred[]): number[] | undefined {
  const attr = node.attr ?? {};
  const [x, second] = inputs;
  const shape = x?.shape;
  if (SAME_SHAPE.has(node.op)) return shape;
  if (BROADCAST.has(node.op)) return broadcast(inputs.map((i) => i.shape));
  switch (node.op) {
    case 'Conv2D':
    case '_FusedConv2D':
    case 'DepthwiseConv2dNative':
    case 'DepthwiseConv2d':
    case 'FusedDepthwiseConv2dNative': {
      const filter = second?.shape;
      if (!shape || !filter || shape.length !== 4 || filter.length !== 4 || !isNhwc(attr)) return undefined;
      const depthwise = node.op.includes('Depthwise');
      const channels = depthwise ? filter[2] * filter[3] : filter[3];
      return window(shape, [filter[0], filter[1]], attr, channels);
    }
    case 'Conv2DBackpropInput':
      return x?.value;
    case 'MaxPool':
    case 'AvgPool': {
      const ksize = ints(attr.ksize);
      if (!shape || shape.length !== 4 || !ksize || !isNhwc(attr)) return undefined;
      return window(shape, [ksize[1], ksize[2]], attr, shape[3]);
    }
    case 'MatMul':
    case '_FusedMatMul': {
      const b = second?.shape;
      if (!shape || !b || shape.length !== 2 || b.length !== 2) return undefined;
      const rows = attr.transpose_a?.b ? shape[1] : shape[0];
      const cols = attr.transpose_b?.b ? b[0] : b[1];
      return [rows, cols];
    }
    case 'ConcatV2': {
      const axis = inputs.at(-1)?.value?.[0];
      const parts = inputs.slice(0, -1).map((i) => i.shape);
      if (axis === undefined || parts.length === 0 || parts.some((p) => !p)) return undefined;
      const rank = parts[0]!.length;
      const at = axis < 0 ? axis + rank : axis;
      const out = [...parts[0]!];
      out[at] = parts.reduce((total, p) => total + p![at], 0);
      return out;
    }
    case 'Pad':
    case 'PadV2':
    case 'MirrorPad': {
      const pads = second?.value;
      if (!shape || !pads || pads.length !== 2 * shape.length) return undefined;
      return shape.map((d, i) => d + pads[2 * i] + pads[2 * i + 1]);
    }
    case 'Reshape': {
      const target = second?.value;
      if (!shape || !target) return undefined;
      const total = product(shape);
      const known = product(target.filter((d) => d !== -1));
      return target.map((d) => (d === -1 ? total / known : d));
    }
    case 'Squeeze': {
      const dims = ints(attr.squeeze_dims) ?? [];
      if (!shape) return undefined;
      const axes = dims.map((d) => (d < 0 ? d + shape.length : d));
      return shape.filter((d, i) => (axes.length > 0 ? !axes.includes(i) : d !== 1));
    }
    case 'ExpandDims': {
      const axis = second?.value?.[0];
      if (!shape || axis === undefined) return undefined;
      const out = [...shape];
      out.splice(axis < 0 ? axis + shape.length + 1 : axis, 0, 1);
      return out;
    }
    case 'Transpose': {
      const perm = second?.value;
      return shape && perm?.length === shape.length ? perm.map((p) => shape[p]) : undefined;
    }
    case 'ResizeBilinear':
    case 'ResizeNearestNeighbor': {
      const size = second?.value;
      return shape?.length === 4 && size?.length === 2 ? [shape[0], size[0], size[1], shape[3]] : undefined;
    }
    case 'Shape':
      return shape ? [shape.length] : undefined;
  }
  if (REDUCTIONS.has(node.op)) {
    const axes = second?.value;
    if (!shape || !axes) return undefined;
    const reduced = axes.map((a) => (a < 0 ? a + shape.length : a));
    const keep = attr.keep_dims?.b === true;
    return keep ? shape.map((d, i) => (reduced.includes(i) ? 1 : d)) : shape.filter((_, i) => !reduced.includes(i));
  }
  return undefined;
}

/** Channels last: TensorFlow.js runs NHWC only, as a converted model has it. */
function isNhwc(attr: Record<string, AttrValue | undefined>): boolean {
  const format = text(attr.data_format);
  return format === undefined || format === 'NHWC';
}

/** A convolution's or pooling's N×H×W×C output: TensorFlow's SAME, VALID and EXPLICIT padding. */
function window(
  shape: number[],
  kernel: [number, number],
  attr: Record<string, AttrValue | undefined>,
  channels: number,
): number[] | undefined {
  const strides = ints(attr.strides) ?? [1, 1, 1, 1];
  const dilations = ints(attr.dilations) ?? [1, 1, 1, 1];
  const padding = text(attr.padding);
  const explicit = ints(attr.explicit_paddings) ?? [];
  const size = (axis: 1 | 2): number => {
    const stride = strides[axis];
    const extent = (kernel[axis - 1] - 1) * dilations[axis] + 1;
    if (padding === 'SAME') return Math.ceil(shape[axis] / stride);
    if (padding === 'VALID') return Math.ceil((shape[axis] - extent + 1) / stride);
    const [before, after] = [explicit[2 * axis] ?? 0, explicit[2 * axis + 1] ?? 0];
    return Math.floor((shape[axis] + before + after - extent) / stride) + 1;
  };
  if (padding !== 'SAME' && padding !== 'VALID' && padding !== 'EXPLICIT') return undefined;
  return [shape[0], size(1), size(2), channels];
}

/** NumPy broadcasting of known shapes; undefined when one is unknown. */
function broadcast(shapes: (number[] | undefined)[]): number[] | undefined {
  if (shapes.length === 0 || shapes.some((s) => !s)) return undefined;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const dims = shapes.map((s) => s![s!.length - rank + i] ?? 1);
    const wide = dims.filter((d) => d !== 1);
    if (wide.some((d) => d !== wide[0])) throw new Error(`shapes ${JSON.stringify(shapes)} do not broadcast`);
    out.push(wide[0] ?? 1);
  }
  return out;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

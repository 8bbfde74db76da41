import * as path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import { UserFacingError, errorText } from '../errors';
import type { LayerMeta } from '../layers';
import type { Activation, LoadedModel } from '../model';
import { type Tf, tfjsBackendLabel } from '../tf';
import { type TfjsLayersOptions, fileHandler, readActivations } from './tfjsLayers';

/** A NodeDef as the TF.js converter writes it into model.json. */
interface GraphNode {
  name: string;
  op: string;
  input?: string[];
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
function producer(input: string): string | undefined {
  if (input.startsWith('^')) return undefined;
  const colon = input.lastIndexOf(':');
  return colon > 0 && /^\d+$/.test(input.slice(colon + 1)) ? input.slice(0, colon) : input;
}

/**
 * The nodes that compute on `inputName`'s data, in topological order. model.json keeps
 * the GraphDef's order, which is usually but not always topological: a depth-first
 * post-order visit in file order keeps it where it is valid and fixes it where not.
 */
function nodesFromInput(nodes: GraphNode[], inputName: string): GraphNode[] {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const inputsOf = (node: GraphNode): string[] =>
    (node.input ?? []).map(producer).filter((name): name is string => name !== undefined && byName.has(name));
  const order: GraphNode[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  for (const root of nodes) {
    if (state.has(root.name)) continue;
    // Iterative: deep graphs would overflow the call stack.
    const stack: { node: GraphNode; next: number }[] = [{ node: root, next: 0 }];
    state.set(root.name, 'visiting');
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const inputs = inputsOf(top.node);
      if (top.next < inputs.length) {
        const child = byName.get(inputs[top.next++]);
        // A cycle (NextIteration in loops) is broken where it is met.
        if (child && !state.has(child.name)) {
          state.set(child.name, 'visiting');
          stack.push({ node: child, next: 0 });
        }
      } else {
        state.set(top.node.name, 'done');
        order.push(top.node);
        stack.pop();
      }
    }
  }
  const fromInput = new Set([inputName]);
  return order.filter((node) => {
    if (node.name !== inputName && inputsOf(node).some((name) => fromInput.has(name))) fromInput.add(node.name);
    return fromInput.has(node.name) && node.name !== inputName;
  });
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

  // Shapes, and which outputs are float maps worth showing, from one pass on a blank image.
  const tapped = nodesFromInput(nodes, inputName).filter((node) => TAPPED_OPS.has(node.op));
  const zeros = tf.zeros([1, height, width, channels]);
  let outputs: tfc.Tensor[] = [];
  try {
    outputs = await execute(
      zeros,
      tapped.map((node) => node.name),
    );
    const kept = outputs.map((o) => o.dtype === 'float32' && o.size > 0);
    const shapes = outputs.map((o) => withoutBatch(o.shape));
    const layers: LayerMeta[] = [];
    tapped.forEach((node, i) => {
      if (kept[i]) layers.push({ name: node.name, op: node.op, shape: shapes[i] });
    });
    return {
      key: options.key,
      summary: { ...options.summary, inputShape: [height, width, channels] },
      inputSize: { height, width, channels },
      preprocessing: options.preprocessing,
      inputName,
      backend: tfjsBackendLabel(tf),
      layers,
      async run(input: Float32Array): Promise<Map<string, Activation>> {
        const x = tf.tensor4d(input, [1, height, width, channels]);
        try {
          const results = await execute(
            x,
            layers.map((layer) => layer.name),
          );
          return await readActivations(tf, layers, results, withoutBatch);
        } finally {
          x.dispose();
        }
      },
      dispose() {
        model.dispose();
      },
    };
  } finally {
    zeros.dispose();
    tf.dispose(outputs);
  }
}

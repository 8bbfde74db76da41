// Keras' activation functions as ONNX nodes, each defined as the Keras that wrote the file
// computes it (kerasToOnnx.ts: KerasDialect). Names are Keras 3's (keras.activations), with the
// spellings Keras 2 and tfjs use for the same functions.
import type { JsonObject, KerasDialect } from './kerasToOnnx';
import { type GraphBuilder, Unsupported, float, int } from './onnxBuilder';

type Json = JsonObject[string];

export interface ActivationSpec {
  /** Keras 3's name for the function as this file means it. */
  name: string;
}

/** Other spellings of the same function (tfjs' class names, Keras 2 aliases). */
const ALIASES: Record<string, string> = {
  swish: 'silu',
  hard_swish: 'hard_silu',
  hardSigmoid: 'hard_sigmoid',
  logSoftmax: 'log_softmax',
  gelu_new: 'gelu_approximate',
};

const NAMES = new Set([
  'linear',
  'relu',
  'relu6',
  'elu',
  'selu',
  'celu',
  'sigmoid',
  'hard_sigmoid',
  'hard_sigmoid_keras2',
  'hard_silu',
  'silu',
  'gelu',
  'gelu_approximate',
  'mish',
  'softplus',
  'softsign',
  'tanh',
  'exponential',
  'leaky_relu',
  'log_sigmoid',
  'softmax',
  'log_softmax',
  'hard_tanh',
  'tanh_shrink',
  'soft_shrink',
  'hard_shrink',
  'squareplus',
  'sparse_plus',
  'sparse_sigmoid',
  'sparsemax',
]);

/** The activation a layer's config names (a string, or Keras 3's `{class_name: "function", config: "relu"}`). */
export function activationOf(value: Json | undefined, dialect: KerasDialect): ActivationSpec {
  const raw = value === undefined || value === null ? 'linear' : value;
  const text =
    typeof raw === 'object' && raw !== null && !Array.isArray(raw) && typeof raw.config === 'string' ? raw.config : raw;
  if (typeof text !== 'string') throw new Unsupported(`has the activation ${JSON.stringify(raw)}`);
  let name = ALIASES[text] ?? text;
  // Keras 2 and tfjs: clip(0.2x + 0.5, 0, 1); Keras 3: relu6(x + 3) / 6.
  if (name === 'hard_sigmoid' && dialect !== 'keras3') name = 'hard_sigmoid_keras2';
  if (!NAMES.has(name)) throw new Unsupported(`uses the activation "${text}"`);
  return { name };
}

/** `act` applied to tensor `x`, written to `out`; `axis` is the softmax axis in the ONNX tensor. */
export function activation(graph: GraphBuilder, act: ActivationSpec, x: string, out: string, axis: number): string {
  const tmp = (suffix: string) => graph.fresh(`${out}/${suffix}`);
  const k = (suffix: string, value: number) => graph.scalar(tmp(suffix), value);
  const node = (
    op: string,
    inputs: string[],
    name = tmp(op.toLowerCase()),
    attributes = [] as ReturnType<typeof float>[],
  ) => graph.node(op, inputs, name, attributes);
  const clip = (input: string, min: number, max: number, name: string) =>
    graph.node('Clip', [input, k('min', min), k('max', max)], name);
  switch (act.name) {
    case 'linear':
      return x === out ? out : node('Identity', [x], out);
    case 'relu':
      return node('Relu', [x], out);
    case 'relu6':
      return clip(x, 0, 6, out);
    case 'elu':
      return node('Elu', [x], out, [float('alpha', 1)]);
    case 'selu': // ONNX's default alpha and gamma are TF's constants
      return node('Selu', [x], out);
    case 'celu':
      return node('Celu', [x], out, [float('alpha', 1)]);
    case 'sigmoid':
      return node('Sigmoid', [x], out);
    case 'hard_sigmoid':
      return node('HardSigmoid', [x], out, [float('alpha', 1 / 6), float('beta', 0.5)]);
    case 'hard_sigmoid_keras2':
      return node('HardSigmoid', [x], out, [float('alpha', 0.2), float('beta', 0.5)]);
    case 'hard_silu':
      return node('HardSwish', [x], out);
    case 'silu':
      return node('Mul', [x, node('Sigmoid', [x])], out);
    case 'gelu': {
      // x · ½(1 + erf(x / √2))
      const erf = node('Erf', [node('Div', [x, k('sqrt2', Math.SQRT2)])]);
      const cdf = node('Mul', [node('Add', [erf, k('one', 1)]), k('half', 0.5)]);
      return node('Mul', [x, cdf], out);
    }
    case 'gelu_approximate': {
      // ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))
      const cube = node('Mul', [x, node('Mul', [x, x])]);
      const inner = node('Add', [x, node('Mul', [cube, k('c', 0.044715)])]);
      const tanh = node('Tanh', [node('Mul', [inner, k('k', Math.sqrt(2 / Math.PI))])]);
      return node('Mul', [node('Mul', [x, k('half', 0.5)]), node('Add', [tanh, k('one', 1)])], out);
    }
    case 'mish':
      return node('Mul', [x, node('Tanh', [node('Softplus', [x])])], out);
    case 'softplus':
      return node('Softplus', [x], out);
    case 'softsign':
      return node('Softsign', [x], out);
    case 'tanh':
      return node('Tanh', [x], out);
    case 'exponential':
      return node('Exp', [x], out);
    case 'leaky_relu':
      return node('LeakyRelu', [x], out, [float('alpha', 0.2)]);
    case 'log_sigmoid': // −softplus(−x)
      return node('Neg', [node('Softplus', [node('Neg', [x])])], out);
    case 'softmax':
      return node('Softmax', [x], out, [int('axis', axis)]);
    case 'log_softmax':
      return node('LogSoftmax', [x], out, [int('axis', axis)]);
    case 'hard_tanh':
      return clip(x, -1, 1, out);
    case 'tanh_shrink':
      return node('Sub', [x, node('Tanh', [x])], out);
    case 'soft_shrink':
      return node('Shrink', [x], out, [float('bias', 0.5), float('lambd', 0.5)]);
    case 'hard_shrink':
      return node('Shrink', [x], out, [float('bias', 0), float('lambd', 0.5)]);
    case 'squareplus': {
      // (x + √(x² + 4)) / 2
      const root = node('Sqrt', [node('Add', [node('Mul', [x, x]), k('b', 4)])]);
      return node('Mul', [node('Add', [x, root]), k('half', 0.5)], out);
    }
    case 'sparse_plus': {
      // 0 below −1, x above 1, (x + 1)² / 4 between: max(min((x+1)²/4, x), 0) with the ends fixed.
      const shifted = node('Add', [x, k('one', 1)]);
      const quadratic = node('Mul', [node('Mul', [shifted, shifted]), k('quarter', 0.25)]);
      const below = node('Less', [x, k('minus_one', -1)]);
      const above = node('Greater', [x, k('plus_one', 1)]);
      const middle = node('Where', [above, x, quadratic]);
      return node('Where', [below, k('zero', 0), middle], out);
    }
    case 'sparse_sigmoid':
      return clip(node('Mul', [node('Add', [x, k('one', 1)]), k('half', 0.5)]), 0, 1, out);
    case 'sparsemax': {
      // Keras' sparsemax along `axis` as its TensorFlow backend computes it: sort descending, the
      // support {k : 1 + k·z₍ₖ₎ > Σⱼ≤ₖ z₍ⱼ₎}, then τ = (Σ over the support of the running sums − 1) / its
      // size (the paper's τ takes the last running sum alone), and max(z − τ, 0).
      const axisTensor = graph.int64s(tmp('axis'), [axis]);
      const count = node('Gather', [node('Shape', [x]), axisTensor], tmp('count'), [int('axis', 0)]);
      const sorted = graph.nodeOutputs(
        'TopK',
        [x, count],
        [tmp('sorted'), tmp('order')],
        [int('axis', axis), int('largest', 1), int('sorted', 1)],
      )[0];
      const axisScalar = graph.int64Scalar(tmp('axis_scalar'), axis);
      const cumsum = node('CumSum', [sorted, axisScalar]);
      const rank = node(
        'CumSum',
        [node('Add', [node('Mul', [sorted, k('zero', 0)]), k('one', 1)]), axisScalar],
        tmp('rank'),
      );
      const support = node(
        'Cast',
        [node('Greater', [node('Add', [k('one_b', 1), node('Mul', [rank, sorted])]), cumsum])],
        tmp('support'),
        [int('to', 1)],
      );
      const size = node('ReduceSum', [support, axisTensor], tmp('size'), [int('keepdims', 1)]);
      const total = node('ReduceSum', [node('Mul', [cumsum, support]), axisTensor], tmp('total'), [int('keepdims', 1)]);
      const tau = node('Div', [node('Sub', [total, k('one_c', 1)]), size], tmp('tau'));
      return node('Relu', [node('Sub', [x, tau])], out);
    }
    default:
      throw new Unsupported(`uses the activation "${act.name}"`);
  }
}

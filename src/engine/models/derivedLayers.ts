import { onnx } from 'onnx-proto';
import type { Activation } from '../model';
import type { TappedOutput } from './onnx';

/**
 * Layers that are a cheap function of other layers are not fetched from ONNX Runtime: a pass
 * fetches the rest, and these are computed from them when read (a grid, a ranking, an export).
 * Fetching fewer outputs lets ORT fuse a convolution with its batch norm (an output in between
 * stops it), copies less out of the runtime, and keeps a cached image at a fraction of its size:
 * in MobileNetV2 two layers in three are a batch norm's input or an activation of one.
 *
 * A recipe reads only layers of the same graph, with the same shape and layout as its own:
 *   - an activation (Relu, Clip, LeakyRelu) of a layer;
 *   - a batch norm of a layer (per channel: x·a + b), and the other way round: a batch norm's
 *     input from its output, (y − b) / a, so the runtime can fold the norm into the convolution
 *     before it (only where every a is far from 0, so nothing is lost dividing by it);
 *   - the sum (Add) of two layers of the same shape;
 *   - a map padded with a constant on its height and width (Pad, ZeroPadding2D), whose shape is
 *     its source's with the padding added;
 *   - a 1×1 convolution (stride 1, no padding, one group) that widens its input at least
 *     POINTWISE_WIDENING times, as MobileNetV2's expand layers do (they are half of its every-layer
 *     bytes): keeping the narrow input is cheaper than keeping the wide output, and the runtime
 *     then fuses the convolution with its batch norm and activation.
 */
export type Recipe =
  | { kind: 'unary'; source: string; apply: (x: number) => number }
  | { kind: 'affine'; source: string; scale: Float32Array; shift: Float32Array }
  | { kind: 'add'; sources: [string, string] }
  | { kind: 'pad'; source: string; top: number; bottom: number; left: number; right: number; value: number }
  | {
      kind: 'pointwise';
      source: string;
      inputs: number;
      outputs: number;
      /**
       * Each output channel's weights, one per input channel ([outputs][inputs]), and its bias:
       * read from the model the first time the layer is (planning a model reads no weights).
       */
      matrix: () => PointwiseMatrix;
    };

export interface PointwiseMatrix {
  weights: Float32Array;
  bias: Float32Array;
}

/** A derived layer's shape (H×W×C for a map) from its first source's. */
export function derivedShape(recipe: Recipe, source: readonly number[]): number[] {
  if (recipe.kind === 'pointwise') return [...source.slice(0, -1), recipe.outputs];
  if (recipe.kind !== 'pad') return [...source];
  const [height, width, channels] = source;
  return [height + recipe.top + recipe.bottom, width + recipe.left + recipe.right, channels];
}

/**
 * A 1×1 convolution is computed when read only if it has at least this many times as many output
 * channels as input ones: it then saves that much memory, for about as many multiply-adds per
 * value as its input has channels (MobileNetV2's widest, block_1_expand, 19 M: ~20 ms).
 */
const POINTWISE_WIDENING = 2;

/** An inverted batch norm divides by its scale: not when a channel's is this near 0 (relative to the largest). */
const MIN_RELATIVE_SCALE = 1e-3;

/**
 * The recipes of `tapped`'s tensors that can be derived, by tensor; every source a recipe names is
 * tapped, and either fetched or derived itself (no cycle). `shapes`, by layer, where known: a sum
 * is derived only when both addends' shapes are known equal to its own.
 */
export function planDerivations(
  model: onnx.IModelProto,
  tapped: readonly TappedOutput[],
  shapes: ReadonlyMap<string, readonly number[]> = new Map(),
): Map<string, Recipe> {
  const graph = model.graph ?? {};
  const byTensor = new Map<string, TappedOutput>();
  for (const t of tapped) if (!byTensor.has(t.tensor)) byTensor.set(t.tensor, t);
  const constants = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const readersOf = new Map<string, onnx.INodeProto[]>();
  for (const node of graph.node ?? []) {
    for (const input of node.input ?? []) {
      const readers = readersOf.get(input);
      if (readers) readers.push(node);
      else readersOf.set(input, [node]);
    }
  }
  const producers = new Map<string, onnx.INodeProto>();
  for (const node of graph.node ?? []) for (const output of node.output ?? []) producers.set(output, node);
  const recipes = new Map<string, Recipe>();
  // Same layout on both sides: the values line up index by index.
  const alike = (a: string, b: string): boolean => {
    const ta = byTensor.get(a);
    const tb = byTensor.get(b);
    return ta !== undefined && tb !== undefined && a !== b && ta.layout === tb.layout;
  };
  const sameShape = (a: string, b: string): boolean => {
    const sa = shapes.get(byTensor.get(a)?.layer ?? '');
    const sb = shapes.get(byTensor.get(b)?.layer ?? '');
    return sa !== undefined && sb !== undefined && sa.length > 0 && sa.join() === sb.join();
  };

  // Widening 1×1 convolutions from their input first: their batch norm then follows them forward.
  for (const node of graph.node ?? []) {
    if (node.opType !== 'Conv' || (node.domain ?? '') !== '') continue;
    const [x] = node.input ?? [];
    const [y] = node.output ?? [];
    if (!byTensor.has(y) || !alike(x, y)) continue;
    const recipe = pointwiseRecipe(node, x, (name) => constantFloats(name, constants, producers), POINTWISE_WIDENING);
    if (recipe) recipes.set(y, recipe);
  }

  // Then a batch norm's input from its output, so the norm can fold into the op before it; those
  // outputs are then fetched (the forward recipes below never point back at them).
  const fetchedNorms = new Set<string>();
  for (const node of graph.node ?? []) {
    if (node.opType !== 'BatchNormalization' || (node.domain ?? '') !== '') continue;
    const [x] = node.input ?? [];
    const [y] = node.output ?? [];
    if (!alike(x, y) || recipes.has(x)) continue;
    const affine = batchNormAffine(node, constants);
    if (!affine || !invertible(affine.scale)) continue;
    recipes.set(x, {
      kind: 'affine',
      source: y,
      scale: affine.scale.map((a) => 1 / a),
      shift: affine.shift.map((b, c) => -b / affine.scale[c]),
    });
    fetchedNorms.add(y);
  }

  for (const node of graph.node ?? []) {
    const [out] = node.output ?? [];
    if ((node.domain ?? '') !== '' || !byTensor.has(out) || recipes.has(out) || fetchedNorms.has(out)) continue;
    const inputs = node.input ?? [];
    const recipe = folded(
      forwardRecipe(node, inputs, constants, byTensor.get(out)?.layout, readersOf.get(out) ?? []),
      recipes,
    );
    if (!recipe) continue;
    const sources = recipe.kind === 'add' ? recipe.sources : [recipe.source];
    if (!sources.every((s) => alike(s, out))) continue;
    if (recipe.kind === 'add' && !sources.every((s) => sameShape(s, out))) continue;
    recipes.set(out, recipe);
  }
  return recipes;
}

/**
 * A batch norm of a derived 1×1 convolution as one 1×1 convolution on the convolution's input,
 * its weights and bias scaled: one pass over the input when read, not two.
 */
function folded(recipe: Recipe | undefined, recipes: ReadonlyMap<string, Recipe>): Recipe | undefined {
  if (recipe?.kind !== 'affine') return recipe;
  const conv = recipes.get(recipe.source);
  if (conv?.kind !== 'pointwise' || recipe.scale.length !== conv.outputs) return recipe;
  const { scale, shift } = recipe;
  return {
    ...conv,
    matrix: once(() => {
      const { weights, bias } = conv.matrix();
      return {
        weights: weights.map((w, k) => w * scale[Math.floor(k / conv.inputs)]),
        bias: bias.map((b, o) => b * scale[o] + shift[o]),
      };
    }),
  };
}

function forwardRecipe(
  node: onnx.INodeProto,
  inputs: string[],
  constants: ReadonlyMap<string, onnx.ITensorProto>,
  layout: TappedOutput['layout'] | undefined,
  readers: readonly onnx.INodeProto[],
): Recipe | undefined {
  const [x] = inputs;
  switch (node.opType) {
    case 'Pad':
      return layout && readers.every((r) => r.opType === 'Conv')
        ? padRecipe(node, inputs, constants, layout)
        : undefined;
    case 'Relu':
      return { kind: 'unary', source: x, apply: (v) => (v > 0 ? v : 0) };
    case 'LeakyRelu': {
      const alpha = attributeFloat(node, 'alpha') ?? 0.01;
      return { kind: 'unary', source: x, apply: (v) => (v >= 0 ? v : v * alpha) };
    }
    case 'Clip': {
      // Opset 11 on: min and max are optional inputs (constants here); before: attributes.
      const bound = (i: number, attribute: string, fallback: number): number | undefined => {
        const name = inputs[i];
        if (name) {
          const values = floatsOf(constants.get(name));
          return values?.length === 1 ? values[0] : undefined;
        }
        return attributeFloat(node, attribute) ?? fallback;
      };
      const min = bound(1, 'min', -Infinity);
      const max = bound(2, 'max', Infinity);
      if (min === undefined || max === undefined) return undefined;
      return { kind: 'unary', source: x, apply: (v) => (v < min ? min : v > max ? max : v) };
    }
    case 'BatchNormalization': {
      const affine = batchNormAffine(node, constants);
      return affine && { kind: 'affine', source: x, ...affine };
    }
    case 'Add':
      return inputs.length === 2 ? { kind: 'add', sources: [inputs[0], inputs[1]] } : undefined;
    default:
      return undefined;
  }
}

/**
 * A constant Pad of a 4-D map on its height and width only (by `layout`), with constant pads and
 * value: what ZeroPadding2D becomes. Anything else (reflect or edge mode, padding the batch or the
 * channels, cropping with negative pads, pads computed in the graph) is fetched. So is a Pad read
 * by anything but convolutions (the caller checks): not fetched, ONNX Runtime folds it into the op
 * after it, which is exact for a convolution but not for a MaxPool (its pads count as −∞, not 0:
 * ResNet50V2's pool1 came out wrong by up to 0.73 of the layer's range).
 */
function padRecipe(
  node: onnx.INodeProto,
  inputs: string[],
  constants: ReadonlyMap<string, onnx.ITensorProto>,
  layout: TappedOutput['layout'],
): Recipe | undefined {
  const mode = (node.attribute ?? []).find((a) => a.name === 'mode');
  if (mode && new TextDecoder().decode(mode.s ?? new Uint8Array()) !== 'constant') return undefined;
  const [x, padsName, valueName, axes] = inputs;
  if (axes) return undefined;
  const pads = int64sOf(constants.get(padsName ?? ''));
  if (pads?.length !== 8 || pads.some((p) => p < 0)) return undefined;
  // Per axis, its start then (4 on) its end; the spatial axes are 2, 3 (NCHW) or 1, 2 (NHWC).
  const [h, w, others] = layout === 'NCHW' ? [2, 3, [0, 1]] : [1, 2, [0, 3]];
  if (others.some((axis) => pads[axis] !== 0 || pads[axis + 4] !== 0)) return undefined;
  let value = 0;
  if (valueName) {
    const values = floatsOf(constants.get(valueName));
    if (values?.length !== 1) return undefined;
    value = values[0];
  }
  return { kind: 'pad', source: x, top: pads[h], bottom: pads[h + 4], left: pads[w], right: pads[w + 4], value };
}

/**
 * A Conv node as a per-pixel matrix product, when it is one with at least `widening` times as many
 * outputs as inputs: a 1×1 kernel, stride 1, no padding, one group, its weights (and bias, if
 * any) constant float32 of consistent sizes.
 */
function pointwiseRecipe(
  node: onnx.INodeProto,
  source: string,
  constant: (name: string) => Constant | undefined,
  widening: number,
): Extract<Recipe, { kind: 'pointwise' }> | undefined {
  const ints = (name: string): number[] | undefined => {
    const attribute = (node.attribute ?? []).find((a) => a.name === name);
    return attribute ? (attribute.ints ?? []).map(Number) : undefined;
  };
  const group = (node.attribute ?? []).find((a) => a.name === 'group');
  if (group && Number(group.i ?? 1) !== 1) return undefined;
  if (ints('strides')?.some((s) => s !== 1) || ints('pads')?.some((p) => p !== 0)) return undefined;
  const kernelShape = ints('kernel_shape');
  if (kernelShape && (kernelShape.length !== 2 || kernelShape.some((k) => k !== 1))) return undefined;
  // A 1×1 kernel at stride 1 is never padded by SAME; only explicit pads (checked) pad it.
  const [, weightName, biasName] = node.input ?? [];
  const kernel = constant(weightName ?? '');
  if (kernel?.dims.length !== 4 || kernel.dims[2] !== 1 || kernel.dims[3] !== 1) return undefined;
  const [outputs, inputs] = kernel.dims;
  if (inputs < 1 || outputs < widening * inputs) return undefined;
  const biasConstant = biasName ? constant(biasName) : undefined;
  if (biasName && (biasConstant?.dims.length !== 1 || biasConstant.dims[0] !== outputs)) return undefined;
  const matrix = once((): PointwiseMatrix => {
    const weights = kernel.values();
    const bias = biasConstant ? biasConstant.values() : new Float32Array(outputs);
    // The dims were checked; the bytes behind them are the file's word.
    if (weights?.length !== outputs * inputs || bias?.length !== outputs) {
      throw new Error(`derived layer: the 1×1 convolution's weights are not ${outputs}×${inputs} floats`);
    }
    return { weights, bias };
  });
  return { kind: 'pointwise', source, inputs, outputs, matrix };
}

/** `make`'s value, made at the first call. */
function once<T>(make: () => T): () => T {
  let value: { of: T } | undefined;
  return () => (value ??= { of: make() }).of;
}

/** A constant's dims, and its values (computed when asked: a transpose costs a pass over them). */
interface Constant {
  dims: number[];
  values: () => Float32Array | undefined;
}

/**
 * A float32 tensor known before any pass: an initializer, or one transposed by a Transpose node
 * (the Keras converter writes a Keras kernel, HWIO, so: ORT folds it at load).
 */
function constantFloats(
  name: string,
  constants: ReadonlyMap<string, onnx.ITensorProto>,
  producers: ReadonlyMap<string, onnx.INodeProto>,
): Constant | undefined {
  const tensor = constants.get(name);
  if (tensor) {
    // Float32 values held in the model, as many as its dims say: anything else (float16, external
    // data, a short tensor) is not derived from, so reading it later cannot fail.
    if (tensor.dataType !== onnx.TensorProto.DataType.FLOAT) return undefined;
    const dims = (tensor.dims ?? []).map(Number);
    const size = dims.reduce((a, b) => a * b, 1);
    const held = tensor.floatData?.length ? tensor.floatData.length : (tensor.rawData?.byteLength ?? 0) / 4;
    if (held !== size) return undefined;
    return { dims, values: () => floatsOf(tensor) };
  }
  const node = producers.get(name);
  if (node?.opType !== 'Transpose' || (node.domain ?? '') !== '') return undefined;
  // Of an initializer only: nothing deeper is looked through.
  const input = node.input?.[0] ?? '';
  const source = constants.has(input) ? constantFloats(input, constants, producers) : undefined;
  if (!source) return undefined;
  const rank = source.dims.length;
  const permAttribute = (node.attribute ?? []).find((a) => a.name === 'perm');
  // No perm: the axes reversed.
  const perm = permAttribute ? (permAttribute.ints ?? []).map(Number) : [...source.dims.keys()].reverse();
  if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((axis, i) => axis !== i)) return undefined;
  const dims = perm.map((axis) => source.dims[axis]);
  return {
    dims,
    values: () => {
      const from = source.values();
      return from && transposed(from, source.dims, perm);
    },
  };
}

/** `values` of shape `dims` with its axes in the order `perm` gives them (ONNX Transpose). */
function transposed(values: Float32Array, dims: readonly number[], perm: readonly number[]): Float32Array {
  const rank = dims.length;
  const stridesIn = dims.map((_, axis) => dims.slice(axis + 1).reduce((a, b) => a * b, 1));
  const outDims = perm.map((axis) => dims[axis]);
  // Each output axis steps through the input by its axis' stride: an odometer over the output.
  const step = perm.map((axis) => stridesIn[axis]);
  const out = new Float32Array(values.length);
  const index = new Array<number>(rank).fill(0);
  let from = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = values[from];
    let axis = rank - 1;
    for (; axis >= 0 && index[axis] + 1 === outDims[axis]; axis--) {
      from -= index[axis] * step[axis];
      index[axis] = 0;
    }
    if (axis >= 0) {
      index[axis]++;
      from += step[axis];
    }
  }
  return out;
}

/** An int64 initializer's values (small ones: pads, axes); undefined for any other type. */
function int64sOf(tensor: onnx.ITensorProto | undefined): number[] | undefined {
  if (!tensor || tensor.dataType !== onnx.TensorProto.DataType.INT64) return undefined;
  if (tensor.int64Data?.length) return tensor.int64Data.map(Number);
  const raw = tensor.rawData;
  if (!raw || raw.byteLength % 8 !== 0) return undefined;
  const view = new DataView(Uint8Array.from(raw).buffer);
  return Array.from({ length: raw.byteLength / 8 }, (_, i) => Number(view.getBigInt64(i * 8, true)));
}

/** An inference batch norm as y = x·scale + shift per channel, when its statistics are constants. */
function batchNormAffine(
  node: onnx.INodeProto,
  constants: ReadonlyMap<string, onnx.ITensorProto>,
): { scale: Float32Array; shift: Float32Array } | undefined {
  if ((node.output ?? []).filter(Boolean).length !== 1) return undefined; // training mode
  const [, ...named] = node.input ?? [];
  const [gamma, beta, mean, variance] = named.map((name) => floatsOf(constants.get(name)));
  if (!gamma || !beta || !mean || !variance) return undefined;
  const channels = gamma.length;
  if ([beta, mean, variance].some((v) => v.length !== channels)) return undefined;
  const epsilon = attributeFloat(node, 'epsilon') ?? 1e-5;
  const scale = new Float32Array(channels);
  const shift = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const a = gamma[c] / Math.sqrt(variance[c] + epsilon);
    scale[c] = a;
    shift[c] = beta[c] - mean[c] * a;
  }
  return scale.every(Number.isFinite) && shift.every(Number.isFinite) ? { scale, shift } : undefined;
}

function invertible(scale: Float32Array): boolean {
  let largest = 0;
  for (const a of scale) largest = Math.max(largest, Math.abs(a));
  return largest > 0 && scale.every((a) => Math.abs(a) >= largest * MIN_RELATIVE_SCALE);
}

function attributeFloat(node: onnx.INodeProto, name: string): number | undefined {
  const attribute = (node.attribute ?? []).find((a) => a.name === name);
  return attribute?.type === onnx.AttributeProto.AttributeType.FLOAT ? (attribute.f ?? 0) : undefined;
}

/** A float32 initializer's values; undefined for any other type or an external one. */
function floatsOf(tensor: onnx.ITensorProto | undefined): Float32Array | undefined {
  if (!tensor || tensor.dataType !== onnx.TensorProto.DataType.FLOAT) return undefined;
  if (tensor.floatData?.length) return Float32Array.from(tensor.floatData);
  const raw = tensor.rawData;
  if (!raw || raw.byteLength % 4 !== 0) return undefined;
  // Copied: raw bytes inside a larger buffer need not be aligned for a Float32Array view.
  return new Float32Array(Uint8Array.from(raw).buffer);
}

/**
 * The tensors a pass fetches to give `wanted` (tensors): each fetched one as it is, and the
 * sources of each derived one, down to fetched tensors.
 */
export function fetchedFor(wanted: Iterable<string>, recipes: ReadonlyMap<string, Recipe>): Set<string> {
  const fetched = new Set<string>();
  const seen = new Set<string>();
  const pending = [...wanted];
  for (let tensor = pending.pop(); tensor !== undefined; tensor = pending.pop()) {
    if (seen.has(tensor)) continue;
    seen.add(tensor);
    const recipe = recipes.get(tensor);
    if (!recipe) fetched.add(tensor);
    else pending.push(...(recipe.kind === 'add' ? recipe.sources : [recipe.source]));
  }
  return fetched;
}

/**
 * A layer computed from others when its values are read, and not kept: read again after the
 * collector took them, they are computed again (a few milliseconds). Counts no bytes in the cache.
 */
export class DerivedActivation implements Activation {
  readonly derived = true;
  private kept: WeakRef<Float32Array> | undefined;

  constructor(
    public shape: number[],
    readonly layout: Activation['layout'],
    private readonly recipe: Recipe,
    private readonly sources: ReadonlyMap<string, Activation>,
  ) {}

  get data(): Float32Array {
    let values = this.kept?.deref();
    if (!values) {
      values = this.compute();
      this.kept = new WeakRef(values);
    }
    return values;
  }

  private compute(): Float32Array {
    const recipe = this.recipe;
    const source = (tensor: string): Float32Array => {
      const activation = this.sources.get(tensor);
      if (!activation) throw new Error(`derived layer: its source ${tensor} was not computed`);
      return activation.data;
    };
    if (recipe.kind === 'add') {
      const a = source(recipe.sources[0]);
      const b = source(recipe.sources[1]);
      if (a.length !== b.length) throw new Error(`derived layer: adding ${a.length} values to ${b.length}`);
      const sum = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) sum[i] = a[i] + b[i];
      return sum;
    }
    const x = source(recipe.source);
    if (recipe.kind === 'pad') return this.padded(x, recipe);
    if (recipe.kind === 'pointwise') return this.pointwise(x, recipe);
    const y = new Float32Array(x.length);
    if (recipe.kind === 'unary') {
      const f = recipe.apply;
      for (let i = 0; i < x.length; i++) y[i] = f(x[i]);
      return y;
    }
    const { scale, shift } = recipe;
    const channels = scale.length;
    const planar = this.layout === 'chw' && this.shape.length === 3;
    const plane = planar ? this.shape[0] * this.shape[1] : 1;
    if (channels !== (planar ? this.shape[2] : this.shape.at(-1)) || x.length % channels !== 0) {
      throw new Error(`derived layer: ${channels} channel scales for a layer of shape ${this.shape.join('×')}`);
    }
    if (planar) {
      for (let c = 0; c < channels; c++) {
        const a = scale[c];
        const b = shift[c];
        const end = (c + 1) * plane;
        for (let i = c * plane; i < end; i++) y[i] = x[i] * a + b;
      }
    } else {
      for (let i = 0; i < x.length; i++) {
        const c = i % channels;
        y[i] = x[i] * scale[c] + shift[c];
      }
    }
    return y;
  }

  /** Each pixel's `inputs` values of `x` times the weights, plus the bias: `outputs` values. */
  private pointwise(x: Float32Array, conv: Extract<Recipe, { kind: 'pointwise' }>): Float32Array {
    const { inputs, outputs } = conv;
    const [height, width, channels] = this.shape;
    const pixels = height * width;
    if (this.shape.length !== 3 || channels !== outputs || x.length !== pixels * inputs) {
      throw new Error(`derived layer: ${x.length} values into a 1×1 convolution of shape ${this.shape.join('×')}`);
    }
    const y = new Float32Array(pixels * outputs);
    if (this.layout === 'chw') pointwiseChannelsFirst(x, conv, pixels, y);
    else pointwiseChannelsLast(x, conv, pixels, y);
    return y;
  }

  /** `x` (this map without the padding) inside this map's shape, the rest `value`. */
  private padded(x: Float32Array, pad: Extract<Recipe, { kind: 'pad' }>): Float32Array {
    const [height, width, channels] = this.shape;
    const innerHeight = height - pad.top - pad.bottom;
    const innerWidth = width - pad.left - pad.right;
    if (this.shape.length !== 3 || x.length !== innerHeight * innerWidth * channels) {
      throw new Error(`derived layer: ${x.length} values to pad into ${this.shape.join('×')}`);
    }
    const y = new Float32Array(height * width * channels);
    if (pad.value !== 0) y.fill(pad.value);
    if (this.layout === 'chw') {
      for (let c = 0; c < channels; c++) {
        for (let row = 0; row < innerHeight; row++) {
          const from = (c * innerHeight + row) * innerWidth;
          y.set(x.subarray(from, from + innerWidth), (c * height + row + pad.top) * width + pad.left);
        }
      }
    } else {
      const rowValues = innerWidth * channels;
      for (let row = 0; row < innerHeight; row++) {
        const from = row * rowValues;
        y.set(x.subarray(from, from + rowValues), ((row + pad.top) * width + pad.left) * channels);
      }
    }
    return y;
  }
}

// The 1×1 convolution is one matrix product either way round: channels first, the weights
// (outputs × inputs) times the input planes (inputs × pixels); channels last, the input pixels
// (pixels × inputs) times the weights by input (inputs × outputs).

type Pointwise = Extract<Recipe, { kind: 'pointwise' }>;

/** Planes in, planes out: each output plane is its bias plus the input planes, weighted. */
function pointwiseChannelsFirst(x: Float32Array, conv: Pointwise, pixels: number, y: Float32Array): void {
  const { inputs, outputs } = conv;
  const { weights, bias } = conv.matrix();
  for (let o = 0; o < outputs; o++) y.fill(bias[o], o * pixels, (o + 1) * pixels);
  addProduct(weights, x, outputs, inputs, pixels, y);
}

/** Pixel by pixel: each output pixel is the bias plus the weights' rows, weighted by its inputs. */
function pointwiseChannelsLast(x: Float32Array, conv: Pointwise, pixels: number, y: Float32Array): void {
  const { inputs, outputs } = conv;
  const { weights, bias } = conv.matrix();
  const byInput = new Float32Array(inputs * outputs);
  for (let o = 0; o < outputs; o++) for (let i = 0; i < inputs; i++) byInput[i * outputs + o] = weights[o * inputs + i];
  for (let p = 0; p < pixels; p++) y.set(bias, p * outputs);
  addProduct(x, byInput, pixels, inputs, outputs, y);
}

/**
 * c += a · b, all row-major: a is rows × depth, b depth × columns, c rows × columns. Four of the
 * depth a step: a few times faster in V8 than one (block_1_expand, 19 M multiply-adds, in about
 * 15 ms once compiled); the four products are summed in double.
 */
function addProduct(a: Float32Array, b: Float32Array, rows: number, depth: number, columns: number, c: Float32Array) {
  for (let r = 0; r < rows; r++) {
    const out = r * columns;
    const row = r * depth;
    let k = 0;
    for (; k + 4 <= depth; k += 4) {
      const [a0, a1, a2, a3] = [a[row + k], a[row + k + 1], a[row + k + 2], a[row + k + 3]];
      const b0 = k * columns;
      const [b1, b2, b3] = [b0 + columns, b0 + 2 * columns, b0 + 3 * columns];
      for (let j = 0; j < columns; j++) {
        c[out + j] += a0 * b[b0 + j] + a1 * b[b1 + j] + a2 * b[b2 + j] + a3 * b[b3 + j];
      }
    }
    for (; k < depth; k++) {
      const ak = a[row + k];
      const from = k * columns;
      for (let j = 0; j < columns; j++) c[out + j] += ak * b[from + j];
    }
  }
}

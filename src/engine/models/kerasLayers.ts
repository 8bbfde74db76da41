// Each Keras layer class as ONNX nodes (used by kerasToOnnx.ts): from the layer's config (Keras'
// snake_case keys), its weights in Keras' order, and its inputs, it writes the nodes and returns
// its output with the shape Keras gives it. Maps stay channels first inside the graph: a
// transpose of every layer's output back to Keras' order would cost more than the layers.
import { activation, activationOf } from './kerasActivations';
import type { JsonObject, KerasDialect, KerasWeight } from './kerasToOnnx';
import { type Attribute, type GraphBuilder, type Value, float, int, ints, str, unsupported } from './onnxBuilder';

type Json = JsonObject[string];

export interface LayerContext {
  className: string;
  config: JsonObject;
  inputs: Value[];
  /** Constants passed to a Keras 3 op beside its tensors (`x + 3.0`). */
  args: Json[];
  kwargs: JsonObject;
  /** The layer's weights in Keras' order (kernel, bias; gamma, beta, mean, variance…). */
  weights: readonly KerasWeight[];
  /** The name the layer's output should have. */
  out: string;
  graph: GraphBuilder;
  dialect: KerasDialect;
}

type LayerConversion = (c: LayerContext) => Value;

// ---------------------------------------------------------------- config readers

export function num(c: LayerContext, key: string, fallback?: number): number {
  const value = c.config[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) unsupported(`has ${key} ${JSON.stringify(value)}`);
  return value;
}

function bool(c: LayerContext, key: string, fallback: boolean): boolean {
  const value = c.config[key];
  return typeof value === 'boolean' ? value : fallback;
}

function pair(c: LayerContext, key: string, fallback?: [number, number]): [number, number] {
  const value = c.config[key] ?? fallback ?? null;
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number' && v > 0)) {
    return [value[0] as number, value[1] as number];
  }
  if (fallback && value === null) return fallback;
  return unsupported(`has ${key} ${JSON.stringify(value)}`);
}

/** [[top, bottom], [left, right]] from a number, [vertical, horizontal] or the full form. */
function sides(c: LayerContext, key: string): [[number, number], [number, number]] {
  const value = c.config[key];
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (ok(value)) {
    return [
      [value, value],
      [value, value],
    ];
  }
  if (Array.isArray(value) && value.length === 2) {
    const [v, h] = value as unknown[];
    if (ok(v) && ok(h)) {
      return [
        [v, v],
        [h, h],
      ];
    }
    const isPair = (p: unknown): p is [number, number] => Array.isArray(p) && p.length === 2 && p.every(ok);
    if (isPair(v) && isPair(h)) return [v, h];
  }
  return unsupported(`has ${key} ${JSON.stringify(value)}`);
}

function one(inputs: Value[]): Value {
  if (inputs.length !== 1) unsupported(`has ${inputs.length} inputs`);
  return inputs[0];
}

function image(inputs: Value[]): Value {
  const x = one(inputs);
  if (x.shape.length !== 3) unsupported(`takes a tensor of rank ${x.shape.length + 1}, not an image`);
  return x;
}

/** A Keras axis (counting the batch, may be negative) of a tensor of `rank` dimensions (batch included). */
function kerasAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a <= 0 || a >= rank) unsupported(`has axis ${axis}`);
  return a;
}

/** The single axis a layer's config names (`-1`, `3`, `[-1]`, `[3]`). */
function singleAxis(c: LayerContext, key = 'axis', fallback = -1): number {
  const raw = c.config[key] ?? fallback;
  const axis = Array.isArray(raw) && raw.length === 1 ? raw[0] : raw;
  if (typeof axis !== 'number') unsupported(`has ${key} ${JSON.stringify(raw)}`);
  return axis;
}

/** Refuses a layer that normalises other axes than the channels (the last axis) alone. */
function channelsOnly(c: LayerContext, x: Value, what: string): void {
  const raw = c.config.axis ?? -1;
  const axes = Array.isArray(raw) ? raw : [raw];
  if (axes.length !== 1 || typeof axes[0] !== 'number' || !isLastAxis(x, axes[0])) {
    unsupported(`${what} axes ${JSON.stringify(raw)}, not the channels`);
  }
}

/** A Keras axis in the ONNX tensor's layout. */
function onnxAxis(v: Value, axis: number): number {
  const a = kerasAxis(axis, v.shape.length + 1);
  return v.nchw ? [0, 2, 3, 1][a] : a;
}

/** Whether a Keras axis is a map's channel axis (the last). */
function isLastAxis(v: Value, axis: number): boolean {
  return kerasAxis(axis, v.shape.length + 1) === v.shape.length;
}

/** A per-channel constant laid out to broadcast against `v` on its last Keras axis. */
function channelConstant(c: LayerContext, v: Value, base: string, data: Float32Array | number[]): string {
  const n = data.length;
  const dims = v.nchw ? [n, 1, 1] : [n];
  return c.graph.floats(`${c.out}/${base}`, dims, data);
}

function weight(c: LayerContext, index: number, what: string, shape?: (number | undefined)[]): KerasWeight {
  const w = c.weights[index];
  if (!w) unsupported(`needs a ${what} weight, the file has ${c.weights.length} weight arrays`);
  if (shape && (w.shape.length !== shape.length || shape.some((d, i) => d !== undefined && d !== w.shape[i]))) {
    unsupported(`has a ${what} of shape ${JSON.stringify(w.shape)}, not ${JSON.stringify(shape.map((d) => d ?? '?'))}`);
  }
  return w;
}

function expectWeights(c: LayerContext, count: number): void {
  if (c.weights.length !== count) {
    unsupported(`needs ${count} weight arrays, the file has ${c.weights.length}`);
  }
}

// ---------------------------------------------------------------- shapes

/** TF's output size and padding of one spatial axis: "same" puts the odd pixel at the end. */
function windowAxis(padding: Json, size: number, kernel: number, stride: number, dilation: number) {
  const span = (kernel - 1) * dilation + 1;
  if (padding === 'valid') {
    const out = Math.floor((size - span) / stride) + 1;
    if (out < 1) unsupported(`has a window of ${span} on an axis of ${size}`);
    return { out, pads: [0, 0] as [number, number] };
  }
  if (padding !== 'same') unsupported(`has padding ${JSON.stringify(padding)}`);
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + span - size, 0);
  return { out, pads: [Math.floor(total / 2), total - Math.floor(total / 2)] as [number, number] };
}

function window(c: LayerContext, x: Value, kernel: [number, number], strides: [number, number], dilations = [1, 1]) {
  const padding = c.config.padding ?? 'valid';
  const h = windowAxis(padding, x.shape[0], kernel[0], strides[0], dilations[0]);
  const w = windowAxis(padding, x.shape[1], kernel[1], strides[1], dilations[1]);
  return { height: h.out, width: w.out, pads: [h.pads[0], w.pads[0], h.pads[1], w.pads[1]] };
}

function broadcastShapes(shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const dims = shapes.map((s) => s[s.length - rank + i] ?? 1);
    const big = Math.max(...dims);
    if (dims.some((d) => d !== 1 && d !== big)) unsupported(`merges tensors of shapes ${JSON.stringify(shapes)}`);
    out.push(big);
  }
  return out;
}

// ---------------------------------------------------------------- kernels

/**
 * A kernel in the layout ONNX wants, written as Keras stores it plus the nodes that rearrange it:
 * ONNX Runtime folds those constant nodes when it loads the graph (in native code, once), which
 * costs less than rearranging every weight in JavaScript first.
 */
type Kernel = (c: LayerContext, base: string) => string;

/** Keras HWIO → ONNX OIHW (and Conv2DTranspose's [h, w, out, in] → ONNX ConvTranspose's [in, out, h, w]). */
function hwioToOihw(kernel: KerasWeight): Kernel {
  return (c, base) =>
    c.graph.node(
      'Transpose',
      [c.graph.floats(`${c.out}/${base}_keras`, kernel.shape, kernel.data)],
      c.graph.fresh(`${c.out}/${base}`),
      [ints('perm', [3, 2, 0, 1])],
    );
}

/**
 * A depthwise kernel [h, w, channels, multiplier] → a grouped Conv weight [channels·multiplier, 1, h, w]:
 * TF's output channel c·multiplier + m is ONNX group c's m-th output.
 */
function depthwiseToGrouped(kernel: KerasWeight): Kernel {
  const [h, w, i, m] = kernel.shape;
  return (c, base) => {
    const keras = c.graph.floats(`${c.out}/${base}_keras`, kernel.shape, kernel.data);
    const cmhw = c.graph.node('Transpose', [keras], c.graph.fresh(`${c.out}/${base}_cmhw`), [
      ints('perm', [2, 3, 0, 1]),
    ]);
    return c.graph.node(
      'Reshape',
      [cmhw, c.graph.int64s(`${c.out}/${base}_shape`, [i * m, 1, h, w])],
      c.graph.fresh(`${c.out}/${base}`),
    );
  };
}

/** A Conv-like node on `x` (channels first) then the layer's activation, output `c.out`. */
function withActivation(c: LayerContext, emit: (pre: string) => void, shape: number[], channelAxis = 1): Value {
  const act = activationOf(c.config.activation, c.dialect);
  const pre = act.name === 'linear' ? c.out : c.graph.fresh(`${c.out}/preactivation`);
  emit(pre);
  if (act.name !== 'linear') activation(c.graph, act, pre, c.out, channelAxis);
  return { name: c.out, nchw: shape.length === 3, shape };
}

function convNode(
  c: LayerContext,
  x: string,
  kernel: Kernel,
  bias: Float32Array | undefined,
  attributes: Attribute[],
  out: string,
  op = 'Conv',
): string {
  const inputs = [x, kernel(c, 'kernel')];
  if (bias) inputs.push(c.graph.floats(`${c.out}/bias`, [bias.length], bias));
  return c.graph.node(op, inputs, out, attributes);
}

/** A Conv with the layer's strides, dilation and padding on `x`, then its activation: Conv2D and DepthwiseConv2D. */
function spatialConv(
  c: LayerContext,
  x: Value,
  kernelSize: [number, number],
  group: number,
  kernel: Kernel,
  bias: Float32Array | undefined,
  filters: number,
): Value {
  const strides = pair(c, 'strides', [1, 1]);
  const dilations = pair(c, 'dilation_rate', [1, 1]);
  const win = window(c, x, kernelSize, strides, dilations);
  const attributes = [
    ints('kernel_shape', kernelSize),
    ints('strides', strides),
    ints('dilations', dilations),
    ints('pads', win.pads),
    int('group', group),
  ];
  return withActivation(c, (pre) => convNode(c, c.graph.nchw(x), kernel, bias, attributes, pre), [
    win.height,
    win.width,
    filters,
  ]);
}

function conv2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const filters = num(c, 'filters');
  const groups = num(c, 'groups', 1);
  const channels = x.shape[2];
  if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0 || filters % groups !== 0) {
    unsupported(`has ${groups} groups for ${channels} input channels and ${filters} filters`);
  }
  const [kh, kw] = pair(c, 'kernel_size');
  const useBias = bool(c, 'use_bias', true);
  expectWeights(c, useBias ? 2 : 1);
  const kernel = weight(c, 0, 'kernel', [kh, kw, channels / groups, filters]);
  const bias = useBias ? weight(c, 1, 'bias', [filters]).data : undefined;
  return spatialConv(c, x, [kh, kw], groups, hwioToOihw(kernel), bias, filters);
}

function depthwiseConv2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const [kh, kw] = pair(c, 'kernel_size');
  const multiplier = num(c, 'depth_multiplier', c.weights[0]?.shape[3] ?? 1);
  const channels = x.shape[2];
  const useBias = bool(c, 'use_bias', true);
  expectWeights(c, useBias ? 2 : 1);
  const kernel = weight(c, 0, 'depthwise_kernel', [kh, kw, channels, multiplier]);
  const bias = useBias ? weight(c, 1, 'bias', [channels * multiplier]).data : undefined;
  return spatialConv(c, x, [kh, kw], channels, depthwiseToGrouped(kernel), bias, channels * multiplier);
}

/** A depthwise convolution (strides, dilation, padding) then a 1×1 convolution (bias, activation). */
function separableConv2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const [kh, kw] = pair(c, 'kernel_size');
  // tfjs leaves the multiplier out of a SeparableConv2D's config: the kernel says it.
  const multiplier = num(c, 'depth_multiplier', c.weights[0]?.shape[3] ?? 1);
  const filters = num(c, 'filters');
  const channels = x.shape[2];
  const useBias = bool(c, 'use_bias', true);
  expectWeights(c, useBias ? 3 : 2);
  const depthwise = weight(c, 0, 'depthwise_kernel', [kh, kw, channels, multiplier]);
  const pointwise = weight(c, 1, 'pointwise_kernel', [1, 1, channels * multiplier, filters]);
  const bias = useBias ? weight(c, 2, 'bias', [filters]).data : undefined;
  const strides = pair(c, 'strides', [1, 1]);
  const dilations = pair(c, 'dilation_rate', [1, 1]);
  const win = window(c, x, [kh, kw], strides, dilations);
  const depthwiseOut = c.graph.node(
    'Conv',
    [c.graph.nchw(x), depthwiseToGrouped(depthwise)(c, 'depthwise_kernel')],
    c.graph.fresh(`${c.out}/depthwise`),
    [
      ints('kernel_shape', [kh, kw]),
      ints('strides', strides),
      ints('dilations', dilations),
      ints('pads', win.pads),
      int('group', channels),
    ],
  );
  return withActivation(
    c,
    (pre) => convNode(c, depthwiseOut, hwioToOihw(pointwise), bias, [ints('kernel_shape', [1, 1])], pre),
    [win.height, win.width, filters],
  );
}

/**
 * Keras' Conv2DTranspose (TF's conv2d_transpose): kernel [h, w, filters, channels]. The output
 * size is Keras' (`compute_conv_transpose_output_length`); the padding that gives it is cut
 * floor(total / 2) at the start, as TF does, and a negative total becomes output padding.
 */
function conv2dTranspose(c: LayerContext): Value {
  const x = image(c.inputs);
  const [kh, kw] = pair(c, 'kernel_size');
  const filters = num(c, 'filters');
  const channels = x.shape[2];
  if (num(c, 'groups', 1) !== 1) unsupported('uses groups');
  const useBias = bool(c, 'use_bias', true);
  expectWeights(c, useBias ? 2 : 1);
  const kernel = weight(c, 0, 'kernel', [kh, kw, filters, channels]);
  const bias = useBias ? weight(c, 1, 'bias', [filters]).data : undefined;
  const strides = pair(c, 'strides', [1, 1]);
  const dilations = pair(c, 'dilation_rate', [1, 1]);
  const padding = c.config.padding ?? 'valid';
  if (padding !== 'same' && padding !== 'valid') unsupported(`has padding ${JSON.stringify(padding)}`);
  const outputPadding = c.config.output_padding;
  const extra = outputPadding === null || outputPadding === undefined ? undefined : pair(c, 'output_padding', [0, 0]);
  const axis = (i: 0 | 1) => {
    const size = x.shape[i];
    const span = ([kh, kw][i] - 1) * dilations[i] + 1;
    const s = strides[i];
    let out: number;
    if (extra === undefined) out = padding === 'valid' ? size * s + Math.max(span - s, 0) : size * s;
    else out = (size - 1) * s + span - 2 * (padding === 'same' ? Math.floor(span / 2) : 0) + extra[i];
    const total = (size - 1) * s + span - out;
    return total >= 0
      ? { out, pads: [Math.floor(total / 2), total - Math.floor(total / 2)], outputPadding: 0 }
      : { out, pads: [0, 0], outputPadding: -total };
  };
  const h = axis(0);
  const w = axis(1);
  // [h, w, out, in] → ONNX ConvTranspose's [in, out, h, w]: the same rearrangement as a Conv kernel's.
  const attributes = [
    ints('kernel_shape', [kh, kw]),
    ints('strides', strides),
    ints('dilations', dilations),
    ints('pads', [h.pads[0], w.pads[0], h.pads[1], w.pads[1]]),
    ints('output_padding', [h.outputPadding, w.outputPadding]),
  ];
  return withActivation(
    c,
    (pre) => convNode(c, c.graph.nchw(x), hwioToOihw(kernel), bias, attributes, pre, 'ConvTranspose'),
    [h.out, w.out, filters],
  );
}

/** On a vector, a Gemm; on a map (Keras applies it to the channels), a 1×1 convolution; on tokens, a MatMul. */
function dense(c: LayerContext): Value {
  const x = one(c.inputs);
  const units = num(c, 'units');
  const inputs = x.shape[x.shape.length - 1];
  const useBias = bool(c, 'use_bias', true);
  expectWeights(c, useBias ? 2 : 1);
  const kernel = weight(c, 0, 'kernel', [inputs, units]);
  const bias = useBias ? weight(c, 1, 'bias', [units]).data : undefined;
  const shape = [...x.shape.slice(0, -1), units];
  if (x.shape.length === 3) {
    const conv = hwioToOihw({ ...kernel, shape: [1, 1, inputs, units] });
    return withActivation(
      c,
      (pre) => convNode(c, c.graph.nchw(x), conv, bias, [ints('kernel_shape', [1, 1])], pre),
      shape,
    );
  }
  const act = activationOf(c.config.activation, c.dialect);
  const pre = act.name === 'linear' ? c.out : c.graph.fresh(`${c.out}/preactivation`);
  const w = c.graph.floats(`${c.out}/kernel`, kernel.shape, kernel.data);
  if (x.shape.length === 1) {
    const operands = [x.name, w];
    if (bias) operands.push(c.graph.floats(`${c.out}/bias`, [units], bias));
    c.graph.node('Gemm', operands, pre);
  } else {
    const product = c.graph.node('MatMul', [x.name, w], bias ? c.graph.fresh(`${c.out}/matmul`) : pre);
    if (bias) c.graph.node('Add', [product, c.graph.floats(`${c.out}/bias`, [units], bias)], pre);
  }
  if (act.name !== 'linear') activation(c.graph, act, pre, c.out, -1);
  return { name: c.out, nchw: false, shape };
}

// ---------------------------------------------------------------- normalisation

/** y = x·scale + shift per channel of the last Keras axis, in whichever layout `x` has. */
function affine(c: LayerContext, x: Value, scale: Float32Array, shift: Float32Array, out = c.out): Value {
  const scaled = c.graph.node('Mul', [x.name, channelConstant(c, x, 'scale', scale)], c.graph.fresh(`${c.out}/scaled`));
  c.graph.node('Add', [scaled, channelConstant(c, x, 'shift', shift)], out);
  return { name: out, nchw: x.nchw, shape: x.shape };
}

function batchNormalization(c: LayerContext): Value {
  const x = one(c.inputs);
  channelsOnly(c, x, 'normalises');
  const channels = x.shape[x.shape.length - 1];
  const scale = bool(c, 'scale', true);
  const center = bool(c, 'center', true);
  expectWeights(c, 2 + Number(scale) + Number(center));
  let i = 0;
  const gamma = scale ? weight(c, i++, 'gamma', [channels]).data : new Float32Array(channels).fill(1);
  const beta = center ? weight(c, i++, 'beta', [channels]).data : new Float32Array(channels);
  const mean = weight(c, i++, 'moving_mean', [channels]).data;
  const variance = weight(c, i++, 'moving_variance', [channels]).data;
  const epsilon = num(c, 'epsilon', 1e-3);
  if (x.shape.length === 3 || x.shape.length === 1) {
    const input = x.shape.length === 3 ? c.graph.nchw(x) : x.name;
    c.graph.node(
      'BatchNormalization',
      [
        input,
        c.graph.floats(`${c.out}/gamma`, [channels], gamma),
        c.graph.floats(`${c.out}/beta`, [channels], beta),
        c.graph.floats(`${c.out}/moving_mean`, [channels], mean),
        c.graph.floats(`${c.out}/moving_variance`, [channels], variance),
      ],
      c.out,
      [float('epsilon', epsilon)],
    );
    return { name: c.out, nchw: x.shape.length === 3, shape: x.shape };
  }
  const s = gamma.map((g, k) => g / Math.sqrt(variance[k] + epsilon));
  return affine(
    c,
    x,
    s,
    beta.map((b, k) => b - mean[k] * s[k]),
  );
}

/**
 * (x − mean) / √(var + ε) over `axes` (ONNX axes), then γ and β per channel: Keras'
 * LayerNormalization and GroupNormalization (after a reshape into groups).
 */
function normalise(c: LayerContext, x: string, axes: number[], epsilon: number, base: string): string {
  const { graph } = c;
  const tmp = (s: string) => graph.fresh(`${c.out}/${base}_${s}`);
  const mean = graph.node('ReduceMean', [x], tmp('mean'), [ints('axes', axes), int('keepdims', 1)]);
  const centred = graph.node('Sub', [x, mean], tmp('centred'));
  const variance = graph.node('ReduceMean', [graph.node('Mul', [centred, centred], tmp('square'))], tmp('variance'), [
    ints('axes', axes),
    int('keepdims', 1),
  ]);
  const std = graph.node(
    'Sqrt',
    [graph.node('Add', [variance, graph.scalar(tmp('epsilon'), epsilon)], tmp('var_eps'))],
    tmp('std'),
  );
  return graph.node('Div', [centred, std], tmp('normalised'));
}

function gammaBeta(c: LayerContext, x: Value, normalised: string, channels: number): Value {
  const scale = bool(c, 'scale', true);
  const center = bool(c, 'center', true);
  expectWeights(c, Number(scale) + Number(center));
  let i = 0;
  const gamma = scale ? weight(c, i++, 'gamma', [channels]).data : undefined;
  const beta = center ? weight(c, i++, 'beta', [channels]).data : undefined;
  let y = normalised;
  const layout = { ...x, name: normalised };
  if (gamma) {
    y = c.graph.node(
      'Mul',
      [y, channelConstant(c, layout, 'gamma', gamma)],
      beta ? c.graph.fresh(`${c.out}/scaled`) : c.out,
    );
  }
  if (beta) y = c.graph.node('Add', [y, channelConstant(c, layout, 'beta', beta)], c.out);
  if (y !== c.out) y = c.graph.node('Identity', [y], c.out);
  return { name: c.out, nchw: x.nchw, shape: x.shape };
}

function layerNormalization(c: LayerContext): Value {
  const x = one(c.inputs);
  channelsOnly(c, x, 'normalises');
  if (c.config.rms_scaling === true) unsupported('uses RMS scaling');
  const channels = x.shape[x.shape.length - 1];
  const normalised = normalise(c, x.name, [onnxAxis(x, -1)], num(c, 'epsilon', 1e-3), 'ln');
  return gammaBeta(c, x, normalised, channels);
}

function groupNormalization(c: LayerContext): Value {
  const x = image(c.inputs);
  channelsOnly(c, x, 'normalises');
  const [height, width, channels] = x.shape;
  const groups = num(c, 'groups', 32);
  if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
    unsupported(`has ${groups} groups for ${channels} channels`);
  }
  const { graph } = c;
  const grouped = graph.node(
    'Reshape',
    [graph.nchw(x), graph.int64s(`${c.out}/groups`, [1, groups, channels / groups, height, width])],
    graph.fresh(`${c.out}/grouped`),
  );
  const normalised = normalise(c, grouped, [2, 3, 4], num(c, 'epsilon', 1e-3), 'gn');
  const back = graph.node(
    'Reshape',
    [normalised, graph.int64s(`${c.out}/shape`, [1, channels, height, width])],
    graph.fresh(`${c.out}/ungrouped`),
  );
  return gammaBeta(c, { ...x, nchw: true }, back, channels);
}

/** Keras' preprocessing Normalization: (x − mean) / max(√variance, 1e-7), or its inverse. */
function normalization(c: LayerContext): Value {
  const x = one(c.inputs);
  channelsOnly(c, x, 'normalises');
  const channels = x.shape[x.shape.length - 1];
  const fromConfig = (key: string): Float32Array | undefined => {
    const value = c.config[key];
    if (value === null || value === undefined) return undefined;
    const list = typeof value === 'number' ? new Array<number>(channels).fill(value) : value;
    if (!Array.isArray(list) || list.length !== channels || !list.every((v) => typeof v === 'number')) {
      unsupported(`has ${key} ${JSON.stringify(value)}`);
    }
    return Float32Array.from(list as number[]);
  };
  let mean = fromConfig('mean');
  let variance = fromConfig('variance');
  if (!mean || !variance) {
    // mean, variance, count (an integer, any width): the count only mattered while adapting.
    if (c.weights.length < 2) unsupported('has neither a mean and variance in its config nor as weights');
    const flat = (w: KerasWeight, what: string) => {
      if (w.data.length !== channels) unsupported(`has a ${what} of ${w.data.length} values for ${channels} channels`);
      return w.data;
    };
    mean = flat(c.weights[0], 'mean');
    variance = flat(c.weights[1], 'variance');
  }
  const std = variance.map((v) => Math.max(Math.sqrt(v), 1e-7));
  if (c.config.invert === true) return affine(c, x, std, mean);
  return affine(
    c,
    x,
    std.map((s) => 1 / s),
    mean.map((m, k) => -m / std[k]),
  );
}

// ---------------------------------------------------------------- element-wise

/** A one-input layer that keeps its input's layout. */
function elementwise(c: LayerContext, emit: (x: string, out: string, v: Value) => string): Value {
  const x = one(c.inputs);
  return { name: emit(x.name, c.out, x), nchw: x.nchw, shape: x.shape };
}

/** Layers that pass their input through at inference. */
const identity: LayerConversion = (c) => elementwise(c, (x, out) => c.graph.node('Identity', [x], out));

/** Keras' relu(x, negative_slope, max_value, threshold), as `ReLU.static_call` computes it. */
function relu(c: LayerContext): Value {
  return elementwise(c, (x, out) => {
    const slope = num(c, 'negative_slope', 0);
    const threshold = num(c, 'threshold', 0);
    const rawMax = c.config.max_value;
    if (rawMax !== null && rawMax !== undefined && typeof rawMax !== 'number')
      unsupported(`has max_value ${String(rawMax)}`);
    const max = typeof rawMax === 'number' ? rawMax : undefined;
    const { graph } = c;
    const tmp = (s: string) => graph.fresh(`${out}/${s}`);
    if (slope !== 0 && max === undefined && threshold === 0) {
      return graph.node('LeakyRelu', [x], out, [float('alpha', slope)]);
    }
    const done = slope === 0;
    let y: string;
    if (threshold !== 0) {
      const above = graph.node(
        'Cast',
        [graph.node('Greater', [x, graph.scalar(tmp('threshold'), threshold)], tmp('above'))],
        tmp('mask'),
        [int('to', 1)],
      );
      y = graph.node('Mul', [x, above], max === undefined && done ? out : tmp('thresholded'));
      if (max !== undefined) y = clip(graph, y, done ? out : tmp('clipped'), 0, max);
    } else {
      y =
        max === undefined
          ? graph.node('Relu', [x], done ? out : tmp('relu'))
          : clip(graph, x, done ? out : tmp('clipped'), 0, max);
    }
    if (done) return y;
    const negative = graph.node(
      'Relu',
      [
        threshold !== 0
          ? graph.node('Sub', [graph.scalar(tmp('t'), threshold), x], tmp('below'))
          : graph.node('Neg', [x], tmp('neg')),
      ],
      tmp('negative'),
    );
    const scaled = graph.node('Mul', [negative, graph.scalar(tmp('slope'), slope)], tmp('negative_scaled'));
    return graph.node('Sub', [y, scaled], out);
  });
}

function clip(graph: GraphBuilder, x: string, out: string, min: number, max: number): string {
  return graph.node('Clip', [x, graph.scalar(`${out}/min`, min), graph.scalar(`${out}/max`, max)], out);
}

/** A learned slope per element (or shared over some axes), laid out like the input. */
function prelu(c: LayerContext): Value {
  const x = one(c.inputs);
  expectWeights(c, 1);
  const alpha = weight(c, 0, 'alpha');
  const rank = x.shape.length;
  if (alpha.shape.length !== rank) unsupported(`has an alpha of shape ${JSON.stringify(alpha.shape)}`);
  alpha.shape.forEach((d, i) => {
    if (d !== 1 && d !== x.shape[i]) unsupported(`has an alpha of shape ${JSON.stringify(alpha.shape)}`);
  });
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
  return { name, nchw: x.nchw, shape: x.shape };
}

function softmax(c: LayerContext): Value {
  const x = one(c.inputs);
  const axis = singleAxis(c);
  return elementwise(c, (input, out) => c.graph.node('Softmax', [input], out, [int('axis', onnxAxis(x, axis))]));
}

/** `x · scale + offset`, each a number or one per channel. */
function rescaling(c: LayerContext): Value {
  const x = one(c.inputs);
  const channels = x.shape[x.shape.length - 1];
  const values = (key: string, fallback: number): Float32Array => {
    const value = c.config[key] ?? fallback;
    const list = typeof value === 'number' ? new Array<number>(channels).fill(value) : value;
    if (!Array.isArray(list) || list.length !== channels || !list.every((v) => typeof v === 'number')) {
      unsupported(`has ${key} ${JSON.stringify(value)}`);
    }
    return Float32Array.from(list as number[]);
  };
  return affine(c, x, values('scale', 1), values('offset', 0));
}

// ---------------------------------------------------------------- pooling, padding, resizing

function pooling(c: LayerContext, op: 'MaxPool' | 'AveragePool'): Value {
  const x = image(c.inputs);
  const size = pair(c, 'pool_size', [2, 2]);
  const strides = pair(c, 'strides', size);
  const win = window(c, x, size, strides);
  const attributes = [ints('kernel_shape', size), ints('strides', strides), ints('pads', win.pads)];
  // TF averages over the pixels inside the image only (ONNX's default, said for clarity).
  if (op === 'AveragePool') attributes.push(int('count_include_pad', 0));
  return {
    name: c.graph.node(op, [c.graph.nchw(x)], c.out, attributes),
    nchw: true,
    shape: [win.height, win.width, x.shape[2]],
  };
}

function globalPooling(c: LayerContext, op: 'ReduceMean' | 'ReduceMax', rank: 2 | 3): Value {
  const x = one(c.inputs);
  if (x.shape.length !== rank) unsupported(`takes a tensor of rank ${x.shape.length + 1}`);
  const keep = c.config.keepdims === true;
  const channels = x.shape[rank - 1];
  const axes = rank === 2 ? [1] : x.nchw ? [2, 3] : [1, 2];
  const name = c.graph.node(op, [x.name], c.out, [ints('axes', axes), int('keepdims', keep ? 1 : 0)]);
  if (!keep) return { name, nchw: false, shape: [channels] };
  return { name, nchw: x.nchw, shape: rank === 2 ? [1, channels] : [1, 1, channels] };
}

/** Pads on H and W in whichever layout the input has. */
function zeroPadding2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const [[top, bottom], [left, right]] = sides(c, 'padding');
  const pads = x.nchw ? [0, 0, top, left, 0, 0, bottom, right] : [0, top, left, 0, 0, bottom, right, 0];
  const name = c.graph.node('Pad', [x.name, c.graph.int64s(`${c.out}/pads`, pads)], c.out, [str('mode', 'constant')]);
  return { name, nchw: x.nchw, shape: [x.shape[0] + top + bottom, x.shape[1] + left + right, x.shape[2]] };
}

function cropping2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const [[top, bottom], [left, right]] = sides(c, 'cropping');
  const [height, width] = x.shape;
  if (top + bottom >= height || left + right >= width) unsupported('crops away the whole image');
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
  return { name, nchw: x.nchw, shape: [height - top - bottom, width - left - right, x.shape[2]] };
}

/**
 * A Resize to `height`×`width`. Keras samples as tf.image.resize does (pixel centres, no
 * antialiasing); tfjs' UpSampling2D and Keras before 2.4 at pixel corners ("asymmetric").
 */
function resize(
  c: LayerContext,
  x: Value,
  height: number,
  width: number,
  interpolation: Json,
  corners: boolean,
): Value {
  const modes: Record<string, Attribute[]> = {
    nearest: corners
      ? [str('mode', 'nearest'), str('coordinate_transformation_mode', 'asymmetric'), str('nearest_mode', 'floor')]
      : [
          str('mode', 'nearest'),
          str('coordinate_transformation_mode', 'half_pixel'),
          str('nearest_mode', 'round_prefer_ceil'),
        ],
    bilinear: [str('mode', 'linear'), str('coordinate_transformation_mode', corners ? 'asymmetric' : 'half_pixel')],
    bicubic: [
      str('mode', 'cubic'),
      float('cubic_coeff_a', -0.5),
      str('coordinate_transformation_mode', corners ? 'asymmetric' : 'half_pixel'),
    ],
  };
  const attributes = typeof interpolation === 'string' ? modes[interpolation] : undefined;
  if (!attributes) unsupported(`interpolates ${JSON.stringify(interpolation)}`);
  const sizes = c.graph.int64s(
    `${c.out}/sizes`,
    x.nchw ? [1, x.shape[2], height, width] : [1, height, width, x.shape[2]],
  );
  const name = c.graph.node('Resize', [x.name, '', '', sizes], c.out, attributes);
  return { name, nchw: x.nchw, shape: [height, width, x.shape[2]] };
}

function upSampling2d(c: LayerContext): Value {
  const x = image(c.inputs);
  const [sh, sw] = pair(c, 'size', [2, 2]);
  const interpolation = c.config.interpolation ?? 'nearest';
  // Nearest repeats pixels in every version; bilinear is tf.image.resize in Keras, corner-aligned in tfjs.
  const corners = interpolation === 'nearest' || c.dialect === 'tfjs';
  return resize(c, x, x.shape[0] * sh, x.shape[1] * sw, interpolation, corners);
}

function resizing(c: LayerContext): Value {
  const x = image(c.inputs);
  if (c.config.crop_to_aspect_ratio === true || c.config.pad_to_aspect_ratio === true) {
    unsupported('crops or pads to the aspect ratio');
  }
  return resize(c, x, num(c, 'height'), num(c, 'width'), c.config.interpolation ?? 'bilinear', false);
}

// ---------------------------------------------------------------- merging

/** Inputs in one layout: maps channels first when every input is a map, else Keras' own layout. */
function sameLayout(c: LayerContext, inputs = c.inputs): { names: string[]; nchw: boolean } {
  const allMaps = inputs.every((v) => v.shape.length === 3);
  const nchw = allMaps && inputs.some((v) => v.nchw);
  return { names: inputs.map((v) => (nchw ? c.graph.nchw(v) : c.graph.nhwc(v))), nchw };
}

function merge(c: LayerContext, op: 'Add' | 'Sub' | 'Mul' | 'Mean' | 'Max' | 'Min'): Value {
  if (c.inputs.length < 2) unsupported(`merges ${c.inputs.length} tensor`);
  if (op === 'Sub' && c.inputs.length !== 2) unsupported(`subtracts ${c.inputs.length} tensors`);
  const { names, nchw } = sameLayout(c);
  const shape = broadcastShapes(c.inputs.map((v) => v.shape));
  const { graph, out } = c;
  let name: string;
  if (op === 'Add' || op === 'Mul' || op === 'Sub') {
    // Two inputs per node: a chain, left to right as Keras does.
    let acc = names[0];
    for (let i = 1; i < names.length; i++) {
      acc = graph.node(op, [acc, names[i]], i === names.length - 1 ? out : graph.fresh(`${out}/partial`));
    }
    name = acc;
  } else {
    name = graph.node(op === 'Mean' ? 'Mean' : op, names, out);
  }
  return { name, nchw, shape };
}

function concatenate(c: LayerContext): Value {
  if (c.inputs.length < 1) unsupported('concatenates nothing');
  const rank = c.inputs[0].shape.length;
  if (c.inputs.some((v) => v.shape.length !== rank)) unsupported('concatenates tensors of different ranks');
  const axis = kerasAxis(singleAxis(c), rank + 1);
  const { names, nchw } = sameLayout(c);
  const shape = [...c.inputs[0].shape];
  shape[axis - 1] = c.inputs.reduce((sum, v) => sum + v.shape[axis - 1], 0);
  c.inputs.forEach((v) => {
    if (v.shape.some((d, i) => i !== axis - 1 && d !== shape[i]))
      unsupported('concatenates tensors of different sizes');
  });
  const name = c.graph.node('Concat', names, c.out, [int('axis', nchw ? [0, 2, 3, 1][axis] : axis)]);
  return { name, nchw, shape };
}

/** `inputs[0] + inputs[1] · scale`: InceptionResNetV2's residual scaling in Keras 3. */
function customScale(c: LayerContext): Value {
  if (c.inputs.length !== 2) unsupported(`has ${c.inputs.length} inputs`);
  const scale = num(c, 'scale');
  const { names, nchw } = sameLayout(c);
  const scaled = c.graph.node(
    'Mul',
    [names[1], c.graph.scalar(`${c.out}/scale`, scale)],
    c.graph.fresh(`${c.out}/scaled`),
  );
  return {
    name: c.graph.node('Add', [names[0], scaled], c.out),
    nchw,
    shape: broadcastShapes(c.inputs.map((v) => v.shape)),
  };
}

/** ConvNeXt's LayerScale: the input times a learned factor per channel. */
function layerScale(c: LayerContext): Value {
  const x = one(c.inputs);
  expectWeights(c, 1);
  const channels = x.shape[x.shape.length - 1];
  const gamma = weight(c, 0, 'gamma', [channels]).data;
  return elementwise(c, (input, out) => c.graph.node('Mul', [input, channelConstant(c, x, 'gamma', gamma)], out));
}

/** A Keras 3 op applied to tensors in a functional model (`x + 3.0`, `x * (1 / 6)`): tensors and number constants. */
function op(onnxOp: 'Add' | 'Sub' | 'Mul' | 'Div'): LayerConversion {
  return (c) => {
    const operands: (Value | number)[] = [];
    let tensors = 0;
    let constants = 0;
    // Tensors and constants in call order: args hold the constants where tensors were not.
    const total = c.inputs.length + c.args.length;
    if (total !== 2) unsupported(`has ${total} operands`);
    // Keras records tensors in `inputs` and other arguments in `args`, each in order; a constant
    // first (3.0 - x) cannot be told from the config, so only tensor-first forms are taken.
    for (let i = 0; i < total; i++) {
      if (tensors < c.inputs.length) operands.push(c.inputs[tensors++]);
      else {
        const value = c.args[constants++];
        if (typeof value !== 'number') unsupported(`has the operand ${JSON.stringify(value)}`);
        operands.push(value);
      }
    }
    const tensorsOnly = operands.filter((o): o is Value => typeof o !== 'number');
    const { names, nchw } = sameLayout(c, tensorsOnly);
    let k = 0;
    const inputs = operands.map((o) => (typeof o === 'number' ? c.graph.scalar(`${c.out}/constant`, o) : names[k++]));
    const name = c.graph.node(onnxOp, inputs, c.out);
    return { name, nchw, shape: broadcastShapes(tensorsOnly.map((v) => v.shape)) };
  };
}

// ---------------------------------------------------------------- reshaping

function flatten(c: LayerContext): Value {
  const x = one(c.inputs);
  // Keras flattens H, W, C in that order: back to channels last first.
  const size = x.shape.reduce((a, b) => a * b, 1);
  return { name: c.graph.node('Flatten', [c.graph.nhwc(x)], c.out, [int('axis', 1)]), nchw: false, shape: [size] };
}

function reshape(c: LayerContext): Value {
  const x = one(c.inputs);
  const target = c.config.target_shape;
  if (
    !Array.isArray(target) ||
    !target.every((d) => typeof d === 'number' && Number.isInteger(d) && (d > 0 || d === -1))
  ) {
    unsupported(`has target_shape ${JSON.stringify(target)}`);
  }
  const dims = target as number[];
  const size = x.shape.reduce((a, b) => a * b, 1);
  const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const free = dims.filter((d) => d === -1).length;
  if (free > 1 || (free === 0 && known !== size) || (free === 1 && size % known !== 0)) {
    unsupported(`cannot reshape ${JSON.stringify(x.shape)} into ${JSON.stringify(dims)}`);
  }
  const shape = dims.map((d) => (d === -1 ? size / known : d));
  const name = c.graph.node('Reshape', [c.graph.nhwc(x), c.graph.int64s(`${c.out}/shape`, [1, ...shape])], c.out);
  return { name, nchw: false, shape };
}

function permute(c: LayerContext): Value {
  const x = one(c.inputs);
  const dims = c.config.dims;
  if (!Array.isArray(dims) || dims.length !== x.shape.length || [...dims].sort().some((d, i) => d !== i + 1)) {
    unsupported(`has dims ${JSON.stringify(dims)}`);
  }
  const perm = [0, ...(dims as number[])];
  return {
    name: c.graph.node('Transpose', [c.graph.nhwc(x)], c.out, [ints('perm', perm)]),
    nchw: false,
    shape: (dims as number[]).map((d) => x.shape[d - 1]),
  };
}

// ---------------------------------------------------------------- attention

/**
 * Keras' MultiHeadAttention on token sequences (N×C), without masks: query, value and key
 * projections, softmax(q·kᵀ / √key_dim) per head, then the output projection. Weights in Keras'
 * order: query kernel [C, heads, key_dim] and bias, key, value, then the output [heads, value_dim, C].
 */
function multiHeadAttention(c: LayerContext): Value {
  if (c.inputs.length < 2 || c.inputs.length > 3) unsupported(`has ${c.inputs.length} inputs (query, value[, key])`);
  const [query, value, key = value] = c.inputs;
  if ([query, value, key].some((v) => v.shape.length !== 2))
    unsupported('attends over tensors that are not token sequences');
  if (c.kwargs.return_attention_scores === true) unsupported('returns its attention scores');
  const heads = num(c, 'num_heads');
  const keyDim = num(c, 'key_dim');
  const valueDim = typeof c.config.value_dim === 'number' ? c.config.value_dim : keyDim;
  const useBias = bool(c, 'use_bias', true);
  expectWeights(c, useBias ? 8 : 4);
  const step = useBias ? 2 : 1;
  const [n] = query.shape;
  const { graph } = c;
  const tmp = (s: string) => graph.fresh(`${c.out}/${s}`);
  /** x [1, T, C] → [1, heads, T, dim]. */
  const project = (x: Value, index: number, what: string, dim: number): string => {
    const kernel = weight(c, index * step, `${what} kernel`, [x.shape[1], heads, dim]);
    let y = graph.node(
      'MatMul',
      [x.name, graph.floats(`${c.out}/${what}_kernel`, [x.shape[1], heads * dim], kernel.data)],
      tmp(what),
    );
    if (useBias) {
      const bias = weight(c, index * step + 1, `${what} bias`, [heads, dim]);
      y = graph.node(
        'Add',
        [y, graph.floats(`${c.out}/${what}_bias`, [heads * dim], bias.data)],
        tmp(`${what}_biased`),
      );
    }
    const split = graph.node(
      'Reshape',
      [y, graph.int64s(`${c.out}/${what}_heads`, [1, x.shape[0], heads, dim])],
      tmp(`${what}_split`),
    );
    return graph.node('Transpose', [split], tmp(`${what}_t`), [ints('perm', [0, 2, 1, 3])]);
  };
  const q = project(query, 0, 'query', keyDim);
  const k = project(key, 1, 'key', keyDim);
  const v = project(value, 2, 'value', valueDim);
  const scaledQ = graph.node('Mul', [q, graph.scalar(tmp('scale'), 1 / Math.sqrt(keyDim))], tmp('query_scaled'));
  const kT = graph.node('Transpose', [k], tmp('key_tt'), [ints('perm', [0, 1, 3, 2])]);
  const scores = graph.node('Softmax', [graph.node('MatMul', [scaledQ, kT], tmp('scores'))], tmp('attention'), [
    int('axis', -1),
  ]);
  const context = graph.node('MatMul', [scores, v], tmp('context'));
  const merged = graph.node(
    'Reshape',
    [
      graph.node('Transpose', [context], tmp('context_t'), [ints('perm', [0, 2, 1, 3])]),
      graph.int64s(`${c.out}/merged`, [1, n, heads * valueDim]),
    ],
    tmp('merged'),
  );
  const outKernel = weight(c, 3 * step, 'output kernel', [heads, valueDim, undefined]);
  const channels = outKernel.shape[2];
  const projected = graph.node(
    'MatMul',
    [merged, graph.floats(`${c.out}/output_kernel`, [heads * valueDim, channels], outKernel.data)],
    useBias ? tmp('output') : c.out,
  );
  if (useBias) {
    const bias = weight(c, 3 * step + 1, 'output bias', [channels]);
    graph.node('Add', [projected, graph.floats(`${c.out}/output_bias`, [channels], bias.data)], c.out);
  }
  return { name: c.out, nchw: false, shape: [n, channels] };
}

// ---------------------------------------------------------------- the table

/** Keras layer classes (and `ops.<Class>` for Keras 3 ops in a functional model) → their ONNX form. */
export const LAYERS: Record<string, LayerConversion> = {
  Conv2D: conv2d,
  Conv2DTranspose: conv2dTranspose,
  DepthwiseConv2D: depthwiseConv2d,
  SeparableConv2D: separableConv2d,
  Dense: dense,

  BatchNormalization: batchNormalization,
  LayerNormalization: layerNormalization,
  GroupNormalization: groupNormalization,
  Normalization: normalization,
  Rescaling: rescaling,

  Activation: (c) =>
    elementwise(c, (x, out, v) =>
      activation(c.graph, activationOf(c.config.activation, c.dialect), x, out, onnxAxis(v, -1)),
    ),
  ReLU: relu,
  LeakyReLU: (c) =>
    elementwise(c, (x, out) =>
      c.graph.node('LeakyRelu', [x], out, [float('alpha', num(c, 'negative_slope', num(c, 'alpha', 0.3)))]),
    ),
  ELU: (c) => elementwise(c, (x, out) => c.graph.node('Elu', [x], out, [float('alpha', num(c, 'alpha', 1))])),
  ThresholdedReLU: (c) =>
    elementwise(c, (x, out) => c.graph.node('ThresholdedRelu', [x], out, [float('alpha', num(c, 'theta', 1))])),
  PReLU: prelu,
  Softmax: softmax,

  Dropout: identity,
  SpatialDropout1D: identity,
  SpatialDropout2D: identity,
  GaussianNoise: identity,
  GaussianDropout: identity,
  AlphaDropout: identity,
  ActivityRegularization: identity,
  StochasticDepth: identity,
  Identity: identity,

  MaxPooling2D: (c) => pooling(c, 'MaxPool'),
  AveragePooling2D: (c) => pooling(c, 'AveragePool'),
  GlobalAveragePooling2D: (c) => globalPooling(c, 'ReduceMean', 3),
  GlobalMaxPooling2D: (c) => globalPooling(c, 'ReduceMax', 3),
  GlobalAveragePooling1D: (c) => globalPooling(c, 'ReduceMean', 2),
  GlobalMaxPooling1D: (c) => globalPooling(c, 'ReduceMax', 2),
  ZeroPadding2D: zeroPadding2d,
  Cropping2D: cropping2d,
  UpSampling2D: upSampling2d,
  Resizing: resizing,

  Add: (c) => merge(c, 'Add'),
  Subtract: (c) => merge(c, 'Sub'),
  Multiply: (c) => merge(c, 'Mul'),
  Average: (c) => merge(c, 'Mean'),
  Maximum: (c) => merge(c, 'Max'),
  Minimum: (c) => merge(c, 'Min'),
  Concatenate: concatenate,
  CustomScaleLayer: customScale,
  LayerScale: layerScale,

  Flatten: flatten,
  Reshape: reshape,
  Permute: permute,
  MultiHeadAttention: multiHeadAttention,

  'ops.Add': op('Add'),
  'ops.Subtract': op('Sub'),
  'ops.Multiply': op('Mul'),
  'ops.Divide': op('Div'),
  'ops.TrueDivide': op('Div'),
};

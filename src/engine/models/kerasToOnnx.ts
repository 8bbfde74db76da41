// Turns a Keras model, as its own files describe it (the architecture JSON of a `.keras` zip, an
// `.h5` file or a TF.js Layers model.json, plus its weights), into an ONNX graph in memory, so
// onnxruntime runs it on every core. No TensorFlow.js model is built on the way: each Keras layer
// class is written as ONNX nodes from its config and weights (kerasLayers.ts), which covers layers
// tfjs-layers lacks (GroupNormalization, MultiHeadAttention, Keras 3's helper layers…).
// Whatever this cannot convert is named, with the reason, and the model stays on TensorFlow.js.
import { LAYERS, type LayerContext } from './kerasLayers';
import { GraphBuilder, Unsupported, type Value, unsupported } from './onnxBuilder';

type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export interface KerasWeight {
  /** Where it sits in the file, for messages. */
  path: string;
  shape: number[];
  data: Float32Array;
}

/**
 * Which Keras wrote the file: the same name means different things in each. Keras 3's
 * hard_sigmoid is relu6(x + 3) / 6, Keras 2's and tfjs' is clip(0.2x + 0.5); Keras' bilinear
 * resize (tf.image.resize) samples at pixel centres, tfjs' at pixel corners.
 */
export type KerasDialect = 'keras3' | 'keras2' | 'tfjs';

/** A layer's output in the converted graph. */
export interface ConvertedOutput {
  /** The layer name as the tree shows it: `name`, `name#2` for a second call, `outer/inner` inside a nested model. */
  layer: string;
  /** Its class, e.g. Conv2D. */
  op: string;
  /** The graph output with the layer's output. */
  tensor: string;
  /** 'nchw': a map held channels first; 'nhwc': a map held as Keras has it; 'vector': any other rank. */
  layout: 'nchw' | 'nhwc' | 'vector';
  /** Its shape without batch, as Keras has it (H×W×C for a map). */
  shape: number[];
}

export interface ConvertedModel {
  /** A serialised ONNX ModelProto (opset 17). */
  bytes: Uint8Array;
  /** The graph input: 1×H×W×C float32, as the Keras model takes it. */
  input: string;
  inputShape: [number, number, number];
  /** Every layer call but the input, in the order Keras runs them. */
  outputs: ConvertedOutput[];
}

export interface KerasModelInput {
  /** `{class_name, config}` of the model: Functional, Model or Sequential. */
  config: JsonObject;
  /** Weights by layer name (`outer/inner` inside a nested model), each layer's in Keras' order. */
  weights: ReadonlyMap<string, readonly KerasWeight[]>;
  dialect: KerasDialect;
  /** Height and width for an input whose size is not fixed. */
  inputSize: { height: number; width: number };
}

/** The ONNX form of a Keras model, or the reason it has none (naming the layer). */
export function kerasToOnnx(model: KerasModelInput): ConvertedModel | { unsupported: string } {
  try {
    return new Converter(model).convert();
  } catch (error) {
    if (error instanceof Unsupported) return { unsupported: error.message };
    throw error;
  }
}

// ---------------------------------------------------------------- reading the architecture

/** `[layer, call, tensor]`: the tensor-th output of the call-th call of a layer. */
type TensorRef = [string, number, number];

interface LayerCall {
  layer: ParsedLayer;
  call: number;
  inputs: TensorRef[];
  /** Constants and options passed with the tensors (Keras 3 ops: `x + 3.0`). */
  args: Json[];
  kwargs: JsonObject;
}

interface ParsedLayer {
  className: string;
  /** keras.layers, or keras.src.ops.numpy for an op applied to tensors in a functional model; absent in .h5 files. */
  module?: string;
  name: string;
  config: JsonObject;
  calls: LayerCall[];
}

interface ParsedModel {
  name: string;
  layers: ParsedLayer[];
  inputs: TensorRef[];
  outputs: TensorRef[];
  /** The input's batch shape as declared, e.g. [null, 224, 224, 3]. */
  inputShape?: Json;
}

const NESTED = new Set(['Functional', 'Model', 'Sequential']);

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nameOf(layer: JsonObject): string {
  const config = layer.config;
  if (isObject(config) && typeof config.name === 'string') return config.name;
  return typeof layer.name === 'string' ? layer.name : '';
}

function layerList(model: JsonObject): JsonObject[] {
  const inner = model.config;
  const layers = Array.isArray(inner) ? inner : isObject(inner) ? inner.layers : undefined;
  if (!Array.isArray(layers) || !layers.every(isObject)) unsupported('the architecture has no layer list');
  return layers;
}

function parseModel(model: JsonObject): ParsedModel {
  const className = model.class_name;
  const inner = isObject(model.config) ? model.config : {};
  const name = typeof inner.name === 'string' ? inner.name : 'model';
  const raw = layerList(model);
  if (className === 'Sequential') return parseSequential(name, raw, inner);
  if (typeof className !== 'string' || !NESTED.has(className)) unsupported(`it is a ${String(className)}`);
  const layers = raw.map((layer) => parseLayer(layer));
  return { name, layers, inputs: refs(inner.input_layers), outputs: refs(inner.output_layers) };
}

function parseSequential(name: string, raw: JsonObject[], inner: JsonObject): ParsedModel {
  const layers: ParsedLayer[] = [];
  let inputShape: Json | undefined = inner.build_input_shape;
  let previous: TensorRef | undefined;
  let input: TensorRef | undefined;
  for (const rawLayer of raw) {
    const layer = parseLayer({ ...rawLayer, inbound_nodes: [] });
    const config = layer.config;
    const declared = config.batch_shape ?? config.batch_input_shape;
    if (layer.className === 'InputLayer') {
      inputShape = declared ?? inputShape;
      input = [layer.name, 0, 0];
      previous = input;
      layers.push(layer);
      continue;
    }
    if (!previous) {
      // Keras 2 Sequential: the input shape sits on the first layer.
      inputShape = declared ?? inputShape;
      const inputLayer: ParsedLayer = {
        className: 'InputLayer',
        name: `${name}_input`,
        config: { batch_shape: inputShape ?? null },
        calls: [],
      };
      layers.push(inputLayer);
      input = [inputLayer.name, 0, 0];
      previous = input;
    }
    layer.calls = [{ layer, call: 0, inputs: [previous], args: [], kwargs: {} }];
    layers.push(layer);
    previous = [layer.name, 0, 0];
  }
  if (!input || !previous) unsupported('the model has no layers');
  const inputLayer = layers.find((l) => l.name === input[0]);
  if (inputLayer && inputLayer.config.batch_shape === undefined && inputLayer.config.batch_input_shape === undefined) {
    inputLayer.config = { ...inputLayer.config, batch_shape: inputShape ?? null };
  }
  return { name, layers, inputs: [input], outputs: [previous], inputShape };
}

function parseLayer(raw: JsonObject): ParsedLayer {
  const className = raw.class_name;
  const name = nameOf(raw);
  if (typeof className !== 'string' || !isObject(raw.config)) unsupported(`layer "${name}" has no class or config`);
  const layer: ParsedLayer = {
    className,
    module: typeof raw.module === 'string' ? raw.module : undefined,
    name,
    config: raw.config,
    calls: [],
  };
  const nodes = raw.inbound_nodes ?? [];
  if (!Array.isArray(nodes)) unsupported(`layer "${name}" has unreadable inbound nodes`);
  layer.calls = nodes.map((node, call) => parseCall(layer, node, call));
  return layer;
}

/** One inbound node: Keras 2 `[[layer, node, tensor, kwargs], …]`, Keras 3 `{args, kwargs}`. */
function parseCall(layer: ParsedLayer, node: Json, call: number): LayerCall {
  if (Array.isArray(node)) {
    const inputs = node.map((ref) => tensorRef(ref) ?? unsupported(`layer "${layer.name}" has an unreadable input`));
    const kwargs = node.map((ref) => (Array.isArray(ref) && isObject(ref[3]) ? ref[3] : {}));
    return { layer, call, inputs, args: [], kwargs: Object.assign({}, ...kwargs) as JsonObject };
  }
  if (!isObject(node)) unsupported(`layer "${layer.name}" has an unreadable inbound node`);
  const inputs: TensorRef[] = [];
  const args: Json[] = [];
  const collect = (arg: Json, top: boolean): void => {
    if (isObject(arg) && arg.class_name === '__keras_tensor__' && isObject(arg.config)) {
      const ref = tensorRef(arg.config.keras_history);
      if (!ref) unsupported(`layer "${layer.name}" has an unreadable input`);
      inputs.push(ref);
    } else if (Array.isArray(arg)) {
      arg.forEach((a) => collect(a, false));
    } else if (top) {
      args.push(arg);
    }
  };
  for (const arg of Array.isArray(node.args) ? node.args : []) collect(arg, true);
  const kwargs: JsonObject = {};
  for (const [key, value] of Object.entries(isObject(node.kwargs) ? node.kwargs : {})) {
    const before = inputs.length;
    collect(value, false);
    if (inputs.length === before) kwargs[key] = value;
  }
  return { layer, call, inputs, args, kwargs };
}

function tensorRef(value: Json | undefined): TensorRef | undefined {
  if (!Array.isArray(value) || value.length < 3) return undefined;
  const [layer, node, tensor] = value;
  if (typeof layer !== 'string' || typeof node !== 'number' || typeof tensor !== 'number') return undefined;
  return [layer, node, tensor];
}

/** `input_layers` / `output_layers`: one `[name, 0, 0]` (Keras 3) or a list of them. */
function refs(value: Json | undefined): TensorRef[] {
  const single = tensorRef(value);
  if (single) return [single];
  if (Array.isArray(value)) {
    return value.map((v) => tensorRef(v) ?? unsupported(`its inputs or outputs are unreadable: ${JSON.stringify(v)}`));
  }
  return unsupported(`its inputs or outputs are unreadable: ${JSON.stringify(value)}`);
}

// ---------------------------------------------------------------- converting

class Converter {
  private readonly graph: GraphBuilder;
  private readonly outputs: ConvertedOutput[] = [];

  constructor(private readonly model: KerasModelInput) {
    this.graph = new GraphBuilder();
  }

  convert(): ConvertedModel {
    const parsed = parseModel(this.model.config);
    if (parsed.inputs.length !== 1) unsupported(`the model has ${parsed.inputs.length} inputs`);
    const inputLayer = parsed.layers.find((l) => l.name === parsed.inputs[0][0]);
    if (!inputLayer || inputLayer.className !== 'InputLayer') unsupported('its input is not an InputLayer');
    const shape = this.inputShape(inputLayer.config.batch_shape ?? inputLayer.config.batch_input_shape);
    const input: Value = { name: this.graph.fresh('image'), nchw: false, shape };
    this.run(parsed, new Map([[refKey(parsed.inputs[0]), input]]), '');
    return {
      bytes: this.graph.encode(parsed.name, 'feature-maps kerasToOnnx', input, this.outputs),
      input: input.name,
      inputShape: shape,
      outputs: this.outputs,
    };
  }

  /** [H, W, C] from a batch shape like [null, 224, 224, 3] or [null, null, null, 3]. */
  private inputShape(declared: Json | undefined): [number, number, number] {
    if (!Array.isArray(declared) || declared.length !== 4) {
      unsupported(`its input is not an image (its shape is ${JSON.stringify(declared ?? null)})`);
    }
    const [, h, w, c] = declared;
    if (typeof c !== 'number' || c <= 0)
      unsupported(`its input has no fixed channel count (${JSON.stringify(declared)})`);
    const size = (d: Json, fallback: number) => (typeof d === 'number' && d > 0 ? d : fallback);
    return [size(h, this.model.inputSize.height), size(w, this.model.inputSize.width), c];
  }

  /**
   * Runs every call of `model`'s layers once its inputs are known, in config order as far as the
   * graph allows (Keras' own order). `values` holds the tensors known so far; `prefix` names
   * layers of a nested model (`outer/`). Returns the model's output values.
   */
  private run(model: ParsedModel, values: Map<string, Value>, prefix: string): Value[] {
    const pending = model.layers.flatMap((layer) => (layer.className === 'InputLayer' ? [] : layer.calls));
    const known = new Set(model.layers.map((l) => l.name));
    for (const call of pending) {
      for (const ref of call.inputs) {
        if (!known.has(ref[0]))
          unsupported(`layer "${call.layer.name}" takes the output of a layer it does not define ("${ref[0]}")`);
      }
    }
    let waiting = pending;
    while (waiting.length > 0) {
      const next = waiting.filter((call) => {
        if (!call.inputs.every((ref) => values.has(refKey(ref)))) return true;
        const inputs = call.inputs.map((ref) => values.get(refKey(ref))!);
        const output = NESTED.has(call.layer.className)
          ? this.nested(call, inputs, prefix)
          : this.layer(call, inputs, prefix);
        values.set(refKey([call.layer.name, call.call, 0]), output);
        return false;
      });
      if (next.length === waiting.length) {
        const stuck = next[0];
        unsupported(`layer "${stuck.layer.name}" waits for an input no layer makes (a cycle or a wrong reference)`);
      }
      waiting = next;
    }
    return model.outputs.map(
      (ref) => values.get(refKey(ref)) ?? unsupported(`its output "${ref[0]}" is not computed by any layer`),
    );
  }

  private layer(call: LayerCall, inputs: Value[], prefix: string): Value {
    const { layer } = call;
    const display = `${prefix}${layer.name}${call.call > 0 ? `#${call.call + 1}` : ''}`;
    const where = `layer "${display}" (${layer.className})`;
    const isOp = isKerasOp(layer);
    const convert = isOp ? LAYERS[`ops.${layer.className}`] : LAYERS[layer.className];
    if (!convert) unsupported(`${where} has no ONNX conversion`);
    const dataFormat = layer.config.data_format;
    if (dataFormat !== undefined && dataFormat !== null && dataFormat !== 'channels_last') {
      unsupported(`${where} uses data format ${String(dataFormat)}`);
    }
    const weights = isOp ? [] : (this.model.weights.get(`${prefix}${layer.name}`) ?? []);
    const out = this.graph.fresh(display);
    const context: LayerContext = {
      className: layer.className,
      config: layer.config,
      inputs,
      args: call.args,
      kwargs: call.kwargs,
      weights,
      out,
      graph: this.graph,
      dialect: this.model.dialect,
    };
    let value: Value;
    try {
      value = convert(context);
    } catch (error) {
      if (error instanceof Unsupported) unsupported(`${where} ${error.message}`);
      throw error;
    }
    if (value.shape.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
      unsupported(`${where} would give a tensor of shape ${JSON.stringify(value.shape)}`);
    }
    this.outputs.push({
      layer: display,
      op: layer.className,
      tensor: value.name,
      layout: value.shape.length !== 3 ? 'vector' : value.nchw ? 'nchw' : 'nhwc',
      shape: value.shape,
    });
    return value;
  }

  /** A model used as a layer: its layers are listed as `outer/inner`, its output under its own name. */
  private nested(call: LayerCall, inputs: Value[], prefix: string): Value {
    const { layer } = call;
    const outer = `${prefix}${layer.name}`;
    if (call.call > 0) unsupported(`the nested model "${outer}" is called more than once`);
    const inner = parseModel({ class_name: layer.className, config: layer.config });
    if (inner.inputs.length !== inputs.length) {
      unsupported(`the nested model "${outer}" takes ${inner.inputs.length} inputs, it is given ${inputs.length}`);
    }
    const values = new Map(inner.inputs.map((ref, i) => [refKey(ref), inputs[i]]));
    const results = this.run(inner, values, `${outer}/`);
    if (results.length !== 1) unsupported(`the nested model "${outer}" has ${results.length} outputs`);
    const [result] = results;
    const name = this.graph.node('Identity', [result.name], this.graph.fresh(outer));
    const value = { ...result, name };
    this.outputs.push({
      layer: outer,
      op: layer.className,
      tensor: name,
      layout: value.shape.length !== 3 ? 'vector' : value.nchw ? 'nchw' : 'nhwc',
      shape: value.shape,
    });
    return value;
  }
}

/**
 * A Keras 3 op applied to tensors in a functional model (`x + 3.0`) rather than a layer: its module
 * says so in a .keras file; an .h5 file leaves the module out, and only the op's config is just its name.
 */
function isKerasOp(layer: ParsedLayer): boolean {
  if (layer.module !== undefined) return layer.module.startsWith('keras.src.ops');
  return `ops.${layer.className}` in LAYERS && Object.keys(layer.config).every((key) => key === 'name');
}

function refKey([layer, node, tensor]: TensorRef): string {
  if (tensor !== 0) unsupported(`layer "${layer}" has several outputs`);
  return `${layer}\0${node}`;
}

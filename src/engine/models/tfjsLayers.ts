import * as path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { UserFacingError, errorText } from '../errors';
import { MAX_JSON_BYTES, MAX_MODEL_FILE_BYTES, checkRegularFile, formatBytes, readRegularFile } from '../files';
import { learnShapes, type LayerMeta } from '../layers';
import type { Activation, LoadedModel, ModelIdentity } from '../model';
import type { PreprocessMode } from '../preprocess';
import { type Tf, tfjsBackendLabel } from '../tf';

interface ManifestGroup {
  paths: string[];
  weights: tfc.io.WeightsManifestEntry[];
}

interface ModelJson {
  modelTopology?: unknown;
  weightsManifest?: ManifestGroup[];
  format?: string;
}

/** Bytes per stored value, by dtype (tfjs' DTYPE_VALUE_SIZE_MAP); strings have no fixed size. */
const BYTES_PER_VALUE: Record<string, number> = {
  float32: 4,
  float16: 2,
  int32: 4,
  uint16: 2,
  uint8: 1,
  bool: 1,
  complex64: 8,
};

/**
 * The bytes `group` declares for its weights: each weight's element count times the size of its
 * stored (maybe quantised) dtype. A string weight stores a 4-byte length before each string, so
 * the total is then only a lower bound (`exact` false).
 */
function declaredBytes(group: ManifestGroup, fileName: string): { bytes: number; exact: boolean } {
  let bytes = 0;
  let exact = true;
  for (const weight of group.weights) {
    const shape: unknown = weight?.shape;
    if (
      !Array.isArray(shape) ||
      !shape.every((d): d is number => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new UserFacingError(
        `${fileName}: the weight "${String(weight?.name)}" has no valid shape in the weights manifest.`,
        JSON.stringify(shape),
      );
    }
    const count = shape.reduce((a, b) => a * b, 1);
    const dtype = weight.quantization?.dtype ?? weight.dtype;
    if (dtype === 'string') {
      bytes += 4 * count;
      exact = false;
      continue;
    }
    const size = BYTES_PER_VALUE[dtype];
    if (size === undefined) {
      throw new UserFacingError(
        `${fileName}: the weight "${weight.name}" has the data type "${String(dtype)}", which TensorFlow.js does not know.`,
      );
    }
    bytes += count * size;
    if (bytes > MAX_MODEL_FILE_BYTES) {
      throw new UserFacingError(
        `${fileName}: its weights manifest declares more than ${formatBytes(MAX_MODEL_FILE_BYTES)} of weights (the weight "${weight.name}" alone is ${JSON.stringify(shape)}), more than Feature Maps loads.`,
      );
    }
  }
  return { bytes, exact };
}

/**
 * Reads a TF.js model.json and its weight shards, refusing hostile or damaged files before it
 * allocates for them: every shard must be a regular file inside the model's folder (a path like
 * `../../dev/zero` or a FIFO is refused), and each manifest group's shards must hold exactly the
 * bytes its weights declare (one byte more or less would shift every later weight).
 */
export async function readTfjsArtifacts(modelJsonPath: string): Promise<tfc.io.ModelArtifacts> {
  const fileName = path.basename(modelJsonPath);
  const bytes = await readRegularFile(modelJsonPath, {
    describe: `the model file ${fileName}`,
    maxBytes: MAX_JSON_BYTES,
  });
  let json: ModelJson;
  try {
    json = JSON.parse(bytes.toString('utf8')) as ModelJson;
  } catch (error) {
    throw new UserFacingError(`${fileName} is not a readable TF.js model.json.`, errorText(error));
  }
  if (!json || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new UserFacingError(`${fileName} is not a TF.js model (it has no modelTopology or weightsManifest).`);
  }
  const groups = json.weightsManifest;
  const dir = path.dirname(modelJsonPath);

  // Everything is checked from the manifest and the shards' sizes before a shard is read.
  let total = 0;
  const shards: { file: string; name: string; size: number; offset: number }[] = [];
  for (const [index, group] of groups.entries()) {
    if (!Array.isArray(group?.paths) || !Array.isArray(group.weights)) {
      throw new UserFacingError(`${fileName}: weight group ${index + 1} of its manifest has no paths or weights.`);
    }
    const declared = declaredBytes(group, fileName);
    let held = 0;
    const sizes: string[] = [];
    for (const name of group.paths) {
      if (typeof name !== 'string' || name === '') {
        throw new UserFacingError(`${fileName}: weight group ${index + 1} names a weight file that is not a path.`);
      }
      const file = path.join(dir, name);
      const checked = await checkRegularFile(file, {
        describe: `the weight file "${name}" named in ${fileName}`,
        maxBytes: MAX_MODEL_FILE_BYTES,
        within: dir,
      });
      shards.push({ file, name, size: checked.size, offset: total + held });
      held += checked.size;
      sizes.push(`${name}: ${checked.size} bytes`);
      if (total + held > MAX_MODEL_FILE_BYTES) {
        throw new UserFacingError(
          `${fileName}: its weight files hold more than ${formatBytes(MAX_MODEL_FILE_BYTES)}, more than Feature Maps loads.`,
        );
      }
    }
    if (declared.exact ? held !== declared.bytes : held < declared.bytes) {
      const difference = held - declared.bytes;
      const files =
        group.paths.length === 1 ? `"${group.paths[0]}"` : `the ${group.paths.length} files of group ${index + 1}`;
      throw new UserFacingError(
        `${fileName}: the weight file${group.paths.length === 1 ? '' : 's'} ${files} ${group.paths.length === 1 ? 'holds' : 'hold'} ${held} bytes, but the manifest's weights take ${declared.bytes} bytes (${Math.abs(difference)} bytes too ${difference > 0 ? 'many' : 'few'}): the files do not belong together, or one is damaged.`,
        `Weights: ${group.weights.map((w) => `${w.name} ${JSON.stringify(w.shape)} ${w.quantization?.dtype ?? w.dtype}`).join(', ')}. Files: ${sizes.join(', ')}.`,
      );
    }
    total += held;
  }

  const weightData = new Uint8Array(total);
  for (const shard of shards) {
    await readRegularFile(shard.file, {
      describe: `the weight file "${shard.name}" named in ${fileName}`,
      maxBytes: MAX_MODEL_FILE_BYTES,
      within: dir,
      into: weightData.subarray(shard.offset, shard.offset + shard.size),
    });
  }
  return {
    modelTopology: json.modelTopology as tfc.io.ModelArtifacts['modelTopology'],
    format: json.format,
    weightSpecs: groups.flatMap((group) => group.weights),
    weightData: weightData.buffer,
  };
}

const CONTAINERS = new Set(['Model', 'Functional', 'Sequential']);

function asObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Refuses a Keras-style layer graph (a TF.js LayersModel's topology, or a Keras config in the
 * form tfjs reads) that tfjs could never put together. tfjs' `Container.fromConfig` queues each
 * layer call until the calls it takes inputs from exist, and loops until the queue is empty: a
 * call that names a layer the model does not define, a call that never happens, or a cycle keeps
 * it at 100 % CPU forever. This runs the same queue on names and counts only, and stops with a
 * message at the first round that makes no progress. Nested models are checked too.
 */
export function checkLayerGraph(modelConfig: unknown, fileName: string): void {
  const model = asObject(modelConfig);
  if (!model) return; // not a Keras topology: tfjs gives its own error
  const inner = model.config;
  const layers: unknown = Array.isArray(inner) ? inner : asObject(inner)?.layers;
  if (!Array.isArray(layers)) return;
  for (const layer of layers) {
    const entry = asObject(layer);
    if (entry && typeof entry.class_name === 'string' && CONTAINERS.has(entry.class_name)) {
      checkLayerGraph(entry, fileName);
    }
  }
  if (model.class_name === 'Sequential') return; // a stack: its layers take no named inputs

  const fail = (message: string, detail: unknown): never => {
    throw new UserFacingError(
      `${fileName}: the model architecture cannot be put together: ${message}`,
      JSON.stringify(detail),
    );
  };
  // As tfjs: layers found by their entry's `name`; queues kept under the name the layer gets
  // (its config's `name`); every call with inputs adds one inbound node to its layer.
  const created = new Map<string, number>();
  const queueName: string[] = [];
  const calls: number[] = [];
  const queues = new Map<string, unknown[]>();
  const entries = layers.map((raw, i) => {
    const entry = asObject(raw) ?? {};
    const config = asObject(entry.config);
    const name = String(entry.name ?? config?.name);
    created.set(name, i);
    queueName.push(typeof config?.name === 'string' ? config.name : `\0unnamed ${i}`);
    const className = String(entry.class_name);
    calls.push(className === 'InputLayer' || CONTAINERS.has(className) ? 1 : 0);
    const nodes: unknown = entry.inbound_nodes ?? entry.inboundNodes ?? [];
    if (Array.isArray(nodes)) {
      for (const node of nodes) {
        if (!Array.isArray(node)) continue; // tfjs refuses it with its own error
        queues.set(queueName[i], [...(queues.get(queueName[i]) ?? []), node]);
      }
    }
    return { name };
  });
  /** Why tfjs cannot make this call yet, or undefined when it can. */
  const blocker = (node: unknown[]): { ref: unknown; missing: boolean } | undefined => {
    for (const ref of node) {
      if (!Array.isArray(ref)) return { ref, missing: true };
      const source = created.get(String(ref[0]));
      if (source === undefined) return { ref, missing: true };
      // tfjs waits while `inboundNodes.length <= index`; an index that is not a number does not wait.
      if (calls[source] <= Number(ref[1])) return { ref, missing: false };
    }
    return undefined;
  };
  while (queues.size > 0) {
    let progress = false;
    for (const { name } of entries) {
      const layer = created.get(name)!;
      const queue = queues.get(queueName[layer]);
      if (!queue) continue;
      queues.delete(queueName[layer]);
      for (const node of queue as unknown[][]) {
        if (blocker(node)) {
          queues.set(queueName[layer], [...(queues.get(queueName[layer]) ?? []), node]);
        } else {
          progress = true;
          if (node.length > 0) calls[layer]++;
        }
      }
    }
    if (!progress) {
      const [waiting, queue] = [...queues.entries()][0];
      const stuck = blocker(queue[0] as unknown[])!;
      const ref = stuck.ref;
      const source = Array.isArray(ref) ? String(ref[0]) : JSON.stringify(ref);
      const layerName = waiting.startsWith('\0') ? 'a layer without a name' : `layer "${waiting}"`;
      fail(
        stuck.missing
          ? `${layerName} takes its input from "${source}", which the model does not define.`
          : `${layerName} takes its input from call ${Number((ref as unknown[])[1]) + 1} of layer "${source}", which never happens (the layers form a cycle, or the call index is wrong).`,
        queue[0],
      );
    }
  }
  const config = asObject(inner) ?? {};
  for (const key of ['input_layers', 'output_layers', 'inputLayers', 'outputLayers']) {
    const refs = config[key];
    if (!Array.isArray(refs)) continue;
    // Keras 3 writes one [name, 0, 0] where Keras 2 wrote a list of them.
    for (const ref of typeof refs[0] === 'string' ? [refs] : refs) {
      const source = Array.isArray(ref) ? created.get(String(ref[0])) : undefined;
      if (source === undefined || !(calls[source] > Number(ref[1] ?? 0))) {
        fail(`its ${key.startsWith('input') ? 'input' : 'output'} is a layer it does not define.`, ref);
      }
    }
  }
}

/** An IOHandler that reads a TF.js model.json and its weight shards from disk, checked (readTfjsArtifacts). */
export function fileHandler(modelJsonPath: string): tfc.io.IOHandler {
  return { load: () => readTfjsArtifacts(modelJsonPath) };
}

export interface TfjsLayersOptions {
  modelJsonPath: string;
  key: string;
  summary: ModelIdentity;
  preprocessing: PreprocessMode;
  /** Height and width for models whose input size is not fixed (default 224×224). */
  inputSize?: { height: number; width: number };
}

export const DEFAULT_INPUT_SIZE = 224;

/** Loads a TF.js LayersModel and wraps it so one call returns every layer's output. */
export async function loadTfjsLayersModel(tf: Tf, options: TfjsLayersOptions): Promise<LoadedModel> {
  const fileName = path.basename(options.modelJsonPath);
  const artifacts = await readTfjsArtifacts(options.modelJsonPath);
  // tfjs loops forever on a layer graph it cannot finish: refuse such a graph first.
  const topology = artifacts.modelTopology as Record<string, unknown> | undefined;
  checkLayerGraph(topology?.model_config ?? topology, fileName);
  let model: tfl.LayersModel;
  try {
    // The artifacts are already read and checked: hand them over rather than reading the files again.
    model = await tf.loadLayersModel({ load: () => Promise.resolve(artifacts) });
  } catch (error) {
    if (error instanceof UserFacingError) throw error;
    throw new UserFacingError(`${fileName} could not be loaded as a TF.js LayersModel.`, errorText(error));
  }
  return wrapLayersModel(tf, model, options);
}

/**
 * Wraps any tfjs-layers model (from TF.js files, or built from a Keras config) so that
 * one forward pass returns every layer's output.
 */
export function wrapLayersModel(
  tf: Tf,
  model: tfl.LayersModel,
  options: Omit<TfjsLayersOptions, 'modelJsonPath'>,
): LoadedModel {
  const inputShape = model.inputs[0].shape;
  if (model.inputs.length !== 1 || inputShape.length !== 4) {
    throw new UserFacingError(
      `The model must take one image input of rank 4 (N,H,W,C); it takes ${JSON.stringify(model.inputs.map((i) => i.shape))}.`,
    );
  }
  const [, fixedHeight, fixedWidth, channels] = inputShape;
  if (!channels)
    throw new UserFacingError(`The model's input has no fixed channel count (${JSON.stringify(inputShape)}).`);
  // Fully convolutional models (Keras' VGG16 without top is (None, None, 3)) run at the asked size.
  const height = fixedHeight ?? options.inputSize?.height ?? DEFAULT_INPUT_SIZE;
  const width = fixedWidth ?? options.inputSize?.width ?? DEFAULT_INPUT_SIZE;

  // Layers with one output tensor (shared layers have several and are skipped).
  const tapped: { layer: tfl.layers.Layer; output: tfl.SymbolicTensor }[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const output = layer.inboundNodes.length === 1 ? layer.output : undefined;
    if (output && !Array.isArray(output)) tapped.push({ layer, output });
  }
  const extractor = tf.model({ inputs: model.inputs, outputs: tapped.map((t) => t.output) });
  // Shapes at the size the model runs at, worked out from the layers' own shape rules (no pass:
  // a blank pass at load would cost what the user's pass costs, before the budget is checked).
  const shapes = layerShapes(model, tapped, [null, height, width, channels]);
  const layers: LayerMeta[] = tapped.map(({ layer }, i) => ({
    name: layer.name,
    op: layer.getClassName(),
    shape: shapes[i],
  }));
  // A shape the rules could not tell (a custom layer's) is listed empty, counted large by the
  // budget, and filled in by the first pass that computes it.
  const unknown = layers.filter((l) => l.shape.length === 0);

  return {
    key: options.key,
    summary: { ...options.summary, inputShape: [height, width, channels] },
    inputSize: { height, width, channels },
    preprocessing: options.preprocessing,
    backend: tfjsBackendLabel(tf),
    layersModel: model,
    layers,
    async run(input: Float32Array): Promise<Map<string, Activation>> {
      const x = tf.tensor4d(input, [1, height, width, channels]);
      try {
        const outputs = extractor.predict(x) as tfc.Tensor[];
        const activations = await readActivations(tf, layers, outputs, (shape) => shape.slice(1));
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

/**
 * Each tapped layer's output shape without the batch axis, for an input of `inputShape`: each
 * layer's own shape rule (tfjs' `computeOutputShape`, Keras' `compute_output_shape`) applied
 * through the graph from the input, as tfjs' `Container.computeOutputShape` does but layer by
 * layer, so one rule that fails (a custom layer's) leaves only that layer and those fed by it
 * unknown (an empty shape) rather than every layer. Nothing runs: a fully convolutional model
 * at 4096×4096 costs nothing to list. Shapes the model declares in full are kept as they are.
 */
export function layerShapes(
  model: tfl.LayersModel,
  tapped: readonly { output: tfl.SymbolicTensor }[],
  inputShape: readonly (number | null)[],
): number[][] {
  const known = (shape: readonly (number | null)[] | undefined): number[] | undefined =>
    shape?.every((d): d is number => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
      ? [...shape]
      : undefined;
  // Batch included, by SymbolicTensor id; undefined: the rules could not tell.
  const shapes = new Map<number, (number | null)[] | undefined>([[model.inputs[0].id, [...inputShape]]]);
  const declared = tapped.map(({ output }) => known(output.shape.slice(1)));
  if (declared.every((shape) => shape !== undefined)) return declared as number[][];

  const nodes = model.layers.flatMap((layer) =>
    layer.getClassName() === 'InputLayer' ? [] : layer.inboundNodes.map((node) => ({ layer, node })),
  );
  // model.layers is in graph order, so one round usually does; a shared layer's later calls may need more.
  let pending = nodes;
  while (pending.length > 0) {
    const waiting = pending.filter(({ layer, node }) => {
      if (!node.inputTensors.every((t) => shapes.has(t.id))) return true;
      const inputs = node.inputTensors.map((t) => shapes.get(t.id));
      let outputs: (number | null)[][] | undefined;
      if (inputs.every((shape) => shape !== undefined)) {
        try {
          const shape = layer.computeOutputShape((inputs.length === 1 ? inputs[0] : inputs) as tfl.Shape | tfl.Shape[]);
          outputs = (Array.isArray(shape[0]) || shape.length === 0 ? shape : [shape]) as (number | null)[][];
        } catch {
          outputs = undefined;
        }
      }
      node.outputTensors.forEach((t, i) => shapes.set(t.id, outputs?.[i]));
      return false;
    });
    if (waiting.length === pending.length) break; // inputs from outside the graph: tfjs refuses that model anyway
    pending = waiting;
  }
  return tapped.map(({ output }, i) => declared[i] ?? known(shapes.get(output.id)?.slice(1)) ?? []);
}

/**
 * Reads one pass's output tensors into activations named after `layers` (same order),
 * and frees the tensors. `shapeOf` drops the batch axis the way the format needs.
 */
export async function readActivations(
  tf: Tf,
  layers: readonly LayerMeta[],
  tensors: tfc.Tensor[],
  shapeOf: (shape: number[]) => number[],
): Promise<Map<string, Activation>> {
  try {
    const result = new Map<string, Activation>();
    for (let i = 0; i < tensors.length; i++) {
      const data = (await tensors[i].data()) as Float32Array;
      result.set(layers[i].name, { shape: shapeOf(tensors[i].shape), data, layout: 'hwc' });
    }
    return result;
  } finally {
    tf.dispose(tensors);
  }
}

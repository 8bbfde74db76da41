// Runs Keras and TF.js Layers models on onnxruntime: a model converted to ONNX in memory
// (kerasToOnnx.ts) runs on every core instead of tfjs' single-threaded wasm backend (VGG16, every
// layer at 224×224 on 2 cores: 190 ms instead of 1,040 ms). A Keras file is converted from its
// own architecture and weights (`openConvertedKeras`); a model already in TensorFlow.js (a TF.js
// LayersModel, a catalogue model built in code) from tfjs' description of itself (`toOnnxRuntime`).
import type * as tfl from '@tensorflow/tfjs-layers';
import { type PassCosts, estimatePass } from '../budget';
import { errorText } from '../errors';
import { learnShapes, type LayerMeta } from '../layers';
import type { StoredConversion } from '../conversionStore';
import type { Activation, LoadedModel, ModelIdentity, OnnxForm } from '../model';
import {
  type ConvertedModel,
  type JsonObject,
  type KerasModelInput,
  type KerasWeight,
  kerasToOnnx,
} from './kerasToOnnx';
import { type OnnxGraphSession, openOnnxGraph } from './onnx';

/** A session on a converted graph, and the graph, kept on disk for the next open (conversionStore.ts). */
type ConvertedSession = OnnxGraphSession & { form: OnnxForm };

/**
 * The ONNX form of a tfjs-layers model at the given input size, or why it has none: tfjs'
 * own Keras JSON of the model (`toJSON`) and its weights, through the Keras converter.
 */
export function layersModelToOnnx(
  model: tfl.LayersModel,
  inputSize: { height: number; width: number; channels: number },
): ConvertedModel | { unsupported: string } {
  const config = model.toJSON(null, false) as unknown as JsonObject;
  const weights = new Map<string, KerasWeight[]>();
  for (const layer of model.layers) {
    const arrays = layer.weights.map((variable) => {
      if (variable.dtype !== 'float32') return undefined;
      return {
        path: variable.name,
        shape: [...variable.shape] as number[],
        data: variable.read().dataSync() as Float32Array,
      };
    });
    if (arrays.some((a) => a === undefined))
      return { unsupported: `layer "${layer.name}" has a weight that is not float32` };
    if (arrays.length > 0) weights.set(layer.name, arrays as KerasWeight[]);
  }
  return kerasToOnnx({ config, weights, dialect: 'tfjs', inputSize });
}

/** What a converted model needs beside its graph to present itself. */
type ModelBase = Omit<
  LoadedModel,
  'run' | 'dispose' | 'layers' | 'backend' | 'layersModel' | 'inputSize' | 'summary'
> & {
  summary: ModelIdentity;
};

/**
 * A Keras model (architecture and weights as read from its file) on onnxruntime, or why it cannot
 * be: a layer with no ONNX form, or a converted graph ONNX Runtime refuses or sizes otherwise.
 * `trustShapes`: for an architecture of ours whose conversion the tests hold to Keras' (the
 * catalogue's), ORT's check of every shape at load is skipped, and with it the session on the
 * whole graph, made at the first pass that needs every layer (a first grid runs on a cut one).
 */
export async function openConvertedKeras(
  input: KerasModelInput,
  base: ModelBase,
  options: { trustShapes?: boolean } = {},
): Promise<(LoadedModel & PassCosts) | { unsupported: string }> {
  const started = performance.now();
  const conversion = kerasToOnnx(input);
  if ('unsupported' in conversion) return conversion;
  const layers: LayerMeta[] = conversion.outputs.map((o) => ({ name: o.layer, op: o.op, shape: o.shape }));
  const opened = await openSession(conversion, layers, options.trustShapes);
  if ('unsupported' in opened) return opened;
  const [height, width, channels] = conversion.inputShape;
  const model = onSession(opened, base, layers, { height, width, channels });
  return { ...model, convertedInMs: performance.now() - started };
}

/**
 * ORT's session on a converted graph, whose every output's shape (ORT infers them at load) must be
 * ours; `lazy`: made at the first pass over every layer, and the shapes taken as they are.
 */
async function openSession(
  conversion: ConvertedModel,
  layers: readonly LayerMeta[],
  lazy = false,
): Promise<ConvertedSession | { unsupported: string }> {
  const [height, width, channels] = conversion.inputShape;
  const form: OnnxForm = {
    bytes: conversion.bytes,
    input: { name: conversion.input, layout: 'NHWC', height, width, channels, type: 'float32' },
    outputs: conversion.outputs.map((o) => ({
      tensor: o.tensor,
      layer: o.layer,
      op: o.op,
      layout: o.layout === 'nchw' ? 'NCHW' : 'NHWC',
    })),
  };
  let session: OnnxGraphSession;
  try {
    session = await openOnnxGraph(form.bytes, form.input, form.outputs, { lazy, layerShapes: shapesOf(layers) });
  } catch (error) {
    return { unsupported: `ONNX Runtime refused the converted model: ${errorText(error)}` };
  }
  for (const layer of layers) {
    const inferred = session.shapes.get(layer.name);
    if (inferred && layer.shape.length > 0 && inferred.join() !== asOrtShows(layer.shape).join()) {
      session.release();
      return {
        unsupported: `layer "${layer.name}" is ${JSON.stringify(inferred)} on ONNX Runtime, ${JSON.stringify(layer.shape)} in the converted graph`,
      };
    }
  }
  return { ...shapedAsConverted(session, layers), form };
}

/** `session`, whose tensors that are neither maps nor token sequences ORT gives flattened, with their own shapes. */
function shapedAsConverted(session: OnnxGraphSession, layers: readonly LayerMeta[]): OnnxGraphSession {
  const shaped = (activations: Map<string, Activation>) => {
    for (const layer of layers) {
      const activation = activations.get(layer.name);
      if (
        activation &&
        activation.shape.join() !== layer.shape.join() &&
        product(activation.shape) === product(layer.shape)
      ) {
        activation.shape = [...layer.shape];
      }
    }
    return activations;
  };
  return { ...session, run: async (input, only) => shaped(await session.run(input, only)) };
}

function shapesOf(layers: readonly LayerMeta[]): Map<string, readonly number[]> {
  return new Map(layers.map((layer) => [layer.name, layer.shape]));
}

/** A shape as onnx.ts reports ORT's outputs: maps and token sequences as they are, the rest flattened. */
function asOrtShows(shape: readonly number[]): number[] {
  return shape.length === 3 || shape.length === 2 || shape.length === 1 ? [...shape] : [product(shape)];
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * A conversion kept on disk (conversionStore.ts), opened as it was when converted: no TensorFlow.js,
 * no converter, and the session on the whole graph made at the first pass that needs it (a first
 * grid runs on a graph cut down to its layers).
 */
export async function openStoredConversion(stored: StoredConversion, key: string): Promise<LoadedModel & PassCosts> {
  const { form } = stored;
  // What the model said of itself; not how the store keeps it.
  const { format, identity, ...fields } = stored.fields;
  const layers = fields.layers.map((layer) => ({ ...layer, shape: [...layer.shape] }));
  const session = await openOnnxGraph(form.bytes, form.input, form.outputs, {
    lazy: true,
    layerShapes: shapesOf(layers),
  });
  return onSession({ ...shapedAsConverted(session, layers), form }, { ...fields, key }, layers, fields.inputSize);
}

function onSession(
  session: ConvertedSession,
  base: ModelBase,
  layers: LayerMeta[],
  inputSize: LoadedModel['inputSize'],
): LoadedModel & PassCosts {
  const { height, width, channels } = inputSize;
  return {
    ...base,
    summary: { ...base.summary, inputShape: [height, width, channels] },
    inputSize,
    layers,
    onnxForm: session.form,
    backend: 'onnxruntime',
    layersModel: undefined,
    // A pass over some layers runs on a graph cut down to them (openOnnxGraph).
    prunesPartialPasses: true,
    async run(input, only) {
      const activations = await session.run(input, only);
      learnShapes(layers, activations);
      return activations;
    },
    dispose: () => session.release(),
  };
}

// ---------------------------------------------------------------- running it

/**
 * The most a trial pass at load may allocate (as budget.ts estimates it), when one runs at all:
 * only for a converted graph with a layer whose shape ORT's inference cannot tell (see
 * replaceWithConverted). Below it, one pass on a blank image checks those shapes; above it, a pass
 * at load would cost what the user's own pass costs, before the budget is checked, so a graph
 * that fails when run fails on the first image.
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
): Promise<(LoadedModel & PassCosts & { trialPassMs?: number }) | { unsupported: string }> {
  if (!model.layersModel) return { unsupported: 'it is not a TensorFlow.js Layers model' };
  const conversion = layersModelToOnnx(model.layersModel, model.inputSize);
  if ('unsupported' in conversion) return conversion;
  const names = conversion.outputs.map((o) => o.layer).join('\n');
  if (names !== model.layers.map((l) => l.name).join('\n')) {
    return { unsupported: 'its layer list differs from the one TensorFlow.js reads' };
  }
  return replaceWithConverted(model, conversion, { ...options, layersModel: undefined });
}

/**
 * `model` (on TensorFlow.js) on onnxruntime instead, as `conversion` (its layers, in its order):
 * same key, layers, preprocessing and so on, with `run` on ORT; or why not. Every shape the
 * converter gives must be tfjs' (a shape tfjs could not tell, listed empty, is the converter's)
 * and ORT's. When ORT's shape inference gave every layer's shape, that check is the whole check:
 * no pass runs before the user's first image. Otherwise, when a pass fits `trialPassBytes`
 * (default TRIAL_PASS_BYTES), one runs on a blank image to check the shapes ORT could not tell
 * (`trialPassMs` says how long it took). `without` clears the tfjs model's own fields on the result.
 */
export async function replaceWithConverted(
  model: LoadedModel,
  conversion: ConvertedModel,
  options: { trialPassBytes?: number } & Partial<Pick<LoadedModel, 'layersModel' | 'graphModel'>>,
): Promise<(LoadedModel & PassCosts & { trialPassMs?: number }) | { unsupported: string }> {
  const { trialPassBytes = TRIAL_PASS_BYTES, ...without } = options;
  for (const [i, layer] of model.layers.entries()) {
    const shape = conversion.outputs[i].shape;
    if (layer.shape.length > 0 && layer.shape.join() !== shape.join()) {
      return {
        unsupported: `layer "${layer.name}" is ${JSON.stringify(shape)} in the converted graph, ${JSON.stringify(layer.shape)} on TensorFlow.js`,
      };
    }
  }
  const layers = model.layers.map((layer, i) => ({ ...layer, shape: conversion.outputs[i].shape }));
  const session = await openSession(conversion, layers);
  if ('unsupported' in session) return session;
  const { height, width, channels } = model.inputSize;
  const inferred = layers.every((layer) => layer.shape.length > 0 && session.shapes.has(layer.name));
  let trialPassMs: number | undefined;
  try {
    if (!inferred && estimatePass(model).bytes <= trialPassBytes) {
      const started = performance.now();
      const activations = await session.run(new Float32Array(height * width * channels));
      trialPassMs = performance.now() - started;
      for (const layer of layers) {
        const shape = activations.get(layer.name)?.shape;
        if (shape?.join() !== layer.shape.join()) {
          throw new Error(
            `layer "${layer.name}" is ${JSON.stringify(shape)} on ONNX Runtime, ${JSON.stringify(layer.shape)} on TensorFlow.js`,
          );
        }
      }
    }
  } catch (error) {
    session.release();
    return { unsupported: `the converted model does not run like the original: ${errorText(error)}` };
  }
  return { ...onSession(session, model, layers, model.inputSize), ...without, trialPassMs };
}

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { UserFacingError, errorText } from '../errors';
import type { LayerMeta } from '../layers';
import type { Activation, LoadedModel, ModelIdentity } from '../model';
import type { PreprocessMode } from '../preprocess';
import { type Tf, tfjsBackendLabel } from '../tf';

interface ModelJson {
  modelTopology?: unknown;
  weightsManifest?: { paths: string[]; weights: tfc.io.WeightsManifestEntry[] }[];
  format?: string;
}

/**
 * An IOHandler that reads a TF.js model.json and the weight shards its
 * manifest names, from disk (tfjs' own file:// handler lives in tfjs-node).
 */
export function fileHandler(modelJsonPath: string): tfc.io.IOHandler {
  const fileName = path.basename(modelJsonPath);
  return {
    async load() {
      let json: ModelJson;
      try {
        json = JSON.parse(await fs.readFile(modelJsonPath, 'utf8')) as ModelJson;
      } catch (error) {
        throw new UserFacingError(`${fileName} is not a readable TF.js model.json.`, errorText(error));
      }
      if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
        throw new UserFacingError(`${fileName} is not a TF.js model (it has no modelTopology or weightsManifest).`);
      }
      const dir = path.dirname(modelJsonPath);
      const shards: Buffer[] = [];
      for (const group of json.weightsManifest) {
        for (const shard of group.paths) {
          try {
            shards.push(await fs.readFile(path.join(dir, shard)));
          } catch (error) {
            throw new UserFacingError(`Weight file "${shard}" named in ${fileName} cannot be read.`, errorText(error));
          }
        }
      }
      const weightData = Buffer.concat(shards);
      return {
        modelTopology: json.modelTopology as tfc.io.ModelArtifacts['modelTopology'],
        format: json.format,
        weightSpecs: json.weightsManifest.flatMap((group) => group.weights),
        weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
      };
    },
  };
}

export interface TfjsLayersOptions {
  modelJsonPath: string;
  key: string;
  summary: ModelIdentity;
  preprocessing: PreprocessMode;
  /** Height and width for models whose input size is not fixed (default 224×224). */
  inputSize?: { height: number; width: number };
}

const DEFAULT_INPUT_SIZE = 224;

/** Loads a TF.js LayersModel and wraps it so one call returns every layer's output. */
export async function loadTfjsLayersModel(tf: Tf, options: TfjsLayersOptions): Promise<LoadedModel> {
  let model: tfl.LayersModel;
  try {
    model = await tf.loadLayersModel(fileHandler(options.modelJsonPath));
  } catch (error) {
    if (error instanceof UserFacingError) throw error;
    throw new UserFacingError(
      `${path.basename(options.modelJsonPath)} could not be loaded as a TF.js LayersModel.`,
      errorText(error),
    );
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
  let shapes = tapped.map(({ output }) => output.shape.slice(1));
  if (shapes.some((shape) => shape.some((d) => d === null))) {
    // Sizes depend on the input: learn them from one pass on a blank image.
    const outputs = tf.tidy(() => extractor.predict(tf.zeros([1, height, width, channels])) as tfc.Tensor[]);
    shapes = outputs.map((o) => o.shape.slice(1));
    tf.dispose(outputs);
  }
  const layers: LayerMeta[] = tapped.map(({ layer }, i) => ({
    name: layer.name,
    op: layer.getClassName(),
    shape: shapes[i].map((d) => d ?? 0),
  }));

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
        return await readActivations(tf, layers, outputs, (shape) => shape.slice(1));
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

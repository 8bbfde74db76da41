import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { CATALOG_PREFIX, type CatalogEntry, catalogEntry } from './catalog';
import { RejectedDownloadError, UserFacingError, errorText } from './errors';
import { MAX_JSON_BYTES, readRegularFile } from './files';
import { isSpatial } from './layers';
import type { LoadedModel, ModelSource } from './model';
import { guessPreprocessing, resolveModelFile, type ModelFile, type ModelFormat } from './modelFiles';
import { loadKerasModel } from './models/keras';
import { loadKerasApplication } from './models/kerasApplications';
import { loadOnnxModel } from './models/onnx';
import { loadTfjsGraphModel } from './models/tfjsGraph';
import { loadTfjsLayersModel } from './models/tfjsLayers';
import type { PreprocessMode } from './preprocess';
import { getTf } from './tf';

// Where a model comes from, turned into something the model cache can key and open: the bundled
// MobileNetV2, a downloaded catalogue model, or a file of the user's in one of the formats
// modelFiles.ts recognises. Each opener gives the model its name, description and the
// preprocessing it expects; which runtime it then runs on is the cache's choice (modelCache.ts).

/** A model source found on disk: which version of it this is, and how to open it. */
export interface LocatedModel {
  /**
   * Identifies this version of the model for caches: its file and modification time (and, for a
   * file, the input size asked for), so a rewritten checkpoint has a new key and loads again.
   */
  readonly key: string;
  /** The model's file (a catalogue model's weights file), whose older versions may be let go; absent when bundled. */
  readonly path?: string;
  /** Loads it on the runtime its format opens on (TensorFlow.js or onnxruntime). */
  open(): Promise<LoadedModel>;
}

export const BUNDLED_SUMMARY = {
  name: 'MobileNetV2 (bundled)',
  description:
    'MobileNetV2 (alpha 1.0) feature extractor: an ImageNet-trained backbone whose 5-class head was fine-tuned by nsfwjs 4.4.0 (MIT). Input 224×224 RGB scaled to [0, 1]. Ships with the extension; needs no network.',
};

const FORMAT_NAMES: Record<ModelFormat, string> = {
  tfjs: 'TF.js model',
  keras: 'Keras model',
  onnx: 'ONNX model',
};

/**
 * Finds `source` on disk (a missing file or undownloaded catalogue model is refused here, in
 * words) and says how to open it. `assetsDir` holds the bundled model and the tfjs wasm binaries.
 */
export async function locateModel(source: ModelSource, assetsDir: string): Promise<LocatedModel> {
  switch (source.kind) {
    case 'bundled': {
      const key = 'bundled:mobilenet_v2';
      return { key, open: () => openBundledModel(assetsDir, key) };
    }
    case 'catalog': {
      const weights = await catalogWeights(source);
      const key = `${weights.path}@${weights.mtimeMs}`;
      return { key, path: weights.path, open: () => openCatalogModel(assetsDir, key, weights.entry, weights.path) };
    }
    case 'file': {
      const file = await resolveModelFile(source.path);
      const { inputSize } = source;
      const size = inputSize ? `@${inputSize.height}x${inputSize.width}` : '';
      const key = `${file.path}@${file.mtimeMs}${size}`;
      return { key, path: file.path, open: () => openFileModel(assetsDir, key, file, inputSize) };
    }
  }
}

/** The catalogue entry and its downloaded weights file. */
async function catalogWeights(
  source: Extract<ModelSource, { kind: 'catalog' }>,
): Promise<{ entry: CatalogEntry; path: string; mtimeMs: number }> {
  const entry = catalogEntry(CATALOG_PREFIX + source.id);
  if (!entry) throw new UserFacingError(`There is no model "${source.id}" in the Feature Maps catalogue.`);
  try {
    const stat = await fs.stat(source.weightsPath);
    return { entry, path: source.weightsPath, mtimeMs: stat.mtimeMs };
  } catch (error) {
    throw new UserFacingError(`The weights of ${entry.name} are not downloaded yet.`, errorText(error));
  }
}

/** The MobileNetV2 that ships with the extension (a TF.js Layers model in assetsDir/models). */
async function openBundledModel(assetsDir: string, key: string): Promise<LoadedModel> {
  const { tf } = await getTf(assetsDir);
  return loadTfjsLayersModel(tf, {
    modelJsonPath: path.join(assetsDir, 'models', 'mobilenet_v2', 'model.json'),
    key,
    summary: BUNDLED_SUMMARY,
    preprocessing: 'raw01',
  });
}

/**
 * A Keras application defined in our code, with Keras' own weights file. A catalogue file the
 * loader refuses comes out as a RejectedDownloadError (the host removes it).
 */
async function openCatalogModel(
  assetsDir: string,
  key: string,
  entry: CatalogEntry,
  weightsPath: string,
): Promise<LoadedModel> {
  const { tf } = await getTf(assetsDir);
  const model = await loadKerasApplication(tf, entry.application, weightsPath, {
    key,
    summary: { name: entry.name, description: entry.detail, path: weightsPath },
  }).catch((error: unknown) => {
    throw error instanceof UserFacingError ? new RejectedDownloadError(error.message, error.detail) : error;
  });
  // Keras' load_img resizes with nearest neighbour; its models with a classifier predict ImageNet classes.
  return Object.assign(model, {
    preprocessing: entry.preprocessing,
    preprocessingReason: `Keras' preprocess_input for ${entry.name.replace(/ \(.*\)$/, '')}; resized like load_img, nearest`,
    resizeKernel: 'nearest' as const,
    labels: entry.application === 'vgg16_notop' ? undefined : ('imagenet' as const),
  });
}

/**
 * A user's model file, by its format; refused when no layer has maps to show. Its preprocessing
 * is guessed from the format and the layers (modelFiles.ts).
 */
async function openFileModel(
  assetsDir: string,
  key: string,
  file: ModelFile,
  inputSize: { height: number; width: number } | undefined,
): Promise<LoadedModel> {
  const { tf } = await getTf(assetsDir);
  // A TF.js model is a folder: its name says more than "model.json".
  const summary = {
    name: file.format === 'tfjs' ? path.basename(path.dirname(file.path)) : path.basename(file.path),
    description: `${FORMAT_NAMES[file.format]}: ${file.path}`,
    path: file.path,
  };
  const options = { key, summary, preprocessing: 'raw01' as PreprocessMode, inputSize };
  let model: LoadedModel;
  switch (file.format) {
    case 'tfjs': {
      // The TF converter writes format 'graph-model' and a GraphDef (a node list); an unreadable
      // file goes to the LayersModel loader, whose error names the problem.
      let json: { format?: unknown; modelTopology?: { node?: unknown } } | undefined;
      try {
        const bytes = await readRegularFile(file.path, { describe: 'the model file', maxBytes: MAX_JSON_BYTES });
        json = JSON.parse(bytes.toString('utf8')) as typeof json;
      } catch {
        json = undefined;
      }
      const isGraph = json?.format === 'graph-model' || Array.isArray(json?.modelTopology?.node);
      model = isGraph
        ? await loadTfjsGraphModel(tf, { ...options, modelJsonPath: file.path })
        : await loadTfjsLayersModel(tf, { ...options, modelJsonPath: file.path });
      break;
    }
    case 'onnx':
      model = await loadOnnxModel({ ...options, modelPath: file.path });
      break;
    case 'keras':
      model = await loadKerasModel(tf, { ...options, modelPath: file.path });
      break;
  }
  // An empty shape is one the runtime tells only by running (onnx.ts): it may have maps.
  if (!model.layers.some((layer) => isSpatial(layer.shape) || layer.shape.length === 0)) {
    model.dispose();
    throw new UserFacingError(`${path.basename(file.path)} has no layer with spatial maps (H×W×C) to show.`);
  }
  const guess = guessPreprocessing(file.format, model.layers, model.inputName);
  return Object.assign(model, {
    preprocessing: guess.mode,
    preprocessingReason: `auto: ${guess.why}`,
    path: file.path,
  });
}

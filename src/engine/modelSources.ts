import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { CATALOG_PREFIX, type CatalogEntry, catalogEntry } from './catalog';
import { RejectedDownloadError, UserFacingError, errorText } from './errors';
import { MAX_JSON_BYTES, readRegularFile } from './files';
import { isSpatial } from './layers';
import { formatById, namesItsFolder, type ModelFormatId, type OpenContext, type OpenModel } from './formats';
import type { FileModelHints, LoadedModel, ModelSource } from './model';
import { guessPreprocessing, resolveModelFile, type ModelFile } from './modelFiles';
import { loadKerasModel } from './models/keras';
import { loadKerasApplication, openKerasApplicationOnOnnx } from './models/kerasApplications';
import { loadOnnxModel } from './models/onnx';
import { openPytorchModel } from './models/pytorch';
import { loadTfjsGraphModel } from './models/tfjsGraph';
import { loadTfjsLayersModel } from './models/tfjsLayers';
import type { PreprocessMode } from './preprocess';
import { getTf } from './tf';

// Where a model comes from, turned into something the model cache can key and open: the bundled
// MobileNetV2, a downloaded catalogue model, or a file of the user's in one of the formats
// formats.ts registers, opened by that format's opener (FORMAT_OPENERS below). Each opener gives
// the model its name, description and the preprocessing it expects; which runtime it then runs on
// is the cache's choice (modelCache.ts).

/** Hears how a long open goes, and stops it when nobody waits for it any more. */
export interface OpenOptions {
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
  /** Whether a model that can run on onnxruntime instead of TensorFlow.js should (default true). */
  native?: boolean;
}

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
  open(options?: OpenOptions): Promise<LoadedModel>;
  /**
   * Where its ONNX form is, for a model that runs on onnxruntime converted (Keras, TF.js): shipped
   * beside it (the bundled model, converted at build time), or kept by the conversion store for
   * `model` (which model: its format and file) as long as `identity` holds (what decides the
   * conversion: the files' sizes and times, the input size).
   */
  readonly onnxForm?: { shipped: string } | { model: object; identity: object };
}

/** The bundled model's ONNX form, made at build time (src/engine/bundledOnnx.ts), in assetsDir. */
export const BUNDLED_ONNX_DIR = path.join('models', 'mobilenet_v2-onnx');

export const BUNDLED_SUMMARY = {
  name: 'MobileNetV2 (bundled)',
  description:
    'MobileNetV2 (alpha 1.0) feature extractor: an ImageNet-trained backbone whose 5-class head was fine-tuned by nsfwjs 4.4.0 (MIT). Input 224×224 RGB scaled to [0, 1]. Ships with the extension; needs no network.',
};

/**
 * Finds `source` on disk (a missing file or undownloaded catalogue model is refused here, in
 * words) and says how to open it. `assetsDir` holds the bundled model and the tfjs wasm binaries.
 */
export async function locateModel(source: ModelSource, assetsDir: string): Promise<LocatedModel> {
  switch (source.kind) {
    case 'bundled': {
      const key = 'bundled:mobilenet_v2';
      return {
        key,
        open: () => openBundledModel(assetsDir, key),
        onnxForm: { shipped: path.join(assetsDir, BUNDLED_ONNX_DIR) },
      };
    }
    case 'catalog': {
      const weights = await catalogWeights(source);
      const key = `${weights.path}@${weights.mtimeMs}`;
      return {
        key,
        path: weights.path,
        open: (options) => openCatalogModel(assetsDir, key, weights.entry, weights.path, options?.native),
        onnxForm: {
          model: { catalog: weights.entry.id, file: weights.path },
          identity: { mtimeMs: weights.mtimeMs, size: weights.size },
        },
      };
    }
    case 'file': {
      const file = await resolveModelFile(source.path);
      const { inputSize, hints = {} } = source;
      const size = inputSize ? `@${inputSize.height}x${inputSize.width}` : '';
      // The architecture a state_dict is read as makes another model of the same file.
      const architecture = hints.architecture ? `#${hints.architecture}` : '';
      const key = `${file.path}@${file.mtimeMs}${size}${architecture}`;
      return {
        key,
        path: file.path,
        open: (options) => openFileModel(assetsDir, key, file, inputSize, hints, options),
        onnxForm: CONVERTED_FORMATS.has(file.format)
          ? {
              model: { format: file.format, file: file.path },
              identity: { files: await fileIdentity(file), inputSize: inputSize ?? null },
            }
          : undefined,
      };
    }
  }
}

/** The formats that run on onnxruntime converted in the engine: their conversion is kept on disk. */
const CONVERTED_FORMATS = new Set<string>(['keras', 'tfjs']);

/** How many files beside a TF.js model.json its identity lists (its weight shards). */
const MAX_SIBLINGS = 1000;

/**
 * What identifies the bytes a model is read from: its file's path, size and time, and for a TF.js
 * model.json those of the files beside it (its weight shards).
 */
async function fileIdentity(file: ModelFile): Promise<unknown[]> {
  const describe = async (name: string) => {
    const stat = await fs.stat(name);
    return [name, stat.size, stat.mtimeMs];
  };
  if (file.format !== 'tfjs') return [await describe(file.path)];
  const folder = path.dirname(file.path);
  const names = (await fs.readdir(folder)).sort().slice(0, MAX_SIBLINGS);
  return Promise.all(names.map((name) => describe(path.join(folder, name)).catch(() => [name])));
}

/** The catalogue entry and its downloaded weights file. */
async function catalogWeights(
  source: Extract<ModelSource, { kind: 'catalog' }>,
): Promise<{ entry: CatalogEntry; path: string; mtimeMs: number; size: number }> {
  const entry = catalogEntry(CATALOG_PREFIX + source.id);
  if (!entry) throw new UserFacingError(`There is no model "${source.id}" in the Feature Maps catalogue.`);
  try {
    const stat = await fs.stat(source.weightsPath);
    return { entry, path: source.weightsPath, mtimeMs: stat.mtimeMs, size: stat.size };
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
 * A Keras application defined in our code, with Keras' own weights file: on onnxruntime, its
 * architecture and weights converted without TensorFlow.js, unless `native` is false (or ONNX
 * Runtime refuses the graph). A catalogue file the loader refuses comes out as a
 * RejectedDownloadError (the host removes it).
 */
async function openCatalogModel(
  assetsDir: string,
  key: string,
  entry: CatalogEntry,
  weightsPath: string,
  native = true,
): Promise<LoadedModel> {
  const options = { key, summary: { name: entry.name, description: entry.detail, path: weightsPath } };
  const rejected = (error: unknown): never => {
    throw error instanceof UserFacingError ? new RejectedDownloadError(error.message, error.detail) : error;
  };
  let model: LoadedModel | undefined;
  let nativeRefusal: string | undefined;
  if (native) {
    const opened = await openKerasApplicationOnOnnx(entry.application, weightsPath, options).catch(rejected);
    if ('unsupported' in opened) nativeRefusal = opened.unsupported;
    else model = opened;
  }
  if (!model) {
    const { tf } = await getTf(assetsDir);
    model = await loadKerasApplication(tf, entry.application, weightsPath, options).catch(rejected);
    if (nativeRefusal) model = { ...model, nativeRefusal };
  }
  // Keras' load_img resizes with nearest neighbour; its models with a classifier predict ImageNet classes.
  return Object.assign(model, {
    preprocessing: entry.preprocessing,
    preprocessingReason: `Keras' preprocess_input for ${entry.name.replace(/ \(.*\)$/, '')}; resized like load_img, nearest`,
    resizeKernel: 'nearest' as const,
    labels: entry.application === 'vgg16_notop' ? undefined : ('imagenet' as const),
  });
}

/**
 * How the engine opens each registered format (formats.ts). Keyed by the registry's ids, so a
 * format registered there without an opener here does not compile.
 */
const FORMAT_OPENERS: { readonly [Id in ModelFormatId]: OpenModel } = {
  tfjs: openTfjsModel,
  keras: (ctx) =>
    loadKerasModel(async () => (await getTf(ctx.assetsDir)).tf, {
      ...loaderOptions(ctx),
      modelPath: ctx.file.path,
      native: ctx.native,
    }),
  onnx: (ctx) => loadOnnxModel({ ...loaderOptions(ctx), modelPath: ctx.file.path }),
  pytorch: (ctx) => openPytorchModel(ctx),
};

/** The options every loader takes; the preprocessing is guessed once the model is loaded (openFileModel). */
function loaderOptions(ctx: OpenContext) {
  return { key: ctx.key, summary: ctx.summary, preprocessing: 'raw01' as PreprocessMode, inputSize: ctx.inputSize };
}

/**
 * A TF.js model.json: the TF converter writes format 'graph-model' and a GraphDef (a node list),
 * tfjs' model.save a Layers model; an unreadable file goes to the LayersModel loader, whose error
 * names the problem.
 */
async function openTfjsModel(ctx: OpenContext): Promise<LoadedModel> {
  const { tf } = await getTf(ctx.assetsDir);
  let json: { format?: unknown; modelTopology?: { node?: unknown } } | undefined;
  try {
    const bytes = await readRegularFile(ctx.file.path, { describe: 'the model file', maxBytes: MAX_JSON_BYTES });
    json = JSON.parse(bytes.toString('utf8')) as typeof json;
  } catch {
    json = undefined;
  }
  const isGraph = json?.format === 'graph-model' || Array.isArray(json?.modelTopology?.node);
  const options = { ...loaderOptions(ctx), modelJsonPath: ctx.file.path };
  return isGraph ? loadTfjsGraphModel(tf, options) : loadTfjsLayersModel(tf, options);
}

/**
 * A user's model file, opened by its format's opener; refused when no layer has maps to show.
 * Its preprocessing is guessed from the format and the layers (modelFiles.ts).
 */
async function openFileModel(
  assetsDir: string,
  key: string,
  file: ModelFile,
  inputSize: { height: number; width: number } | undefined,
  hints: FileModelHints,
  options: OpenOptions = {},
): Promise<LoadedModel> {
  const format = formatById(file.format);
  // A file named after its format (a TF.js model.json) is named by its folder.
  const summary = {
    name: namesItsFolder(file.path) ? path.basename(path.dirname(file.path)) : path.basename(file.path),
    description: `${format.label}: ${file.path}`,
    path: file.path,
  };
  const model = await FORMAT_OPENERS[format.id]({ assetsDir, key, file, summary, inputSize, hints, ...options });
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

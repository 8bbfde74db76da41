import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { ExtractionResult, LayerData, LayerInfo, Prediction } from '../shared/protocol';
import type { EngineProgress } from './api';
import { budgetBytes, checkInputBudget, checkPassBudget, estimatePass } from './budget';
import { NotCachedError, RejectedDownloadError, UserFacingError, errorText } from './errors';
import { MAX_JSON_BYTES, readRegularFile } from './files';
import { decodeImage, type ResizeMode } from './image';
import { readLabels, topK } from './labels';
import { groupLayers, isSpatial, listsLayers, matchLayers } from './layers';
import { firstLayerToShow } from '../shared/selection';
import type { Activation, LoadedModel, ModelSource } from './model';
import { findLabelsBeside, guessPreprocessing, resolveModelFile, type ModelFile, type ModelFormat } from './modelFiles';
import { CATALOG_PREFIX, type CatalogEntry, IMAGENET_LABELS, catalogEntry } from './catalog';
import { loadKerasModel } from './models/keras';
import { loadKerasApplication } from './models/kerasApplications';
import { TRIAL_PASS_BYTES, toOnnxRuntime } from './models/layersToOnnx';
import { loadOnnxModel } from './models/onnx';
import { loadTfjsGraphModel } from './models/tfjsGraph';
import { loadTfjsLayersModel } from './models/tfjsLayers';
import {
  PREPROCESS_DESCRIPTIONS,
  preprocess,
  preprocessCustom,
  toGray,
  type CustomNormalization,
  type PreprocessMode,
} from './preprocess';
import { quantizeChannels } from './quantize';
import { getTf } from './tf';

export interface EngineOptions {
  /** The folder with the built assets: tfjs wasm binaries and models/ (the extension's dist/). */
  assetsDir: string;
  /** How many bytes of activations to keep cached across images (at least one image is always kept). */
  cacheBytes?: number;
  /**
   * Run TF.js and Keras models on onnxruntime, converted to ONNX in memory, when every layer
   * converts (default true); those that do not stay on TensorFlow.js. The environment variable
   * FEATURE_MAPS_NATIVE=0 turns it off where this option is not given (to compare, or if ORT misbehaves).
   */
  nativeLayers?: boolean;
  /** Where the engine says which runtime each model runs on, and why. */
  log?: (line: string) => void;
  /**
   * The most a forward pass may allocate, in bytes, where a request does not say (default
   * DEFAULT_MEMORY_BUDGET_BYTES, 2 GB; Infinity for none). A pass over it is refused, naming its
   * biggest layer (budget.ts).
   */
  memoryBudgetBytes?: number;
}

/** Hears of a call's steps (see EngineProgress): the engine process passes them to the host. */
export type OnProgress = (progress: EngineProgress) => void;

export interface ExtractRequest {
  imagePath: string;
  model: ModelSource;
  /** The `featureMaps.layers` patterns, to mark which layers are listed. */
  layerPatterns: string[];
  /** Preprocessing to use; `auto` (the default) picks what the model suggests. */
  preprocessing?: PreprocessMode | 'auto';
  /** The user's own mean/std; when given, it replaces the preprocessing above. */
  customNormalization?: CustomNormalization;
  /** How the image is fitted to the model's input size (default: stretch). */
  resize?: ResizeMode;
  /** A labels file (one class per line, or "index,name") for top-5 predictions; default: one beside the model. */
  labelsPath?: string;
  /**
   * Compute only what the panel shows first, so the pass can stop early and skip the rest: the
   * spatial layers `layerPatterns` lists, or, when it lists none, just `firstLayer`; and the
   * classifier head, for the top-5. Any other layer is computed when first asked for, or by `complete`.
   */
  onlyListedLayers?: boolean;
  /** The layer the panel will show first (the one it showed last); default: the one it picks for a new panel. */
  firstLayer?: string;
  /**
   * The most this request's passes may allocate, in bytes (`featureMaps.memoryBudget` × 2^20);
   * it wins over EngineOptions.memoryBudgetBytes. It also holds for `complete` and `ensureLayer`
   * on the result.
   */
  memoryBudgetBytes?: number;
}

interface CachedActivations {
  model: LoadedModel;
  activations: Map<string, Activation>;
  bytes: number;
  /** The model input, kept while some layers are not computed yet. */
  input: Float32Array | undefined;
  /** The pass that computes them, while it runs: every caller waits for the same one. */
  completing?: Promise<void>;
  /** Passes over one layer each, while they run (when every layer at once is over the budget). */
  computing: Map<string, Promise<void>>;
  /** The memory budget of the request that made the result, for the passes that complete it. */
  budget: number;
  /** The image's file name, for messages. */
  fileName: string;
}

const DEFAULT_CACHE_BYTES = 512 * 1024 * 1024;

/**
 * Loads models, runs one forward pass per (model, image) and keeps every
 * layer's activations so that switching layers or reopening an image costs
 * nothing. Plain Node: runs in the worker thread, the CLI and unit tests.
 */
export class FeatureMapEngine {
  private readonly models = new Map<string, Promise<LoadedModel>>();
  /** resultKey → activations, in least-recently-used order. */
  private readonly cache = new Map<string, CachedActivations>();
  private readonly cacheBytes: number;
  private readonly nativeLayers: boolean;
  private readonly memoryBudget: number;

  constructor(private readonly options: EngineOptions) {
    this.cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.nativeLayers = options.nativeLayers ?? process.env.FEATURE_MAPS_NATIVE !== '0';
    this.memoryBudget = budgetBytes(options.memoryBudgetBytes);
  }

  async backend(): Promise<string> {
    return (await getTf(this.options.assetsDir)).backend;
  }

  async loadModel(source: ModelSource): Promise<LoadedModel> {
    const file = source.kind === 'file' ? await resolveModelFile(source.path) : undefined;
    const weights = source.kind === 'catalog' ? await catalogWeights(source) : undefined;
    // A rewritten checkpoint has a new modification time, hence a new key: it loads again.
    const size =
      source.kind === 'file' && source.inputSize ? `@${source.inputSize.height}x${source.inputSize.width}` : '';
    const key = file
      ? `${file.path}@${file.mtimeMs}${size}`
      : weights
        ? `${weights.path}@${weights.mtimeMs}`
        : 'bundled:mobilenet_v2';
    const modelPath = file?.path ?? weights?.path;
    let loading = this.models.get(key);
    if (!loading) {
      // An older version of the same file (a checkpoint rewritten during training) is let go.
      for (const [oldKey, old] of this.models) {
        if (modelPath && oldKey.startsWith(`${modelPath}@`)) {
          this.models.delete(oldKey);
          old.then(
            (m) => m.dispose(),
            () => undefined,
          );
        }
      }
      loading = this.onFastestRuntime(
        source.kind === 'catalog' && weights
          ? this.openCatalogModel(key, weights.entry, weights.path)
          : this.openModel(key, file, source.kind === 'file' ? source.inputSize : undefined),
      );
      this.models.set(key, loading);
      // A failed load is not cached: the user may fix the file and try again.
      loading.catch(() => this.models.delete(key));
    }
    return loading;
  }

  /**
   * `signal`: checked between the steps (load, decode, forward pass), which run to their end.
   * The memory budget is checked before the image is decoded: the input's size, then the pass.
   * `progress` hears of a forward pass before it starts, with its estimated bytes.
   */
  async extract(request: ExtractRequest, signal?: AbortSignal, progress?: OnProgress): Promise<ExtractionResult> {
    const model = await this.loadModel(request.model);
    signal?.throwIfAborted();
    const stat = await statImage(request.imagePath);
    const chosen = this.choosePreprocessing(model, request);
    const resize = request.resize ?? 'stretch';
    const kernel = model.resizeKernel ?? 'bilinear';
    const custom = request.customNormalization;
    const normalization = custom ? `mean ${custom.mean.join(',')} std ${custom.std.join(',')}` : chosen.mode;
    const resultKey = `${model.key}|${normalization}|${resize}|${kernel}|${request.imagePath}|${stat.mtimeMs}|${stat.size}`;
    const fileName = path.basename(request.imagePath);
    const budget = budgetBytes(request.memoryBudgetBytes, this.memoryBudget);

    const { height, width, channels } = model.inputSize;
    if (channels !== 1 && channels !== 3) {
      throw new UserFacingError(
        `The model takes ${channels}-channel input; only 1 (grayscale) and 3 (RGB) are supported.`,
      );
    }
    const setting = request.model.kind === 'file' ? request.model.inputSize : undefined;
    checkInputBudget(model, budget, model.summary.name, setting?.height === height && setting.width === width);
    const matched = matchLayers(model.layers, request.layerPatterns);
    const wanted = request.onlyListedLayers
      ? wantedLayers(model, matched, listsLayers(request.layerPatterns), request.firstLayer)
      : undefined;
    const cached = this.touch(resultKey);
    const lacking = [...(wanted ?? model.layers.map((l) => l.name))].filter((l) => !cached?.activations.has(l));
    const needsPass = !cached || lacking.length > 0;
    // A cached partial pass that lacks a layer now listed is completed; when every layer at once
    // is over the budget, it gets just the listed layers it lacks.
    let only = cached ? undefined : wanted;
    if (cached && wanted && needsPass && estimatePass(model).bytes > budget) only = new Set(lacking);
    const passBytes = needsPass
      ? checkPassBudget(
          estimatePass(model, only),
          budget,
          `The forward pass of ${model.summary.name} on ${fileName}${only ? ` (${only.size} of its ${model.layers.length} layers)` : ''}`,
        )
      : 0;
    const image = await decodeImage(request.imagePath, { width, height, resize, kernel });
    let elapsedMs = 0;
    signal?.throwIfAborted();
    if (needsPass) {
      const started = performance.now();
      let activations: Map<string, Activation>;
      let input: Float32Array;
      try {
        const pixels = channels === 1 ? toGray(image.rgb) : image.rgb;
        input = custom ? preprocessCustom(pixels, custom, channels) : preprocess(pixels, chosen.mode, channels);
        progress?.({ step: 'pass', bytes: passBytes });
        activations = await model.run(input, only);
      } catch (error) {
        throw new UserFacingError(`The model failed to run on ${image.fileName}.`, errorText(error));
      }
      elapsedMs = performance.now() - started;
      for (const [name, activation] of cached?.activations ?? []) {
        if (!activations.has(name)) activations.set(name, activation);
      }
      const complete = model.layers.every((l) => activations.has(l.name));
      this.store(resultKey, {
        model,
        activations,
        bytes: sumBytes(activations),
        input: complete ? undefined : input,
        computing: new Map(),
        budget,
        fileName,
      });
    }

    const groups = groupLayers(model.layers);
    const layers: LayerInfo[] = model.layers.map((layer, i) => ({
      name: layer.name,
      op: layer.op,
      group: groups[i],
      shape: layer.shape,
      spatial: isSpatial(layer.shape),
      matched: matched[i],
    }));
    const labelsPath =
      request.labelsPath ??
      (model.labels === 'imagenet'
        ? path.join(this.options.assetsDir, 'models', IMAGENET_LABELS)
        : model.path
          ? await findLabelsBeside(model.path)
          : undefined);
    return {
      resultKey,
      model: {
        ...model.summary,
        ...(model.backend ? { backend: model.backend } : {}),
        preprocessing: custom
          ? `custom: (x − mean) / std, mean ${custom.mean.join(', ')}, std ${custom.std.join(', ')} (set by featureMaps.mean and featureMaps.std)`
          : `${chosen.mode}: ${PREPROCESS_DESCRIPTIONS[chosen.mode]} (${chosen.why})`,
      },
      input: {
        fileName: image.fileName,
        originalWidth: image.originalWidth,
        originalHeight: image.originalHeight,
        width: image.width,
        height: image.height,
        rgba: rgbToRgba(image.rgb),
        notes: image.notes,
      },
      layers,
      elapsedMs,
      partial: this.cache.get(resultKey)?.input !== undefined,
      predictions: labelsPath ? await this.predictions(resultKey, model, labelsPath) : undefined,
    };
  }

  private choosePreprocessing(model: LoadedModel, request: ExtractRequest): { mode: PreprocessMode; why: string } {
    if (request.preprocessing && request.preprocessing !== 'auto') {
      return { mode: request.preprocessing, why: 'set by featureMaps.preprocessing' };
    }
    return { mode: model.preprocessing, why: model.preprocessingReason ?? 'what this model was trained with' };
  }

  /** Top-5 of the model's last layer, when it is a vector with one score per label. */
  private async predictions(
    resultKey: string,
    model: LoadedModel,
    labelsPath: string,
  ): Promise<Prediction[] | undefined> {
    const head = model.layers.at(-1);
    const scores = head && this.activation(resultKey, head.name);
    // A vector, or a 1×1×N map (a convolutional head, as in SqueezeNet).
    const isVector = scores && scores.shape.slice(0, -1).every((d) => d === 1);
    if (!scores || !isVector) return undefined;
    const labels = await readLabels(labelsPath);
    if (labels.length !== scores.data.length) return undefined;
    return topK(scores.data, 5).map(({ index, score }) => ({ label: labels[index], score }));
  }

  /**
   * Makes sure `layer` of a cached result is computed: a partial pass is completed, once. When
   * every layer at once is over the memory budget, a pass computes this layer alone; when even
   * that is over, the UserFacingError says so (the layers already computed stay available).
   */
  async ensureLayer(resultKey: string, layer: string, progress?: OnProgress): Promise<void> {
    const entry = this.touch(resultKey);
    if (!entry) throw new NotCachedError();
    if (entry.activations.has(layer) || !entry.model.layers.some((l) => l.name === layer)) return;
    const input = entry.input;
    if (!input) return;
    // Every layer at once when that fits (switching layers is then instant), else this one alone.
    if (entry.completing || estimatePass(entry.model).bytes <= entry.budget) {
      await this.complete(resultKey, undefined, progress);
      return;
    }
    let computing = entry.computing.get(layer);
    if (!computing) {
      const only = new Set([layer]);
      const bytes = checkPassBudget(
        estimatePass(entry.model, only),
        entry.budget,
        `Computing layer "${layer}" of ${entry.model.summary.name} on ${entry.fileName}`,
      );
      progress?.({ step: 'pass', bytes });
      computing = entry.model.run(input, only).then(
        (activations) => {
          entry.computing.delete(layer);
          const activation = activations.get(layer);
          if (activation) entry.activations.set(layer, activation);
          entry.bytes = sumBytes(entry.activations);
          if (this.cache.has(resultKey)) this.store(resultKey, entry);
        },
        (error: unknown) => {
          entry.computing.delete(layer);
          throw new UserFacingError(`The model failed to run on ${entry.fileName}.`, errorText(error));
        },
      );
      entry.computing.set(layer, computing);
    }
    await computing;
  }

  /**
   * Computes every layer a partial pass left out, in one full pass shared by every caller
   * (the panel starts it once the first grid is drawn). `signal` is checked before it starts.
   * Refused, with a UserFacingError, when that pass is over the memory budget.
   */
  async complete(resultKey: string, signal?: AbortSignal, progress?: OnProgress): Promise<void> {
    const entry = this.touch(resultKey);
    if (!entry) throw new NotCachedError();
    const input = entry.input;
    if (!input) return;
    if (!entry.completing) {
      signal?.throwIfAborted();
      const bytes = checkPassBudget(
        estimatePass(entry.model),
        entry.budget,
        `Computing every layer of ${entry.model.summary.name} on ${entry.fileName}`,
      );
      progress?.({ step: 'pass', bytes });
      entry.completing = entry.model.run(input).then(
        (activations) => {
          for (const [name, activation] of activations) entry.activations.set(name, activation);
          entry.input = undefined;
          entry.completing = undefined;
          entry.bytes = sumBytes(entry.activations);
          if (this.cache.has(resultKey)) this.store(resultKey, entry);
        },
        (error: unknown) => {
          entry.completing = undefined;
          throw error;
        },
      );
    }
    await entry.completing;
  }

  /** The first `count` channels of one layer, quantised for drawing (computed: see ensureLayer). */
  layerData(resultKey: string, layer: string, count: number): LayerData {
    const entry = this.touch(resultKey);
    if (!entry) throw new NotCachedError();
    const activation = entry.activations.get(layer);
    if (!activation) {
      if (entry.model.layers.some((l) => l.name === layer)) {
        throw new Error(`Layer "${layer}" is not computed yet: call ensureLayer first.`);
      }
      throw new UserFacingError(`The model has no layer named "${layer}".`);
    }
    if (!isSpatial(activation.shape)) throw new UserFacingError(`Layer "${layer}" has no spatial maps to draw.`);
    return quantizeChannels(layer, activation, count);
  }

  /** Full float activations of one layer (for the CLI and tests). */
  activation(resultKey: string, layer: string): Activation | undefined {
    return this.touch(resultKey)?.activations.get(layer);
  }

  dispose(): void {
    this.cache.clear();
    for (const loading of this.models.values())
      loading.then(
        (m) => m.dispose(),
        () => undefined,
      );
    this.models.clear();
  }

  /**
   * A TF.js or Keras model moves to onnxruntime (converted to ONNX in memory, several times
   * faster than tfjs' single-threaded wasm) when every layer converts; otherwise it stays on
   * TensorFlow.js, and the log says why.
   */
  private async onFastestRuntime(loading: Promise<LoadedModel>): Promise<LoadedModel> {
    const model = await loading;
    if (!model.layersModel || !this.nativeLayers) return model;
    const started = performance.now();
    let native: LoadedModel | { unsupported: string };
    try {
      // A trial pass at load stays well within the budget (see TRIAL_PASS_BYTES).
      native = await toOnnxRuntime(model, { trialPassBytes: Math.min(TRIAL_PASS_BYTES, this.memoryBudget) });
    } catch (error) {
      native = { unsupported: errorText(error) };
    }
    const name = model.summary.name;
    if ('unsupported' in native) {
      this.options.log?.(`${name} runs on ${model.backend ?? 'TensorFlow.js'}, not onnxruntime: ${native.unsupported}`);
      return model;
    }
    model.dispose();
    this.options.log?.(`${name} runs on onnxruntime (converted in ${(performance.now() - started).toFixed(0)} ms)`);
    return native;
  }

  /** A Keras application defined in our code, with Keras' own weights file. */
  /** A catalogue file the loader refuses comes out as a RejectedDownloadError (the host removes it). */
  private async openCatalogModel(key: string, entry: CatalogEntry, weightsPath: string): Promise<LoadedModel> {
    const { tf } = await getTf(this.options.assetsDir);
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

  private async openModel(
    key: string,
    file: ModelFile | undefined,
    inputSize: { height: number; width: number } | undefined,
  ): Promise<LoadedModel> {
    const { tf } = await getTf(this.options.assetsDir);
    if (!file) {
      return loadTfjsLayersModel(tf, {
        modelJsonPath: path.join(this.options.assetsDir, 'models', 'mobilenet_v2', 'model.json'),
        key,
        summary: BUNDLED_SUMMARY,
        preprocessing: 'raw01',
      });
    }
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

  private touch(key: string): CachedActivations | undefined {
    const entry = this.cache.get(key);
    if (entry) {
      this.cache.delete(key);
      this.cache.set(key, entry);
    }
    return entry;
  }

  private store(key: string, entry: CachedActivations): void {
    this.cache.set(key, entry);
    let total = 0;
    for (const e of this.cache.values()) total += e.bytes;
    for (const [oldKey, old] of this.cache) {
      if (total <= this.cacheBytes || oldKey === key) break;
      this.cache.delete(oldKey);
      total -= old.bytes;
    }
  }
}

const FORMAT_NAMES: Record<ModelFormat, string> = {
  tfjs: 'TF.js model',
  keras: 'Keras model',
  onnx: 'ONNX model',
};

export const BUNDLED_SUMMARY = {
  name: 'MobileNetV2 (bundled)',
  description:
    'MobileNetV2 (alpha 1.0) feature extractor: an ImageNet-trained backbone whose 5-class head was fine-tuned by nsfwjs 4.4.0 (MIT). Input 224×224 RGB scaled to [0, 1]. Ships with the extension; needs no network.',
};

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

/**
 * The layers a partial pass must produce: the listed spatial layers (or, when none are listed,
 * the one the panel shows first) and the classifier head for the top-5. Undefined (every layer)
 * when there is nothing to show.
 */
function wantedLayers(
  model: LoadedModel,
  matched: boolean[],
  listing: boolean,
  firstLayer: string | undefined,
): Set<string> | undefined {
  const layers = model.layers.map((l, i) => ({ ...l, spatial: isSpatial(l.shape), matched: matched[i] }));
  const wanted = new Set(listing ? layers.filter((l) => l.matched && l.spatial).map((l) => l.name) : []);
  const first = layers.find((l) => l.name === firstLayer && l.spatial)?.name ?? firstLayerToShow(layers);
  if (first) wanted.add(first);
  if (wanted.size === 0) return undefined;
  const head = model.layers.at(-1);
  if (head && !isSpatial(head.shape)) wanted.add(head.name);
  return wanted;
}

async function statImage(imagePath: string): Promise<{ mtimeMs: number; size: number }> {
  try {
    const stat = await fs.stat(imagePath);
    if (!stat.isFile()) throw new UserFacingError(`${path.basename(imagePath)} is not a file.`);
    return stat;
  } catch (error) {
    if (error instanceof UserFacingError) throw error;
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new UserFacingError(
      missing
        ? `${path.basename(imagePath)} does not exist (was it moved or deleted?).`
        : `Cannot read ${path.basename(imagePath)}.`,
      errorText(error),
    );
  }
}

function sumBytes(activations: Map<string, Activation>): number {
  let bytes = 0;
  for (const a of activations.values()) bytes += a.data.byteLength;
  return bytes;
}

function rgbToRgba(rgb: Uint8Array): Uint8ClampedArray {
  const rgba = new Uint8ClampedArray((rgb.length / 3) * 4);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    rgba[j] = rgb[i];
    rgba[j + 1] = rgb[i + 1];
    rgba[j + 2] = rgb[i + 2];
    rgba[j + 3] = 255;
  }
  return rgba;
}

import * as path from 'node:path';
import { layerShownFirst } from '../shared/selection';
import { type ActivationCache, sumBytes } from './activationCache';
import type { EngineProgress } from './api';
import { budgetBytes, checkInputBudget, checkPassBudget, estimatePass } from './budget';
import { NotCachedError, UserFacingError, errorText } from './errors';
import { checkRegularFile } from './files';
import { MAX_IMAGE_FILE_BYTES, decodeImage, type DecodedImage, type ResizeMode } from './image';
import { isSpatial, listsLayers, matchLayers } from './layers';
import type { Activation, LoadedModel, ModelSource } from './model';
import { preprocess, preprocessCustom, toGray, type CustomNormalization, type PreprocessMode } from './preprocess';

/** Hears of a call's steps (see EngineProgress): the engine process passes them to the host. */
/**
 * Hears how far a request is. What it returns is awaited before a forward pass starts: a pass
 * may hold the engine's thread (ONNX Runtime's node binding runs a session synchronously), so
 * the report that says a pass runs must have left the process by then.
 */
export type OnProgress = (progress: EngineProgress) => void | Promise<void>;

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
   * With `onlyListedLayers`: leave the classifier head out of the first pass too, so that it
   * stops at the layers shown (the head is the model's last layer: with it, every pass runs the
   * whole model). The top-5 then comes from `FeatureMapEngine.predictions`, asked for once the
   * first grid is on screen.
   */
  headLater?: boolean;
  /**
   * Answer with that layer's first `firstGridChannels` channels too (ExtractionResult.firstGrid),
   * so that the panel paints its first grid without asking for it.
   */
  firstGridChannels?: number;
  /**
   * The most this request's passes may allocate, in bytes (`featureMaps.memoryBudget` × 2^20);
   * it wins over EngineOptions.memoryBudgetBytes. It also holds for `complete` and `ensureLayer`
   * on the result.
   */
  memoryBudgetBytes?: number;
}

/** The preprocessing a request runs with, and why, in the user's words. */
export interface ChosenPreprocessing {
  mode: PreprocessMode;
  why: string;
}

/** What `Extractor.extract` did: the cached result's key and what the view shows of the pass. */
export interface Extraction {
  resultKey: string;
  image: DecodedImage;
  preprocessing: ChosenPreprocessing;
  /** Per layer of the model: `layerPatterns` lists it. */
  matched: boolean[];
  /** How long the forward pass took (0 when every layer asked for was cached). */
  elapsedMs: number;
}

/**
 * Runs the forward passes: one per (model, image) request, stopping early when the request asks
 * only for the layers it shows, and later the passes that complete such a result, all of the
 * layers at once or one layer at a time. Each pass is estimated against the memory budget
 * (budget.ts) before it starts, and refused in words when over it. Results go to the
 * activation cache.
 */
export class Extractor {
  constructor(
    private readonly cache: ActivationCache,
    /** The engine's budget, where a request does not set one. */
    private readonly memoryBudget: number,
  ) {}

  /**
   * `signal`: checked before the forward pass (after decoding), which runs to its end.
   * The memory budget is checked before the image is decoded: the input's size, then the pass.
   * `progress` hears of a forward pass before it starts, with its estimated bytes.
   */
  async extract(
    model: LoadedModel,
    request: ExtractRequest,
    signal?: AbortSignal,
    progress?: OnProgress,
  ): Promise<Extraction> {
    const stat = await statImage(request.imagePath);
    const chosen = choosePreprocessing(model, request);
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
      ? wantedLayers(model, matched, listsLayers(request.layerPatterns), request.firstLayer, !request.headLater)
      : undefined;
    const cached = this.cache.get(resultKey);
    // The latest request's budget governs the passes that complete a cached result.
    if (cached) cached.budget = budget;
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
        await progress?.({ step: 'pass', bytes: passBytes });
        activations = await model.run(input, only);
      } catch (error) {
        throw new UserFacingError(`The model failed to run on ${image.fileName}.`, errorText(error));
      }
      elapsedMs = performance.now() - started;
      for (const [name, activation] of cached?.activations ?? []) {
        if (!activations.has(name)) activations.set(name, activation);
      }
      const complete = model.layers.every((l) => activations.has(l.name));
      this.cache.store(resultKey, {
        model,
        activations,
        bytes: sumBytes(activations),
        input: complete ? undefined : input,
        computing: new Map(),
        budget,
        fileName,
        picture: { rgb: image.rgb, width: image.width, height: image.height },
      });
    }
    return { resultKey, image, preprocessing: chosen, matched, elapsedMs };
  }

  /**
   * Makes sure `layer` of a cached result is computed: a partial pass is completed, once. When
   * every layer at once is over the memory budget, a pass computes this layer alone; when even
   * that is over, the UserFacingError says so (the layers already computed stay available).
   * `alone`: this layer alone even when every layer would fit (the head for the top-5, wanted
   * at once, while the rest waits until the user stays on the image).
   */
  async ensureLayer(resultKey: string, layer: string, progress?: OnProgress, alone = false): Promise<void> {
    const entry = this.cache.get(resultKey);
    if (!entry) throw new NotCachedError();
    if (entry.activations.has(layer) || !entry.model.layers.some((l) => l.name === layer)) return;
    const input = entry.input;
    if (!input) return;
    // Every layer at once when that fits (switching layers is then instant), else (or when asked
    // for `alone`) this one alone.
    if (entry.completing || (!alone && estimatePass(entry.model).bytes <= entry.budget)) {
      await this.complete(resultKey, undefined, progress);
      return;
    }
    const only = new Set([layer]);
    const pass = estimatePass(entry.model, only);
    const told = { step: 'pass', bytes: pass.bytes } as const;
    let computing = entry.computing.get(layer);
    if (!computing) {
      checkPassBudget(
        pass,
        entry.budget,
        `Computing layer "${layer}" of ${entry.model.summary.name} on ${entry.fileName}`,
      );
      // Its first caller hears of the pass before it starts (see OnProgress).
      computing = Promise.resolve(progress?.(told))
        .then(() => entry.model.run(input, only))
        .then(
          (activations) => {
            entry.computing.delete(layer);
            const activation = activations.get(layer);
            this.cache.add(resultKey, entry, activation ? [[layer, activation]] : []);
          },
          (error: unknown) => {
            entry.computing.delete(layer);
            throw new UserFacingError(`The model failed to run on ${entry.fileName}.`, errorText(error));
          },
        );
      entry.computing.set(layer, computing);
    } else {
      // One that joins the pass hears how big it is too.
      void progress?.(told);
    }
    await computing;
  }

  /**
   * Computes every layer a partial pass left out, in one full pass shared by every caller
   * (the panel starts it once the first grid is drawn). `signal` is checked before it starts.
   * Refused, with a UserFacingError, when that pass is over the memory budget.
   */
  async complete(resultKey: string, signal?: AbortSignal, progress?: OnProgress): Promise<void> {
    const entry = this.cache.get(resultKey);
    if (!entry) throw new NotCachedError();
    const input = entry.input;
    if (!input) return;
    const pass = estimatePass(entry.model);
    const told = { step: 'pass', bytes: pass.bytes } as const;
    if (!entry.completing) {
      signal?.throwIfAborted();
      checkPassBudget(pass, entry.budget, `Computing every layer of ${entry.model.summary.name} on ${entry.fileName}`);
      // Its first caller hears of the pass before it starts (see OnProgress).
      entry.completing = Promise.resolve(progress?.(told))
        .then(() => entry.model.run(input))
        .then(
          (activations) => {
            entry.input = undefined;
            entry.completing = undefined;
            this.cache.add(resultKey, entry, activations);
          },
          (error: unknown) => {
            entry.completing = undefined;
            throw error;
          },
        );
    } else {
      // One that joins the pass hears how big it is too.
      void progress?.(told);
    }
    await entry.completing;
  }
}

/** The request's preprocessing (`featureMaps.preprocessing`), else the one the model expects. */
function choosePreprocessing(model: LoadedModel, request: ExtractRequest): ChosenPreprocessing {
  if (request.preprocessing && request.preprocessing !== 'auto') {
    return { mode: request.preprocessing, why: 'set by featureMaps.preprocessing' };
  }
  return { mode: model.preprocessing, why: model.preprocessingReason ?? 'what this model was trained with' };
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
  withHead: boolean,
): Set<string> | undefined {
  const layers = model.layers.map((l, i) => ({ ...l, spatial: isSpatial(l.shape), matched: matched[i] }));
  const wanted = new Set(listing ? layers.filter((l) => l.matched && l.spatial).map((l) => l.name) : []);
  const first = layerShownFirst(layers, firstLayer);
  if (first) wanted.add(first);
  if (wanted.size === 0) return undefined;
  const head = classifierHead(model);
  if (head && withHead) wanted.add(head);
  return wanted;
}

/** The model's last layer when it is a vector (the scores behind the top-5), else undefined. */
export function classifierHead(model: LoadedModel): string | undefined {
  const head = model.layers.at(-1);
  return head && !isSpatial(head.shape) ? head.name : undefined;
}

/**
 * The image's size and modification time, for the result key: a rewritten image is a new
 * result. Refused, as decoding would refuse it, when it is not a regular file (a FIFO, a device,
 * a folder), is missing or is larger than an image this extension reads.
 */
async function statImage(imagePath: string): Promise<{ mtimeMs: number; size: number }> {
  return checkRegularFile(imagePath, { describe: path.basename(imagePath), maxBytes: MAX_IMAGE_FILE_BYTES });
}

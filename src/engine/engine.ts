import type {
  ChannelStats,
  ChannelValues,
  ExportRequest,
  ExtractionResult,
  LayerData,
  MapChoice,
  Prediction,
} from '../shared/protocol';
import { exportFile } from './exports';
import { layerNpy } from './npy';
import { rgbToRgba } from './resultView';
import { ActivationCache } from './activationCache';
import { budgetBytes } from './budget';
import { Extractor, classifierHead, type ExtractRequest, type OnProgress } from './extraction';
import type { Activation, LoadedModel, ModelSource } from './model';
import { ModelCache } from './modelCache';
import { NotCachedError } from './errors';
import { ResultView } from './resultView';
import { getTf } from './tf';
import type { ExecutionProviderSetting } from './models/executionProvider';
import { useExecutionProvider } from './models/onnx';
import { layerShownFirst } from '../shared/selection';

export type { ExtractRequest, OnProgress } from './extraction';

export interface EngineOptions {
  /** The folder with the built assets: tfjs wasm binaries and models/ (the extension's dist/). */
  assetsDir: string;
  /** How many bytes of activations to keep cached across images (at least one image is always kept). */
  cacheBytes?: number;
  /**
   * Called when cached results are let go. The engine process collects garbage then, so that the
   * next pass reuses the memory they held instead of faulting in fresh pages (mallocTuning.ts says
   * what that costs); left to itself V8 would wait, as the buffers live outside its heap.
   */
  releaseMemory?: () => void;
  /**
   * Run TF.js and Keras models on onnxruntime, converted to ONNX in memory, when every layer
   * converts (default true); those that do not stay on TensorFlow.js. The environment variable
   * FEATURE_MAPS_NATIVE=0 turns it off where this option is not given (to compare, or if ORT misbehaves).
   */
  nativeLayers?: boolean;
  /** Where the engine says which runtime each model runs on, and why. */
  log?: (line: string) => void;
  /**
   * Where the ONNX form of each converted Keras or TF.js model is kept, so the next open (in any
   * process) needs no conversion; none kept when absent (ModelCache, conversionStore.ts).
   */
  conversionsDir?: string;
  /**
   * The most a forward pass may allocate, in bytes, where a request does not say (default
   * DEFAULT_MEMORY_BUDGET_BYTES, 2 GB; Infinity for none). A pass over it is refused, naming its
   * biggest layer (budget.ts).
   */
  memoryBudgetBytes?: number;
  /**
   * The device onnxruntime runs on (`featureMaps.executionProvider`; default `auto`): a provider
   * that is not there or does not start falls back to the CPU, and the result says so.
   */
  executionProvider?: ExecutionProviderSetting;
}

/**
 * Loads models, runs one forward pass per (model, image) and keeps every layer's activations, so
 * that switching layers or reopening an image costs nothing. Plain Node: runs in the engine
 * process, the CLI and unit tests. A façade over four parts with one job each:
 *
 * - ModelCache (modelCache.ts): each model loaded once per version, on the fastest runtime;
 *   modelSources.ts finds and opens the bundled, catalogue and file models;
 * - ActivationCache (activationCache.ts): the latest results' activations, within a byte limit;
 * - Extractor (extraction.ts): the forward passes, each checked against the memory budget;
 * - ResultView (resultView.ts): a result shaped for the panel, a layer quantised for drawing.
 */
export class FeatureMapEngine {
  private readonly models: ModelCache;
  private readonly activations: ActivationCache;
  private readonly extractor: Extractor;
  private readonly view: ResultView;

  constructor(private readonly options: EngineOptions) {
    const memoryBudget = budgetBytes(options.memoryBudgetBytes);
    useExecutionProvider(options.executionProvider ?? 'auto');
    this.models = new ModelCache({
      assetsDir: options.assetsDir,
      nativeLayers: options.nativeLayers ?? process.env.FEATURE_MAPS_NATIVE !== '0',
      memoryBudget,
      log: options.log,
      conversionsDir: options.conversionsDir,
    });
    this.activations = new ActivationCache(options.cacheBytes, options.releaseMemory);
    this.extractor = new Extractor(this.activations, memoryBudget);
    this.view = new ResultView(this.activations, options.assetsDir);
  }

  async backend(): Promise<string> {
    return (await getTf(this.options.assetsDir)).backend;
  }

  /** The model `source` names, loaded once per version of its file (see ModelCache). */
  loadModel(source: ModelSource, signal?: AbortSignal, progress?: OnProgress): Promise<LoadedModel> {
    return this.models.load(source, signal, progress && ((message) => progress({ step: 'model', message })));
  }

  /**
   * `signal`: checked between the steps (load, decode, forward pass), which run to their end.
   * The memory budget is checked before the image is decoded: the input's size, then the pass.
   * `progress` hears of a forward pass before it starts, with its estimated bytes.
   */
  async extract(request: ExtractRequest, signal?: AbortSignal, progress?: OnProgress): Promise<ExtractionResult> {
    const model = await this.loadModel(request.model, signal, progress);
    signal?.throwIfAborted();
    const extraction = await this.extractor.extract(model, request, signal, progress);
    const result = await this.view.describe(model, request, extraction);
    return request.firstGridChannels ? { ...result, firstGrid: this.firstGrid(result, request) } : result;
  }

  /** The channels of the layer the panel shows first (the one the pass computed first), if computed. */
  private firstGrid(result: ExtractionResult, request: ExtractRequest): LayerData | undefined {
    const { layers, resultKey } = result;
    const first = layerShownFirst(layers, request.firstLayer);
    if (!first || !this.activation(resultKey, first)) return undefined;
    return this.view.layerData(resultKey, first, Math.max(1, request.firstGridChannels ?? 1));
  }

  /**
   * Makes sure `layer` of a cached result is computed: a partial pass is completed, once. When
   * every layer at once is over the memory budget, a pass computes this layer alone; when even
   * that is over, the UserFacingError says so (the layers already computed stay available).
   */
  ensureLayer(resultKey: string, layer: string, progress?: OnProgress): Promise<void> {
    return this.extractor.ensureLayer(resultKey, layer, progress);
  }

  /**
   * The top-5 of a cached result (ExtractionResult.predictions), computing the classifier head
   * first when the first pass left it out (ExtractRequest.headLater): a pass for the head alone
   * (or the pass over every layer, if one is under way); the rest still waits for `complete`.
   * `labelsPath`: as in the request. Undefined when the model has no classifier head or no
   * labels were found.
   */
  async predictions(resultKey: string, labelsPath?: string, progress?: OnProgress): Promise<Prediction[] | undefined> {
    const entry = this.activations.get(resultKey);
    if (!entry) throw new NotCachedError();
    const head = classifierHead(entry.model);
    if (!head) return undefined;
    await this.extractor.ensureLayer(resultKey, head, progress, true);
    return this.view.predictionsOf(resultKey, labelsPath);
  }

  /**
   * Computes every layer a partial pass left out, in one full pass shared by every caller
   * (the panel starts it once the first grid is drawn). `signal` is checked before it starts.
   * Refused, with a UserFacingError, when that pass is over the memory budget.
   */
  complete(resultKey: string, signal?: AbortSignal, progress?: OnProgress): Promise<void> {
    return this.extractor.complete(resultKey, signal, progress);
  }

  /**
   * Channels of one layer, quantised for drawing (computed: see ensureLayer): the first `count`,
   * or those `channels` lists (a page of the grid in its order).
   */
  layerData(resultKey: string, layer: string, count: number, channels?: readonly number[]): LayerData {
    return this.view.layerData(resultKey, layer, count, channels);
  }

  /** Every channel's min, max, mean, standard deviation and fraction active (computed: see ensureLayer). */
  channelStats(resultKey: string, layer: string): ChannelStats {
    return this.view.channelStats(resultKey, layer);
  }

  /** One channel's exact values (computed: see ensureLayer). */
  channelValues(resultKey: string, layer: string, channel: MapChoice): ChannelValues {
    return this.view.channelValues(resultKey, layer, channel);
  }

  /** A file of one layer (computed: see ensureLayer): a PNG of the grid or a channel, the layer as .npy, statistics as CSV. */
  exportFile(resultKey: string, request: ExportRequest): Promise<Uint8Array> {
    const entry = this.activations.get(resultKey);
    if (!entry) throw new NotCachedError();
    const { layer } = request;
    const { rgb, width, height } = entry.picture;
    const activation = () => this.view.spatialActivation(resultKey, layer);
    return exportFile(
      {
        layers: entry.model.layers,
        input: { rgba: rgbToRgba(rgb), width, height },
        layerData: (count, channels) => this.view.layerData(resultKey, layer, count, channels),
        stats: () => this.view.channelStats(resultKey, layer),
        npy: (layout) => layerNpy(activation(), layout),
      },
      request,
    );
  }

  /** Full float activations of one layer (for the CLI and tests). */
  activation(resultKey: string, layer: string): Activation | undefined {
    return this.activations.get(resultKey)?.activations.get(layer);
  }

  /** Resolves when the conversions this engine made are kept on disk: the CLI waits for it before it exits. */
  keptConversions(): Promise<void> {
    return this.models.keptConversions();
  }

  dispose(): void {
    this.activations.clear();
    this.models.dispose();
  }
}

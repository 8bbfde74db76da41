import * as path from 'node:path';
import {
  ConversionStore,
  KEPT_CONVERSIONS,
  discardConversion,
  readConversion,
  type StoredConversion,
} from './conversionStore';
import { CancelledError, errorText } from './errors';
import type { LoadedModel, ModelSource } from './model';
import { type LocatedModel, type OpenOptions, locateModel } from './modelSources';
import { TRIAL_PASS_BYTES, openStoredConversion, toOnnxRuntime } from './models/layersToOnnx';
import { graphModelToOnnxRuntime } from './models/tfjsGraphToOnnx';
import { onnxRuntimeAvailable } from './models/onnx';

export interface ModelCacheOptions {
  /** The folder with the built assets: tfjs wasm binaries and models/ (the extension's dist/). */
  assetsDir: string;
  /** Move TF.js and Keras models to onnxruntime when every layer converts (see EngineOptions.nativeLayers). */
  nativeLayers: boolean;
  /** The engine's memory budget, in bytes: a trial pass at load stays within it. */
  memoryBudget: number;
  /**
   * Where the ONNX form of a converted model (Keras, TF.js) is kept, so that the next open, in this
   * process or another, needs no conversion (conversionStore.ts); none when absent.
   */
  conversionsDir?: string;
  /** Where the cache says which runtime each model runs on, and why. */
  log?: (line: string) => void;
}

/**
 * Keeps each model loaded once, by its version (file and modification time: modelSources.ts),
 * on the fastest runtime it can run on. A rewritten checkpoint loads again and its older version
 * is let go; a failed load is not kept, so the user can fix the file and try again.
 */
export class ModelCache {
  /** key → the model, loading or loaded. */
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  /** key → who waits for a model still loading: its open is stopped when the last of them gives up. */
  private readonly waiting = new Map<string, Waiters>();

  private readonly store: ConversionStore | undefined;
  /** Conversions being written to the store (ConversionStore.write never rejects). */
  private readonly writing = new Set<Promise<void>>();
  /** Whether onnxruntime loads in this process (asked at the first open). */
  private ortLoads: boolean | undefined;
  private saidNoOrt = false;

  constructor(private readonly options: ModelCacheOptions) {
    // Beside the PyTorch conversions (one folder each, by hash), in a folder of their own.
    this.store = options.conversionsDir
      ? new ConversionStore(path.join(options.conversionsDir, KEPT_CONVERSIONS), options.log)
      : undefined;
  }

  /**
   * The model `source` names, loading it the first time this version of it is asked for.
   * `onProgress` hears what a long open is doing; when every caller waiting for an open has been
   * cancelled (`signal`), the open stops (a PyTorch conversion ends its Python process).
   */
  async load(source: ModelSource, signal?: AbortSignal, onProgress?: (message: string) => void): Promise<LoadedModel> {
    signal?.throwIfAborted();
    const located = await locateModel(source, this.options.assetsDir);
    const { key } = located;
    let loading = this.loading.get(key);
    if (!loading) {
      if (located.path) this.releaseOlderVersions(located.path);
      const waiters: Waiters = { count: 0, stop: new AbortController(), listeners: new Set() };
      this.waiting.set(key, waiters);
      const started = this.open(located, {
        signal: waiters.stop.signal,
        onProgress: (message) => waiters.listeners.forEach((listener) => listener(message)),
        native: this.native(),
      });
      loading = started;
      this.loading.set(key, started);
      // Only this load's own entries are removed: a stopped load may be followed by a new one.
      const forget = (failed: boolean) => {
        if (this.waiting.get(key) === waiters) this.waiting.delete(key);
        // A failed load is not cached: the user may fix the file and try again.
        if (failed && this.loading.get(key) === started) this.loading.delete(key);
      };
      started.then(
        () => forget(false),
        () => forget(true),
      );
    }
    const waiters = this.waiting.get(key);
    if (!waiters) return loading;
    waiters.count++;
    if (onProgress) waiters.listeners.add(onProgress);
    // Nobody waits any more: an open that can stop (a PyTorch conversion) stops.
    const giveUp = () => {
      if (--waiters.count === 0) waiters.stop.abort();
    };
    signal?.addEventListener('abort', giveUp, { once: true });
    try {
      return await loading;
    } catch (error) {
      // Joined an open that stopped because the callers before gave up: open it afresh.
      if (error instanceof CancelledError && !signal?.aborted) return this.load(source, signal, onProgress);
      throw error;
    } finally {
      signal?.removeEventListener('abort', giveUp);
      if (onProgress) waiters.listeners.delete(onProgress);
      if (!signal?.aborted) waiters.count--;
    }
  }

  /**
   * Whether TF.js and Keras models move to onnxruntime: unless turned off, wherever it loads (the
   * Intel Mac and Alpine packages have none: there every such model stays on TensorFlow.js).
   */
  private native(): boolean {
    if (!this.options.nativeLayers) return false;
    this.ortLoads ??= onnxRuntimeAvailable();
    if (!this.ortLoads && !this.saidNoOrt) {
      this.saidNoOrt = true;
      this.options.log?.('ONNX Runtime is not available here: Keras and TF.js models run on TensorFlow.js');
    }
    return this.ortLoads;
  }

  /** Lets go of every model, once each has finished loading. */
  dispose(): void {
    for (const loading of this.loading.values()) release(loading);
    this.loading.clear();
  }

  /** An older version of the same file (a checkpoint rewritten during training) is let go. */
  private releaseOlderVersions(modelPath: string): void {
    for (const [oldKey, old] of this.loading) {
      if (oldKey.startsWith(`${modelPath}@`)) {
        this.loading.delete(oldKey);
        release(old);
      }
    }
  }

  /**
   * Opens `located`: from its ONNX form when one is shipped or kept (no conversion), else by its
   * format's opener, on the fastest runtime; a fresh conversion is kept for the next open.
   */
  private async open(located: LocatedModel, options: OpenOptions): Promise<LoadedModel> {
    const where = this.native() ? located.onnxForm : undefined;
    if (where) {
      const started = performance.now();
      const stored =
        'shipped' in where
          ? await readConversion(where.shipped, this.options.log, { shipped: true })
          : await this.store?.read(where.model, where.identity);
      const model = stored && (await this.openStored(stored, located.key, 'shipped' in where));
      if (model) {
        this.options.log?.(
          `${model.summary.name} runs on onnxruntime (its ONNX form ${'shipped' in where ? 'shipped with the extension' : 'kept from an earlier open'}, opened in ${(performance.now() - started).toFixed(0)} ms)`,
        );
        return model;
      }
    }
    const model = await this.onFastestRuntime(located.open(options));
    if (where && 'identity' in where && this.store) {
      // Kept beside the first grid, not before it (VGG16's is 528 MB); see keptConversions().
      const writing = this.store.write(where.model, where.identity, model);
      this.writing.add(writing);
      void writing.finally(() => this.writing.delete(writing));
    }
    return model;
  }

  /** Resolves when the conversions being kept are on disk (a process about to exit waits for them). */
  async keptConversions(): Promise<void> {
    await Promise.all(this.writing);
  }

  /** A shipped or kept conversion on onnxruntime; undefined when ORT refuses it (a kept one is then removed). */
  private async openStored(stored: StoredConversion, key: string, shipped: boolean): Promise<LoadedModel | undefined> {
    try {
      return await openStoredConversion(stored, key);
    } catch (error) {
      this.options.log?.(`The ONNX form in ${stored.dir} did not open (${errorText(error)}): converting again.`);
      if (!shipped) await discardConversion(stored.dir);
      return undefined;
    }
  }

  /**
   * A TF.js (Layers or Graph) or Keras model moves to onnxruntime (converted to ONNX in memory,
   * several times faster than tfjs' single-threaded wasm) when every layer converts; otherwise it
   * stays on TensorFlow.js, and the log says why.
   */
  private async onFastestRuntime(loading: Promise<LoadedModel>): Promise<LoadedModel> {
    const model = await loading;
    if (model.convertedInMs !== undefined) {
      this.options.log?.(
        `${model.summary.name} runs on onnxruntime (converted in ${model.convertedInMs.toFixed(0)} ms)`,
      );
    }
    const toNative = model.layersModel ? toOnnxRuntime : model.graphModel ? graphModelToOnnxRuntime : undefined;
    if (!toNative || !this.native()) return model;
    if (model.nativeRefusal) {
      // The loader tried already, from the file itself.
      this.options.log?.(
        `${model.summary.name} runs on ${model.backend ?? 'TensorFlow.js'}, not onnxruntime: ${model.nativeRefusal}`,
      );
      return model;
    }
    const started = performance.now();
    let native: (LoadedModel & { trialPassMs?: number }) | { unsupported: string };
    try {
      // A trial pass at load stays well within the budget (see TRIAL_PASS_BYTES).
      native = await toNative(model, { trialPassBytes: Math.min(TRIAL_PASS_BYTES, this.options.memoryBudget) });
    } catch (error) {
      native = { unsupported: errorText(error) };
    }
    const name = model.summary.name;
    if ('unsupported' in native) {
      this.options.log?.(`${name} runs on ${model.backend ?? 'TensorFlow.js'}, not onnxruntime: ${native.unsupported}`);
      return model;
    }
    model.dispose();
    const checked =
      native.trialPassMs === undefined
        ? "every shape checked by ONNX Runtime's inference, no pass at load"
        : `its shapes checked by a pass at load (${native.trialPassMs.toFixed(0)} ms)`;
    this.options.log?.(
      `${name} runs on onnxruntime (converted in ${(performance.now() - started).toFixed(0)} ms), ${checked}`,
    );
    return native;
  }
}

interface Waiters {
  count: number;
  stop: AbortController;
  listeners: Set<(message: string) => void>;
}

/** Disposes a model once it has loaded (a failed load has nothing to dispose). */
function release(loading: Promise<LoadedModel>): void {
  loading.then(
    (model) => model.dispose(),
    () => undefined,
  );
}

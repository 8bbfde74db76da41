import type { Activation, LoadedModel } from './model';

/** How many bytes of activations the engine keeps across images unless told otherwise. */
export const DEFAULT_CACHE_BYTES = 256 * 1024 * 1024;

/**
 * One (model, image) result: the activations computed so far and what it takes to compute the
 * rest. A partial pass (the layers the panel shows first) keeps the model input, so the other
 * layers can be computed later without decoding the image again.
 */
export interface CachedActivations {
  model: LoadedModel;
  activations: Map<string, Activation>;
  /** The activations' bytes, as the cache's limit counts them. */
  bytes: number;
  /** The model input, kept while some layers are not computed yet. */
  input: Float32Array | undefined;
  /** The pass that computes them, while it runs: every caller waits for the same one. */
  completing?: Promise<void>;
  /** Passes over one layer each, while they run (when every layer at once is over the budget). */
  computing: Map<string, Promise<void>>;
  /** The memory budget of the latest request for the result, for the passes that complete it. */
  budget: number;
  /** The image's file name, for messages. */
  fileName: string;
  /** The image as the model saw it (RGB, resized to its input): what exports draw maps over. */
  picture: { rgb: Uint8Array; width: number; height: number };
}

/**
 * Keeps every layer's activations of the latest results (by result key: model, preprocessing,
 * image and its version), least recently used first out, within a byte limit; the result stored
 * last is always kept, whatever its size. So switching layers or reopening an image costs nothing.
 */
export class ActivationCache {
  /** resultKey → activations, in least-recently-used order. */
  private readonly entries = new Map<string, CachedActivations>();

  /**
   * @param onRelease called whenever results are let go (evicted or cleared): their buffers are
   *   garbage from then on, and the engine process collects them at once (see EngineOptions.releaseMemory).
   */
  constructor(
    private readonly maxBytes: number = DEFAULT_CACHE_BYTES,
    private readonly onRelease?: () => void,
  ) {}

  /** The result stored under `key`, now the most recently used. */
  get(key: string): CachedActivations | undefined {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** The result stored under `key`, its place in the order left as it is. */
  peek(key: string): CachedActivations | undefined {
    return this.entries.get(key);
  }

  /** Stores a result, then lets go of the least recently used others while over the byte limit. */
  store(key: string, entry: CachedActivations): void {
    this.entries.set(key, entry);
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    let released = false;
    for (const [oldKey, old] of this.entries) {
      if (total <= this.maxBytes || oldKey === key) break;
      this.entries.delete(oldKey);
      total -= old.bytes;
      released = true;
    }
    if (released) this.onRelease?.();
  }

  /**
   * Adds the activations a later pass computed to `entry` and counts its bytes again; when the
   * entry is still cached, the byte limit is applied again (it may have been let go meanwhile).
   */
  add(key: string, entry: CachedActivations, activations: Iterable<[string, Activation]>): void {
    for (const [name, activation] of activations) entry.activations.set(name, activation);
    entry.bytes = sumBytes(entry.activations);
    if (this.entries.has(key)) this.store(key, entry);
  }

  clear(): void {
    if (this.entries.size === 0) return;
    this.entries.clear();
    this.onRelease?.();
  }
}

/** The bytes a result's activations keep (a derived one keeps none: it is computed when read). */
export function sumBytes(activations: Map<string, Activation>): number {
  let bytes = 0;
  for (const a of activations.values()) if (!a.derived) bytes += a.data.byteLength;
  return bytes;
}

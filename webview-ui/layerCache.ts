/**
 * Small LRU of layer data received from the host, so switching back to a layer (or changing
 * colormap/normalisation) redraws instantly without a new request.
 */
import type { LayerData } from '../src/shared/protocol';

const keyOf = (resultKey: string, layer: string, count: number): string => `${resultKey}\u0000${layer}\u0000${count}`;

export class LayerCache {
  private readonly entries = new Map<string, { resultKey: string; data: LayerData }>();

  constructor(private readonly capacity = 8) {}

  /** `requested` is the count asked for; the host may send fewer (a layer with fewer channels). */
  put(resultKey: string, data: LayerData, requested = data.count): void {
    const key = keyOf(resultKey, data.layer, requested);
    this.entries.delete(key);
    this.entries.set(key, { resultKey, data });
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** Exact hit, else a larger cached count of the same layer sliced down to `count`. */
  get(resultKey: string, layer: string, count: number): LayerData | undefined {
    const key = keyOf(resultKey, layer, count);
    const exact = this.entries.get(key);
    if (exact) {
      this.entries.delete(key);
      this.entries.set(key, exact);
      return exact.data;
    }
    for (const { resultKey: rk, data } of this.entries.values()) {
      if (rk === resultKey && data.layer === layer && data.count >= count) {
        return sliceChannels(data, count);
      }
    }
    return undefined;
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The first `count` channels as views on the same buffers (no copy). */
export function sliceChannels(data: LayerData, count: number): LayerData {
  if (count >= data.count) return data;
  const plane = data.height * data.width;
  return {
    ...data,
    count,
    values: data.values.subarray(0, count * plane),
    min: data.min.subarray(0, count),
    max: data.max.subarray(0, count),
  };
}

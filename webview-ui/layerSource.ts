/**
 * Where the views of one result get its layers' data: the host (PanelHostApi), asked once per
 * request and kept in small least-recently-used caches of the replies (as promises, so the same
 * request in flight is asked once). A second pane (a comparison) would have a source of its own.
 */
import type { ChannelStats, ChannelValues, LayerData, MapChoice, PanelHostApi } from '../src/shared/protocol';
import { RpcTimeoutError, type RpcClient } from '../src/shared/rpc';
import { isChannelStats, isChannelValues, isLayerData } from './validate';

/**
 * A reply slower than this is reported with a Retry button. The host's own watchdog bounds the
 * engine's work well within it (a pass gets 30 s plus 1 s per 25 MB), so this only catches a
 * host that never answers.
 */
const REQUEST_TIMEOUT_MS = 300_000;

/** Keeps the latest `capacity` values by key; a failed one is dropped so that it is asked again. */
class PromiseCache<T> {
  private readonly entries = new Map<string, Promise<T>>();
  constructor(private readonly capacity: number) {}

  get(key: string, make: () => Promise<T>): Promise<T> {
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
    } else {
      entry = make();
      entry.catch(() => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      });
    }
    this.entries.set(key, entry);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(oldest);
    }
    return entry;
  }

  put(key: string, value: T): void {
    this.get(key, () => Promise.resolve(value));
  }
}

export class LayerSource {
  private readonly pages = new PromiseCache<LayerData>(12);
  private readonly stats = new PromiseCache<ChannelStats>(8);
  private readonly channels = new PromiseCache<ChannelValues>(4);

  constructor(
    private readonly host: RpcClient<PanelHostApi>,
    readonly resultKey: string,
    /** The grid that came with the result (no request for it). */
    firstGrid?: LayerData,
  ) {
    if (firstGrid) this.pages.put(pageKey(firstGrid.layer, firstGrid.count), firstGrid);
  }

  /** The first `count` channels of `layer`, or the `channels` listed (in that order). */
  layerData(layer: string, count: number, channels?: number[]): Promise<LayerData> {
    return this.pages.get(pageKey(layer, count, channels), () =>
      this.call(
        'layerData',
        channels ? [this.resultKey, layer, count, channels] : [this.resultKey, layer, count],
        isLayerData,
        layer,
      ),
    );
  }

  channelStats(layer: string): Promise<ChannelStats> {
    return this.stats.get(layer, () => this.call('channelStats', [this.resultKey, layer], isChannelStats, layer));
  }

  channelValues(layer: string, channel: MapChoice): Promise<ChannelValues> {
    return this.channels.get(`${layer}\0${channel}`, () =>
      this.call('channelValues', [this.resultKey, layer, channel], isChannelValues, layer),
    );
  }

  private async call<K extends keyof PanelHostApi, T>(
    method: K,
    args: Parameters<PanelHostApi[K]>,
    valid: (reply: unknown) => reply is T,
    layer: string,
  ): Promise<T> {
    let reply: unknown;
    try {
      reply = await this.host.call(method, args, { timeoutMs: REQUEST_TIMEOUT_MS });
    } catch (error) {
      if (error instanceof RpcTimeoutError) {
        throw new Error(`No reply for layer ${layer} after ${REQUEST_TIMEOUT_MS / 1000} s.`, { cause: error });
      }
      throw error;
    }
    if (!valid(reply)) throw new Error(`A malformed reply for layer ${layer}.`);
    return reply;
  }
}

function pageKey(layer: string, count: number, channels?: number[]): string {
  return `${layer}\0${channels ? channels.join(',') : `first ${count}`}`;
}

// The files the panel saves of a layer (ExportRequest): the grid or one channel as PNG (drawn as
// the panel draws them, optionally over the image), the layer as float32 .npy in Keras' or
// PyTorch's layout, and every channel's statistics as CSV. Made where the activations are.
import type { ChannelStats, ExportRequest, LayerData } from '../shared/protocol';
import { renderChannel, renderSheet, type SheetLayer, type SheetOptions } from './contactSheet';

/** What an export reads of a result: the layer's data as the engine has it. */
export interface ExportSource {
  layers: readonly SheetLayer[];
  /** The image as the model saw it, RGBA. */
  input: { rgba: Uint8Array | Uint8ClampedArray; width: number; height: number };
  layerData(count: number, channels?: readonly number[]): LayerData;
  stats(): ChannelStats;
  npy(layout: 'hwc' | 'chw'): { bytes: Buffer; shape: number[] };
}

/** The longer side of an exported channel: the model's input size, at least 224 pixels. */
const MIN_CHANNEL_PNG = 224;

export async function exportFile(source: ExportSource, request: ExportRequest): Promise<Uint8Array> {
  const { input } = source;
  const options: SheetOptions = {
    columns: 1,
    tile: 128,
    colormap: request.colormap,
    normalization: request.normalization,
    overlay:
      request.overlay === undefined
        ? undefined
        : { rgba: input.rgba, width: input.width, height: input.height, opacity: request.overlay },
  };
  switch (request.kind) {
    case 'grid-png': {
      const channels = request.channels ?? [];
      const block = source.layerData(channels.length, channels);
      const columns =
        channels.length <= 9
          ? Math.ceil(Math.sqrt(channels.length))
          : Math.min(8, Math.ceil(Math.sqrt(channels.length)));
      return renderSheet([block], source.layers, { ...options, columns: Math.max(1, columns) });
    }
    case 'channel-png': {
      const block = source.layerData(1, [request.channel ?? 0]);
      return renderChannel(block, 0, Math.max(MIN_CHANNEL_PNG, input.width, input.height), options);
    }
    case 'npy-hwc':
    case 'npy-chw':
      return source.npy(request.kind === 'npy-hwc' ? 'hwc' : 'chw').bytes;
    case 'stats-csv':
      return Buffer.from(statsCsv(source.stats()), 'utf8');
  }
}

/** One row per channel: its index, min, max, mean, standard deviation and fraction above zero. */
export function statsCsv(stats: ChannelStats): string {
  const rows = ['channel,min,max,mean,std,active'];
  for (let c = 0; c < stats.totalChannels; c++) {
    rows.push([c, stats.min[c], stats.max[c], stats.mean[c], stats.std[c], stats.active[c]].join(','));
  }
  return `${rows.join('\n')}\n`;
}

import type { LayerData } from '../shared/protocol';
import { channelRanges, strides } from './channelStats';
import type { Activation } from './model';

/**
 * Channels of an H×W×C activation (kept in either layout), channel-major, each quantised to 8
 * bits between its own min and max, for drawing: the first `count`, or the ones `channels` lists
 * (a page of the grid in the order the user sorted it). Also the layer's overall min and max,
 * over all channels, for per-layer normalisation.
 */
export function quantizeChannels(
  layer: string,
  activation: Activation,
  count: number,
  channels?: readonly number[],
): LayerData {
  const [height, width, totalChannels] = activation.shape;
  const picked = Uint32Array.from(
    channels ?? Array.from({ length: Math.max(0, Math.min(count, totalChannels)) }, (_, c) => c),
  );
  const n = picked.length;
  const pixels = height * width;
  const src = activation.data;
  const { channelStride, pixelStride } = strides(activation);
  const ranges = channelRanges(activation);
  let layerMin = Infinity;
  let layerMax = -Infinity;
  for (let c = 0; c < totalChannels; c++) {
    if (ranges.min[c] < layerMin) layerMin = ranges.min[c];
    if (ranges.max[c] > layerMax) layerMax = ranges.max[c];
  }
  const min = new Float32Array(n);
  const max = new Float32Array(n);
  const values = new Uint8Array(n * pixels);
  for (let k = 0; k < n; k++) {
    const c = picked[k];
    const lo = ranges.min[c];
    min[k] = lo;
    max[k] = ranges.max[c];
    const range = max[k] - lo;
    const scale = range > 0 ? 255 / range : 0;
    const base = k * pixels;
    for (let p = 0, i = c * channelStride; p < pixels; p++, i += pixelStride) {
      values[base + p] = Math.round((src[i] - lo) * scale);
    }
  }
  return { layer, height, width, totalChannels, count: n, channels: picked, values, min, max, layerMin, layerMax };
}

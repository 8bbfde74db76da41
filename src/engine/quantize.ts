import type { LayerData } from '../shared/protocol';
import type { Activation } from './model';

/**
 * The first `count` channels of an H×W×C activation (kept in either layout), channel-major, each
 * quantised to 8 bits between its own min and max, for drawing. Also the
 * layer's overall min and max, over all channels, for per-layer normalisation.
 */
export function quantizeChannels(layer: string, activation: Activation, count: number): LayerData {
  const [height, width, totalChannels] = activation.shape;
  const n = Math.max(0, Math.min(count, totalChannels));
  const pixels = height * width;
  const src = activation.data;
  // Where value p of channel c is: channels first, each channel is one contiguous run.
  const channelsFirst = activation.layout === 'chw';
  const channelStride = channelsFirst ? pixels : 1;
  const pixelStride = channelsFirst ? 1 : totalChannels;
  const min = new Float32Array(n);
  const max = new Float32Array(n);
  let layerMin = Infinity;
  let layerMax = -Infinity;
  for (let c = 0; c < totalChannels; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let p = 0, i = c * channelStride; p < pixels; p++, i += pixelStride) {
      const v = src[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo < layerMin) layerMin = lo;
    if (hi > layerMax) layerMax = hi;
    if (c < n) {
      min[c] = lo;
      max[c] = hi;
    }
  }
  const values = new Uint8Array(n * pixels);
  for (let c = 0; c < n; c++) {
    const lo = min[c];
    const range = max[c] - lo;
    const scale = range > 0 ? 255 / range : 0;
    const base = c * pixels;
    for (let p = 0, i = c * channelStride; p < pixels; p++, i += pixelStride) {
      values[base + p] = Math.round((src[i] - lo) * scale);
    }
  }
  return { layer, height, width, totalChannels, count: n, values, min, max, layerMin, layerMax };
}

import type { LayerData } from '../shared/protocol';
import type { Activation } from './model';

/**
 * The first `count` channels of an H×W×C activation, channel-major, each
 * quantised to 8 bits between its own min and max, for drawing. Also the
 * layer's overall min and max, over all channels, for per-layer normalisation.
 */
export function quantizeChannels(layer: string, activation: Activation, count: number): LayerData {
  const [height, width, totalChannels] = activation.shape;
  const n = Math.max(0, Math.min(count, totalChannels));
  const pixels = height * width;
  const src = activation.data;
  const min = new Float32Array(n).fill(Infinity);
  const max = new Float32Array(n).fill(-Infinity);
  let layerMin = Infinity;
  let layerMax = -Infinity;
  for (let p = 0, i = 0; p < pixels; p++) {
    for (let c = 0; c < totalChannels; c++, i++) {
      const v = src[i];
      if (v < layerMin) layerMin = v;
      if (v > layerMax) layerMax = v;
      if (c < n) {
        if (v < min[c]) min[c] = v;
        if (v > max[c]) max[c] = v;
      }
    }
  }
  const values = new Uint8Array(n * pixels);
  for (let c = 0; c < n; c++) {
    const lo = min[c];
    const range = max[c] - lo;
    const scale = range > 0 ? 255 / range : 0;
    const base = c * pixels;
    for (let p = 0; p < pixels; p++) values[base + p] = Math.round((src[p * totalChannels + c] - lo) * scale);
  }
  return { layer, height, width, totalChannels, count: n, values, min, max, layerMin, layerMax };
}

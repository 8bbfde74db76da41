import type { ChannelStats, ChannelValues, MapChoice } from '../shared/protocol';
import type { Activation } from './model';

/** Each layer's statistics, computed once: the activations they describe never change. */
const computed = new WeakMap<Activation, ChannelStats>();

/**
 * Per channel of an H×W×C activation (kept in either layout): min, max, mean, standard deviation
 * and the fraction of values above zero, in one pass over the layer, where the activations are;
 * the panel ranks channels by them without any map crossing to it.
 */
export function channelStats(layer: string, activation: Activation): ChannelStats {
  const known = computed.get(activation);
  if (known) return known;
  const [height, width, channels] = activation.shape;
  const pixels = height * width;
  const { channelStride, pixelStride } = strides(activation);
  const src = activation.data;
  const stats: ChannelStats = {
    layer,
    totalChannels: channels,
    min: new Float32Array(channels),
    max: new Float32Array(channels),
    mean: new Float32Array(channels),
    std: new Float32Array(channels),
    active: new Float32Array(channels),
  };
  for (let c = 0; c < channels; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    let sum = 0;
    let positive = 0;
    for (let p = 0, i = c * channelStride; p < pixels; p++, i += pixelStride) {
      const v = src[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      sum += v;
      if (v > 0) positive++;
    }
    const mean = sum / pixels;
    // The second pass keeps the variance exact where sum-of-squares would cancel (large means).
    let squares = 0;
    for (let p = 0, i = c * channelStride; p < pixels; p++, i += pixelStride) squares += (src[i] - mean) ** 2;
    stats.min[c] = lo;
    stats.max[c] = hi;
    stats.mean[c] = mean;
    stats.std[c] = Math.sqrt(squares / pixels);
    stats.active[c] = positive / pixels;
  }
  computed.set(activation, stats);
  return stats;
}

/**
 * One channel's values, H×W row-major, exactly as the engine has them (for the zoomed view); or
 * at each pixel the mean or the max over every channel (where the layer as a whole fires).
 */
export function channelValues(layer: string, activation: Activation, channel: MapChoice): ChannelValues {
  const [height, width, channels] = activation.shape;
  const pixels = height * width;
  const { channelStride, pixelStride } = strides(activation);
  const src = activation.data;
  const values = new Float32Array(pixels);
  if (typeof channel === 'number') {
    for (let p = 0, i = channel * channelStride; p < pixels; p++, i += pixelStride) values[p] = src[i];
  } else {
    if (channel === 'max') values.fill(-Infinity);
    for (let c = 0; c < channels; c++) {
      for (let p = 0, i = c * channelStride; p < pixels; p++, i += pixelStride) {
        values[p] = channel === 'max' ? Math.max(values[p], src[i]) : values[p] + src[i];
      }
    }
    if (channel === 'mean') for (let p = 0; p < pixels; p++) values[p] /= channels;
  }
  return { layer, channel, height, width, values };
}

/** Where value p of channel c is: channels first, each channel is one contiguous run. */
export function strides(activation: Activation): { channelStride: number; pixelStride: number } {
  const [height, width, channels] = activation.shape;
  return activation.layout === 'chw'
    ? { channelStride: height * width, pixelStride: 1 }
    : { channelStride: 1, pixelStride: channels };
}

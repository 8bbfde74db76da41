import type { ChannelStats, ChannelValues, MapChoice } from '../shared/protocol';
import type { Activation } from './model';

/** Each layer's statistics, computed once: the activations they describe never change. */
const computed = new WeakMap<Activation, ChannelStats>();
/** Each layer's channel ranges alone (what drawing needs), computed once unless the statistics were. */
const computedRanges = new WeakMap<Activation, ChannelRanges>();

/** Per channel, the smallest and largest value. */
export interface ChannelRanges {
  min: Float32Array;
  max: Float32Array;
}

/**
 * Per channel of an H×W×C activation (kept in either layout): min, max, mean, standard deviation
 * and the fraction of values above zero, in one pass over the layer, where the activations are;
 * the panel ranks channels by them without any map crossing to it. Each pass reads the values in
 * the order they are kept (a channel at a time for C×H×W, a pixel's channels at a time for H×W×C);
 * min and max are the layer's channelRanges.
 */
export function channelStats(layer: string, activation: Activation): ChannelStats {
  const known = computed.get(activation);
  if (known) return known;
  // A grid drew the layer first, most often: its ranges are known already.
  const { min, max } = channelRanges(activation);
  const [height, width, channels] = activation.shape;
  const pixels = height * width;
  const src = activation.data;
  const sum = new Float64Array(channels);
  const squares = new Float64Array(channels);
  const positive = new Uint32Array(channels);
  if (activation.layout === 'chw') {
    for (let c = 0; c < channels; c++) {
      let total = 0;
      let above = 0;
      for (let i = c * pixels, end = i + pixels; i < end; i++) {
        const v = src[i];
        total += v;
        if (v > 0) above++;
      }
      const m = total / pixels;
      // The second pass keeps the variance exact where sum-of-squares would cancel (large means).
      let sq = 0;
      for (let i = c * pixels, end = i + pixels; i < end; i++) sq += (src[i] - m) ** 2;
      sum[c] = total;
      squares[c] = sq;
      positive[c] = above;
    }
  } else {
    for (let p = 0, i = 0; p < pixels; p++) {
      for (let c = 0; c < channels; c++, i++) {
        const v = src[i];
        sum[c] += v;
        if (v > 0) positive[c]++;
      }
    }
    const means = sum.map((total) => total / pixels);
    for (let p = 0, i = 0; p < pixels; p++) {
      for (let c = 0; c < channels; c++, i++) squares[c] += (src[i] - means[c]) ** 2;
    }
  }
  const stats: ChannelStats = {
    layer,
    totalChannels: channels,
    min,
    max,
    mean: new Float32Array(channels),
    std: new Float32Array(channels),
    active: new Float32Array(channels),
  };
  for (let c = 0; c < channels; c++) {
    stats.mean[c] = sum[c] / pixels;
    stats.std[c] = Math.sqrt(squares[c] / pixels);
    stats.active[c] = positive[c] / pixels;
  }
  computed.set(activation, stats);
  return stats;
}

/**
 * Per channel, the min and max (the statistics' when they are known): one read of the values, in
 * the order they are kept, with none of the statistics' other sums. What a grid needs to draw.
 */
export function channelRanges(activation: Activation): ChannelRanges {
  const known = computed.get(activation) ?? computedRanges.get(activation);
  if (known) return known;
  const [height, width, channels] = activation.shape;
  const pixels = height * width;
  const src = activation.data;
  const { min, max } = emptyRanges(channels);
  if (activation.layout === 'chw') {
    for (let c = 0; c < channels; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = c * pixels, end = i + pixels; i < end; i++) {
        const v = src[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      min[c] = lo;
      max[c] = hi;
    }
  } else {
    for (let p = 0, i = 0; p < pixels; p++) {
      for (let c = 0; c < channels; c++, i++) {
        const v = src[i];
        if (v < min[c]) min[c] = v;
        if (v > max[c]) max[c] = v;
      }
    }
  }
  const ranges = { min, max };
  computedRanges.set(activation, ranges);
  return ranges;
}

/** Ranges to be narrowed by the values: each min at +∞, each max at −∞. */
function emptyRanges(channels: number): ChannelRanges {
  return { min: new Float32Array(channels).fill(Infinity), max: new Float32Array(channels).fill(-Infinity) };
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

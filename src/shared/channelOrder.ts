import { isConstantChannel } from './colormaps';
import type { ChannelSort, ChannelStats } from './protocol';

/** What each sort is called, and what a tile says of its channel under it. */
export const SORT_LABELS: Record<ChannelSort, string> = {
  index: 'channel index',
  mean: 'mean',
  max: 'max',
  std: 'standard deviation',
  active: 'fraction active (> 0)',
};

/**
 * The layer's channels in the order the grid shows them: by index, or by a statistic, largest
 * first (ties by index); without the constant ones when `hideConstant`. Needs `stats` unless it
 * is the plain index order.
 */
export function channelOrder(
  totalChannels: number,
  sort: ChannelSort,
  hideConstant: boolean,
  stats: ChannelStats | undefined,
): number[] {
  const all = Array.from({ length: totalChannels }, (_, c) => c);
  if (sort === 'index' && !hideConstant) return all;
  if (!stats || stats.totalChannels !== totalChannels) throw new Error('channelOrder: statistics of the layer needed');
  const kept = hideConstant ? all.filter((c) => !isConstantChannel(stats.min[c], stats.max[c])) : all;
  if (sort === 'index') return kept;
  const key = stats[sort];
  return kept.sort((a, b) => key[b] - key[a] || a - b);
}

/** A channel's statistic as a tile shows it under `sort` (nothing for the index order). */
export function statValue(stats: ChannelStats, sort: ChannelSort, channel: number): number | undefined {
  return sort === 'index' ? undefined : stats[sort][channel];
}

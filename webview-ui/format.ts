/** Display formatting shared by the header, tree and grid. */
import type { LayerInfo } from '../src/shared/protocol';

/** "112×112×32" for H×W×C, "1280" for a flat output. */
export function formatShape(shape: readonly number[]): string {
  return shape.length ? shape.join('×') : '—';
}

/** Channels of a layer: the last axis of H×W×C. */
export function channelCount(layer: LayerInfo): number {
  return layer.shape.length === 3 ? layer.shape[2] : 0;
}

/** Three significant digits, exponent for very large/small, and a real minus sign. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  const s = a >= 1e4 || a < 1e-3 ? v.toExponential(2) : String(Number(v.toPrecision(3)));
  return s.replace('-', '−');
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/**
 * Colormap lookup tables and pure pixel helpers, shared by the webview (canvas tiles)
 * and the headless CLI (PNG contact sheets). No vscode, DOM or Node imports here.
 */
import {
  interpolateCividis,
  interpolateInferno,
  interpolateMagma,
  interpolatePlasma,
  interpolateViridis,
} from 'd3-scale-chromatic';
import { dequantize, type Colormap } from './protocol';

/** Entries in a LUT; quantised values are 0..255, so one entry per value. */
export const LUT_SIZE = 256;

const INTERPOLATORS: Record<Colormap, (t: number) => string> = {
  viridis: interpolateViridis,
  magma: interpolateMagma,
  inferno: interpolateInferno,
  plasma: interpolatePlasma,
  cividis: interpolateCividis,
  // d3's Greys runs white→black and is not linear; a plain ramp is what "gray" should mean.
  gray: (t) => {
    const v = Math.round(t * 255);
    return `rgb(${v}, ${v}, ${v})`;
  },
};

/** Parses the two forms d3-scale-chromatic returns: "#rrggbb" and "rgb(r, g, b)". */
export function parseColor(css: string): [number, number, number] {
  const s = css.trim();
  const hex = /^#([0-9a-f]{6})$/i.exec(s);
  if (hex) {
    const n = parseInt(hex[1], 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const rgb = /^rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)/i.exec(s);
  if (rgb) {
    return [clampByte(Number(rgb[1])), clampByte(Number(rgb[2])), clampByte(Number(rgb[3]))];
  }
  throw new Error(`Unrecognised colour from colormap: ${css}`);
}

function clampByte(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

const lutCache = new Map<Colormap, Uint8Array>();

/** A 256-entry RGB table (768 bytes: r0 g0 b0 r1 …) for the colormap; built once, then memoised. */
export function colormapLut(name: Colormap): Uint8Array {
  const cached = lutCache.get(name);
  if (cached) return cached;
  const interpolate = INTERPOLATORS[name] ?? INTERPOLATORS.viridis;
  const lut = new Uint8Array(LUT_SIZE * 3);
  for (let i = 0; i < LUT_SIZE; i++) {
    const [r, g, b] = parseColor(interpolate(i / (LUT_SIZE - 1)));
    lut[i * 3] = r;
    lut[i * 3 + 1] = g;
    lut[i * 3 + 2] = b;
  }
  lutCache.set(name, lut);
  return lut;
}

/**
 * Maps each quantised value of one channel (0..255 over its own min..max) to a LUT index.
 * `range` given = per-layer normalisation: dequantise, then rescale over range.min..range.max.
 * A constant channel (max == min) maps to index 0, the colormap's low end, under per-channel
 * normalisation, since it has no contrast of its own to show.
 */
export function channelIndexMap(min: number, max: number, range?: { min: number; max: number }): Uint8Array {
  const map = new Uint8Array(LUT_SIZE);
  if (!range) {
    if (!(max > min)) return map;
    for (let q = 0; q < LUT_SIZE; q++) map[q] = q;
    return map;
  }
  const span = range.max - range.min;
  for (let q = 0; q < LUT_SIZE; q++) {
    const v = dequantize(q, min, max);
    map[q] = span > 0 ? clampByte(((v - range.min) / span) * 255) : 0;
  }
  return map;
}

/**
 * Writes RGBA pixels for quantised values `q` into `out` (length 4 × q.length, alpha 255).
 * `indexMap` (from channelIndexMap) remaps each value first; omit it for identity.
 */
export function applyColormap(
  q: Uint8Array,
  lut: Uint8Array,
  out: Uint8ClampedArray | Uint8Array,
  indexMap?: Uint8Array,
): void {
  if (out.length < q.length * 4) throw new RangeError('applyColormap: output buffer too small');
  for (let i = 0, o = 0; i < q.length; i++, o += 4) {
    const idx = (indexMap ? indexMap[q[i]] : q[i]) * 3;
    out[o] = lut[idx];
    out[o + 1] = lut[idx + 1];
    out[o + 2] = lut[idx + 2];
    out[o + 3] = 255;
  }
}

/** True when a channel has no contrast (max == min, or not finite). */
export function isConstantChannel(min: number, max: number): boolean {
  return !(max > min);
}

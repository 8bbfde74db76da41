// A TypeScript port of ../shared/oracle/npy.mjs: reads the Keras oracle's .npy files.
import * as fs from 'node:fs';

export interface Npy {
  descr: string;
  shape: number[];
  data: Float32Array;
}

/** Minimal .npy reader for the oracle's files: '<f4', '<f2', '|u1', C order. */
export function readNpy(file: string): Npy {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not .npy`);
  const major = buf[6];
  const headerLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', headerStart, headerStart + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new Error(`${file}: unreadable header ${header}`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const bytes = buf.subarray(headerStart + headerLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Float32Array(n);
  if (descr === '<f4') for (let i = 0; i < n; i++) data[i] = view.getFloat32(i * 4, true);
  else if (descr === '<f2') for (let i = 0; i < n; i++) data[i] = halfToFloat(view.getUint16(i * 2, true));
  else if (descr === '|u1') for (let i = 0; i < n; i++) data[i] = bytes[i];
  else throw new Error(`${file}: dtype ${descr} not handled`);
  return { descr, shape, data };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/**
 * max|ours − ref| / max|ref| over one layer's tensor. Any NaN in ours gives NaN, so the
 * comparison fails (npy.mjs lets a later finite difference overwrite the NaN).
 */
export function relErr(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (ours.length !== ref.length) throw new Error(`length ${ours.length} != ${ref.length}`);
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
    const d = Math.abs(ours[i] - ref[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > maxDiff) maxDiff = d;
  }
  return maxRef > 0 ? maxDiff / maxRef : maxDiff;
}

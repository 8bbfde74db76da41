// NumPy's .npy format (version 1.0), for exporting a layer's activations: a magic string, a
// Python-literal header saying the dtype, order and shape, padded so that the data starts at a
// multiple of 64 bytes, then the values, little-endian. numpy.load, keract and Netron read it.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
import type { Activation } from './model';
import { channelsLast } from './model';

/** How a layer is laid out in the file: H×W×C as Keras has it, or C×H×W as PyTorch has it. */
export type NpyLayout = 'hwc' | 'chw';
export const NPY_LAYOUTS: readonly NpyLayout[] = ['hwc', 'chw'];

/** A float32 array of `shape` (C order) as the bytes of a .npy file. */
export function encodeNpy(data: Float32Array, shape: readonly number[]): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`encodeNpy: shape ${shape.join('×')} does not hold ${data.length} values`);
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // Magic (6) + version (2) + header length (2) + header, ending in "\n", padded with spaces.
  const unpadded = 10 + dict.length + 1;
  const header = dict + ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = Buffer.alloc(10 + header.length + data.length * 4);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  const values = new DataView(out.buffer, out.byteOffset + 10 + header.length, data.length * 4);
  for (let i = 0; i < data.length; i++) values.setFloat32(i * 4, data[i], true);
  return out;
}

/** An H×W×C layer as a .npy file in `layout`; the shape is the header's. */
export function layerNpy(activation: Activation, layout: NpyLayout): { bytes: Buffer; shape: number[] } {
  const [height, width, channels] = activation.shape;
  if (layout === 'hwc') {
    const shape = [height, width, channels];
    return { bytes: encodeNpy(channelsLast(activation), shape), shape };
  }
  const shape = [channels, height, width];
  if (activation.layout === 'chw') return { bytes: encodeNpy(activation.data, shape), shape };
  const hwc = activation.data;
  const chw = new Float32Array(hwc.length);
  const plane = height * width;
  for (let p = 0; p < plane; p++) for (let c = 0; c < channels; c++) chw[c * plane + p] = hwc[p * channels + c];
  return { bytes: encodeNpy(chw, shape), shape };
}

import * as path from 'node:path';
import { MAX_MODEL_FILE_BYTES } from '../files';
import type { ModelFormatEntry } from '../formats';

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
const ZIP_SIGNATURE = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const EXTENSIONS = ['.h5', '.hdf5', '.keras'];

/**
 * Keras: a legacy HDF5 file (`model.save('m.h5')`, Keras 2 or 3) or a Keras 3 `.keras` zip,
 * whatever its extension says (keras.ts reads both). Opened by models/keras.ts.
 */
export const kerasFormat: ModelFormatEntry<'keras'> = {
  id: 'keras',
  label: 'Keras model',
  files: 'Keras .h5/.hdf5/.keras',
  fileNames: [],
  extensions: EXTENSIONS,
  maxBytes: MAX_MODEL_FILE_BYTES,
  noun: 'a Keras model file (HDF5 or .keras zip)',
  bytesAre: 'an HDF5 (Keras) file',
  // The HDF5 superblock starts at 0, or after a user block of 512, 1024, 2048… bytes (as keras.ts
  // looks for it). A zip is a Keras 3 model only in a file named like one: PyTorch saves zips too.
  sniff(head, file) {
    for (let offset = 0; offset + HDF5_SIGNATURE.length <= head.length; offset = offset === 0 ? 512 : offset * 2) {
      if (head.subarray(offset, offset + HDF5_SIGNATURE.length).equals(HDF5_SIGNATURE)) return true;
    }
    if (head.subarray(0, ZIP_SIGNATURE.length).equals(ZIP_SIGNATURE)) {
      return EXTENSIONS.includes(path.extname(file).toLowerCase()) ? true : undefined;
    }
    return false;
  },
  defaultPreprocessing(layers) {
    const names = new Set(layers.map((l) => l.name));
    if (names.has('Conv1') && names.has('expanded_conv_project'))
      return { mode: 'tf', why: 'Keras MobileNetV2 layer names' };
    return { mode: 'tf', why: 'the usual scaling of Keras image models' };
  },
};

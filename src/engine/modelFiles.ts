import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { UserFacingError, errorText } from './errors';
import { MAX_JSON_BYTES, MAX_MODEL_FILE_BYTES, checkRegularFile } from './files';
import type { LayerMeta } from './layers';
import type { PreprocessMode } from './preprocess';

/** The model formats the engine reads, by how the user's file is named. */
export type ModelFormat = 'tfjs' | 'keras' | 'onnx';

/** File names offered by "Select Model…" and the explorer's "Use as Feature Map Model". */
export const MODEL_FILE_GLOB = '**/{model.json,*.h5,*.hdf5,*.keras,*.onnx}';
export const MODEL_EXTENSIONS = ['.json', '.h5', '.hdf5', '.keras', '.onnx'];

export interface ModelFile {
  /** The file to load (for a folder, the model.json inside it). */
  path: string;
  format: ModelFormat;
  /** Modification time, so a rewritten checkpoint is loaded again. */
  mtimeMs: number;
}

/**
 * Finds what kind of model a path holds, refusing what cannot be a model with a clear message:
 * before anything is read, the file (symlinks followed) must be a regular file, not a folder,
 * FIFO or device such as /dev/zero, and no larger than Feature Maps reads.
 */
export async function resolveModelFile(modelPath: string): Promise<ModelFile> {
  let target = modelPath;
  let stat = await statOrExplain(target);
  if (stat.isDirectory()) {
    target = path.join(modelPath, 'model.json');
    stat = await statOrExplain(target, `${path.basename(modelPath)} is a folder without a model.json.`);
  }
  const ext = path.extname(target).toLowerCase();
  const format: ModelFormat | undefined =
    ext === '.json'
      ? 'tfjs'
      : ext === '.onnx'
        ? 'onnx'
        : ['.h5', '.hdf5', '.keras'].includes(ext)
          ? 'keras'
          : undefined;
  if (!format) {
    throw new UserFacingError(
      `${path.basename(target)} is not a model file this extension reads (TF.js model.json, Keras .h5/.hdf5/.keras, ONNX .onnx).`,
    );
  }
  const checked = await checkRegularFile(target, {
    describe: `the model file ${path.basename(target)}`,
    maxBytes: format === 'tfjs' ? MAX_JSON_BYTES : MAX_MODEL_FILE_BYTES,
  });
  return { path: target, format, mtimeMs: checked.mtimeMs };
}

async function statOrExplain(file: string, missingMessage?: string) {
  try {
    return await fs.stat(file);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new UserFacingError(
      missing
        ? (missingMessage ?? `The model file ${file} does not exist (check the featureMaps.model setting).`)
        : `Cannot read the model file ${path.basename(file)}.`,
      errorText(error),
    );
  }
}

/**
 * The preprocessing a model most likely expects, from what it says about itself:
 * a Rescaling layer means it takes 0–255 as it is; Keras' VGG/ResNet layer names mean
 * Caffe-style BGR mean subtraction; Keras' MobileNetV2 names mean [-1, 1]. Otherwise
 * the format's habit: TF.js models divide by 255, Keras models use [-1, 1], ONNX models
 * converted from Caffe2 (input `data_0`) use Caffe's, other ONNX models torchvision's.
 */
export function guessPreprocessing(
  format: ModelFormat,
  layers: readonly LayerMeta[],
  inputName?: string,
): { mode: PreprocessMode; why: string } {
  const names = new Set(layers.map((l) => l.name));
  if (layers.slice(0, 3).some((l) => l.op === 'Rescaling'))
    return { mode: 'none', why: 'the model rescales its input itself' };
  if (names.has('block1_conv1') && names.has('block2_conv1')) return { mode: 'caffe', why: 'Keras VGG layer names' };
  if (names.has('conv1_conv') && names.has('conv2_block1_out'))
    return { mode: 'caffe', why: 'Keras ResNet layer names' };
  if (names.has('Conv1') && names.has('expanded_conv_project')) {
    return format === 'tfjs'
      ? { mode: 'raw01', why: 'TF.js MobileNet' }
      : { mode: 'tf', why: 'Keras MobileNetV2 layer names' };
  }
  switch (format) {
    case 'tfjs':
      return { mode: 'raw01', why: 'the usual scaling of TF.js image models' };
    case 'keras':
      return { mode: 'tf', why: 'the usual scaling of Keras image models' };
    case 'onnx':
      return inputName === 'data_0'
        ? { mode: 'caffe', why: 'an ONNX model converted from Caffe2 (input data_0)' }
        : { mode: 'torch', why: 'the usual normalisation of PyTorch exports' };
  }
}

/** Labels file names looked for beside a model, in order. */
const LABEL_FILE_NAMES = (stem: string) => [
  `${stem}.labels.txt`,
  'labels.txt',
  'classes.txt',
  'synset.txt',
  'imagenet_classes.txt',
];

/** A labels file beside the model, if there is one. */
export async function findLabelsBeside(modelPath: string): Promise<string | undefined> {
  const dir = path.dirname(modelPath);
  const stem = path.basename(modelPath).replace(/\.[^.]+$/, '');
  for (const name of LABEL_FILE_NAMES(stem)) {
    const candidate = path.join(dir, name);
    try {
      if ((await fs.stat(candidate)).isFile()) return candidate;
    } catch {
      // not there: try the next name
    }
  }
  return undefined;
}

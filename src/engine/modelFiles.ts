import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { UserFacingError, errorText } from './errors';
import { checkRegularFile, readFileHead } from './files';
import {
  SNIFF_BYTES,
  chooseFormat,
  formatById,
  formatsForFile,
  modelFolderFileNames,
  notAModelFile,
  type ModelFormatId,
} from './formats';
import type { LayerMeta } from './layers';
import type { PreprocessMode } from './preprocess';

/** The model formats the engine reads (formats.ts' registry), by id. */
export type ModelFormat = ModelFormatId;

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
 * FIFO or device such as /dev/zero, and no larger than Feature Maps reads. Its name says which
 * formats may read it (formats.ts); its first bytes which one does, or that none does.
 */
export async function resolveModelFile(modelPath: string): Promise<ModelFile> {
  let target = modelPath;
  const stat = await statOrExplain(target);
  if (stat.isDirectory()) target = await modelInFolder(modelPath);
  const candidates = formatsForFile(target);
  if (candidates.length === 0) throw notAModelFile(target);
  const describe = `the model file ${path.basename(target)}`;
  const maxBytes = Math.max(...candidates.map((f) => f.maxBytes));
  await checkRegularFile(target, { describe, maxBytes });
  const { head, file } = await readFileHead(target, SNIFF_BYTES, { describe, maxBytes });
  const format = chooseFormat(target, head, candidates);
  // Formats sharing a name may read different sizes: the chosen one's limit holds.
  if (file.size > format.maxBytes) await checkRegularFile(target, { describe, maxBytes: format.maxBytes });
  return { path: target, format: format.id, mtimeMs: file.mtimeMs };
}

/** The model file a folder holds (a TF.js model folder's model.json). */
async function modelInFolder(folder: string): Promise<string> {
  const names = modelFolderFileNames();
  for (const name of names) {
    const candidate = path.join(folder, name);
    try {
      await fs.stat(candidate);
      return candidate;
    } catch (error) {
      // Not there: the next name. One that is there but cannot be read is explained.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        await statOrExplain(candidate);
        return candidate;
      }
    }
  }
  throw new UserFacingError(
    `${path.basename(folder)} is a folder without a ${names.join(' or a ')}.`,
    `Looked for ${names.map((name) => path.join(folder, name)).join(', ')}.`,
  );
}

async function statOrExplain(file: string) {
  try {
    return await fs.stat(file);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new UserFacingError(
      missing
        ? `The model file ${file} does not exist (check the featureMaps.model setting).`
        : `Cannot read the model file ${path.basename(file)}.`,
      errorText(error),
    );
  }
}

/**
 * The preprocessing a model most likely expects, from what it says about itself:
 * a Rescaling layer means it takes 0–255 as it is; Keras' VGG/ResNet layer names mean
 * Caffe-style BGR mean subtraction. Otherwise the format's guess (its entry's
 * defaultPreprocessing): Keras' MobileNetV2 names mean [-1, 1] except in TF.js, TF.js models
 * divide by 255, Keras models use [-1, 1], ONNX models converted from Caffe2 (input `data_0`)
 * use Caffe's, other ONNX models torchvision's.
 */
export function guessPreprocessing(
  format: ModelFormat,
  layers: readonly LayerMeta[],
  inputName?: string,
): { mode: PreprocessMode; why: string } {
  const names = new Set(layers.map((l) => l.name));
  // Keras 3's EfficientNet, EfficientNetV2, ConvNeXt and MobileNetV3 scale pixels in their first layers.
  if (layers.slice(0, 3).some((l) => l.op === 'Rescaling' || l.op === 'Normalization'))
    return { mode: 'none', why: 'the model scales its input itself' };
  if (names.has('block1_conv1') && names.has('block2_conv1')) return { mode: 'caffe', why: 'Keras VGG layer names' };
  if (names.has('conv1_conv') && names.has('conv2_block1_out') && names.has('post_relu'))
    return { mode: 'tf', why: 'Keras ResNetV2 layer names' };
  if (names.has('conv1_conv') && names.has('conv2_block1_out'))
    return { mode: 'caffe', why: 'Keras ResNet layer names' };
  if (names.has('conv1_conv') && names.has('conv2_block1_concat'))
    return { mode: 'torch', why: 'Keras DenseNet layer names' };
  return formatById(format).defaultPreprocessing(layers, inputName);
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

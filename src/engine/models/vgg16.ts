import type * as tfl from '@tensorflow/tfjs-layers';
import type { LoadedModel, ModelIdentity } from '../model';
import type { Tf } from '../tf';
import {
  type BuiltModel,
  KerasGraph,
  type KerasTopology,
  buildTopology,
  readLegacyWeightsFile,
  setLegacyWeights,
} from './kerasGraph';
import { wrapLayersModel } from './tfjsLayers';

/** Keras' `applications.VGG16(include_top=False)`: filters of each block's 3×3 convolutions. */
const BLOCKS: readonly (readonly number[])[] = [
  [64, 64],
  [128, 128],
  [256, 256, 256],
  [512, 512, 512],
  [512, 512, 512],
];

type InputSize = { height: number; width: number };

/**
 * VGG16 without its classifier, layer for layer as Keras builds it (same names, so
 * feature maps read the same as in Keras). Weights start at zero: load them after.
 */
export async function buildVgg16NoTop(
  tf: Tf,
  inputSize: InputSize = { height: 224, width: 224 },
): Promise<tfl.LayersModel> {
  return (await buildVgg16(tf, inputSize)).model;
}

function buildVgg16(tf: Tf, inputSize: InputSize): Promise<BuiltModel> {
  return buildTopology(tf, vgg16Topology(inputSize));
}

/** Keras' `applications.VGG16(include_top=False)` at `inputSize`, as a Keras 2 `model_config`. */
export function vgg16Topology(inputSize: InputSize = { height: 224, width: 224 }): KerasTopology {
  const g = new KerasGraph('vgg16', [inputSize.height, inputSize.width, 3]);
  let x = g.input;
  BLOCKS.forEach((filters, b) => {
    filters.forEach((f, c) => {
      x = g.conv2d(`block${b + 1}_conv${c + 1}`, x, { filters: f, kernelSize: 3, padding: 'same', activation: 'relu' });
    });
    x = g.maxPooling2d(`block${b + 1}_pool`, x, { poolSize: 2, strides: 2 });
  });
  return g.topology(x);
}

export const VGG16_PREPROCESSING_REASON = 'Keras VGG16 expects caffe preprocessing (BGR minus the ImageNet mean).';

export interface Vgg16Options {
  key: string;
  summary: ModelIdentity;
  /** Height and width to run at (VGG16 without top takes any size; default 224×224). */
  inputSize?: InputSize;
}

/**
 * VGG16 without top, with weights from a legacy Keras HDF5 weights file such as Keras'
 * download `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5` (a full-model `.h5` works too).
 */
export async function loadVgg16NoTop(tf: Tf, weightsPath: string, options: Vgg16Options): Promise<LoadedModel> {
  const { fileName, weights } = await readLegacyWeightsFile(weightsPath, 'VGG16');
  const built = await buildVgg16(tf, options.inputSize ?? { height: 224, width: 224 });
  try {
    // Keras matches layers by position: the file's 13 layers with weights go to our 13 convolutions.
    setLegacyWeights(tf, built, weights, fileName, 'VGG16 without top');
    const loaded = wrapLayersModel(tf, built.model, { ...options, preprocessing: 'caffe' });
    return { ...loaded, preprocessingReason: VGG16_PREPROCESSING_REASON };
  } catch (error) {
    built.model.dispose();
    throw error;
  }
}

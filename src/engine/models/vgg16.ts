import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import { UserFacingError, errorText } from '../errors';
import type { LoadedModel, ModelIdentity } from '../model';
import type { Tf } from '../tf';
import { type LayerWeights, isHdf5, readLegacyWeights, stringListAttr, withH5File } from './keras';
import { wrapLayersModel } from './tfjsLayers';

/** Keras' `applications.VGG16(include_top=False)`: filters of each block's 3×3 convolutions. */
const BLOCKS: readonly (readonly number[])[] = [
  [64, 64],
  [128, 128],
  [256, 256, 256],
  [512, 512, 512],
  [512, 512, 512],
];

interface ConvSpec {
  name: string;
  inChannels: number;
  filters: number;
}

/** The 13 convolutions in order, with the channel counts their weights must have. */
function convSpecs(): ConvSpec[] {
  const specs: ConvSpec[] = [];
  let inChannels = 3;
  BLOCKS.forEach((filters, b) =>
    filters.forEach((f, c) => {
      specs.push({ name: `block${b + 1}_conv${c + 1}`, inChannels, filters: f });
      inChannels = f;
    }),
  );
  return specs;
}

type InputSize = { height: number; width: number };

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * VGG16 without its classifier, layer for layer as Keras builds it (same names, so
 * feature maps read the same as in Keras). Weights start at zero: load them after.
 */
export async function buildVgg16NoTop(
  tf: Tf,
  inputSize: InputSize = { height: 224, width: 224 },
): Promise<tfl.LayersModel> {
  // A Keras 2 topology through `tf.models` rather than `tf.layers`, so it works with whichever
  // tfjs copy (wasm bundle or tfjs-node) `tf` is.
  const zeros = { class_name: 'Zeros', config: {} };
  const layers: Json[] = [
    {
      class_name: 'InputLayer',
      name: 'input_layer',
      config: {
        name: 'input_layer',
        batch_input_shape: [null, inputSize.height, inputSize.width, 3],
        dtype: 'float32',
      },
      inbound_nodes: [],
    },
  ];
  let previous = 'input_layer';
  const add = (className: string, name: string, config: Record<string, Json>): void => {
    layers.push({ class_name: className, name, config: { name, ...config }, inbound_nodes: [[[previous, 0, 0, {}]]] });
    previous = name;
  };
  BLOCKS.forEach((filters, b) => {
    filters.forEach((f, c) =>
      add('Conv2D', `block${b + 1}_conv${c + 1}`, {
        filters: f,
        kernel_size: [3, 3],
        strides: [1, 1],
        padding: 'same',
        data_format: 'channels_last',
        dilation_rate: [1, 1],
        activation: 'relu',
        use_bias: true,
        kernel_initializer: zeros,
        bias_initializer: zeros,
      }),
    );
    add('MaxPooling2D', `block${b + 1}_pool`, {
      pool_size: [2, 2],
      strides: [2, 2],
      padding: 'valid',
      data_format: 'channels_last',
    });
  });
  const modelTopology = {
    class_name: 'Model',
    config: { name: 'vgg16', layers, input_layers: [['input_layer', 0, 0]], output_layers: [[previous, 0, 0]] },
  };
  return tf.models.modelFromJSON({ modelTopology });
}

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
  const fileName = path.basename(weightsPath);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(weightsPath);
  } catch (error) {
    throw new UserFacingError(`Cannot read the VGG16 weights ${fileName}.`, errorText(error));
  }
  if (!isHdf5(bytes)) {
    throw new UserFacingError(
      `${fileName} is not a Keras HDF5 weights file (.h5), so it cannot hold VGG16 weights.`,
      `The file starts with bytes ${Buffer.from(bytes.subarray(0, 8)).toString('hex')}.`,
    );
  }
  const weights = await withH5File(bytes, fileName, (file, h5) => {
    // Sniff the layout by content: Keras itself picks a loader by file name (oracle gotcha 1).
    if (stringListAttr(file, 'layer_names').length > 0) return readLegacyWeights(h5, file, fileName);
    const modelWeights = file.get('model_weights');
    if (modelWeights instanceof h5.Group) return readLegacyWeights(h5, modelWeights, fileName);
    throw new UserFacingError(
      file.get('layers') instanceof h5.Group
        ? `${fileName} is in the Keras 3 weights layout (model.weights.h5); VGG16 weights must be in the legacy Keras layout, like Keras' own download.`
        : `${fileName} is an HDF5 file but not Keras weights (it has no layer_names).`,
      `Root attributes: ${Object.keys(file.attrs).join(', ') || 'none'}; root members: ${file.keys().join(', ') || 'none'}.`,
    );
  });

  const model = await buildVgg16NoTop(tf, options.inputSize);
  try {
    setVgg16Weights(tf, model, weights, fileName);
    const loaded = wrapLayersModel(tf, model, { ...options, preprocessing: 'caffe' });
    return { ...loaded, preprocessingReason: 'Keras VGG16 expects caffe preprocessing (BGR minus the ImageNet mean).' };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/**
 * Keras matches layers by position, not name: the file's layers with weights, in its
 * `layer_names` order, go to our 13 convolutions, each kernel then bias.
 */
function setVgg16Weights(tf: Tf, model: tfl.LayersModel, weights: LayerWeights, fileName: string): void {
  const specs = convSpecs();
  const fileLayers = [...weights.entries()];
  if (fileLayers.length !== specs.length) {
    const inFile = new Set(weights.keys());
    const missing = specs.filter((s) => !inFile.has(s.name)).map((s) => s.name);
    const extra = fileLayers.map(([name]) => name).filter((name) => !specs.some((s) => s.name === name));
    const detail =
      fileLayers.length < specs.length
        ? missing.length > 0
          ? `: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing`
          : ''
        : extra.length > 0
          ? `, not ${extra.join(', ')}`
          : '';
    throw new UserFacingError(
      `${fileName} has weights for ${fileLayers.length} layers; VGG16 without top needs 13${detail}.`,
      `Layers with weights in the file: ${fileLayers.map(([name]) => name).join(', ') || 'none'}.`,
    );
  }
  // Check every shape before touching the model, so a bad file changes nothing.
  specs.forEach((spec, i) => {
    const [fileLayer, arrays] = fileLayers[i];
    const where = fileLayer === spec.name ? `layer "${spec.name}"` : `layer "${spec.name}" (the file's "${fileLayer}")`;
    const expected = [[3, 3, spec.inChannels, spec.filters], [spec.filters]];
    if (arrays.length !== 2) {
      throw new UserFacingError(
        `${fileName}: ${where} needs 2 weight arrays (kernel, bias), the file has ${arrays.length}.`,
        `Found ${arrays.map((a) => a.path).join(', ')}.`,
      );
    }
    arrays.forEach((array, j) => {
      const shape = expected[j];
      if (array.shape.length !== shape.length || array.shape.some((d, k) => d !== shape[k])) {
        throw new UserFacingError(
          `${fileName}: ${where} expects its ${j === 0 ? 'kernel' : 'bias'} to be ${JSON.stringify(shape)}, the file has ${JSON.stringify(array.shape)}.`,
          `File dataset: ${array.path}`,
        );
      }
    });
  });
  specs.forEach((spec, i) => {
    const tensors = fileLayers[i][1].map((array) => tf.tensor(array.data, array.shape, 'float32'));
    try {
      model.getLayer(spec.name).setWeights(tensors);
    } finally {
      tf.dispose(tensors);
    }
  });
}

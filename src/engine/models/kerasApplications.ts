import type { LoadedModel, ModelIdentity } from '../model';
import type { PreprocessMode } from '../preprocess';
import type { Tf } from '../tf';
import {
  type BuiltModel,
  KerasGraph,
  type KerasTopology,
  buildTopology,
  pairLegacyWeights,
  readLegacyWeightsFile,
  setLegacyWeights,
} from './kerasGraph';
import { openConvertedKeras } from './layersToOnnx';
import { wrapLayersModel } from './tfjsLayers';
import { VGG16_PREPROCESSING_REASON, loadVgg16NoTop, vgg16Topology } from './vgg16';

/** The Keras applications whose architecture we define in code and whose weights Keras publishes. */
export type ApplicationId = 'vgg16_notop' | 'mobilenet_v2' | 'resnet50';

export interface ApplicationOptions {
  key: string;
  summary: ModelIdentity;
}

/** Builds `id`'s architecture as Keras does and loads its legacy Keras HDF5 weights file. */
export async function loadKerasApplication(
  tf: Tf,
  id: ApplicationId,
  weightsPath: string,
  options: ApplicationOptions,
): Promise<LoadedModel> {
  if (id === 'vgg16_notop') return loadVgg16NoTop(tf, weightsPath, options);
  const application = APPLICATIONS[id];
  // Read (and check) the file before building: a wrong file fails fast, without allocating the model.
  const { fileName, weights } = await readLegacyWeightsFile(weightsPath, application.label);
  const built = await buildTopology(tf, application.topology());
  try {
    setLegacyWeights(tf, built, weights, fileName, application.label);
    const loaded = wrapLayersModel(tf, built.model, { ...options, preprocessing: application.preprocessing });
    return { ...loaded, preprocessingReason: application.preprocessingReason };
  } catch (error) {
    built.model.dispose();
    throw error;
  }
}

/**
 * `id` on onnxruntime, with no TensorFlow.js: its architecture and the weights file's arrays
 * (checked as `loadKerasApplication` checks them) written straight into an ONNX graph
 * (kerasToOnnx.ts). Or why it cannot be, when the converted graph does not open.
 */
export async function openKerasApplicationOnOnnx(
  id: ApplicationId,
  weightsPath: string,
  options: ApplicationOptions,
): Promise<LoadedModel | { unsupported: string }> {
  const application = id === 'vgg16_notop' ? VGG16_NO_TOP : APPLICATIONS[id];
  const { fileName, weights } = await readLegacyWeightsFile(weightsPath, application.fileLabel ?? application.label);
  const topology = application.topology();
  const paired = pairLegacyWeights(topology, weights, fileName, application.label);
  return openConvertedKeras(
    { config: topology.config, weights: paired, dialect: 'keras2', inputSize: { height: SIZE, width: SIZE } },
    { ...options, preprocessing: application.preprocessing, preprocessingReason: application.preprocessingReason },
    { trustShapes: true },
  );
}

/**
 * The architecture of `id` with Keras' layer names, 224×224×3 input and its ImageNet classifier;
 * weights start at zero. `kerasOrder` is Keras' `model.layers` order.
 */
export function buildKerasApplication(tf: Tf, id: Exclude<ApplicationId, 'vgg16_notop'>): Promise<BuiltModel> {
  return buildTopology(tf, APPLICATIONS[id].topology());
}

interface Application {
  /** The model's name in messages. */
  label: string;
  /** How a message about its weights file names it, when not by `label`. */
  fileLabel?: string;
  topology(): KerasTopology;
  preprocessing: PreprocessMode;
  preprocessingReason: string;
}

/** As loadVgg16NoTop loads it from TensorFlow.js. */
const VGG16_NO_TOP: Application = {
  label: 'VGG16 without top',
  fileLabel: 'VGG16',
  topology: () => vgg16Topology(),
  preprocessing: 'caffe',
  preprocessingReason: VGG16_PREPROCESSING_REASON,
};

const APPLICATIONS: Record<Exclude<ApplicationId, 'vgg16_notop'>, Application> = {
  mobilenet_v2: {
    label: 'MobileNetV2',
    topology: mobileNetV2Topology,
    preprocessing: 'tf',
    preprocessingReason: 'Keras MobileNetV2 expects tf preprocessing (x / 127.5 − 1, values in [−1, 1]).',
  },
  resnet50: {
    label: 'ResNet50',
    topology: resNet50Topology,
    preprocessing: 'caffe',
    preprocessingReason: 'Keras ResNet50 expects caffe preprocessing (BGR minus the ImageNet mean).',
  },
};

const SIZE = 224;
const CLASSES = 1000;

// ---------------------------------------------------------------- MobileNetV2

/** `keras.applications.MobileNetV2` (alpha 1.0): each inverted residual block's output filters, stride, expansion. */
const MOBILENET_V2_BLOCKS: readonly [filters: number, stride: 1 | 2, expansion: number][] = [
  [16, 1, 1],
  [24, 2, 6],
  [24, 1, 6],
  [32, 2, 6],
  [32, 1, 6],
  [32, 1, 6],
  [64, 2, 6],
  [64, 1, 6],
  [64, 1, 6],
  [64, 1, 6],
  [96, 1, 6],
  [96, 1, 6],
  [96, 1, 6],
  [160, 2, 6],
  [160, 1, 6],
  [160, 1, 6],
  [320, 1, 6],
];

const MOBILENET_BN = { epsilon: 1e-3, momentum: 0.999 };

/**
 * Keras' `imagenet_utils.correct_pad` for a 3×3 stride-2 convolution: one row/column more at the
 * end than at the start of an even size (TF's "same"), one on each side of an odd size.
 */
function correctPad(height: number, width: number): [[number, number], [number, number]] {
  return [
    [height % 2, 1],
    [width % 2, 1],
  ];
}

function mobileNetV2Topology(): KerasTopology {
  const g = new KerasGraph('mobilenetv2_1.00_224', [SIZE, SIZE, 3]);
  let x = g.conv2d('Conv1', g.input, { filters: 32, kernelSize: 3, strides: 2, padding: 'same', useBias: false });
  x = g.batchNormalization('bn_Conv1', x, MOBILENET_BN);
  x = g.relu('Conv1_relu', x, 6);
  let channels = 32;
  let size = SIZE / 2;
  MOBILENET_V2_BLOCKS.forEach(([filters, stride, expansion], id) => {
    const input = x;
    // Block 0 has no expansion and Keras calls it "expanded_conv".
    const prefix = id === 0 ? 'expanded_conv_' : `block_${id}_`;
    if (id > 0) {
      x = g.conv2d(`${prefix}expand`, x, {
        filters: expansion * channels,
        kernelSize: 1,
        padding: 'same',
        useBias: false,
      });
      x = g.batchNormalization(`${prefix}expand_BN`, x, MOBILENET_BN);
      x = g.relu(`${prefix}expand_relu`, x, 6);
    }
    if (stride === 2) {
      const padding = correctPad(size, size);
      x = g.zeroPadding2d(`${prefix}pad`, x, padding);
      size = Math.floor((size + padding[0][0] + padding[0][1] - 3) / 2) + 1;
    }
    x = g.depthwiseConv2d(`${prefix}depthwise`, x, {
      kernelSize: 3,
      strides: stride,
      padding: stride === 1 ? 'same' : 'valid',
      useBias: false,
    });
    x = g.batchNormalization(`${prefix}depthwise_BN`, x, MOBILENET_BN);
    x = g.relu(`${prefix}depthwise_relu`, x, 6);
    x = g.conv2d(`${prefix}project`, x, { filters, kernelSize: 1, padding: 'same', useBias: false });
    x = g.batchNormalization(`${prefix}project_BN`, x, MOBILENET_BN);
    if (channels === filters && stride === 1) x = g.add(`${prefix}add`, [input, x]);
    channels = filters;
  });
  x = g.conv2d('Conv_1', x, { filters: 1280, kernelSize: 1, useBias: false });
  x = g.batchNormalization('Conv_1_bn', x, MOBILENET_BN);
  x = g.relu('out_relu', x, 6);
  // Keras leaves this layer unnamed, so a fresh session calls it "global_average_pooling2d".
  x = g.globalAveragePooling2d('global_average_pooling2d', x);
  x = g.dense('predictions', x, { units: CLASSES, activation: 'softmax' });
  return g.topology(x);
}

// ---------------------------------------------------------------- ResNet50

/** `keras.applications.ResNet50`: each stage's bottleneck filters and block count. */
const RESNET50_STAGES: readonly [filters: number, blocks: number][] = [
  [64, 3],
  [128, 4],
  [256, 6],
  [512, 3],
];

const RESNET_BN = { epsilon: 1.001e-5, momentum: 0.99 };

function resNet50Topology(): KerasTopology {
  const g = new KerasGraph('resnet50', [SIZE, SIZE, 3]);
  let x = g.zeroPadding2d('conv1_pad', g.input, [
    [3, 3],
    [3, 3],
  ]);
  x = g.conv2d('conv1_conv', x, { filters: 64, kernelSize: 7, strides: 2 });
  x = g.batchNormalization('conv1_bn', x, RESNET_BN);
  x = g.activation('conv1_relu', x, 'relu');
  x = g.zeroPadding2d('pool1_pad', x, [
    [1, 1],
    [1, 1],
  ]);
  x = g.maxPooling2d('pool1_pool', x, { poolSize: 3, strides: 2 });
  RESNET50_STAGES.forEach(([filters, blocks], s) => {
    for (let b = 1; b <= blocks; b++) {
      const name = `conv${s + 2}_block${b}`;
      // Keras' residual_block_v1: the first block of each stage has a projection shortcut
      // (`_0_conv`), and its stride (2 after the first stage) is on the 1×1 convolutions.
      const stride = b === 1 && s > 0 ? 2 : 1;
      const input = x;
      x = g.conv2d(`${name}_1_conv`, x, { filters, kernelSize: 1, strides: stride });
      x = g.batchNormalization(`${name}_1_bn`, x, RESNET_BN);
      x = g.activation(`${name}_1_relu`, x, 'relu');
      x = g.conv2d(`${name}_2_conv`, x, { filters, kernelSize: 3, padding: 'same' });
      x = g.batchNormalization(`${name}_2_bn`, x, RESNET_BN);
      x = g.activation(`${name}_2_relu`, x, 'relu');
      // Keras lists `_0_conv` between `_2_relu` and `_3_conv`, and `_0_bn` before `_3_bn`
      // (layers of equal depth, in traversal order). Legacy files store weights in that order,
      // and in conv2_block1 `_0_conv` and `_3_conv` have the same shape.
      let shortcut = input;
      if (b === 1)
        shortcut = g.conv2d(`${name}_0_conv`, input, { filters: 4 * filters, kernelSize: 1, strides: stride });
      x = g.conv2d(`${name}_3_conv`, x, { filters: 4 * filters, kernelSize: 1 });
      if (b === 1) shortcut = g.batchNormalization(`${name}_0_bn`, shortcut, RESNET_BN);
      x = g.batchNormalization(`${name}_3_bn`, x, RESNET_BN);
      x = g.add(`${name}_add`, [shortcut, x]);
      x = g.activation(`${name}_out`, x, 'relu');
    }
  });
  x = g.globalAveragePooling2d('avg_pool', x);
  x = g.dense('predictions', x, { units: CLASSES, activation: 'softmax' });
  return g.topology(x);
}

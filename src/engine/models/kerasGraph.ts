import * as path from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import { UserFacingError, errorText } from '../errors';
import { MAX_MODEL_FILE_BYTES, readRegularFile } from '../files';
import type { Tf } from '../tf';
import { type LayerWeights, type WeightArray, isHdf5, readLegacyWeights, stringListAttr, withH5File } from './keras';

// Keras models defined in code: a builder for Keras 2 functional topologies, and Keras' own way
// of putting a legacy weights-only HDF5 file's weights into such a model.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type Padding = 'same' | 'valid';

const ZEROS: Json = { class_name: 'Zeros', config: {} };

/** One weight array a layer has, as Keras names (the last part of its path) and shapes it. */
export interface WeightSpec {
  label: string;
  shape: number[];
}

/**
 * A Keras 2 functional model's architecture, as a `.h5` file's `model_config` has it, and what
 * loading a legacy weights file into it checks: each layer's weight arrays.
 */
export interface KerasTopology {
  /** `{class_name: 'Model', config}`: what kerasToOnnx.ts and tfjs' `modelFromJSON` read. */
  config: { [key: string]: Json };
  /** Layer names (without the input) in Keras' `model.layers` order: the order legacy files store weights in. */
  kerasOrder: readonly string[];
  /** The weight arrays of each layer that has any, in Keras' order (kernel, bias; gamma, beta, moving_mean, moving_variance). */
  weights: ReadonlyMap<string, readonly WeightSpec[]>;
}

/** A model built from a topology, with its layers in the order Keras itself lists them. */
export interface BuiltModel extends KerasTopology {
  model: tfl.LayersModel;
}

/**
 * Writes a Keras 2 functional-model topology layer by layer (`topology`), which kerasToOnnx.ts
 * converts without TensorFlow.js, or `build` makes a tfjs model of through `tf.models` rather than
 * `tf.layers`, so it works with whichever tfjs copy (wasm bundle or tfjs-node) `tf` is. Each
 * method takes the input layer name(s) and returns the new layer's name. Layers are listed in the
 * order they are added: add them in Keras' `model.layers` order. Weights start at zero: load them after.
 */
export class KerasGraph {
  private readonly layers: Json[] = [];
  private readonly names: string[] = [];
  /** Each layer's output channels (the last axis), for the weight shapes of the layers after it. */
  private readonly channels = new Map<string, number>();
  private readonly weights = new Map<string, WeightSpec[]>();
  readonly input: string;

  constructor(
    private readonly name: string,
    inputShape: readonly (number | null)[],
    inputName = 'input_layer',
  ) {
    this.layers.push({
      class_name: 'InputLayer',
      name: inputName,
      config: { name: inputName, batch_input_shape: [null, ...inputShape], dtype: 'float32' },
      inbound_nodes: [],
    });
    this.input = inputName;
    this.channels.set(inputName, Number(inputShape.at(-1)));
  }

  /**
   * Adds a layer on `inputs`. `weights(channels)`: its weight arrays, given its input's channels;
   * `channels`: its output's, when not its input's.
   */
  layer(
    className: string,
    name: string,
    inputs: string | readonly string[],
    config: Record<string, Json> = {},
    shapes: { weights?: (channels: number) => WeightSpec[]; channels?: number } = {},
  ): string {
    if (this.names.includes(name) || name === this.input) throw new Error(`Layer name ${name} is used twice`);
    const sources = typeof inputs === 'string' ? [inputs] : inputs;
    const inputChannels = this.channels.get(sources[0]);
    if (inputChannels === undefined) throw new Error(`Layer ${name} takes ${sources[0]}, which is not in the graph`);
    this.layers.push({
      class_name: className,
      name,
      config: { name, ...config },
      inbound_nodes: [sources.map((source) => [source, 0, 0, {}])],
    });
    this.names.push(name);
    this.channels.set(name, shapes.channels ?? inputChannels);
    const weights = shapes.weights?.(inputChannels) ?? [];
    if (weights.length > 0) this.weights.set(name, weights);
    return name;
  }

  conv2d(
    name: string,
    input: string,
    options: {
      filters: number;
      kernelSize: number;
      strides?: number;
      padding?: Padding;
      useBias?: boolean;
      activation?: string;
    },
  ): string {
    const { filters, kernelSize, strides = 1, padding = 'valid', useBias = true, activation = 'linear' } = options;
    return this.layer(
      'Conv2D',
      name,
      input,
      {
        filters,
        ...convolutionWindow(kernelSize, strides, padding),
        activation,
        use_bias: useBias,
        kernel_initializer: ZEROS,
        bias_initializer: ZEROS,
      },
      {
        channels: filters,
        weights: (channels) =>
          withBias({ label: 'kernel', shape: [kernelSize, kernelSize, channels, filters] }, useBias, filters),
      },
    );
  }

  depthwiseConv2d(
    name: string,
    input: string,
    options: { kernelSize: number; strides?: number; padding?: Padding; useBias?: boolean },
  ): string {
    const { kernelSize, strides = 1, padding = 'valid', useBias = true } = options;
    return this.layer(
      'DepthwiseConv2D',
      name,
      input,
      {
        ...convolutionWindow(kernelSize, strides, padding),
        depth_multiplier: 1,
        activation: 'linear',
        use_bias: useBias,
        depthwise_initializer: ZEROS,
        bias_initializer: ZEROS,
      },
      {
        weights: (channels) =>
          withBias({ label: 'depthwise_kernel', shape: [kernelSize, kernelSize, channels, 1] }, useBias, channels),
      },
    );
  }

  batchNormalization(name: string, input: string, options: { epsilon: number; momentum: number }): string {
    return this.layer(
      'BatchNormalization',
      name,
      input,
      {
        axis: -1,
        momentum: options.momentum,
        epsilon: options.epsilon,
        center: true,
        scale: true,
        beta_initializer: ZEROS,
        gamma_initializer: { class_name: 'Ones', config: {} },
        moving_mean_initializer: ZEROS,
        moving_variance_initializer: { class_name: 'Ones', config: {} },
      },
      { weights: (channels) => BATCH_NORM_WEIGHTS.map((label) => ({ label, shape: [channels] })) },
    );
  }

  /** Keras' `layers.ReLU(max_value)`: ReLU6 for `maxValue` 6. */
  relu(name: string, input: string, maxValue?: number): string {
    return this.layer('ReLU', name, input, maxValue === undefined ? {} : { max_value: maxValue });
  }

  activation(name: string, input: string, activation: string): string {
    return this.layer('Activation', name, input, { activation });
  }

  /** `padding` is `[[top, bottom], [left, right]]`, as Keras writes it. */
  zeroPadding2d(name: string, input: string, padding: [[number, number], [number, number]]): string {
    return this.layer('ZeroPadding2D', name, input, { padding, data_format: 'channels_last' });
  }

  maxPooling2d(name: string, input: string, options: { poolSize: number; strides: number; padding?: Padding }): string {
    return this.layer('MaxPooling2D', name, input, {
      pool_size: [options.poolSize, options.poolSize],
      strides: [options.strides, options.strides],
      padding: options.padding ?? 'valid',
      data_format: 'channels_last',
    });
  }

  globalAveragePooling2d(name: string, input: string): string {
    return this.layer('GlobalAveragePooling2D', name, input, { data_format: 'channels_last' });
  }

  add(name: string, inputs: readonly string[]): string {
    return this.layer('Add', name, inputs);
  }

  /** A Dense layer on a vector (after a global pooling). */
  dense(name: string, input: string, options: { units: number; activation?: string }): string {
    const { units } = options;
    return this.layer(
      'Dense',
      name,
      input,
      {
        units,
        activation: options.activation ?? 'linear',
        use_bias: true,
        kernel_initializer: ZEROS,
        bias_initializer: ZEROS,
      },
      { channels: units, weights: (channels) => withBias({ label: 'kernel', shape: [channels, units] }, true, units) },
    );
  }

  /** The model whose output is `output`'s. */
  topology(output: string): KerasTopology {
    return {
      config: {
        class_name: 'Model',
        config: {
          name: this.name,
          layers: [...this.layers],
          input_layers: [[this.input, 0, 0]],
          output_layers: [[output, 0, 0]],
        },
      },
      kerasOrder: [...this.names],
      weights: new Map(this.weights),
    };
  }
}

/** `topology` as a TensorFlow.js Layers model, its weights at zero. */
export async function buildTopology(tf: Tf, topology: KerasTopology): Promise<BuiltModel> {
  const model = await tf.models.modelFromJSON({ modelTopology: topology.config });
  return { ...topology, model };
}

/** A square convolution window's config, channels last, undilated. */
function convolutionWindow(kernelSize: number, strides: number, padding: Padding): Record<string, Json> {
  return {
    kernel_size: [kernelSize, kernelSize],
    strides: [strides, strides],
    padding,
    data_format: 'channels_last',
    dilation_rate: [1, 1],
  };
}

/** Keras' BatchNormalization weights (center and scale on), in the order legacy files list them. */
const BATCH_NORM_WEIGHTS = ['gamma', 'beta', 'moving_mean', 'moving_variance'];

function withBias(kernel: WeightSpec, useBias: boolean, units: number): WeightSpec[] {
  return useBias ? [kernel, { label: 'bias', shape: [units] }] : [kernel];
}

// ---------------------------------------------------------------- legacy weights-only files

/**
 * Reads a legacy Keras HDF5 weights file, such as Keras' downloads
 * `*_weights_tf_dim_ordering_tf_kernels*.h5` (a full-model `.h5` works too), for `label`
 * (e.g. "MobileNetV2"): weights per layer, in the file's layer order.
 */
export async function readLegacyWeightsFile(
  weightsPath: string,
  label: string,
): Promise<{ fileName: string; weights: LayerWeights }> {
  const fileName = path.basename(weightsPath);
  const bytes = await readRegularFile(weightsPath, {
    describe: `the ${label} weights ${fileName}`,
    maxBytes: MAX_MODEL_FILE_BYTES,
  });
  if (!isHdf5(bytes)) {
    throw new UserFacingError(
      `${fileName} is not a Keras HDF5 weights file (.h5), so it cannot hold ${label} weights.`,
      `The file starts with bytes ${Buffer.from(bytes.subarray(0, 8)).toString('hex')}.`,
    );
  }
  const weights = await withH5File(bytes, fileName, (file, context) => {
    const { h5 } = context;
    try {
      // Sniff the layout by content: Keras itself picks a loader by file name (oracle gotcha 1).
      if (stringListAttr(file, 'layer_names').length > 0) return readLegacyWeights(file, context);
      const modelWeights = file.get('model_weights');
      if (modelWeights instanceof h5.Group) return readLegacyWeights(modelWeights, context);
    } catch (error) {
      if (error instanceof UserFacingError) throw error;
      throw new UserFacingError(`${fileName} is damaged: its ${label} weights cannot be read.`, errorText(error));
    }
    throw new UserFacingError(
      file.get('layers') instanceof h5.Group
        ? `${fileName} is in the Keras 3 weights layout (model.weights.h5); ${label} weights must be in the legacy Keras layout, like Keras' own download.`
        : `${fileName} is an HDF5 file but not Keras weights (it has no layer_names).`,
      `Root attributes: ${Object.keys(file.attrs).join(', ') || 'none'}; root members: ${file.keys().join(', ') || 'none'}.`,
    );
  });
  return { fileName, weights };
}

/** At most `max` names, then "and N more". */
function someNames(names: readonly string[], max = 5): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** Why a file with weights for a different number of layers than `ours` cannot be loaded. */
function countMismatch(fileName: string, label: string, ours: readonly string[], inFile: readonly string[]): string {
  const counts = `${fileName} has weights for ${inFile.length} layers; ${label} needs ${ours.length}`;
  const fileSet = new Set(inFile);
  const ourSet = new Set(ours);
  const missing = ours.filter((name) => !fileSet.has(name));
  const extra = inFile.filter((name) => !ourSet.has(name));
  // Mostly other names: most likely the weights of another model (VGG16's given for MobileNetV2).
  if (ours.length - missing.length < ours.length / 2) {
    return `${counts}. The file's layers (${someNames(inFile, 3)}) are not ${label}'s (${someNames(ours, 3)}): is it the weights file of another model?`;
  }
  if (inFile.length < ours.length && missing.length > 0) {
    return `${counts}: ${someNames(missing)} ${missing.length === 1 ? 'is' : 'are'} missing.`;
  }
  if (inFile.length > ours.length && extra.length > 0) return `${counts}, not ${someNames(extra)}.`;
  return `${counts}.`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Pairs a legacy file's weights with `topology`'s layers the way Keras' `load_weights` does: the
 * file's layers with weights go, in file order, to the model's layers with weights in Keras order.
 * Where a file layer has the name of one of ours, they pair by name (so a file listing layers in
 * another order still loads right); the rest pair by position, as in Keras (old files may name
 * layers differently, e.g. a classifier called "Logits"). Every count and shape is checked: a
 * wrong file is refused in words, naming the layer. The result is keyed by our layer names.
 */
export function pairLegacyWeights(
  topology: KerasTopology,
  weights: LayerWeights,
  fileName: string,
  label: string,
): Map<string, WeightArray[]> {
  const ourNames = topology.kerasOrder.filter((name) => topology.weights.has(name));
  const fileLayers = [...weights.entries()];
  if (fileLayers.length !== ourNames.length) {
    throw new UserFacingError(
      countMismatch(
        fileName,
        label,
        ourNames,
        fileLayers.map(([name]) => name),
      ),
      `Layers with weights in the file: ${fileLayers.map(([name]) => name).join(', ') || 'none'}.`,
    );
  }

  // By name where the names match, the rest by position.
  const byName = new Map(fileLayers);
  const ourSet = new Set(ourNames);
  const unmatchedFile = fileLayers.filter(([name]) => !ourSet.has(name));
  let next = 0;
  const paired = new Map<string, WeightArray[]>();
  for (const name of ourNames) {
    const [fileLayer, arrays] = byName.has(name) ? [name, byName.get(name) ?? []] : unmatchedFile[next++];
    const where = fileLayer === name ? `layer "${name}"` : `layer "${name}" (the file's "${fileLayer}")`;
    const expected = topology.weights.get(name) ?? [];
    const labels = expected.map((w) => w.label);
    if (arrays.length !== expected.length) {
      throw new UserFacingError(
        `${fileName}: ${where} needs ${expected.length} weight array${expected.length === 1 ? '' : 's'} (${labels.join(', ')}), the file has ${arrays.length}.`,
        `Found ${arrays.map((a) => a.path).join(', ')}.`,
      );
    }
    arrays.forEach((array, j) => {
      if (!sameShape(array.shape, expected[j].shape)) {
        throw new UserFacingError(
          `${fileName}: ${where} expects its ${labels[j]} to be ${JSON.stringify(expected[j].shape)}, the file has ${JSON.stringify(array.shape)}.`,
          `File dataset: ${array.path}`,
        );
      }
    });
    paired.set(name, arrays);
  }
  return paired;
}

/**
 * Puts a legacy file's weights into `built.model` as Keras' `load_weights` does (pairLegacyWeights).
 * Every count and shape is checked before any weight is set, so a wrong file changes nothing.
 */
export function setLegacyWeights(
  tf: Tf,
  built: BuiltModel,
  weights: LayerWeights,
  fileName: string,
  label: string,
): void {
  for (const [name, arrays] of pairLegacyWeights(built, weights, fileName, label)) {
    const tensors = arrays.map((array) => tf.tensor(array.data, array.shape, 'float32'));
    try {
      built.model.getLayer(name).setWeights(tensors);
    } finally {
      tf.dispose(tensors);
    }
  }
}

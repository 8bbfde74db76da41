import type * as tfc from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { ModelSummary } from '../shared/protocol';
import type { ResizeKernel } from './image';
import type { LayerMeta } from './layers';
import type { ImageInput, TappedOutput } from './models/onnx';
import type { GraphNode } from './models/tfjsGraph';
import type { PreprocessMode } from './preprocess';

/**
 * One layer's output for one image, without the batch axis: `shape` is H×W×C for a map, or [N]
 * for a vector. `data` keeps a map channels last, as Keras and TensorFlow.js compute it, or
 * channels first, as ONNX Runtime does: a transpose of every layer would cost more than the
 * forward pass itself on small models, and the grid reads channel by channel anyway.
 */
export interface Activation {
  shape: number[];
  readonly data: Float32Array;
  layout: 'hwc' | 'chw';
  /**
   * Computed from other layers' activations when `data` is read, not kept (see
   * models/derivedLayers.ts): the cache counts no bytes for it.
   */
  readonly derived?: boolean;
}

/** The values in H×W×C order (Keras' own, e.g. to compare with Keras), whatever order `data` keeps. */
export function channelsLast(activation: Activation): Float32Array {
  if (activation.layout === 'hwc' || activation.shape.length !== 3) return activation.data;
  const [height, width, channels] = activation.shape;
  const chw = activation.data;
  const hwc = new Float32Array(chw.length);
  const plane = height * width;
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < plane; p++) hwc[p * channels + c] = chw[c * plane + p];
  }
  return hwc;
}

/** How a model presents itself; the engine adds the preprocessing it chose. */
export type ModelIdentity = Omit<ModelSummary, 'inputShape' | 'preprocessing'>;

/** A model ready to run: what it expects, what it has, and one forward pass. */
export interface LoadedModel {
  /** Stable identity for caches: the model file and its modification time. */
  readonly key: string;
  readonly summary: Omit<ModelSummary, 'preprocessing'>;
  /** Input height, width, channels. */
  readonly inputSize: { height: number; width: number; channels: number };
  /** The preprocessing this model expects unless the user says otherwise, and why we think so. */
  readonly preprocessing: PreprocessMode;
  readonly preprocessingReason?: string;
  /** The model file, for finding labels beside it (absent for the bundled model). */
  readonly path?: string;
  /** How the image is resized to the input size when the user has not said: Keras' load_img uses nearest. */
  readonly resizeKernel?: ResizeKernel;
  /** A label set that ships with the extension, for models trained on it. */
  readonly labels?: 'imagenet';
  /** The name of the image input, where the format has one (ONNX). */
  readonly inputName?: string;
  /**
   * What runs the forward pass: 'onnxruntime', 'tfjs-wasm' or 'tfjs-node' (TensorFlow.js with
   * @tensorflow/tfjs-node). Shown to the user with the timing.
   */
  readonly backend?: string;
  /**
   * The TensorFlow.js Layers model behind `run`, for TF.js and Keras models: the engine
   * converts it to ONNX to run on onnxruntime instead (layersToOnnx.ts).
   */
  readonly layersModel?: tfl.LayersModel;
  /**
   * The TF.js GraphModel behind `run`, for TF.js GraphModels: the engine converts it to ONNX to
   * run on onnxruntime instead (tfjsGraphToOnnx.ts).
   */
  readonly graphModel?: GraphModelArtifacts;
  /** How long converting the model to ONNX took, for a model its loader converted (a Keras file). */
  readonly convertedInMs?: number;
  /** Why a model that could have run on onnxruntime runs on TensorFlow.js instead (the layer that has no ONNX form). */
  readonly nativeRefusal?: string;
  /**
   * The ONNX graph `run` runs, for a model converted to it (a Keras or TF.js model): kept on disk
   * (conversionStore.ts), so the next open needs no conversion.
   */
  readonly onnxForm?: OnnxForm;
  /** Every layer in model order (topological), except the input. */
  readonly layers: LayerMeta[];
  /**
   * One forward pass that returns every layer's activations, or, given `only`, at least those
   * layers' (a runtime that can stop early computes just what they need).
   */
  run(input: Float32Array, only?: ReadonlySet<string>): Promise<Map<string, Activation>>;
  dispose(): void;
}

/** A model's ONNX graph, with its image input and the outputs that are its layers. */
export interface OnnxForm {
  readonly bytes: Uint8Array;
  readonly input: ImageInput;
  readonly outputs: TappedOutput[];
}

/** A TF.js GraphModel as tfjsGraphToOnnx.ts reads it. */
export interface GraphModelArtifacts {
  /** model.json's nodes: TensorFlow NodeDefs in protobuf's JSON form. */
  readonly nodes: readonly GraphNode[];
  /** The image input's node. */
  readonly input: string;
  /** Each constant's value by node name, as TensorFlow.js decoded it (a quantized weight dequantized to float32). */
  readonly weights: Readonly<Record<string, tfc.Tensor[] | undefined>>;
}

/**
 * What a model file needs beyond its path, for formats that cannot read everything from the file
 * itself (a PyTorch checkpoint: the Python to run, the architecture its weights belong to, whether
 * a full pickle may be loaded). Formats that read everything from the file ignore it.
 */
export interface FileModelHints {
  /** The Python interpreter that loads the model. */
  python?: string;
  /** Where that interpreter was chosen, for messages ("featureMaps.pythonPath", "the Python extension's interpreter"). */
  pythonSource?: string;
  /** The architecture the weights belong to, e.g. a torchvision model name. */
  architecture?: string;
  /** Whether a file that is a full pickle (not weights only) may be loaded: it can run any code. */
  allowPickle?: boolean;
  /** Where converted or downloaded files are kept. */
  cacheDir?: string;
  /** The workspace folder a `module:callable` architecture is imported from. */
  workspace?: string;
}

/** Where a model comes from: the bundled MobileNetV2, a downloaded catalogue model or a file of the user's. */
export type ModelSource =
  | { kind: 'bundled' }
  /** A catalogue entry (catalog.ts) whose weights are already downloaded to `weightsPath`. */
  | { kind: 'catalog'; id: string; weightsPath: string }
  | {
      kind: 'file';
      path: string;
      /** Height and width for models whose input size is not fixed (default 224×224). */
      inputSize?: { height: number; width: number };
      /** What the file's format needs beyond the file (FileModelHints); not part of the model's cache key yet. */
      hints?: FileModelHints;
    };

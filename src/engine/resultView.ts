import * as path from 'node:path';
import type {
  ChannelStats,
  ChannelValues,
  ExtractionResult,
  LayerData,
  LayerInfo,
  MapChoice,
  Prediction,
} from '../shared/protocol';
import { channelStats, channelValues } from './channelStats';
import type { ActivationCache } from './activationCache';
import { IMAGENET_LABELS } from './catalog';
import { NotCachedError, UserFacingError } from './errors';
import type { ExtractRequest, Extraction } from './extraction';
import { readLabels, topK } from './labels';
import { groupLayers, isSpatial } from './layers';
import type { Activation, LoadedModel } from './model';
import { findLabelsBeside } from './modelFiles';
import type { ExecutionDevice } from './models/executionProvider';
import { executionDevice, withoutOnnxRuntime } from './models/onnx';
import { PREPROCESS_DESCRIPTIONS } from './preprocess';
import { quantizeChannels } from './quantize';

/**
 * Shapes a cached result for the panel (and the CLI): the model's summary with the preprocessing
 * in words, the input as the model saw it, every layer's place in the tree, the top-5
 * predictions, and a layer's channels quantised for drawing. Reads the activation cache; never
 * runs the model.
 */
export class ResultView {
  constructor(
    private readonly cache: ActivationCache,
    /** The folder with the built assets, where the ImageNet labels are. */
    private readonly assetsDir: string,
  ) {}

  /** What the panel shows of `extraction`, a pass of `model` for `request`. */
  async describe(model: LoadedModel, request: ExtractRequest, extraction: Extraction): Promise<ExtractionResult> {
    const { resultKey, image, preprocessing: chosen, matched, elapsedMs } = extraction;
    const custom = request.customNormalization;
    const groups = groupLayers(model.layers);
    const layers: LayerInfo[] = model.layers.map((layer, i) => ({
      name: layer.name,
      op: layer.op,
      group: groups[i],
      shape: layer.shape,
      spatial: isSpatial(layer.shape),
      matched: matched[i],
    }));
    const labelsPath = await this.labelsPath(model, request.labelsPath);
    const kept = this.cache.peek(resultKey);
    return {
      resultKey,
      model: {
        ...model.summary,
        ...(model.backend ? { backend: model.backend } : {}),
        ...this.device(model),
        preprocessing: custom
          ? `custom: (x − mean) / std, mean ${custom.mean.join(', ')}, std ${custom.std.join(', ')} (set by featureMaps.mean and featureMaps.std)`
          : `${chosen.mode}: ${PREPROCESS_DESCRIPTIONS[chosen.mode]} (${chosen.why})`,
      },
      input: {
        fileName: image.fileName,
        originalWidth: image.originalWidth,
        originalHeight: image.originalHeight,
        width: image.width,
        height: image.height,
        rgba: rgbToRgba(image.rgb),
        notes: image.notes,
      },
      layers,
      elapsedMs,
      partial: kept?.input !== undefined,
      keptBytes: kept?.bytes ?? 0,
      predictions: labelsPath ? await this.predictions(resultKey, model, labelsPath) : undefined,
    };
  }

  /** What ran the passes, for the header (see ModelSummary.device). */
  private device(model: LoadedModel): { device?: ExecutionDevice } {
    if (model.backend?.startsWith('onnxruntime')) return { device: executionDevice() };
    const fallback = withoutOnnxRuntime();
    return fallback && model.backend?.startsWith('tfjs') ? { device: fallback } : {};
  }

  /**
   * Channels of one layer, quantised for drawing (computed: see Extractor.ensureLayer): the first
   * `count`, or those `channels` lists.
   */
  layerData(resultKey: string, layer: string, count: number, channels?: readonly number[]): LayerData {
    const activation = this.spatialActivation(resultKey, layer);
    const total = activation.shape[2];
    const outside = channels?.find((c) => !Number.isInteger(c) || c < 0 || c >= total);
    if (outside !== undefined)
      throw new UserFacingError(`Layer "${layer}" has no channel ${outside} (it has ${total}).`);
    return quantizeChannels(layer, activation, count, channels);
  }

  /** Every channel's statistics (computed once per layer: channelStats.ts). */
  channelStats(resultKey: string, layer: string): ChannelStats {
    return channelStats(layer, this.spatialActivation(resultKey, layer));
  }

  /** One channel's exact values, or the mean or max over channels. */
  channelValues(resultKey: string, layer: string, channel: MapChoice): ChannelValues {
    const activation = this.spatialActivation(resultKey, layer);
    if (typeof channel === 'number' && (!Number.isInteger(channel) || channel < 0 || channel >= activation.shape[2])) {
      throw new UserFacingError(`Layer "${layer}" has no channel ${channel} (it has ${activation.shape[2]}).`);
    }
    return channelValues(layer, activation, channel);
  }

  /** A computed layer with H×W×C maps of a cached result, or why there is none. */
  spatialActivation(resultKey: string, layer: string): Activation {
    const entry = this.cache.get(resultKey);
    if (!entry) throw new NotCachedError();
    const activation = entry.activations.get(layer);
    if (!activation) {
      if (entry.model.layers.some((l) => l.name === layer)) {
        throw new Error(`Layer "${layer}" is not computed yet: call ensureLayer first.`);
      }
      throw new UserFacingError(`The model has no layer named "${layer}".`);
    }
    if (!isSpatial(activation.shape)) throw new UserFacingError(`Layer "${layer}" has no spatial maps to draw.`);
    return activation;
  }

  /**
   * The top-5 of a cached result, once its head is computed (see ExtractRequest.headLater);
   * undefined when the model has no classifier head or no labels were found.
   */
  async predictionsOf(resultKey: string, labelsPath: string | undefined): Promise<Prediction[] | undefined> {
    const entry = this.cache.get(resultKey);
    if (!entry) throw new NotCachedError();
    const labels = await this.labelsPath(entry.model, labelsPath);
    return labels ? this.predictions(resultKey, entry.model, labels) : undefined;
  }

  /** The labels file: the one asked for, ImageNet's for a model that has its classes, or one beside the model. */
  private async labelsPath(model: LoadedModel, asked: string | undefined): Promise<string | undefined> {
    if (asked) return asked;
    if (model.labels === 'imagenet') return path.join(this.assetsDir, 'models', IMAGENET_LABELS);
    return model.path ? findLabelsBeside(model.path) : undefined;
  }

  /** Top-5 of the model's last layer, when it is a vector with one score per label. */
  private async predictions(
    resultKey: string,
    model: LoadedModel,
    labelsPath: string,
  ): Promise<Prediction[] | undefined> {
    const head = model.layers.at(-1);
    const scores = head && this.cache.get(resultKey)?.activations.get(head.name);
    // A vector, or a 1×1×N map (a convolutional head, as in SqueezeNet).
    const isVector = scores && scores.shape.slice(0, -1).every((d) => d === 1);
    if (!scores || !isVector) return undefined;
    const labels = await readLabels(labelsPath);
    if (labels.length !== scores.data.length) return undefined;
    return topK(scores.data, 5).map(({ index, score }) => ({ label: labels[index], score }));
  }
}

/** The webview draws RGBA: the decoded RGB with an opaque alpha. */
export function rgbToRgba(rgb: Uint8Array): Uint8ClampedArray {
  const rgba = new Uint8ClampedArray((rgb.length / 3) * 4);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    rgba[j] = rgb[i];
    rgba[j + 1] = rgb[i + 1];
    rgba[j + 2] = rgb[i + 2];
    rgba[j + 3] = 255;
  }
  return rgba;
}

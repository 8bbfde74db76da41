/**
 * The one message contract between the extension host and the panel's webview.
 * Imported by both sides; no vscode, DOM or Node imports here.
 *
 * Flow: the webview posts `ready`; the host then sends `settings`, `identity` and either
 * `loading`, `error` or `result`. Once the webview has painted a result it says `resultShown`;
 * only then do the input image's pixels (`inputPixels`) and the top-5 (`predictions`) follow, so
 * that nothing competes with the first grid. The webview pulls pixel data per layer by calling
 * `PanelHostApi.layerData` (a request with a reply, an error or a timeout, over
 * src/shared/rpc.ts, as the host calls the engine). Everything the panel shows can be rebuilt
 * from `PanelIdentity`.
 */

export type Colormap = 'viridis' | 'magma' | 'inferno' | 'plasma' | 'cividis' | 'gray';
export const COLORMAPS: readonly Colormap[] = ['viridis', 'magma', 'inferno', 'plasma', 'cividis', 'gray'];

/** `channel`: each tile uses its own min..max; `layer`: all tiles share the layer's min..max. */
export type Normalization = 'channel' | 'layer';
export const NORMALIZATIONS: readonly Normalization[] = ['channel', 'layer'];

/** The settings the webview needs to draw; pushed again whenever they change. */
export interface ViewSettings {
  /** Layer names or glob patterns to list; empty = every layer with spatial maps. */
  layers: string[];
  /** How many channels of the selected layer the grid shows. */
  channels: number;
  colormap: Colormap;
  normalization: Normalization;
}

export interface LayerInfo {
  name: string;
  /** The op type, e.g. `Conv2D`, `ReLU`, `BatchNormalization`. */
  op: string;
  /** Display group in the tree, e.g. `block_3` or `Conv1`. */
  group: string;
  /** Output shape without the batch axis, e.g. [112, 112, 32] (H, W, C) or [1280]. */
  shape: number[];
  /** True when the output is H×W×C and can be drawn as maps. */
  spatial: boolean;
  /** True when the layer matches the `featureMaps.layers` setting. */
  matched: boolean;
}

export interface ModelSummary {
  /** A short name for the header, e.g. "MobileNetV2 (bundled)". */
  name: string;
  /** One sentence on what the model is. */
  description: string;
  /** Input size as H×W×C. */
  inputShape: [number, number, number];
  /** How pixels were turned into model input, and why, e.g. "caffe: BGR minus ImageNet mean (Keras VGG layer names)". */
  preprocessing: string;
  /** The model file, absent for the bundled model. */
  path?: string;
  /** What ran the forward pass: 'onnxruntime', 'tfjs-wasm' or 'tfjs-node'. */
  backend?: string;
  /**
   * The device onnxruntime ran on ("CPU", "CUDA", "DirectML", "CoreML", "WebGPU"), and a note
   * when it is the CPU although `featureMaps.executionProvider` asked for another.
   */
  device?: { name: string; note?: string };
  /** A word from the host on how the model was chosen, e.g. that Restricted Mode ignores the workspace's model. */
  notice?: string;
}

/** One of the model's top classes for the image, when it has a classifier head and labels. */
export interface Prediction {
  label: string;
  /** The head's output for this class (a probability when the head ends in softmax). */
  score: number;
}

/** The image as the model saw it, after decode and resize, described. */
export interface InputSummary {
  fileName: string;
  /** Size of the original file's pixels, before resizing. */
  originalWidth: number;
  originalHeight: number;
  width: number;
  height: number;
  /** Notes about what decoding did, e.g. "16-bit grayscale scaled to 8 bits". */
  notes: string[];
}

/** The image as the model saw it, with its pixels: RGBA, H×W. */
export interface InputPreview extends InputSummary {
  rgba: Uint8ClampedArray;
}

export interface ExtractionResult {
  /** Identifies the cached activations this result came from; passed back to `layerData`. */
  resultKey: string;
  model: ModelSummary;
  input: InputPreview;
  layers: LayerInfo[];
  /** Milliseconds spent in the forward pass (0 when it came from the cache). */
  elapsedMs: number;
  /** Only some layers are computed yet: the others are when first asked for (or completed in the background). */
  partial: boolean;
  /** What the engine keeps of this image's layers now, in bytes (a layer derived from others keeps none). */
  keptBytes: number;
  /** Top-5 classes, when the model has a classifier head and labels were found. */
  predictions?: Prediction[];
  /** The channels of the layer shown first, when asked for (ExtractRequest.firstGridChannels): no round trip for the first grid. */
  firstGrid?: LayerData;
}

/** Some of one layer's channels, quantised to 8 bits per value with per-channel min/max. */
export interface LayerData {
  layer: string;
  height: number;
  width: number;
  /** Channels in the layer; `count` of them are in `values`. */
  totalChannels: number;
  count: number;
  /** Which channel each of the `count` is (the first ones, or a page in the order the grid is sorted). */
  channels: Uint32Array;
  /** count × height × width, channel-major: value = min[k] + q / 255 × (max[k] − min[k]). */
  values: Uint8Array;
  min: Float32Array;
  max: Float32Array;
  /** Min and max over every channel of the layer, for per-layer normalisation. */
  layerMin: number;
  layerMax: number;
}

/**
 * A result as the webview gets it: all but the input's pixels, which follow in an `inputPixels`
 * message once the result is on screen (the pixels are as many bytes as the first grid).
 */
export type ShownResult = Omit<ExtractionResult, 'input'> & { input: InputSummary };

/** The pixels of a result's input image (RGBA, width × height), sent after the result. */
export interface InputPixels {
  resultKey: string;
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
}

export type ToWebview =
  | { type: 'settings'; settings: ViewSettings }
  /** Which image the panel is for; the webview saves it so the panel can be restored after a reload. */
  | { type: 'identity'; identity: PanelIdentity }
  | { type: 'loading'; fileName: string; message: string }
  | { type: 'error'; fileName: string; message: string; detail?: string; actions?: PanelAction[] }
  | { type: 'result'; result: ShownResult }
  | { type: 'inputPixels'; pixels: InputPixels }
  /** The top-5 of a result sent without it (its first pass stopped before the classifier head). */
  | { type: 'predictions'; resultKey: string; predictions: Prediction[] };

/** Per channel of a layer, computed where the activations are: what the grid ranks channels by. */
export interface ChannelStats {
  layer: string;
  totalChannels: number;
  min: Float32Array;
  max: Float32Array;
  mean: Float32Array;
  /** Standard deviation over the channel's H×W values. */
  std: Float32Array;
  /** The fraction of the channel's values above zero. */
  active: Float32Array;
}

/** What the grid can sort channels by: their index, or one of their statistics (descending). */
export type ChannelSort = 'index' | 'mean' | 'max' | 'std' | 'active';
export const CHANNEL_SORTS: readonly ChannelSort[] = ['index', 'mean', 'max', 'std', 'active'];

/** What the panel (or Feature Maps: Export…) can save of a layer. */
export type ExportKind = 'grid-png' | 'channel-png' | 'npy-hwc' | 'npy-chw' | 'stats-csv';

/** A file the engine makes of a layer of a result. */
export interface ExportRequest {
  kind: ExportKind;
  layer: string;
  /** grid-png: the channels, in the grid's order. */
  channels?: number[];
  /** channel-png: the channel. */
  channel?: number;
  colormap: Colormap;
  normalization: Normalization;
  /** The PNGs drawn over the model's input at this opacity (0–1), as the panel shows them overlaid. */
  overlay?: number;
}

/** What the webview shows of the selected layer now: what Export saves. */
export interface LayerViewInfo {
  layer: string;
  /** The channels on the grid's page, in its order. */
  channels: number[];
  sort: ChannelSort;
  /** The zoomed channel, if one is. */
  channel?: number;
  /** The overlay's opacity when the maps are drawn over the image. */
  overlay?: number;
}

/** A map of a layer the zoomed view shows: one channel, or the mean or max over its channels at each pixel. */
export type MapChoice = number | 'mean' | 'max';

/** One map's values, exactly (float32, H×W row-major): the zoomed view reads them. */
export interface ChannelValues {
  layer: string;
  channel: MapChoice;
  height: number;
  width: number;
  values: Float32Array;
}

/**
 * What the user can do about an error beyond Retry, Change Model… and Open Settings: the panel
 * shows a button per action and posts its id back; the host knows what each means (e.g. which
 * command a fix runs), so the webview never sends anything to run.
 */
export type PanelActionId = 'chooseArchitecture' | 'manageTrust' | 'runFix' | 'copyFix' | 'choosePython';
export const PANEL_ACTION_IDS: readonly PanelActionId[] = [
  'chooseArchitecture',
  'manageTrust',
  'runFix',
  'copyFix',
  'choosePython',
];

export interface PanelAction {
  id: PanelActionId;
  /** The button's text, e.g. "Choose Architecture…". */
  label: string;
}

export type FromWebview =
  | { type: 'ready' }
  | { type: 'layerSelected'; layer: string }
  | { type: 'openSettings' }
  | { type: 'selectModel' }
  | { type: 'retry' }
  /** The user pressed one of the error's actions. */
  | { type: 'action'; id: PanelActionId }
  /** A result is on screen (its first grid painted): what waits for it may cross now. */
  | { type: 'resultShown'; resultKey: string }
  /** What the layer's views show now (sent as it changes): what Export saves. */
  | { type: 'view'; view: LayerViewInfo }
  /** The user pressed Export… in the panel. */
  | { type: 'export' };

/** What the webview asks of the host, with a reply: the contract of the host ↔ webview hop (see rpc.ts). */
export interface PanelHostApi {
  /**
   * Channels of one layer of a result on show, quantised for drawing: the first `count`, or the
   * `count` that `channels` lists (a page of the grid, in its order).
   */
  layerData(resultKey: string, layer: string, count: number, channels?: number[]): Promise<LayerData>;
  /** Every channel's statistics, for ranking them. */
  channelStats(resultKey: string, layer: string): Promise<ChannelStats>;
  /** One channel's exact values (or the mean or max over channels), for the zoomed view. */
  channelValues(resultKey: string, layer: string, channel: MapChoice): Promise<ChannelValues>;
}

/** The most channels one `layerData` call may ask for (the `featureMaps.channels` maximum). */
export const MAX_CHANNELS_PER_REQUEST = 512;

const isIndex = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0;

/** Checks the arguments of a `layerData` call from the webview before the host acts on them. */
export function isLayerDataRequest(args: unknown[]): args is Parameters<PanelHostApi['layerData']> {
  const [resultKey, layer, count, channels] = args;
  return (
    (args.length === 3 || args.length === 4) &&
    typeof resultKey === 'string' &&
    typeof layer === 'string' &&
    Number.isInteger(count) &&
    (count as number) > 0 &&
    (count as number) <= MAX_CHANNELS_PER_REQUEST &&
    (channels === undefined || (Array.isArray(channels) && channels.length === count && channels.every(isIndex)))
  );
}

/** Checks the arguments of a `channelStats` call from the webview. */
export function isChannelStatsRequest(args: unknown[]): args is Parameters<PanelHostApi['channelStats']> {
  return args.length === 2 && typeof args[0] === 'string' && typeof args[1] === 'string';
}

/** Checks the arguments of a `channelValues` call from the webview. */
export function isChannelValuesRequest(args: unknown[]): args is Parameters<PanelHostApi['channelValues']> {
  return args.length === 3 && typeof args[0] === 'string' && typeof args[1] === 'string' && isMapChoice(args[2]);
}

export function isMapChoice(value: unknown): value is MapChoice {
  return isIndex(value) || value === 'mean' || value === 'max';
}

/** What the host needs to rebuild a panel after a reload (kept in webview state). */
export interface PanelIdentity {
  imagePath: string;
  selectedLayer?: string;
}

/** Checks a message from the webview before the host acts on it. */
export function isFromWebview(value: unknown): value is FromWebview {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case 'ready':
    case 'openSettings':
    case 'selectModel':
    case 'retry':
    case 'export':
      return true;
    case 'view':
      return isLayerViewInfo(m.view);
    case 'layerSelected':
      return typeof m.layer === 'string';
    case 'resultShown':
      return typeof m.resultKey === 'string';
    case 'action':
      return (PANEL_ACTION_IDS as readonly unknown[]).includes(m.id);
    default:
      return false;
  }
}

function isLayerViewInfo(value: unknown): value is LayerViewInfo {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.layer === 'string' &&
    Array.isArray(v.channels) &&
    v.channels.length <= MAX_CHANNELS_PER_REQUEST &&
    v.channels.every(isIndex) &&
    (CHANNEL_SORTS as readonly unknown[]).includes(v.sort) &&
    (v.channel === undefined || isIndex(v.channel)) &&
    (v.overlay === undefined || (typeof v.overlay === 'number' && v.overlay >= 0 && v.overlay <= 1))
  );
}

/** Turns a quantised value back into the activation it stands for. */
export function dequantize(q: number, min: number, max: number): number {
  return min + (q / 255) * (max - min);
}

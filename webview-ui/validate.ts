/**
 * Light checks on messages from the host: enough that a malformed message is dropped
 * (and logged) instead of throwing half-way through a render.
 */
import {
  COLORMAPS,
  NORMALIZATIONS,
  PANEL_ACTION_IDS,
  isMapChoice,
  type ChannelStats,
  type ChannelValues,
  type LayerData,
  type ToWebview,
} from '../src/shared/protocol';

type Rec = Record<string, unknown>;

const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null;
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isInteger(v);

function isSettings(s: unknown): boolean {
  return (
    isRec(s) &&
    Array.isArray(s.layers) &&
    isInt(s.channels) &&
    (COLORMAPS as readonly unknown[]).includes(s.colormap) &&
    (NORMALIZATIONS as readonly unknown[]).includes(s.normalization)
  );
}

function isLayerInfo(l: unknown): boolean {
  return (
    isRec(l) &&
    isStr(l.name) &&
    isStr(l.op) &&
    isStr(l.group) &&
    Array.isArray(l.shape) &&
    typeof l.spatial === 'boolean' &&
    typeof l.matched === 'boolean'
  );
}

function isResult(r: unknown): boolean {
  if (!isRec(r) || !isStr(r.resultKey) || !isRec(r.model) || !isRec(r.input)) return false;
  const input = r.input;
  return (
    isStr(r.model.name) &&
    isInt(input.width) &&
    isInt(input.height) &&
    Array.isArray(r.layers) &&
    r.layers.every(isLayerInfo)
  );
}

function isInputPixels(p: unknown): boolean {
  return (
    isRec(p) &&
    isStr(p.resultKey) &&
    isInt(p.width) &&
    isInt(p.height) &&
    p.rgba instanceof Uint8ClampedArray &&
    p.rgba.length === (p.width as number) * (p.height as number) * 4
  );
}

function isAction(a: unknown): boolean {
  return isRec(a) && (PANEL_ACTION_IDS as readonly unknown[]).includes(a.id) && isStr(a.label);
}

/** A reply to `layerData` is one layer's channels, whole. */
export function isLayerData(d: unknown): d is LayerData {
  if (!isRec(d) || !isStr(d.layer)) return false;
  if (!isInt(d.height) || !isInt(d.width) || !isInt(d.count) || !isInt(d.totalChannels)) return false;
  const plane = d.height * d.width;
  return (
    d.channels instanceof Uint32Array &&
    d.channels.length === d.count &&
    d.values instanceof Uint8Array &&
    d.values.length >= d.count * plane &&
    d.min instanceof Float32Array &&
    d.max instanceof Float32Array &&
    d.min.length >= d.count &&
    d.max.length >= d.count &&
    isNum(d.layerMin) &&
    isNum(d.layerMax)
  );
}

/** A reply to `channelStats`: five arrays of one value per channel. */
export function isChannelStats(d: unknown): d is ChannelStats {
  if (!isRec(d) || !isStr(d.layer) || !isInt(d.totalChannels)) return false;
  const n = d.totalChannels;
  return [d.min, d.max, d.mean, d.std, d.active].every((a) => a instanceof Float32Array && a.length === n);
}

/** A reply to `channelValues`: one channel's H×W floats. */
export function isChannelValues(d: unknown): d is ChannelValues {
  return (
    isRec(d) &&
    isStr(d.layer) &&
    isMapChoice(d.channel) &&
    isInt(d.height) &&
    isInt(d.width) &&
    d.values instanceof Float32Array &&
    d.values.length === d.height * d.width
  );
}

export function isToWebview(m: unknown): m is ToWebview {
  if (!isRec(m)) return false;
  switch (m.type) {
    case 'settings':
      return isSettings(m.settings);
    case 'identity':
      return isRec(m.identity) && isStr(m.identity.imagePath);
    case 'loading':
      return isStr(m.fileName) && isStr(m.message);
    case 'error':
      return (
        isStr(m.fileName) &&
        isStr(m.message) &&
        (m.detail === undefined || isStr(m.detail)) &&
        (m.actions === undefined || (Array.isArray(m.actions) && m.actions.every(isAction)))
      );
    case 'result':
      return isResult(m.result);
    case 'inputPixels':
      return isInputPixels(m.pixels);
    case 'predictions':
      return (
        isStr(m.resultKey) &&
        Array.isArray(m.predictions) &&
        m.predictions.every((p) => isRec(p) && isStr(p.label) && isNum(p.score))
      );
    default:
      return false;
  }
}

import * as os from 'node:os';
import * as path from 'node:path';
import { parse as parseJsonc } from 'jsonc-parser';
import * as vscode from 'vscode';
import { MIRROR_ENV, catalogEntry, isCatalogSetting } from './engine/catalog';
import type { ResizeMode } from './engine/image';
import { isExecutionProviderSetting, type ExecutionProviderSetting } from './engine/models/executionProvider';
import type { CustomNormalization, PreprocessMode } from './engine/preprocess';
import { COLORMAPS, NORMALIZATIONS, type Colormap, type Normalization, type ViewSettings } from './shared/protocol';

export const SECTION = 'featureMaps';

export const DEFAULT_SETTINGS: ViewSettings = {
  layers: [],
  channels: 16,
  colormap: 'viridis',
  normalization: 'channel',
};

export const MAX_CHANNELS = 512;

/**
 * Settings whose workspace values VS Code ignores in Restricted Mode, as package.json declares
 * (`capabilities.untrustedWorkspaces.restrictedConfigurations`): an untrusted folder must not make
 * the engine open its files, size its passes or run its programs (a Python). The user's own values still apply.
 */
export const RESTRICTED_SETTINGS = ['model', 'labels', 'inputSize', 'memoryBudget', 'pythonPath'] as const;
/**
 * The restricted settings the workspace sets that Restricted Mode ignores now, to tell the user.
 * VS Code hides those values from extensions altogether (`inspect()` does not show them), so the
 * workspace's own settings files are read: each folder's `.vscode/settings.json` and the
 * `.code-workspace` file's `settings`.
 */
export async function ignoredInRestrictedMode(): Promise<string[]> {
  if (vscode.workspace.isTrusted) return [];
  const sources: { uri: vscode.Uri; inWorkspaceFile: boolean }[] = (vscode.workspace.workspaceFolders ?? []).map(
    (folder) => ({ uri: vscode.Uri.joinPath(folder.uri, '.vscode', 'settings.json'), inWorkspaceFile: false }),
  );
  const workspaceFile = vscode.workspace.workspaceFile;
  if (workspaceFile?.scheme === 'file') sources.push({ uri: workspaceFile, inWorkspaceFile: true });
  const found = new Set<string>();
  for (const { uri, inWorkspaceFile } of sources) {
    let text: string;
    try {
      text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    } catch {
      continue; // no settings file there
    }
    const parsed = parseJsonc(text) as Record<string, unknown> | undefined;
    const settings = (inWorkspaceFile ? parsed?.settings : parsed) as Record<string, unknown> | undefined;
    for (const key of RESTRICTED_SETTINGS) {
      if (settings && typeof settings === 'object' && `${SECTION}.${key}` in settings) found.add(`${SECTION}.${key}`);
    }
  }
  return [...found];
}

/**
 * The typed `featureMaps.*` settings; bad values fall back to the defaults. A catalogue model
 * brings its own default layers and channel count (VGG16: the seed's three layers, 9 channels),
 * used until the user sets `featureMaps.layers` / `featureMaps.channels` themselves.
 */
export function readSettings(scope?: vscode.Uri): ViewSettings {
  const config = vscode.workspace.getConfiguration(SECTION, scope);
  const model = config.get<unknown>('model');
  const entry = catalogEntry(typeof model === 'string' ? model : undefined);
  const layers = isUserSet(config, 'layers') ? config.get<unknown>('layers') : (entry?.defaultLayers ?? []);
  const channels = isUserSet(config, 'channels')
    ? config.get<unknown>('channels')
    : (entry?.defaultChannels ?? DEFAULT_SETTINGS.channels);
  const colormap = config.get<unknown>('colormap');
  const normalization = config.get<unknown>('normalization');
  return {
    layers: Array.isArray(layers) ? layers.filter((l): l is string => typeof l === 'string') : DEFAULT_SETTINGS.layers,
    channels:
      typeof channels === 'number' && Number.isFinite(channels)
        ? Math.min(MAX_CHANNELS, Math.max(1, Math.round(channels)))
        : DEFAULT_SETTINGS.channels,
    colormap: COLORMAPS.includes(colormap as Colormap) ? (colormap as Colormap) : DEFAULT_SETTINGS.colormap,
    normalization: NORMALIZATIONS.includes(normalization as Normalization)
      ? (normalization as Normalization)
      : DEFAULT_SETTINGS.normalization,
  };
}

function isUserSet(config: vscode.WorkspaceConfiguration, key: string): boolean {
  const inspected = config.inspect(key);
  return (
    inspected?.globalValue !== undefined ||
    inspected?.workspaceValue !== undefined ||
    inspected?.workspaceFolderValue !== undefined
  );
}

/** Fires when any `featureMaps.*` setting changes. */
export function onDidChangeSettings(listener: () => void): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration(SECTION)) listener();
  });
}

/** `featureMaps.executionProvider`: the device onnxruntime runs on (`auto` for anything else). */
export function readExecutionProvider(): ExecutionProviderSetting {
  const value = vscode.workspace.getConfiguration(SECTION).get<unknown>('executionProvider');
  return isExecutionProviderSetting(value) ? value : 'auto';
}

/** The model-related settings: which model, and how images are prepared for it. */
export interface ModelSettings {
  /** `featureMaps.model` resolved to an absolute path; undefined = the bundled model or a catalogue entry. */
  modelPath: string | undefined;
  /** `featureMaps.model` when it names a catalogue entry (`catalog:vgg16`), known or not. */
  catalogSetting: string | undefined;
  /** Where catalogue downloads come from: `featureMaps.modelMirror`, else $FEATURE_MAPS_MODEL_MIRROR, else Keras. */
  mirror: string | undefined;
  /** VS Code's `http.proxy`. */
  proxy: string | undefined;
  preprocessing: PreprocessMode | 'auto';
  resize: ResizeMode;
  labelsPath: string | undefined;
  /** For models whose input size is not fixed. */
  inputSize: { height: number; width: number };
  /** `featureMaps.mean` and `featureMaps.std`, when both are set: they replace the preprocessing preset. */
  customNormalization: CustomNormalization | undefined;
  /** `featureMaps.memoryBudget`: the most one forward pass may allocate. */
  memoryBudgetBytes: number;
}

export const DEFAULT_MEMORY_BUDGET_MB = 2048;

/** Names the model the settings choose, to remember which passes stopped the engine. */
export function modelIdentity(settings: ModelSettings): string {
  return settings.modelPath ?? settings.catalogSetting ?? 'bundled';
}

const PREPROCESS_MODES: readonly (PreprocessMode | 'auto')[] = ['auto', 'raw01', 'tf', 'caffe', 'torch', 'none'];
const RESIZE_MODES: readonly ResizeMode[] = ['stretch', 'center-crop', 'letterbox'];

export function readModelSettings(scope?: vscode.Uri): ModelSettings {
  const config = vscode.workspace.getConfiguration(SECTION, scope);
  const preprocessing = config.get<unknown>('preprocessing');
  const resize = config.get<unknown>('resize');
  const model = config.get<unknown>('model');
  const catalog = typeof model === 'string' && isCatalogSetting(model);
  const mirror = config.get<unknown>('modelMirror');
  const proxy = vscode.workspace.getConfiguration('http').get<unknown>('proxy');
  return {
    modelPath: catalog ? undefined : resolveSettingPath(model, scope),
    catalogSetting: catalog ? model.trim() : undefined,
    mirror: typeof mirror === 'string' && mirror.trim() ? mirror.trim() : process.env[MIRROR_ENV] || undefined,
    proxy: typeof proxy === 'string' && proxy.trim() ? proxy.trim() : undefined,
    preprocessing: PREPROCESS_MODES.includes(preprocessing as PreprocessMode)
      ? (preprocessing as PreprocessMode)
      : 'auto',
    resize: RESIZE_MODES.includes(resize as ResizeMode) ? (resize as ResizeMode) : 'stretch',
    labelsPath: resolveSettingPath(config.get<unknown>('labels'), scope),
    inputSize: readInputSize(config.get<unknown>('inputSize')),
    customNormalization: readCustomNormalization(config.get<unknown>('mean'), config.get<unknown>('std')),
    memoryBudgetBytes: readMemoryBudget(config.get<unknown>('memoryBudget')) * 1024 * 1024,
  };
}

function readCustomNormalization(mean: unknown, std: unknown): CustomNormalization | undefined {
  const triple = (v: unknown): v is [number, number, number] =>
    Array.isArray(v) && v.length === 3 && v.every((n) => typeof n === 'number' && Number.isFinite(n));
  if (!triple(mean) || !triple(std) || std.some((s) => s === 0)) return undefined;
  return { mean, std };
}

function readMemoryBudget(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 256 ? value : DEFAULT_MEMORY_BUDGET_MB;
}

function readInputSize(value: unknown): { height: number; width: number } {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 8 && n <= 4096;
  if (Array.isArray(value) && value.length === 2 && ok(value[0]) && ok(value[1]))
    return { height: value[0], width: value[1] };
  return { height: 224, width: 224 };
}

/** A path from a setting: absolute as it is, relative to the (image's) workspace folder, `~` to home. */
export function resolveSettingPath(value: unknown, scope?: vscode.Uri): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const raw = value.trim().replace(/^~(?=$|[\\/])/, os.homedir());
  if (path.isAbsolute(raw)) return raw;
  const folder = (scope && vscode.workspace.getWorkspaceFolder(scope)) ?? vscode.workspace.workspaceFolders?.[0];
  return folder ? path.join(folder.uri.fsPath, raw) : path.resolve(raw);
}

/**
 * Where "Select Model…" writes `featureMaps.model`: the workspace when one is open, else the user
 * settings. In Restricted Mode the workspace's value would be ignored, so the user's own settings
 * take the choice (and the user is told). `model` is a file path, a catalogue value
 * (`catalog:vgg16`) or undefined (bundled).
 */
export async function saveModelSetting(model: string | undefined): Promise<void> {
  const folder = vscode.workspace.isTrusted ? vscode.workspace.workspaceFolders?.[0] : undefined;
  let value = model ?? '';
  const modelPath = model && !isCatalogSetting(model) ? model : undefined;
  if (modelPath && folder) {
    const relative = path.relative(folder.uri.fsPath, modelPath);
    if (!relative.startsWith('..') && !path.isAbsolute(relative)) value = relative.split(path.sep).join('/');
  }
  const target = folder ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  await vscode.workspace.getConfiguration(SECTION).update('model', value, target);
  if (!vscode.workspace.isTrusted && vscode.workspace.workspaceFolders?.length) {
    void vscode.window.showInformationMessage(
      `Restricted Mode ignores this folder's ${SECTION}.model, so the model is saved in your user settings.`,
    );
  }
}

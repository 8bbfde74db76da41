import * as vscode from 'vscode';
import { COLORMAPS, NORMALIZATIONS, type Colormap, type Normalization, type ViewSettings } from './shared/protocol';

export const SECTION = 'featureMaps';

export const DEFAULT_SETTINGS: ViewSettings = {
  layers: [],
  channels: 16,
  colormap: 'viridis',
  normalization: 'channel',
};

export const MAX_CHANNELS = 512;

/** The typed `featureMaps.*` settings; bad values fall back to the defaults. */
export function readSettings(scope?: vscode.Uri): ViewSettings {
  const config = vscode.workspace.getConfiguration(SECTION, scope);
  const layers = config.get<unknown>('layers');
  const channels = config.get<unknown>('channels');
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

/** Fires when any `featureMaps.*` setting changes. */
export function onDidChangeSettings(listener: () => void): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration(SECTION)) listener();
  });
}

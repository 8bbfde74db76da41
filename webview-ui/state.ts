/** The panel's model: what the host told us plus the user's UI choices. */
import type { LayerInfo, ShownResult, ViewSettings } from '../src/shared/protocol';
import { firstLayerToShow } from '../src/shared/selection';
import { isVisible } from './layerTree';
import type { ErrorInfo } from './status';
import { loadState, saveState } from './vscodeApi';

export type Phase = 'loading' | 'error' | 'ready';

/** Used until the host's `settings` arrives (it should come first, but never trust order). */
export const DEFAULT_SETTINGS: ViewSettings = {
  layers: [],
  channels: 32,
  colormap: 'viridis',
  normalization: 'channel',
};

export interface AppState {
  phase: Phase;
  settings: ViewSettings;
  loading?: { fileName: string; message: string };
  error?: ErrorInfo;
  result?: ShownResult;
  selectedLayer?: string;
  showAllLayers: boolean;
  collapsedGroups: Set<string>;
}

export function initialState(): AppState {
  const saved = loadState();
  return {
    phase: 'loading',
    settings: DEFAULT_SETTINGS,
    selectedLayer: typeof saved.selectedLayer === 'string' ? saved.selectedLayer : undefined,
    showAllLayers: saved.showAllLayers === true,
    collapsedGroups: new Set(
      Array.isArray(saved.collapsedGroups)
        ? saved.collapsedGroups.filter((g): g is string => typeof g === 'string')
        : [],
    ),
  };
}

export function persist(state: AppState): void {
  saveState({
    selectedLayer: state.selectedLayer,
    showAllLayers: state.showAllLayers,
    collapsedGroups: [...state.collapsedGroups],
  });
}

/** Whether the tree lists unmatched layers: the user's toggle, or forced when nothing matched. */
export function effectiveShowAll(state: AppState): boolean {
  const layers = state.result?.layers ?? [];
  return state.showAllLayers || !layers.some((l) => l.matched);
}

export function findLayer(state: AppState, name: string | undefined): LayerInfo | undefined {
  return name === undefined ? undefined : state.result?.layers.find((l) => l.name === name);
}

/** Keep `preferred` if it is in the result, drawable and listed; else the one a new panel shows. */
export function chooseSelection(state: AppState, preferred: string | undefined): string | undefined {
  const showAll = effectiveShowAll(state);
  const keep = findLayer(state, preferred);
  if (keep && keep.spatial && isVisible(keep, showAll)) return keep.name;
  return firstLayerToShow(state.result?.layers ?? []);
}

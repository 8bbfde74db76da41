/** The panel's model: what the host told us plus the user's UI choices. */
import {
  CHANNEL_SORTS,
  isMapChoice,
  type ChannelSort,
  type LayerInfo,
  type ShownResult,
  type ViewSettings,
} from '../src/shared/protocol';
import { INITIAL_LAYER_VIEW, type LayerViewState } from './layerView';
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
  /** Sort, hidden constant channels, page and zoom of the layer's views. */
  layerView: LayerViewState;
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
    layerView: readLayerView(saved.layerView),
  };
}

/** The saved layer view, each field checked (a state from an older version may lack or garble some). */
function readLayerView(saved: unknown): LayerViewState {
  if (typeof saved !== 'object' || saved === null) return INITIAL_LAYER_VIEW;
  const v = saved as Record<string, unknown>;
  const index = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0;
  return {
    sort: (CHANNEL_SORTS as readonly unknown[]).includes(v.sort) ? (v.sort as ChannelSort) : 'index',
    hideConstant: v.hideConstant === true,
    overlay: v.overlay === true,
    opacity: typeof v.opacity === 'number' && v.opacity >= 0 && v.opacity <= 1 ? v.opacity : INITIAL_LAYER_VIEW.opacity,
    page: index(v.page) ? v.page : 0,
    zoom: isMapChoice(v.zoom) ? v.zoom : undefined,
    channel: index(v.channel) ? v.channel : undefined,
    layer: typeof v.layer === 'string' ? v.layer : undefined,
  };
}

export function persist(state: AppState): void {
  saveState({
    selectedLayer: state.selectedLayer,
    showAllLayers: state.showAllLayers,
    collapsedGroups: [...state.collapsedGroups],
    layerView: state.layerView,
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

/**
 * Feature Maps webview entry: owns the app state, dispatches host messages and pulls layer
 * data on demand (PanelHostApi.layerData), keeping a small LRU of replies.
 */
import type {
  LayerData,
  LayerInfo,
  PanelActionId,
  PanelHostApi,
  ToWebview,
  ViewSettings,
} from '../src/shared/protocol';
import { RpcClient, RpcTimeoutError, isRpcMessage } from '../src/shared/rpc';
import { ChannelGrid } from './channelGrid';
import { h } from './dom';
import { channelCount } from './format';
import { Header } from './header';
import { LayerCache } from './layerCache';
import { LayerTree } from './layerTree';
import { chooseSelection, effectiveShowAll, findLayer, initialState, persist, type AppState } from './state';
import { errorBanner, errorView, loadingBanner, loadingView } from './status';
import { onDprChange, onThemeChange } from './theme';
import { isLayerData, isToWebview } from './validate';
import { hostChannel, post, saveState } from './vscodeApi';

/**
 * A reply slower than this is reported in the grid with a Retry button. The host's own watchdog
 * bounds the engine's work well within it (a pass gets 30 s plus 1 s per 25 MB), so this only
 * catches a host that never answers.
 */
const REQUEST_TIMEOUT_MS = 300_000;

const state: AppState = initialState();
const cache = new LayerCache(8);
const host = new RpcClient<PanelHostApi>(hostChannel);
/** The layer the grid waits for. */
let pending: { resultKey: string; layer: string; count: number } | undefined;

const retry = (): void => post({ type: 'retry' });
const openSettings = (): void => post({ type: 'openSettings' });
const runAction = (id: PanelActionId): void => post({ type: 'action', id });

// ---- skeleton -------------------------------------------------------------------------------
const app = document.getElementById('app') ?? document.body.appendChild(h('div', { id: 'app' }));
const statusArea = h('div', { class: 'status-area' });
const bannerArea = h('div', { class: 'banner-area' });
const selectModel = (): void => post({ type: 'selectModel' });
const header = new Header(openSettings, selectModel);
const tree = new LayerTree({
  onSelect: (layer) => select(layer),
  onToggleGroup: (group, collapsed) => {
    if (collapsed) state.collapsedGroups.add(group);
    else state.collapsedGroups.delete(group);
    tree.setCollapsed(group, collapsed);
    persist(state);
  },
  onShowAll: (showAll) => {
    state.showAllLayers = showAll;
    const next = chooseSelection(state, state.selectedLayer);
    renderTree();
    if (next !== state.selectedLayer) select(next);
    persist(state);
  },
});
const grid = new ChannelGrid();
const resultView = h(
  'div',
  { class: 'result-view', hidden: true },
  header.element,
  h('div', { class: 'result-body' }, tree.element, grid.element),
);
app.replaceChildren(bannerArea, statusArea, resultView);
statusArea.append(loadingView('', 'Starting…'));
document.body.dataset.state = 'loading';

// ---- rendering ------------------------------------------------------------------------------
function renderStatus(): void {
  document.body.dataset.state = state.phase;
  const hasResult = state.result !== undefined;
  resultView.hidden = !hasResult;
  resultView.classList.toggle('stale', hasResult && state.phase === 'loading');
  statusArea.replaceChildren();
  bannerArea.replaceChildren();
  if (state.phase === 'loading' && state.loading) {
    const { fileName, message } = state.loading;
    (hasResult ? bannerArea : statusArea).append(
      hasResult ? loadingBanner(fileName, message) : loadingView(fileName, message),
    );
  } else if (state.phase === 'error' && state.error) {
    if (hasResult) {
      bannerArea.append(
        errorBanner(
          state.error,
          retry,
          () => {
            state.phase = 'ready';
            state.error = undefined;
            renderStatus();
          },
          runAction,
        ),
      );
    } else {
      statusArea.append(errorView(state.error, retry, openSettings, selectModel, runAction));
    }
  }
}

function renderTree(): void {
  if (!state.result) return;
  tree.render({
    layers: state.result.layers,
    selected: state.selectedLayer,
    showAll: effectiveShowAll(state),
    collapsed: state.collapsedGroups,
  });
}

/** Selects a layer (or nothing), tells the host, remembers it and shows its channels. */
function select(layer: string | undefined, notify = false): void {
  const info = findLayer(state, layer);
  if (layer !== undefined && (!info || !info.spatial)) return;
  const changed = layer !== state.selectedLayer;
  state.selectedLayer = layer;
  // Reveal the selection if it sits in a collapsed group.
  const group = info?.group;
  if (group !== undefined && state.collapsedGroups.delete(group)) tree.setCollapsed(group, false);
  tree.setSelected(layer);
  if (layer !== undefined && (changed || notify)) post({ type: 'layerSelected', layer });
  persist(state);
  showSelectedLayer();
}

function requestedCount(layer: LayerInfo): number {
  return Math.max(1, Math.min(state.settings.channels, channelCount(layer)));
}

function showSelectedLayer(): void {
  const result = state.result;
  const layer = findLayer(state, state.selectedLayer);
  if (!result) return;
  if (!layer) {
    grid.showEmpty(
      result.layers.some((l) => l.spatial)
        ? 'Select a layer to see its feature maps.'
        : 'No layer of this model has spatial feature maps.',
    );
    return;
  }
  const count = requestedCount(layer);
  const cached = cache.get(result.resultKey, layer.name, count);
  if (cached) {
    cancelPending();
    grid.showData(layer, cached, state.settings);
    return;
  }
  if (pending && pending.resultKey === result.resultKey && pending.layer === layer.name && pending.count === count)
    return;
  const request = { resultKey: result.resultKey, layer: layer.name, count };
  pending = request;
  grid.showPlaceholders(layer, count, state.settings);
  host
    .call('layerData', [request.resultKey, request.layer, count], { timeoutMs: REQUEST_TIMEOUT_MS })
    .then((data) => {
      if (!isLayerData(data)) throw new Error(`A malformed reply for layer ${layer.name}.`);
      applyLayerData(request, data);
    })
    .catch((error: unknown) => {
      if (pending !== request) return;
      pending = undefined;
      const message =
        error instanceof RpcTimeoutError
          ? `No reply for layer ${layer.name} after ${REQUEST_TIMEOUT_MS / 1000} s.`
          : error instanceof Error
            ? error.message
            : String(error);
      grid.showError(layer, message, showSelectedLayer);
    });
}

function cancelPending(): void {
  pending = undefined;
}

// ---- messages -------------------------------------------------------------------------------
function applySettings(next: ViewSettings): void {
  const prev = state.settings;
  state.settings = next;
  const layer = findLayer(state, state.selectedLayer);
  if (!state.result || !layer) return;
  if (next.channels !== prev.channels) showSelectedLayer();
  else if (next.colormap !== prev.colormap || next.normalization !== prev.normalization) grid.redraw(layer, next);
}

function applyResult(msg: Extract<ToWebview, { type: 'result' }>): void {
  const result = msg.result;
  if (state.result?.resultKey !== result.resultKey) {
    cache.clear();
    cancelPending();
  }
  state.result = result;
  state.phase = 'ready';
  state.loading = undefined;
  state.error = undefined;
  const selection = chooseSelection(state, state.selectedLayer);
  state.selectedLayer = selection;
  // The first grid came with the result (when the host chose the same layer): no request for it.
  const first = result.firstGrid;
  if (first && first.layer === selection && isLayerData(first)) cache.put(result.resultKey, first, first.count);
  header.render(result);
  renderTree();
  renderStatus();
  select(selection, true);
  // Once this frame is painted, the host sends what waits for the first grid (see protocol.ts).
  requestAnimationFrame(() => setTimeout(() => post({ type: 'resultShown', resultKey: result.resultKey })));
}

function applyLayerData(request: { resultKey: string; count: number }, data: LayerData): void {
  if (!state.result || request.resultKey !== state.result.resultKey) return; // reply for an older result
  const isCurrent = pending === request;
  cache.put(request.resultKey, data, request.count);
  if (!isCurrent) return; // stale: the user moved on, but the data is cached for when they return
  pending = undefined;
  const layer = findLayer(state, data.layer);
  if (layer && layer.name === state.selectedLayer) grid.showData(layer, data, state.settings);
}

function handle(msg: ToWebview): void {
  switch (msg.type) {
    case 'settings':
      applySettings(msg.settings);
      break;
    case 'identity':
      saveState({ imagePath: msg.identity.imagePath });
      break;
    case 'loading':
      // A different file: the old maps no longer describe what is being computed.
      if (state.result && state.result.input.fileName !== msg.fileName) {
        state.result = undefined;
        cache.clear();
        cancelPending();
      }
      state.phase = 'loading';
      state.loading = { fileName: msg.fileName, message: msg.message };
      renderStatus();
      break;
    case 'error':
      state.phase = 'error';
      state.loading = undefined;
      state.error = { fileName: msg.fileName, message: msg.message, detail: msg.detail, actions: msg.actions };
      renderStatus();
      break;
    case 'result':
      applyResult(msg);
      break;
    case 'inputPixels':
      header.showPixels(msg.pixels);
      break;
    case 'predictions':
      if (state.result?.resultKey !== msg.resultKey) break;
      state.result = { ...state.result, predictions: msg.predictions };
      header.showPredictions(msg.resultKey, msg.predictions);
      break;
    default: {
      const unreachable: never = msg;
      console.warn('Feature Maps: unhandled message', unreachable);
    }
  }
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  if (isRpcMessage(event.data)) return; // a reply to a call (see `host`)
  if (!isToWebview(event.data)) {
    console.warn('Feature Maps: ignored malformed message', event.data);
    return;
  }
  handle(event.data);
});

onThemeChange(() => grid.refreshChrome());
onDprChange(() => {
  grid.refreshChrome();
  if (state.result) header.render(state.result);
});

post({ type: 'ready' });

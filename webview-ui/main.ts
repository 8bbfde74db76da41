/**
 * Feature Maps webview entry: owns the app state (the result on show, the selected layer, the
 * settings), dispatches host messages, and hands the selected layer to the LayerView (grid and
 * zoom), which gets its data from the result's LayerSource.
 */
import type { LayerInfo, PanelActionId, PanelHostApi, ToWebview, ViewSettings } from '../src/shared/protocol';
import { RpcClient, isRpcMessage } from '../src/shared/rpc';
import { h } from './dom';
import { Header } from './header';
import { LayerSource } from './layerSource';
import { LayerTree } from './layerTree';
import { LayerView } from './layerView';
import { chooseSelection, effectiveShowAll, findLayer, initialState, persist, type AppState } from './state';
import { errorBanner, errorView, loadingBanner, loadingView } from './status';
import { onDprChange, onThemeChange } from './theme';
import { isLayerData, isToWebview } from './validate';
import { hostChannel, post, saveState } from './vscodeApi';

const state: AppState = initialState();
const host = new RpcClient<PanelHostApi>(hostChannel);

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
const layerView = new LayerView(
  state.layerView,
  state.settings,
  (next) => {
    state.layerView = next;
    persist(state);
  },
  (view) => post({ type: 'view', view }),
  () => post({ type: 'export' }),
);
const resultView = h(
  'div',
  { class: 'result-view', hidden: true },
  header.element,
  h('div', { class: 'result-body' }, tree.element, layerView.element),
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

function showSelectedLayer(): void {
  const result = state.result;
  if (!result) return;
  const layer: LayerInfo | undefined = findLayer(state, state.selectedLayer);
  layerView.show(
    layer,
    result.layers.some((l) => l.spatial)
      ? 'Select a layer to see its feature maps.'
      : 'No layer of this model has spatial feature maps.',
  );
}

// ---- messages -------------------------------------------------------------------------------
function applySettings(next: ViewSettings): void {
  state.settings = next;
  layerView.applySettings(next);
}

function applyResult(msg: Extract<ToWebview, { type: 'result' }>): void {
  const result = msg.result;
  // The first grid came with the result (when the host chose the same layer): no request for it.
  const first = result.firstGrid && isLayerData(result.firstGrid) ? result.firstGrid : undefined;
  if (state.result?.resultKey !== result.resultKey) layerView.setSource(new LayerSource(host, result.resultKey, first));
  state.result = result;
  state.phase = 'ready';
  state.loading = undefined;
  state.error = undefined;
  const selection = chooseSelection(state, state.selectedLayer);
  state.selectedLayer = selection;
  header.render(result);
  renderTree();
  renderStatus();
  select(selection, true);
  // Once this frame is painted, the host sends what waits for the first grid (see protocol.ts).
  requestAnimationFrame(() => setTimeout(() => post({ type: 'resultShown', resultKey: result.resultKey })));
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
      if (state.result && state.result.input.fileName !== msg.fileName) state.result = undefined;
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
      if (msg.pixels.resultKey === state.result?.resultKey) {
        layerView.setImage(msg.pixels.rgba, msg.pixels.width, msg.pixels.height);
      }
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

onThemeChange(() => layerView.refreshChrome());
onDprChange(() => {
  layerView.refreshChrome();
  if (state.result) header.render(state.result);
});

post({ type: 'ready' });

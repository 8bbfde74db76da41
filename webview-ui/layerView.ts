/**
 * The views of one layer of one result: the grid (a page of its channels, in the order the user
 * chose) and the zoomed channel. It owns what the user chose for them (LayerViewState: order,
 * hidden constant channels, page, zoomed channel) and hands each component what it draws; the
 * data comes from a LayerSource. The app (main.ts) owns the result and which layer is selected;
 * a second pane (a comparison) would be a second LayerView on its own source.
 */
import { SORT_LABELS, channelOrder, statValue } from '../src/shared/channelOrder';
import type {
  ChannelSort,
  ChannelStats,
  LayerInfo,
  LayerViewInfo,
  MapChoice,
  ViewSettings,
} from '../src/shared/protocol';
import { ChannelGrid } from './channelGrid';
import { ChannelZoom } from './channelZoom';
import { h } from './dom';
import { channelCount, formatValue } from './format';
import { GridToolbar } from './gridToolbar';
import type { LayerSource } from './layerSource';
import { imageCanvas, type Overlay } from './overlay';

/** How opaque the maps are over the image, until the user moves the slider. */
const OVERLAY_OPACITY = 0.6;

/** What the user chose for the layer's views; kept across a window reload. */
export interface LayerViewState {
  sort: ChannelSort;
  hideConstant: boolean;
  /** The maps drawn over the image, at `opacity` (0–1). */
  overlay: boolean;
  opacity: number;
  /** The page of the grid, for `layer`. */
  page: number;
  /** The zoomed channel (or the mean or max over channels), of `layer`. */
  zoom?: MapChoice;
  /** The channel last zoomed, to go back to from the mean or max map. */
  channel?: number;
  /** The layer `page` and `zoom` are of (another layer starts on its first page, unzoomed). */
  layer?: string;
}

export const INITIAL_LAYER_VIEW: LayerViewState = {
  sort: 'index',
  hideConstant: false,
  overlay: false,
  opacity: OVERLAY_OPACITY,
  page: 0,
};

/** What a tile says of its channel under each sort. */
const STAT_NAMES: Record<ChannelSort, string> = { index: '', mean: 'mean', max: 'max', std: 'std', active: 'active' };

export class LayerView {
  readonly element: HTMLElement;
  private readonly toolbar: GridToolbar;
  private readonly grid: ChannelGrid;
  private readonly zoom: ChannelZoom;
  private source: LayerSource | undefined;
  private layer: LayerInfo | undefined;
  private settings: ViewSettings;
  /** The channels in the grid's order, of those not hidden (once known for the layer shown). */
  private order: number[] = [];
  private layerRange: { min: number; max: number } | undefined;
  /** The image as the model saw it, once it arrived: what overlays are drawn over. */
  private image: HTMLCanvasElement | undefined;
  /** The channels on the grid's page now. */
  private pageChannels: number[] = [];
  /** Bumped by every render: a reply for an older one is dropped. */
  private generation = 0;
  private zoomGeneration = 0;

  constructor(
    private state: LayerViewState,
    settings: ViewSettings,
    private readonly onStateChange: (state: LayerViewState) => void,
    /** What is on show changed (layer, page, zoom, overlay): what Export saves. */
    private readonly onViewChange: (view: LayerViewInfo) => void,
    onExport: () => void,
  ) {
    this.settings = settings;
    this.toolbar = new GridToolbar({
      sort: (sort) => this.update({ sort, page: 0 }),
      hideConstant: (hideConstant) => this.update({ hideConstant, page: 0 }),
      page: (page) => this.update({ page }),
      overlay: (overlay) => this.setOverlay({ overlay }),
      opacity: (opacity) => this.setOverlay({ opacity }),
      layerMap: (map) => void this.openZoom(map),
      export: onExport,
    });
    this.grid = new ChannelGrid(this.toolbar.element);
    this.grid.onOpen = (channel) => void this.openZoom(channel);
    this.zoom = new ChannelZoom({
      step: (delta) => this.step(delta),
      close: () => this.closeZoom(),
      choose: (map) => void this.openZoom(map === 'channel' ? (this.state.channel ?? this.order[0] ?? 0) : map),
    });
    this.element = h('div', { class: 'layer-view' }, this.grid.element, this.zoom.element);
    this.grid.element.addEventListener('keydown', (e) => this.onGridKey(e));
  }

  /** A new result: its layers come from `source`. */
  setSource(source: LayerSource): void {
    this.source = source;
    this.image = undefined;
  }

  /** The image as the model saw it (it follows the first grid): overlays are drawn over it. */
  setImage(rgba: Uint8ClampedArray, width: number, height: number): void {
    this.image = imageCanvas(rgba, width, height);
    if (this.state.overlay) this.applyOverlay();
  }

  private overlayNow(): Overlay | undefined {
    return this.state.overlay && this.image ? { image: this.image, opacity: this.state.opacity } : undefined;
  }

  private setOverlay(patch: Pick<Partial<LayerViewState>, 'overlay' | 'opacity'>): void {
    this.state = { ...this.state, ...patch };
    this.onStateChange(this.state);
    this.updateToolbar();
    this.applyOverlay();
    this.tellView();
  }

  /** Redraws the grid and the zoomed map with the overlay as it is now (no request). */
  private applyOverlay(): void {
    this.grid.setOverlay(this.overlayNow(), this.layer, this.settings);
    if (this.state.zoom !== undefined) void this.openZoom(this.state.zoom, false);
  }

  private toolbarState: { page: number; pages: number; range: string } = { page: 0, pages: 1, range: '' };

  private updateToolbar(): void {
    const { sort, hideConstant, overlay, opacity } = this.state;
    this.toolbar.update({ sort, hideConstant, overlay, opacity, ...this.toolbarState });
  }

  private tellView(): void {
    if (!this.layer) return;
    this.onViewChange({
      layer: this.layer.name,
      channels: this.pageChannels,
      sort: this.state.sort,
      ...(typeof this.state.zoom === 'number' ? { channel: this.state.zoom } : {}),
      ...(this.state.overlay ? { overlay: this.state.opacity } : {}),
    });
  }

  /** Shows `layer` (the selected one), or a message when there is none to draw. */
  show(layer: LayerInfo | undefined, emptyMessage = ''): void {
    if (!layer) {
      this.layer = undefined;
      this.generation++;
      this.zoom.hide();
      this.grid.element.hidden = false;
      this.grid.showEmpty(emptyMessage);
      return;
    }
    if (this.state.layer !== layer.name) {
      this.state = { ...this.state, layer: layer.name, page: 0, zoom: undefined, channel: undefined };
      this.onStateChange(this.state);
    }
    this.layer = layer;
    void this.render();
  }

  applySettings(next: ViewSettings): void {
    const prev = this.settings;
    this.settings = next;
    if (!this.layer) return;
    if (next.channels !== prev.channels) {
      this.update({ page: 0 });
    } else if (next.colormap !== prev.colormap || next.normalization !== prev.normalization) {
      this.grid.redraw(this.layer, next);
      if (this.state.zoom !== undefined) void this.openZoom(this.state.zoom, false);
    }
  }

  refreshChrome(): void {
    this.grid.refreshChrome();
  }

  private update(patch: Partial<LayerViewState>): void {
    this.state = { ...this.state, ...patch };
    this.onStateChange(this.state);
    void this.render();
  }

  private perPage(): number {
    return Math.max(1, Math.min(this.settings.channels, this.layer ? channelCount(this.layer) : 1));
  }

  private async render(): Promise<void> {
    const generation = ++this.generation;
    const { source, layer } = this;
    if (!source || !layer) return;
    const { sort, hideConstant } = this.state;
    const total = channelCount(layer);
    try {
      let stats: ChannelStats | undefined;
      if (sort !== 'index' || hideConstant) {
        stats = await settledNow(source.channelStats(layer.name), () =>
          this.grid.showPlaceholders(
            layer,
            range(this.perPage()).map(() => undefined),
            this.settings,
            'ranking channels…',
          ),
        );
        if (generation !== this.generation) return;
      }
      this.order = channelOrder(total, sort, hideConstant, stats);
      const perPage = this.perPage();
      const pages = Math.max(1, Math.ceil(this.order.length / perPage));
      const page = Math.min(Math.max(0, this.state.page), pages - 1);
      if (page !== this.state.page) {
        this.state = { ...this.state, page };
        this.onStateChange(this.state);
      }
      const channels = this.order.slice(page * perPage, (page + 1) * perPage);
      const first = page * perPage + 1;
      const shownOf = `${this.order.length}${hideConstant && this.order.length < total ? ` (${total - this.order.length} constant hidden)` : ''}`;
      const rangeText = channels.length ? `${first}–${first + channels.length - 1} of ${shownOf}` : `0 of ${shownOf}`;
      this.toolbarState = { page, pages, range: rangeText };
      this.updateToolbar();
      this.pageChannels = channels;
      this.tellView();
      const zoomed = this.state.zoom;
      this.grid.element.hidden = zoomed !== undefined;
      if (zoomed !== undefined) void this.openZoom(zoomed, false);
      if (channels.length === 0) {
        this.grid.showEmpty('Every channel of this layer is constant: clear “Hide constant” to see them.');
        return;
      }
      const shown = `channels ${rangeText}${sort === 'index' ? '' : `, by ${SORT_LABELS[sort]}`}`;
      // The plain first page is what the result's first grid is: asked the same way, it is not asked again.
      const plain = sort === 'index' && !hideConstant && page === 0;
      const data = await settledNow(
        plain ? source.layerData(layer.name, channels.length) : source.layerData(layer.name, channels.length, channels),
        () => this.grid.showPlaceholders(layer, channels, this.settings, shown),
      );
      if (generation !== this.generation) return;
      this.layerRange = { min: data.layerMin, max: data.layerMax };
      this.grid.setOverlay(this.overlayNow(), undefined, this.settings);
      this.grid.showData(layer, data, this.settings, {
        shown,
        stat: stats && sort !== 'index' ? (c) => statText(stats, sort, c) : undefined,
      });
    } catch (error) {
      if (generation !== this.generation) return;
      this.grid.element.hidden = false;
      this.zoom.hide();
      this.grid.showError(layer, error instanceof Error ? error.message : String(error), () => void this.render());
    }
  }

  private onGridKey(e: KeyboardEvent): void {
    const pages = Math.max(1, Math.ceil(this.order.length / this.perPage()));
    const to =
      e.key === 'PageDown'
        ? this.state.page + 1
        : e.key === 'PageUp'
          ? this.state.page - 1
          : e.key === 'Home' && e.target !== this.grid.element
            ? 0
            : e.key === 'End' && e.target !== this.grid.element
              ? pages - 1
              : undefined;
    if (to === undefined) return;
    e.preventDefault();
    const page = Math.min(Math.max(0, to), pages - 1);
    if (page !== this.state.page) this.update({ page });
  }

  /**
   * Zooms into `channel` (or the mean or max over channels): its exact values, large (`focus`:
   * the keyboard goes to the zoomed view).
   */
  private async openZoom(channel: MapChoice, focus = true): Promise<void> {
    const { source, layer } = this;
    if (!source || !layer) return;
    const generation = ++this.zoomGeneration;
    if (this.state.zoom !== channel) {
      this.state = { ...this.state, zoom: channel, ...(typeof channel === 'number' ? { channel } : {}) };
      this.onStateChange(this.state);
      this.tellView();
    }
    this.grid.element.hidden = true;
    const position = this.position(channel);
    this.zoom.showLoading(layer, channel, position);
    if (focus) this.zoom.focus();
    try {
      const values = await source.channelValues(layer.name, channel);
      if (generation !== this.zoomGeneration || this.state.zoom !== channel) return;
      this.zoom.show(layer, values, this.settings, position, this.layerRange, this.overlayNow());
    } catch (error) {
      if (generation !== this.zoomGeneration) return;
      this.closeZoom();
      this.grid.showError(layer, error instanceof Error ? error.message : String(error), () => void this.render());
    }
  }

  /** "3 of 512, by max": where the zoomed channel is in the grid's order. */
  private position(channel: MapChoice): string {
    if (typeof channel !== 'number') return `${this.order.length ? channelCount(this.layer!) : 0} channels`;
    const at = this.order.indexOf(channel);
    const by = this.state.sort === 'index' ? '' : `, by ${SORT_LABELS[this.state.sort]}`;
    return at >= 0 ? `${at + 1} of ${this.order.length}${by}` : `not in the grid's channels${by}`;
  }

  /** ←/→ in the zoomed view: the previous or next channel in the grid's order. */
  private step(delta: -1 | 1): void {
    const current = this.state.zoom;
    if (typeof current !== 'number' || this.order.length === 0) return;
    const at = this.order.indexOf(current);
    const next = this.order[Math.min(this.order.length - 1, Math.max(0, at < 0 ? 0 : at + delta))];
    if (next !== current) void this.openZoom(next);
  }

  /** Esc: back to the grid, on the page of the channel that was zoomed, its tile focused. */
  private closeZoom(): void {
    const zoomed = this.state.zoom;
    const channel = typeof zoomed === 'number' ? zoomed : undefined;
    this.zoomGeneration++;
    this.zoom.hide();
    this.grid.element.hidden = false;
    const at = channel === undefined ? -1 : this.order.indexOf(channel);
    const page = at >= 0 ? Math.floor(at / this.perPage()) : this.state.page;
    this.state = { ...this.state, zoom: undefined, page };
    this.onStateChange(this.state);
    this.tellView();
    void this.render().then(() => channel !== undefined && this.grid.focusChannel(channel));
  }
}

/** A tile's statistic, e.g. "max 3.2", "active 42%". */
function statText(stats: ChannelStats, sort: ChannelSort, channel: number): string | undefined {
  const value = statValue(stats, sort, channel);
  if (value === undefined) return undefined;
  return sort === 'active'
    ? `${STAT_NAMES.active} ${Math.round(value * 100)}%`
    : `${STAT_NAMES[sort]} ${formatValue(value)}`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * `promise`'s value; `whileWaiting` runs first unless it is settled already (a cached reply is
 * then drawn without placeholders flashing first).
 */
async function settledNow<T>(promise: Promise<T>, whileWaiting: () => void): Promise<T> {
  const pending = Symbol('pending');
  const now = await Promise.race([promise, Promise.resolve(pending)]);
  if (now !== pending) return now as T;
  whileWaiting();
  return promise;
}

/**
 * The views of one layer of one result: the grid (a page of its channels, in the order the user
 * chose) and the zoomed channel. It owns what the user chose for them (LayerViewState: order,
 * hidden constant channels, page, zoomed channel) and hands each component what it draws; the
 * data comes from a LayerSource. The app (main.ts) owns the result and which layer is selected;
 * a second pane (a comparison) would be a second LayerView on its own source.
 */
import { SORT_LABELS, channelOrder, statValue } from '../src/shared/channelOrder';
import type { ChannelSort, ChannelStats, LayerInfo, ViewSettings } from '../src/shared/protocol';
import { ChannelGrid } from './channelGrid';
import { ChannelZoom } from './channelZoom';
import { h } from './dom';
import { channelCount, formatValue } from './format';
import { GridToolbar } from './gridToolbar';
import type { LayerSource } from './layerSource';

/** What the user chose for the layer's views; kept across a window reload. */
export interface LayerViewState {
  sort: ChannelSort;
  hideConstant: boolean;
  /** The page of the grid, for `layer`. */
  page: number;
  /** The zoomed channel, of `layer`. */
  zoom?: number;
  /** The layer `page` and `zoom` are of (another layer starts on its first page, unzoomed). */
  layer?: string;
}

export const INITIAL_LAYER_VIEW: LayerViewState = { sort: 'index', hideConstant: false, page: 0 };

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
  /** Bumped by every render: a reply for an older one is dropped. */
  private generation = 0;
  private zoomGeneration = 0;

  constructor(
    private state: LayerViewState,
    settings: ViewSettings,
    private readonly onStateChange: (state: LayerViewState) => void,
  ) {
    this.settings = settings;
    this.toolbar = new GridToolbar({
      sort: (sort) => this.update({ sort, page: 0 }),
      hideConstant: (hideConstant) => this.update({ hideConstant, page: 0 }),
      page: (page) => this.update({ page }),
    });
    this.grid = new ChannelGrid(this.toolbar.element);
    this.grid.onOpen = (channel) => void this.openZoom(channel);
    this.zoom = new ChannelZoom({ step: (delta) => this.step(delta), close: () => this.closeZoom() });
    this.element = h('div', { class: 'layer-view' }, this.grid.element, this.zoom.element);
    this.grid.element.addEventListener('keydown', (e) => this.onGridKey(e));
  }

  /** A new result: its layers come from `source`. */
  setSource(source: LayerSource): void {
    this.source = source;
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
      this.state = { ...this.state, layer: layer.name, page: 0, zoom: undefined };
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
      this.toolbar.update({ sort, hideConstant, page, pages, range: rangeText });
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

  /** Zooms into `channel`: its exact values, large (`focus`: the keyboard goes to the zoomed view). */
  private async openZoom(channel: number, focus = true): Promise<void> {
    const { source, layer } = this;
    if (!source || !layer) return;
    const generation = ++this.zoomGeneration;
    if (this.state.zoom !== channel) {
      this.state = { ...this.state, zoom: channel };
      this.onStateChange(this.state);
    }
    this.grid.element.hidden = true;
    const position = this.position(channel);
    this.zoom.showLoading(layer, channel, position);
    if (focus) this.zoom.focus();
    try {
      const values = await source.channelValues(layer.name, channel);
      if (generation !== this.zoomGeneration || this.state.zoom !== channel) return;
      this.zoom.show(layer, values, this.settings, position, this.layerRange);
    } catch (error) {
      if (generation !== this.zoomGeneration) return;
      this.closeZoom();
      this.grid.showError(layer, error instanceof Error ? error.message : String(error), () => void this.render());
    }
  }

  /** "3 of 512, by max": where the zoomed channel is in the grid's order. */
  private position(channel: number): string {
    const at = this.order.indexOf(channel);
    const by = this.state.sort === 'index' ? '' : `, by ${SORT_LABELS[this.state.sort]}`;
    return at >= 0 ? `${at + 1} of ${this.order.length}${by}` : `not in the grid's channels${by}`;
  }

  /** ←/→ in the zoomed view: the previous or next channel in the grid's order. */
  private step(delta: -1 | 1): void {
    const current = this.state.zoom;
    if (current === undefined || this.order.length === 0) return;
    const at = this.order.indexOf(current);
    const next = this.order[Math.min(this.order.length - 1, Math.max(0, at < 0 ? 0 : at + delta))];
    if (next !== current) void this.openZoom(next);
  }

  /** Esc: back to the grid, on the page of the channel that was zoomed, its tile focused. */
  private closeZoom(): void {
    const channel = this.state.zoom;
    this.zoomGeneration++;
    this.zoom.hide();
    this.grid.element.hidden = false;
    const at = channel === undefined ? -1 : this.order.indexOf(channel);
    const page = at >= 0 ? Math.floor(at / this.perPage()) : this.state.page;
    this.state = { ...this.state, zoom: undefined, page };
    this.onStateChange(this.state);
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

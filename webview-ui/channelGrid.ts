/**
 * The channel grid for the selected layer: a heading, a colorbar legend and one canvas tile per
 * channel. Each canvas's backing store is the map's native H×W; CSS scales it, pixelated when
 * upscaled so a 7×7 map shows crisp blocks at any DPI, smoothed when downscaled.
 */
import type { LayerData, LayerInfo, ViewSettings } from '../src/shared/protocol';
import { dequantize } from '../src/shared/protocol';
import { applyColormap, channelIndexMap, colormapLut, isConstantChannel } from '../src/shared/colormaps';
import { h } from './dom';
import { formatShape, formatValue } from './format';
import { Colorbar } from './colorbar';
import { paintMap, type Overlay } from './overlay';

const SQUARE_UP_TO = 9;

/** What the layer's view says of the tiles it hands the grid. */
export interface TileNotes {
  /** The heading's channel count, e.g. "channels 17–32 of 144, by max". */
  shown: string;
  /** A tile's statistic under the current sort, e.g. "max 3.2" (none in index order). */
  stat?(channel: number): string | undefined;
}

export class ChannelGrid {
  readonly element: HTMLElement;
  /** A tile was clicked, or Enter pressed on it: the view zooms into its channel. */
  onOpen: (channel: number) => void = () => undefined;
  private readonly title: HTMLElement;
  private readonly meta: HTMLElement;
  private readonly readout: HTMLElement;
  private readonly status: HTMLElement;
  private readonly grid: HTMLElement;
  private readonly colorbar = new Colorbar();
  private data: LayerData | undefined;
  private notes: TileNotes | undefined;
  private overlay: Overlay | undefined;
  private canvases: HTMLCanvasElement[] = [];
  private readonly resize: ResizeObserver;

  constructor(toolbar?: HTMLElement) {
    this.title = h('h2', { class: 'grid-title' });
    this.meta = h('div', { class: 'grid-meta' });
    this.readout = h('div', { class: 'grid-readout', 'aria-live': 'off' });
    this.status = h('div', { class: 'grid-status', hidden: true });
    this.grid = h('div', { class: 'channel-grid', role: 'list', 'aria-label': 'Channels' });
    this.element = h(
      'section',
      { class: 'grid-panel' },
      h(
        'div',
        { class: 'grid-heading' },
        h('div', { class: 'grid-heading-text' }, this.title, this.meta),
        h('div', { class: 'grid-heading-side' }, this.colorbar.element, this.readout),
      ),
      toolbar ?? null,
      this.status,
      this.grid,
    );
    this.grid.addEventListener('mousemove', (e) => this.onHover(e));
    this.grid.addEventListener('click', (e) => {
      const tile = e.target instanceof Element ? e.target.closest<HTMLElement>('.tile[data-channel]') : null;
      if (tile) this.onOpen(Number(tile.dataset.channel));
    });
    this.grid.addEventListener('keydown', (e) => {
      const tile = e.target instanceof HTMLElement && e.target.matches('.tile[data-channel]') ? e.target : null;
      if (tile && (e.key === 'Enter' || e.key === ' ')) {
        e.preventDefault();
        this.onOpen(Number(tile.dataset.channel));
      }
    });
    this.grid.addEventListener('mouseleave', () => (this.readout.textContent = ''));
    // Only the smoothing choice depends on the on-screen tile size; pixels never need redrawing.
    this.resize = new ResizeObserver(() => this.updateScaling());
    this.resize.observe(this.grid);
  }

  /** Nothing drawable selected (no spatial layers, or nothing chosen yet). */
  showEmpty(message: string): void {
    this.data = undefined;
    this.canvases = [];
    this.title.textContent = '';
    this.meta.textContent = '';
    this.colorbar.element.hidden = true;
    this.setStatus(undefined);
    this.grid.replaceChildren(h('div', { class: 'grid-empty' }, message));
  }

  /** Tile-shaped placeholders while the host answers, so the grid never flashes blank. */
  showPlaceholders(
    layer: LayerInfo,
    channels: readonly (number | undefined)[],
    settings: ViewSettings,
    shown: string,
  ): void {
    const count = channels.length;
    this.data = undefined;
    this.canvases = [];
    this.setHeading(layer, shown, settings, undefined);
    this.setStatus(undefined);
    const [height, width] = layer.shape;
    const tiles: HTMLElement[] = [];
    for (let c = 0; c < count; c++) {
      const box = h('div', { class: 'tile-placeholder' });
      box.style.aspectRatio = `${width} / ${height}`;
      tiles.push(
        h(
          'div',
          { class: 'tile placeholder', role: 'listitem', 'aria-busy': 'true' },
          box,
          h('span', { class: 'tile-label' }, channels[c] === undefined ? '' : `#${channels[c]}`),
        ),
      );
    }
    this.setTiles(tiles);
    this.grid.setAttribute('aria-busy', 'true');
  }

  showError(layer: LayerInfo, message: string, onRetry: () => void): void {
    this.data = undefined;
    this.canvases = [];
    this.title.textContent = layer.name;
    this.meta.textContent = `${layer.op} · ${formatShape(layer.shape)}`;
    this.colorbar.element.hidden = true;
    const retry = h('button', { class: 'button secondary', type: 'button' }, 'Retry');
    retry.addEventListener('click', onRetry);
    this.grid.replaceChildren();
    this.grid.removeAttribute('aria-busy');
    this.setStatus(
      h('div', { class: 'grid-error', role: 'alert' }, h('span', { class: 'error-message' }, message), retry),
    );
  }

  showData(layer: LayerInfo, data: LayerData, settings: ViewSettings, notes: TileNotes): void {
    this.data = data;
    this.notes = notes;
    this.setStatus(undefined);
    this.grid.removeAttribute('aria-busy');
    const tiles: HTMLElement[] = [];
    this.canvases = [];
    for (let k = 0; k < data.count; k++) {
      const c = data.channels[k];
      const canvas = h('canvas', { class: 'tile-canvas', width: data.width, height: data.height, 'data-index': k });
      canvas.style.aspectRatio = `${data.width} / ${data.height}`;
      const constant = isConstantChannel(data.min[k], data.max[k]);
      const stat = notes.stat?.(c);
      const label = h(
        'span',
        { class: 'tile-label' },
        `#${c}`,
        stat ? h('span', { class: 'tile-stat' }, stat) : null,
        constant ? h('span', { class: 'tile-flag' }, 'constant') : null,
      );
      const tooltip = constant
        ? `Channel ${c}: constant ${formatValue(data.min[k])}`
        : `Channel ${c}\nmin ${formatValue(data.min[k])}\nmax ${formatValue(data.max[k])}\nClick or Enter: zoom`;
      tiles.push(
        h(
          'div',
          {
            class: `tile${constant ? ' constant' : ''}`,
            role: 'listitem',
            tabindex: 0,
            title: tooltip,
            'data-channel': c,
            'aria-label': `Channel ${c}${stat ? `, ${stat}` : ''}${constant ? ', constant' : ''}`,
          },
          canvas,
          label,
        ),
      );
      this.canvases.push(canvas);
    }
    this.setTiles(tiles);
    this.redraw(layer, settings);
    // Measuring the tiles needs a layout: at the next frame, with the one the browser makes anyway.
    requestAnimationFrame(() => this.updateScaling());
  }

  /** Moves keyboard focus to the tile of `channel`, when it is on this page. */
  focusChannel(channel: number): void {
    this.grid.querySelector<HTMLElement>(`.tile[data-channel="${channel}"]`)?.focus();
  }

  /**
   * Up to 9 channels make a square (the Keras recipe's 3×3); more fill the width. CSS reads
   * the column count from --fm-columns.
   */
  private setTiles(tiles: HTMLElement[]): void {
    const square = tiles.length > 0 && tiles.length <= SQUARE_UP_TO;
    this.grid.classList.toggle('square', square);
    if (square) this.grid.style.setProperty('--fm-columns', String(Math.ceil(Math.sqrt(tiles.length))));
    else this.grid.style.removeProperty('--fm-columns');
    this.grid.replaceChildren(...tiles);
  }

  /** Repaints from the data already held: colormap / normalisation changes need no request. */
  redraw(layer: LayerInfo, settings: ViewSettings): void {
    const data = this.data;
    if (!data) return;
    this.setHeading(layer, this.notes?.shown ?? '', settings, data);
    const lut = colormapLut(settings.colormap);
    const plane = data.width * data.height;
    const range = settings.normalization === 'layer' ? { min: data.layerMin, max: data.layerMax } : undefined;
    const image = new ImageData(data.width, data.height);
    this.grid.classList.toggle('overlaid', this.overlay !== undefined);
    for (let k = 0; k < this.canvases.length; k++) {
      const q = data.values.subarray(k * plane, (k + 1) * plane);
      applyColormap(q, lut, image.data, channelIndexMap(data.min[k], data.max[k], range));
      paintMap(this.canvases[k], image, this.overlay);
    }
  }

  /** Draws every tile over the image (or not, with undefined), at the overlay's opacity. */
  setOverlay(overlay: Overlay | undefined, layer: LayerInfo | undefined, settings: ViewSettings): void {
    this.overlay = overlay;
    if (layer) this.redraw(layer, settings);
  }

  /** Theme or DPR changed: only the colorbar draws themed/DPR-sized pixels. */
  refreshChrome(): void {
    this.colorbar.draw();
  }

  private setHeading(layer: LayerInfo, shown: string, settings: ViewSettings, data: LayerData | undefined): void {
    this.title.textContent = layer.name;
    this.title.title = layer.name;
    const norm = settings.normalization === 'layer' ? 'per-layer normalisation' : 'per-channel normalisation';
    this.meta.replaceChildren(
      h('span', { class: 'op' }, layer.op),
      h('span', { class: 'sep' }, '·'),
      h('span', { class: 'num' }, formatShape(layer.shape)),
      h('span', { class: 'sep' }, '·'),
      h('span', { class: 'channels-shown' }, shown),
      h('span', { class: 'sep' }, '·'),
      h('span', { class: 'normalization' }, norm),
    );
    this.colorbar.element.hidden = false;
    this.colorbar.set(
      settings.colormap,
      settings.normalization === 'layer' && data ? { min: data.layerMin, max: data.layerMax } : undefined,
    );
  }

  private setStatus(content: HTMLElement | undefined): void {
    this.status.hidden = !content;
    this.status.replaceChildren(...(content ? [content] : []));
  }

  /** Pixelated (nearest) when a tile is at least as large as its map on screen, smooth otherwise. */
  private updateScaling(): void {
    const first = this.canvases[0];
    if (!first || !this.data) return;
    const onScreen = first.getBoundingClientRect().width * window.devicePixelRatio;
    this.grid.classList.toggle('downscaled', onScreen > 0 && onScreen < this.data.width);
  }

  /** Hover read-out: the dequantised activation under the pointer. */
  private onHover(e: MouseEvent): void {
    const canvas = e.target instanceof HTMLCanvasElement ? e.target : null;
    const data = this.data;
    if (!canvas || !data) {
      this.readout.textContent = '';
      return;
    }
    const k = Number(canvas.dataset.index);
    const c = data.channels[k];
    const rect = canvas.getBoundingClientRect();
    const x = Math.min(data.width - 1, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * data.width)));
    const y = Math.min(data.height - 1, Math.max(0, Math.floor(((e.clientY - rect.top) / rect.height) * data.height)));
    const q = data.values[k * data.width * data.height + y * data.width + x];
    const value = dequantize(q, data.min[k], data.max[k]);
    this.readout.textContent = `#${c} (${x}, ${y}) = ${formatValue(value)}`;
  }
}

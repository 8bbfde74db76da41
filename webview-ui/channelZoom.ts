/**
 * One channel, large: its exact values (ChannelValues, float32) drawn pixel by pixel, the value
 * under the pointer, a histogram and min / mean / max. ←/→ step through the channels in the
 * grid's order, Esc returns to the grid; the buttons do the same for the mouse.
 */
import type { ChannelValues, LayerInfo, MapChoice, ViewSettings } from '../src/shared/protocol';
import { applyColormap, channelIndexMap, colormapLut } from '../src/shared/colormaps';
import { h } from './dom';
import { formatShape, formatValue } from './format';
import { paintMap, type Overlay } from './overlay';

const HISTOGRAM_BINS = 48;

export interface ZoomActions {
  step(delta: -1 | 1): void;
  close(): void;
  /** The map to show: the channel last zoomed, or the mean or max over every channel. */
  choose(map: 'channel' | 'mean' | 'max'): void;
}

/** The map on show, as the heading names it. */
export function mapTitle(layer: string, map: MapChoice): string {
  return typeof map === 'number' ? `${layer} #${map}` : `${layer} · ${map} over channels`;
}

export class ChannelZoom {
  readonly element: HTMLElement;
  private readonly title: HTMLElement;
  private readonly position: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly readout: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly histogram: HTMLCanvasElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private readonly choice: HTMLSelectElement;
  private values: ChannelValues | undefined;

  constructor(actions: ZoomActions) {
    this.title = h('h2', { class: 'zoom-title' });
    this.position = h('span', { class: 'zoom-position' });
    this.prev = h(
      'button',
      { class: 'button secondary zoom-prev', type: 'button', title: 'Previous channel (←)' },
      '‹',
    );
    this.next = h('button', { class: 'button secondary zoom-next', type: 'button', title: 'Next channel (→)' }, '›');
    const back = h(
      'button',
      { class: 'button secondary zoom-back', type: 'button', title: 'Back to the grid (Esc)' },
      'Grid',
    );
    this.prev.addEventListener('click', () => actions.step(-1));
    this.next.addEventListener('click', () => actions.step(1));
    back.addEventListener('click', () => actions.close());
    this.choice = h(
      'select',
      { class: 'zoom-map', 'aria-label': 'Map to show' },
      h('option', { value: 'channel' }, 'Channel'),
      h('option', { value: 'mean' }, 'Mean over channels'),
      h('option', { value: 'max' }, 'Max over channels'),
    );
    this.choice.addEventListener('change', () => actions.choose(this.choice.value as 'channel' | 'mean' | 'max'));
    this.canvas = h('canvas', { class: 'zoom-canvas', 'aria-label': 'The channel, enlarged' });
    this.readout = h('div', { class: 'zoom-readout', 'aria-live': 'off' }, ' ');
    this.summary = h('div', { class: 'zoom-summary' });
    this.histogram = h('canvas', { class: 'zoom-histogram', width: 240, height: 64, 'aria-label': 'Histogram' });
    this.element = h(
      'section',
      { class: 'channel-zoom', hidden: true, tabindex: 0, 'aria-label': 'Zoomed channel' },
      h(
        'div',
        { class: 'zoom-heading' },
        this.title,
        this.position,
        h('div', { class: 'zoom-buttons' }, this.choice, this.prev, this.next, back),
      ),
      h(
        'div',
        { class: 'zoom-body' },
        h('div', { class: 'zoom-stage' }, this.canvas),
        h('div', { class: 'zoom-side' }, this.readout, this.summary, this.histogram),
      ),
    );
    this.element.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
        e.preventDefault();
        actions.step(e.key === 'ArrowLeft' ? -1 : 1);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        actions.close();
      }
    });
    this.canvas.addEventListener('mousemove', (e) => this.onHover(e));
    this.canvas.addEventListener('mouseleave', () => (this.readout.textContent = ' '));
  }

  get isOpen(): boolean {
    return !this.element.hidden;
  }

  /** Shows `map` of `layer` while its values are on their way. */
  showLoading(layer: LayerInfo, map: MapChoice, position: string): void {
    this.element.hidden = false;
    this.values = undefined;
    this.setHeading(layer, map, position);
    this.summary.textContent = 'Loading…';
  }

  show(
    layer: LayerInfo,
    values: ChannelValues,
    settings: ViewSettings,
    position: string,
    layerRange: Range | undefined,
    overlay: Overlay | undefined,
  ): void {
    this.element.hidden = false;
    this.values = values;
    this.setHeading(layer, values.channel, position);
    this.title.title = `${layer.op} · ${formatShape(layer.shape)}`;
    const { min, max, mean } = summarize(values.values);
    this.summary.replaceChildren(
      h('span', { class: 'zoom-min' }, `min ${formatValue(min)}`),
      h('span', { class: 'zoom-mean' }, `mean ${formatValue(mean)}`),
      h('span', { class: 'zoom-max' }, `max ${formatValue(max)}`),
    );
    // A channel follows the normalisation setting; the mean and max maps span their own range.
    const perLayer = settings.normalization === 'layer' && typeof values.channel === 'number';
    this.draw(values, settings, perLayer ? layerRange : { min, max }, overlay);
    this.drawHistogram(values.values, min, max);
  }

  focus(): void {
    this.element.focus();
  }

  hide(): void {
    this.element.hidden = true;
    this.values = undefined;
  }

  private setHeading(layer: LayerInfo, map: MapChoice, position: string): void {
    this.title.textContent = mapTitle(layer.name, map);
    this.position.textContent = position;
    this.choice.value = typeof map === 'number' ? 'channel' : map;
    this.prev.disabled = typeof map !== 'number';
    this.next.disabled = typeof map !== 'number';
  }

  private draw(
    values: ChannelValues,
    settings: ViewSettings,
    range: Range | undefined,
    overlay: Overlay | undefined,
  ): void {
    const { width, height } = values;
    this.canvas.style.aspectRatio = `${width} / ${height}`;
    this.canvas.classList.toggle('overlaid', overlay !== undefined);
    const { min, max } = range ?? summarize(values.values);
    // The grid's colour mapping, from exact values: 8 bits over the range, as the tiles have them.
    const scale = max > min ? 255 / (max - min) : 0;
    const q = new Uint8Array(values.values.length);
    for (let i = 0; i < q.length; i++) q[i] = Math.max(0, Math.min(255, Math.round((values.values[i] - min) * scale)));
    const image = new ImageData(width, height);
    applyColormap(q, colormapLut(settings.colormap), image.data, channelIndexMap(min, max, undefined));
    paintMap(this.canvas, image, overlay);
  }

  private drawHistogram(data: Float32Array, min: number, max: number): void {
    const counts = new Uint32Array(HISTOGRAM_BINS);
    const span = max - min;
    for (const v of data)
      counts[span > 0 ? Math.min(HISTOGRAM_BINS - 1, Math.floor(((v - min) / span) * HISTOGRAM_BINS)) : 0]++;
    const ctx = this.histogram.getContext('2d');
    if (!ctx) return;
    const { width, height } = this.histogram;
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = getComputedStyle(document.body).getPropertyValue('--vscode-charts-blue').trim() || '#3794ff';
    const top = Math.max(...counts);
    const bar = width / HISTOGRAM_BINS;
    counts.forEach((n, i) => {
      const barHeight = top > 0 ? Math.max(n > 0 ? 1 : 0, (n / top) * height) : 0;
      ctx.fillRect(i * bar, height - barHeight, Math.max(1, bar - 1), barHeight);
    });
    this.histogram.title = `${data.length} values from ${formatValue(min)} to ${formatValue(max)}, ${HISTOGRAM_BINS} bins`;
  }

  /** The exact value under the pointer. */
  private onHover(e: MouseEvent): void {
    const values = this.values;
    if (!values) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = Math.min(
      values.width - 1,
      Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * values.width)),
    );
    const y = Math.min(
      values.height - 1,
      Math.max(0, Math.floor(((e.clientY - rect.top) / rect.height) * values.height)),
    );
    this.readout.textContent = `(${x}, ${y}) = ${formatValue(values.values[y * values.width + x])}`;
    this.readout.dataset.x = String(x);
    this.readout.dataset.y = String(y);
  }
}

interface Range {
  min: number;
  max: number;
}

function summarize(data: Float32Array): { min: number; max: number; mean: number } {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of data) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, max, mean: sum / data.length };
}

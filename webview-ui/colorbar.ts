/**
 * Legend for the current colormap: a gradient with a themed outline (so it is drawn at
 * device pixels and redrawn on theme/DPR change), plus min/max labels under per-layer
 * normalisation or "per-channel" otherwise.
 */
import type { Colormap } from '../src/shared/protocol';
import { colormapLut } from '../src/shared/colormaps';
import { h } from './dom';
import { formatValue } from './format';
import { cssVar } from './theme';

const CSS_WIDTH = 120;
const CSS_HEIGHT = 10;

export class Colorbar {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly low: HTMLElement;
  private readonly high: HTMLElement;
  private colormap: Colormap = 'viridis';

  constructor() {
    this.canvas = h('canvas', { class: 'colorbar-canvas', 'aria-hidden': 'true' });
    this.canvas.style.width = `${CSS_WIDTH}px`;
    this.canvas.style.height = `${CSS_HEIGHT}px`;
    this.low = h('span', { class: 'colorbar-label low' });
    this.high = h('span', { class: 'colorbar-label high' });
    this.element = h('div', { class: 'colorbar', hidden: true }, this.low, this.canvas, this.high);
  }

  set(colormap: Colormap, range: { min: number; max: number } | undefined): void {
    this.colormap = colormap;
    if (range) {
      this.low.textContent = formatValue(range.min);
      this.high.textContent = formatValue(range.max);
      this.element.title = `${colormap}, shared range ${formatValue(range.min)} … ${formatValue(range.max)}`;
    } else {
      this.low.textContent = 'per-channel min';
      this.high.textContent = 'max';
      this.element.title = `${colormap}, each channel scaled to its own min … max`;
    }
    this.draw();
  }

  draw(): void {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(CSS_WIDTH * dpr);
    const hgt = Math.round(CSS_HEIGHT * dpr);
    if (this.canvas.width !== w) this.canvas.width = w;
    if (this.canvas.height !== hgt) this.canvas.height = hgt;
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    const lut = colormapLut(this.colormap);
    const image = ctx.createImageData(w, hgt);
    for (let x = 0; x < w; x++) {
      const i = Math.round((x / Math.max(1, w - 1)) * 255) * 3;
      for (let y = 0; y < hgt; y++) {
        const o = (y * w + x) * 4;
        image.data[o] = lut[i];
        image.data[o + 1] = lut[i + 1];
        image.data[o + 2] = lut[i + 2];
        image.data[o + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
    // Outline in the theme's border colour so the low end stays visible on a matching background.
    ctx.strokeStyle = cssVar('--vscode-widget-border', cssVar('--vscode-descriptionForeground', '#888'));
    ctx.lineWidth = Math.max(1, Math.round(dpr));
    ctx.strokeRect(ctx.lineWidth / 2, ctx.lineWidth / 2, w - ctx.lineWidth, hgt - ctx.lineWidth);
  }
}

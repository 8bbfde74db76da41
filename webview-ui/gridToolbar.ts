/**
 * The grid's controls: the order of the channels (index, or a statistic), whether constant
 * channels are hidden, and the pager through every channel of the layer (`featureMaps.channels`
 * at a time). Keys on the grid: PageUp / PageDown, Home / End.
 */
import { SORT_LABELS } from '../src/shared/channelOrder';
import { CHANNEL_SORTS, type ChannelSort } from '../src/shared/protocol';
import { h } from './dom';

export interface ToolbarState {
  sort: ChannelSort;
  hideConstant: boolean;
  overlay: boolean;
  /** 0–1 */
  opacity: number;
  page: number;
  pages: number;
  /** "1–16 of 512" (of those not hidden). */
  range: string;
}

export interface ToolbarActions {
  sort(sort: ChannelSort): void;
  hideConstant(hide: boolean): void;
  page(page: number): void;
  overlay(on: boolean): void;
  opacity(opacity: number): void;
  /** Opens the zoomed view on the mean or max over every channel. */
  layerMap(map: 'mean' | 'max'): void;
  export(): void;
}

export class GridToolbar {
  readonly element: HTMLElement;
  private readonly sort: HTMLSelectElement;
  private readonly hide: HTMLInputElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private readonly range: HTMLElement;
  private readonly overlay: HTMLInputElement;
  private readonly opacity: HTMLInputElement;
  private state: ToolbarState | undefined;

  constructor(actions: ToolbarActions) {
    this.sort = h(
      'select',
      { class: 'sort-select', 'aria-label': 'Sort channels by' },
      ...CHANNEL_SORTS.map((sort) =>
        h('option', { value: sort }, sort === 'index' ? 'Channel index' : `${capitalize(SORT_LABELS[sort])} ↓`),
      ),
    );
    this.sort.addEventListener('change', () => actions.sort(this.sort.value as ChannelSort));
    this.hide = h('input', { type: 'checkbox', class: 'hide-constant-toggle' });
    this.hide.addEventListener('change', () => actions.hideConstant(this.hide.checked));
    this.prev = h(
      'button',
      { class: 'button secondary page-prev', type: 'button', title: 'Previous channels (Page Up)' },
      '‹',
    );
    this.next = h(
      'button',
      { class: 'button secondary page-next', type: 'button', title: 'Next channels (Page Down)' },
      '›',
    );
    this.range = h('span', { class: 'page-range', 'aria-live': 'polite' });
    this.prev.addEventListener('click', () => this.state && actions.page(this.state.page - 1));
    this.next.addEventListener('click', () => this.state && actions.page(this.state.page + 1));
    this.overlay = h('input', { type: 'checkbox', class: 'overlay-toggle' });
    this.overlay.addEventListener('change', () => actions.overlay(this.overlay.checked));
    this.opacity = h('input', {
      type: 'range',
      class: 'overlay-opacity',
      min: 0,
      max: 100,
      step: 5,
      'aria-label': 'Opacity of the maps over the image',
    });
    this.opacity.addEventListener('input', () => actions.opacity(Number(this.opacity.value) / 100));
    const button = (label: string, cls: string, title: string, run: () => void) => {
      const b = h('button', { class: `button secondary ${cls}`, type: 'button', title }, label);
      b.addEventListener('click', run);
      return b;
    };
    this.element = h(
      'div',
      { class: 'grid-toolbar', role: 'toolbar', 'aria-label': 'Channels' },
      h('label', { class: 'sort-label' }, 'Sort ', this.sort),
      h('label', { class: 'hide-constant' }, this.hide, ' Hide constant'),
      h(
        'label',
        { class: 'overlay-label', title: 'Draw the maps over the image as the model saw it' },
        this.overlay,
        ' Overlay',
      ),
      this.opacity,
      button('Mean', 'layer-mean', 'The mean over every channel, at each pixel', () => actions.layerMap('mean')),
      button('Max', 'layer-max', 'The max over every channel, at each pixel', () => actions.layerMap('max')),
      button('Export…', 'export-button', 'Save the grid, a channel, the layer (.npy) or its statistics (CSV)', () =>
        actions.export(),
      ),
      h('div', { class: 'pager' }, this.prev, this.range, this.next),
    );
  }

  update(state: ToolbarState): void {
    this.state = state;
    this.sort.value = state.sort;
    this.hide.checked = state.hideConstant;
    this.overlay.checked = state.overlay;
    this.opacity.value = String(Math.round(state.opacity * 100));
    this.opacity.hidden = !state.overlay;
    this.range.textContent = state.range;
    this.prev.disabled = state.page <= 0;
    this.next.disabled = state.page >= state.pages - 1;
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

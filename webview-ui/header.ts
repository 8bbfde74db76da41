/**
 * Header: the input exactly as the model saw it (after decode + resize), the file name,
 * sizes, decode notes, the model and the forward-pass time. The input's pixels come in a
 * message of their own, after the result (see protocol.ts): the text first, then the picture.
 */
import type { InputPixels, Prediction, ShownResult } from '../src/shared/protocol';
import { h } from './dom';
import { formatMs } from './format';

/** CSS box the preview fits in; must match `.input-preview` max size in panel.css. */
const PREVIEW_BOX = 96;

export class Header {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly info: HTMLElement;
  private readonly model: HTMLElement;
  private resultKey: string | undefined;
  private pixels: InputPixels | undefined;

  constructor(onOpenSettings: () => void, onSelectModel: () => void) {
    this.canvas = h('canvas', { class: 'input-preview', role: 'img' });
    this.info = h('div', { class: 'header-info' });
    const settings = h(
      'button',
      { class: 'button secondary icon-text', type: 'button', title: 'Open Feature Maps settings' },
      '⚙ Settings',
    );
    settings.addEventListener('click', onOpenSettings);
    const selectModel = h(
      'button',
      { class: 'button secondary icon-text select-model', type: 'button', title: 'Choose another model' },
      'Change Model…',
    );
    selectModel.addEventListener('click', onSelectModel);
    this.model = h('div', { class: 'header-model' });
    this.element = h(
      'header',
      { class: 'header' },
      this.canvas,
      this.info,
      h('div', { class: 'header-side' }, this.model, h('div', { class: 'header-buttons' }, selectModel, settings)),
    );
  }

  render(result: ShownResult): void {
    const { input, model } = result;
    this.resultKey = result.resultKey;
    // Sizing the canvas clears it: the input's pixels are drawn again if they came already.
    this.canvas.width = input.width;
    this.canvas.height = input.height;
    const scale = Math.min(PREVIEW_BOX / input.width, PREVIEW_BOX / input.height);
    this.canvas.style.width = `${Math.round(input.width * scale)}px`;
    this.canvas.style.height = `${Math.round(input.height * scale)}px`;
    // Nearest-neighbour only when enlarged: small inputs stay crisp, large ones are not aliased.
    this.canvas.classList.toggle('upscaled', scale * window.devicePixelRatio >= 1);
    this.canvas.setAttribute('aria-label', `${input.fileName} as the model sees it, ${input.width}×${input.height}`);
    this.drawPixels();

    const resized = input.originalWidth !== input.width || input.originalHeight !== input.height;
    this.info.replaceChildren(
      h('div', { class: 'file-name', title: input.fileName }, input.fileName),
      h(
        'div',
        { class: 'header-line' },
        h('span', { class: 'num' }, `${input.originalWidth}×${input.originalHeight}`),
        resized ? ' → ' : '',
        resized ? h('span', { class: 'num' }, `${input.width}×${input.height}`) : ' (no resize)',
        h('span', { class: 'muted' }, resized ? ' model input' : ''),
      ),
      ...input.notes.map((note) => h('div', { class: 'header-note' }, note)),
    );
    this.model.replaceChildren(
      h('div', { class: 'model-name', title: model.path ?? model.description }, model.name),
      ...(model.notice ? [h('div', { class: 'model-notice', role: 'note' }, model.notice)] : []),
      h('div', { class: 'model-description', title: model.description }, model.description),
      h('div', { class: 'model-preprocessing', title: 'featureMaps.preprocessing' }, `input: ${model.preprocessing}`),
      h(
        'div',
        {
          class: 'elapsed',
          title: result.partial
            ? 'The pass stopped at the layers shown; the others are computed when you stay on this image or open one.'
            : 'One pass computed every layer.',
        },
        result.elapsedMs > 0
          ? `forward pass ${formatMs(result.elapsedMs)}${result.partial ? ' (up to the layers shown)' : ''}`
          : 'activations from cache',
        model.backend ? ` · ${model.backend}` : '',
        model.device ? h('span', { class: 'device' }, ` · ${model.device.name}`) : '',
      ),
      ...(model.device?.note ? [h('div', { class: 'device-note', role: 'note' }, model.device.note)] : []),
    );
    this.showPredictions(result.resultKey, result.predictions ?? []);
  }

  /** The top-5 of the result on show (it may come after the result: see protocol.ts). */
  showPredictions(resultKey: string, predictions: readonly Prediction[]): void {
    if (resultKey !== this.resultKey) return;
    this.info.querySelector('.predictions')?.remove();
    if (predictions.length === 0) return;
    this.info.append(
      h(
        'ol',
        { class: 'predictions', 'aria-label': 'Top predictions' },
        ...predictions.map((p) =>
          h(
            'li',
            { class: 'prediction' },
            h('span', { class: 'label' }, p.label),
            h('span', { class: 'num' }, formatScore(p.score)),
          ),
        ),
      ),
    );
  }

  /** The input's pixels, for the result on show (those of an older result are dropped). */
  showPixels(pixels: InputPixels): void {
    if (pixels.resultKey !== this.resultKey) return;
    this.pixels = pixels;
    this.drawPixels();
  }

  private drawPixels(): void {
    const pixels = this.pixels;
    if (!pixels || pixels.resultKey !== this.resultKey) return;
    if (pixels.width !== this.canvas.width || pixels.height !== this.canvas.height) return;
    // Copy: ImageData needs a plain ArrayBuffer-backed array of exactly W×H×4.
    const image = new ImageData(new Uint8ClampedArray(pixels.rgba), pixels.width, pixels.height);
    this.canvas.getContext('2d')?.putImageData(image, 0, 0);
  }
}

/** A probability as a percentage; any other score (logits) as a plain number. */
function formatScore(score: number): string {
  return score >= 0 && score <= 1 ? `${(score * 100).toFixed(1)}%` : score.toFixed(2);
}

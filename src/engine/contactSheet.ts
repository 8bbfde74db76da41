// PNG pictures of feature maps, drawn with the panel's colormaps: a contact sheet (a labelled
// block of tiles per layer, like the classic Keras 3×3 plots), or one channel; either may be
// overlaid on the image as the model saw it. The CLI writes them; the panel exports them.
import sharp from 'sharp';
import { applyColormap, channelIndexMap, colormapLut } from '../shared/colormaps';
import type { Colormap, LayerData, Normalization } from '../shared/protocol';
import { UserFacingError } from './errors';

/** What a block's label says of its layer. */
export interface SheetLayer {
  name: string;
  op: string;
  shape: readonly number[];
}

export interface SheetOptions {
  /** Tiles per row. */
  columns: number;
  /** The longer side of a tile, in pixels. */
  tile: number;
  colormap: Colormap;
  normalization: Normalization;
  /**
   * The model's input (RGBA, H×W) to draw each map over, resized to it, at `opacity` (0–1):
   * where in the image a channel fires.
   */
  overlay?: { rgba: Uint8Array | Uint8ClampedArray; width: number; height: number; opacity: number };
}

const GAP = 4;
const MARGIN = 12;
const LABEL_HEIGHT = 22;
const BACKGROUND = { r: 30, g: 30, b: 30, alpha: 1 };
/** The most pixels a sheet may have (4 bytes each, and as much again for its tiles). */
const MAX_SHEET_PIXELS = 100e6;
/** The default opacity of a map drawn over the image. */
export const OVERLAY_OPACITY = 0.6;

/** One PNG: a labelled block of tiles per layer (`layers` describes them). */
export async function renderSheet(
  blocks: readonly LayerData[],
  layers: readonly SheetLayer[],
  options: SheetOptions,
): Promise<Buffer> {
  const { tile, columns } = options;
  const width = MARGIN * 2 + columns * tile + (columns - 1) * GAP;
  // Checked before anything is drawn: the labels' height is not known yet, so it is bounded.
  const rows = blocks.reduce((sum, block) => sum + Math.ceil(block.count / columns), 0);
  const count = blocks.reduce((sum, block) => sum + block.count, 0);
  const most = width * (MARGIN + blocks.length * (4 * LABEL_HEIGHT + MARGIN) + rows * (tile + GAP));
  if (most > MAX_SHEET_PIXELS)
    throw new UserFacingError(
      `A sheet of ${count} tiles of ${tile} px, ${columns} across, would have more than ${MAX_SHEET_PIXELS / 1e6} million pixels: draw smaller tiles or fewer channels.`,
    );
  // Every label and every tile at once: the labels on sharp's threads while this one draws.
  const labels = blocks.map((block) => textImage(blockLabel(block, layers), width - 2 * MARGIN));
  const tiles = await Promise.all(
    blocks.map((block) =>
      Promise.all(Array.from({ length: block.count }, (_, k) => channelImage(block, k, tile, options))),
    ),
  );
  const texts = await Promise.all(labels);
  // Each block: its label, then its rows of tiles.
  const tops: { label: number; tiles: number }[] = [];
  let y = MARGIN;
  blocks.forEach((block, b) => {
    const rows = Math.ceil(block.count / columns);
    const top = { label: y, tiles: y + Math.max(LABEL_HEIGHT, texts[b].height + 8) };
    tops.push(top);
    y = top.tiles + rows * tile + (rows - 1) * GAP + MARGIN;
  });
  // The tiles are opaque: copied into the sheet, which sharp then only labels and encodes.
  const sheet = new Canvas(width, y);
  tiles.forEach((images, b) =>
    images.forEach((image, k) =>
      sheet.draw(image, MARGIN + (k % columns) * (tile + GAP), tops[b].tiles + Math.floor(k / columns) * (tile + GAP)),
    ),
  );
  return sharp(sheet.rgba, { raw: { width, height: y, channels: 4 } })
    .composite(
      texts.map(({ data, width: w, height: h }, b) => ({
        input: data,
        raw: { width: w, height: h, channels: 4 },
        left: MARGIN,
        top: tops[b].label,
      })),
    )
    .removeAlpha()
    .png()
    .toBuffer();
}

/** One channel (the `k`-th of `block`) as a PNG whose longer side is `size` pixels. */
export async function renderChannel(block: LayerData, k: number, size: number, options: SheetOptions): Promise<Buffer> {
  const { data, width, height } = await channelImage(block, k, size, options);
  return sharp(data, { raw: { width, height, channels: 4 } })
    .png()
    .toBuffer();
}

/** A raw RGBA picture. */
interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** The sheet's pixels: the background, with opaque pictures copied in. */
class Canvas {
  readonly rgba: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgba = new Uint8Array(width * height * 4);
    const { r, g, b } = BACKGROUND;
    new Uint32Array(this.rgba.buffer).fill(new Uint32Array(Uint8Array.of(r, g, b, 255).buffer)[0]);
  }

  draw(image: RawImage, left: number, top: number): void {
    const row = image.width * 4;
    for (let y = 0; y < image.height; y++)
      this.rgba.set(image.data.subarray(y * row, (y + 1) * row), ((top + y) * this.width + left) * 4);
  }
}

function blockLabel(block: LayerData, layers: readonly SheetLayer[]): string {
  const info = layers.find((l) => l.name === block.layer);
  const first = block.channels.every((c, k) => c === k);
  const channels = first ? '' : ` · #${[...block.channels].join(' #')}`;
  return `${block.layer} · ${info?.op ?? ''} · ${info?.shape.join('×') ?? ''} · ${block.count}/${block.totalChannels} ch${channels}`;
}

/**
 * The `k`-th channel of `block` colormapped, scaled so that its longer side is `size` (pixel
 * blocks, nearest neighbour); over the input image (smoothly resized to it) when overlaid.
 */
async function channelImage(block: LayerData, k: number, size: number, options: SheetOptions): Promise<RawImage> {
  const pixels = block.height * block.width;
  const longer = Math.max(block.width, block.height);
  const width = Math.max(1, Math.round((size * block.width) / longer));
  const height = Math.max(1, Math.round((size * block.height) / longer));
  const range = options.normalization === 'layer' ? { min: block.layerMin, max: block.layerMax } : undefined;
  const rgba = new Uint8Array(pixels * 4);
  applyColormap(
    block.values.subarray(k * pixels, (k + 1) * pixels),
    colormapLut(options.colormap),
    rgba,
    channelIndexMap(block.min[k], block.max[k], range),
  );
  const overlay = options.overlay;
  if (!overlay) return scaleNearest({ data: rgba, width: block.width, height: block.height }, width, height);
  // The map, smoothly resized to the tile, made translucent, over the image resized to the tile.
  const alpha = Math.round(overlay.opacity * 255);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = alpha;
  const map = await sharp(rgba, { raw: { width: block.width, height: block.height, channels: 4 } })
    .resize(width, height, { kernel: 'cubic', fit: 'fill' })
    .png()
    .toBuffer();
  const image = Buffer.from(overlay.rgba.buffer, overlay.rgba.byteOffset, overlay.rgba.byteLength);
  const under = await sharp(image, { raw: { width: overlay.width, height: overlay.height, channels: 4 } })
    .resize(width, height, { fit: 'fill' })
    .png()
    .toBuffer();
  const data = await sharp(under)
    .composite([{ input: map, blend: 'over' }])
    .raw()
    .toBuffer();
  return { data, width, height };
}

/**
 * `image` scaled to `width` × `height` in pixel blocks: each pixel takes the source pixel under its
 * centre, as the panel's canvas draws a map without smoothing.
 */
function scaleNearest(image: RawImage, width: number, height: number): RawImage {
  const data = new Uint8Array(width * height * 4);
  const source = new Uint32Array(image.data.buffer, image.data.byteOffset, image.width * image.height);
  const target = new Uint32Array(data.buffer);
  const columns = Int32Array.from({ length: width }, (_, x) => Math.floor(((x + 0.5) * image.width) / width));
  for (let y = 0; y < height; y++) {
    const from = Math.floor(((y + 0.5) * image.height) / height) * image.width;
    for (let x = 0; x < width; x++) target[y * width + x] = source[from + columns[x]];
  }
  return { data, width, height };
}

/** A line of light text (raw RGBA); an empty image when no font can be rendered (the sheet still works). */
async function textImage(text: string, maxWidth: number): Promise<RawImage & { data: Buffer }> {
  const escaped = text.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c] ?? c);
  try {
    const { data, info } = await sharp({
      text: {
        text: `<span foreground="#e0e0e0">${escaped}</span>`,
        font: 'sans 13',
        dpi: 72,
        rgba: true,
        width: maxWidth,
      },
    })
      .ensureAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height };
  } catch {
    return { data: Buffer.alloc(4), width: 1, height: 1 };
  }
}

// PNG pictures of feature maps, drawn with the panel's colormaps: a contact sheet (a labelled
// block of tiles per layer, like the classic Keras 3×3 plots), or one channel; either may be
// overlaid on the image as the model saw it. The CLI writes them; the panel exports them.
import sharp from 'sharp';
import { applyColormap, channelIndexMap, colormapLut } from '../shared/colormaps';
import type { Colormap, LayerData, Normalization } from '../shared/protocol';

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
  const parts: sharp.OverlayOptions[] = [];
  let y = MARGIN;
  for (const block of blocks) {
    const info = layers.find((l) => l.name === block.layer);
    const first = block.channels.every((c, k) => c === k);
    const channels = first ? '' : ` · #${[...block.channels].join(' #')}`;
    const label = `${block.layer} · ${info?.op ?? ''} · ${info?.shape.join('×') ?? ''} · ${block.count}/${block.totalChannels} ch${channels}`;
    const text = await textImage(label, width - 2 * MARGIN);
    const textHeight = (await sharp(text).metadata()).height ?? 0;
    parts.push({ input: text, left: MARGIN, top: y });
    y += Math.max(LABEL_HEIGHT, textHeight + 8);
    const rows = Math.ceil(block.count / columns);
    // Every tile scaled at once on sharp's threads, and kept raw: the sheet is encoded once.
    const tiles = await Promise.all(
      Array.from({ length: block.count }, (_, k) => channelImage(block, k, tile, options)),
    );
    tiles.forEach(({ data, width: w, height: h }, k) =>
      parts.push({
        input: data,
        raw: { width: w, height: h, channels: 4 },
        left: MARGIN + (k % columns) * (tile + GAP),
        top: y + Math.floor(k / columns) * (tile + GAP),
      }),
    );
    y += rows * tile + (rows - 1) * GAP + MARGIN;
  }
  return sharp({ create: { width, height: y, channels: 4, background: BACKGROUND } })
    .composite(parts)
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

/**
 * The `k`-th channel of `block` colormapped, scaled so that its longer side is `size` (pixel
 * blocks, nearest neighbour); over the input image (smoothly resized to it) when overlaid.
 */
async function channelImage(
  block: LayerData,
  k: number,
  size: number,
  options: SheetOptions,
): Promise<{ data: Buffer; width: number; height: number }> {
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
  if (!overlay) {
    const data = await sharp(rgba, { raw: { width: block.width, height: block.height, channels: 4 } })
      .resize(width, height, { kernel: 'nearest' })
      .raw()
      .toBuffer();
    return { data, width, height };
  }
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

/** A line of light text; an empty image when no font can be rendered (the sheet still works). */
async function textImage(text: string, maxWidth: number): Promise<Buffer> {
  const escaped = text.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c] ?? c);
  try {
    return await sharp({
      text: {
        text: `<span foreground="#e0e0e0">${escaped}</span>`,
        font: 'sans 13',
        dpi: 72,
        rgba: true,
        width: maxWidth,
      },
    })
      .png()
      .toBuffer();
  } catch {
    return sharp({ create: { width: 1, height: 1, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .png()
      .toBuffer();
  }
}

/**
 * Drawing a map over the image as the model saw it: the image first, then the colormapped map
 * resized to it (smoothly) at the chosen opacity. Used by the grid's tiles and the zoomed view.
 */

/** The image a map is drawn over, and how opaque the map is (0–1). */
export interface Overlay {
  image: HTMLCanvasElement;
  opacity: number;
}

/** The model's input as a canvas, to draw maps over. */
export function imageCanvas(rgba: Uint8ClampedArray, width: number, height: number): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d')?.putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
  return canvas;
}

/**
 * Paints `map` (colormapped pixels, map-sized) into `target`: as it is, at the map's own size
 * (drawn pixel by pixel), or over `overlay`'s image, at the image's size.
 */
export function paintMap(target: HTMLCanvasElement, map: ImageData, overlay: Overlay | undefined): void {
  const width = overlay ? overlay.image.width : map.width;
  const height = overlay ? overlay.image.height : map.height;
  if (target.width !== width) target.width = width;
  if (target.height !== height) target.height = height;
  const ctx = target.getContext('2d');
  if (!ctx) return;
  if (!overlay) {
    ctx.putImageData(map, 0, 0);
    return;
  }
  const mapCanvas = document.createElement('canvas');
  mapCanvas.width = map.width;
  mapCanvas.height = map.height;
  mapCanvas.getContext('2d')?.putImageData(map, 0, 0);
  ctx.globalAlpha = 1;
  ctx.drawImage(overlay.image, 0, 0);
  ctx.globalAlpha = overlay.opacity;
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(mapCanvas, 0, 0, width, height);
  ctx.globalAlpha = 1;
}

import * as path from 'node:path';
import sharp from 'sharp';
import { decode as decodeBmp } from 'bmp-ts';
import { UserFacingError, errorText } from './errors';
import { formatBytes, readFileHead, readRegularFile } from './files';

// Images are read by libvips from their path (only the header before the pixel check), not
// into memory first; a file rewritten under the same name must not come from libvips' cache.
sharp.cache(false);

/** File extensions the extension offers "Show Feature Maps" for. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp', '.tif', '.tiff'];

/**
 * Refuse images above this many pixels before decoding them (a decompression
 * bomb can be a few kB on disk and gigabytes in memory). 10k × 10k.
 */
export const MAX_INPUT_PIXELS = 100_000_000;

/** The largest image file read (libvips reads it from disk, a BMP is read whole). */
export const MAX_IMAGE_FILE_BYTES = 2e9;

/** A BMP of MAX_INPUT_PIXELS at 32 bits per pixel, plus the largest header and palette. */
const MAX_BMP_FILE_BYTES = MAX_INPUT_PIXELS * 4 + 2048;

export type ResizeMode = 'stretch' | 'center-crop' | 'letterbox';

/** How pixels are sampled when resizing. Keras' `load_img` uses nearest by default. */
export type ResizeKernel = 'bilinear' | 'nearest';

export interface DecodeOptions {
  width: number;
  height: number;
  resize?: ResizeMode;
  kernel?: ResizeKernel;
}

export interface DecodedImage {
  fileName: string;
  originalWidth: number;
  originalHeight: number;
  width: number;
  height: number;
  /** width × height × 3, 8-bit sRGB, row-major (the model's view of the image). */
  rgb: Uint8Array;
  /** What decoding had to do to the file, in the user's words. */
  notes: string[];
}

/**
 * Decodes any supported image file into 8-bit RGB at the model's input size:
 * EXIF orientation applied, alpha dropped (as Keras' `load_img` does), grayscale
 * and 16-bit images converted, only the first frame of animations and multi-page files.
 */
export async function decodeImage(filePath: string, options: DecodeOptions): Promise<DecodedImage> {
  const fileName = path.basename(filePath);
  // A regular file (not a FIFO, a device such as /dev/zero, a folder), of a sane size; only its
  // first bytes are read here.
  const { head, file } = await readFileHead(filePath, BMP_HEADER_BYTES, {
    describe: fileName,
    maxBytes: MAX_IMAGE_FILE_BYTES,
  });
  if (file.size === 0) throw new UserFacingError(`${fileName} is empty (0 bytes).`);

  const notes: string[] = [];
  let source: sharp.Sharp;
  if (isBmp(head)) {
    // bmp-ts allocates the whole picture before it reads a pixel: check its header first.
    checkBmpHeader(head, file.size, fileName);
    const bytes = await readRegularFile(file.realPath, { describe: fileName, maxBytes: MAX_BMP_FILE_BYTES });
    try {
      source = bmpToSharp(bytes);
    } catch (error) {
      throw decodeFailure(fileName, error);
    }
  } else {
    source = sharp(file.realPath, { limitInputPixels: MAX_INPUT_PIXELS, pages: 1 });
  }

  let meta: sharp.Metadata;
  try {
    meta = await source.metadata();
  } catch (error) {
    throw decodeFailure(fileName, error);
  }
  if (!meta.width || !meta.height) throw new UserFacingError(`${fileName} has no pixels to show.`);
  if (meta.width * meta.height > MAX_INPUT_PIXELS) {
    throw new UserFacingError(
      `${fileName} is too large: ${meta.width}×${meta.height} pixels is more than the ${MAX_INPUT_PIXELS / 1e6} million this extension decodes.`,
    );
  }
  const rotated = (meta.orientation ?? 1) >= 5;
  const originalWidth = rotated ? meta.height : meta.width;
  const originalHeight = rotated ? meta.width : meta.height;

  if ((meta.pages ?? 1) > 1) notes.push(`first of ${meta.pages} frames`);
  if (meta.orientation && meta.orientation !== 1) notes.push('EXIF orientation applied');
  if (meta.hasAlpha) notes.push('alpha channel dropped');
  if (meta.channels !== undefined && meta.channels <= 2) notes.push('grayscale shown as RGB');
  if (meta.isPalette) notes.push('palette colours expanded');

  try {
    if (meta.depth && meta.depth !== 'uchar' && meta.depth !== 'char') {
      source = await highDepthTo8Bit(source, bitsOf(meta.depth), (meta.channels ?? 3) <= 2, notes);
    }
    const { data, info } = await source
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .resize(options.width, options.height, {
        fit: fitFor(options.resize ?? 'stretch'),
        kernel: options.kernel === 'nearest' ? 'nearest' : 'linear',
        background: { r: 0, g: 0, b: 0 },
      })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return {
      fileName,
      originalWidth,
      originalHeight,
      width: info.width,
      height: info.height,
      rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      notes,
    };
  } catch (error) {
    throw decodeFailure(fileName, error);
  }
}

/**
 * 16-bit (and float) images: scale by the image's own peak to 8 bits, so a
 * 12-bit scan or a 16-bit file holding 0–255 values is not shown near-black,
 * while a full-range 16-bit photo maps as usual (÷257).
 */
async function highDepthTo8Bit(
  source: sharp.Sharp,
  bits: number,
  gray: boolean,
  notes: string[],
): Promise<sharp.Sharp> {
  const { data, info } = await source
    .clone()
    .rotate()
    .removeAlpha()
    .toColourspace(gray ? 'grey16' : 'rgb16')
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  const values = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
  let peak = 0;
  for (const v of values) if (v > peak) peak = v;
  const scale = peak > 255 ? 255 / peak : 1;
  const bytes = Buffer.alloc(values.length);
  for (let i = 0; i < values.length; i++) bytes[i] = Math.round(values[i] * scale);
  notes.push(
    scale === 1
      ? `${bits}-bit file with values up to ${Math.round(peak)}: used as 8-bit`
      : `${bits}-bit values 0–${Math.round(peak)} scaled to 0–255`,
  );
  // Orientation is already applied above.
  return sharp(bytes, { raw: { width: info.width, height: info.height, channels: info.channels } });
}

function fitFor(mode: ResizeMode): keyof sharp.FitEnum {
  switch (mode) {
    case 'stretch':
      return 'fill';
    case 'center-crop':
      return 'cover';
    case 'letterbox':
      return 'contain';
  }
}

function bitsOf(depth: string): number {
  switch (depth) {
    case 'ushort':
    case 'short':
      return 16;
    case 'uint':
    case 'int':
    case 'float':
      return 32;
    case 'double':
      return 64;
    default:
      return 8;
  }
}

/** The BMP file header (14 bytes) and the fields of the info header read below. */
const BMP_HEADER_BYTES = 54;

function isBmp(bytes: Buffer): boolean {
  return bytes.length > 26 && bytes[0] === 0x42 && bytes[1] === 0x4d; // "BM"
}

/** Info header sizes bmp-ts reads (BITMAPINFOHEADER and its V2–V5 successors). */
const BMP_INFO_HEADERS = new Set([40, 52, 56, 108, 124]);

/**
 * Checks a BMP's header before bmp-ts decodes it (it allocates width × height × 4 bytes first):
 * the pixel count against MAX_INPUT_PIXELS, the bit depth and compression it can read, and, for
 * uncompressed pixels, that the file holds the rows the header promises.
 */
function checkBmpHeader(head: Buffer, fileSize: number, fileName: string): void {
  const damaged = (why: string) =>
    new UserFacingError(`${fileName} could not be decoded: the file looks damaged or incomplete.`, why);
  if (head.length < BMP_HEADER_BYTES)
    throw damaged(`a BMP header needs ${BMP_HEADER_BYTES} bytes; the file has ${head.length}`);
  const pixelOffset = head.readUInt32LE(10);
  const infoSize = head.readUInt32LE(14);
  if (!BMP_INFO_HEADERS.has(infoSize)) {
    throw new UserFacingError(
      `${fileName} is a BMP with a ${infoSize}-byte header, a variant this extension cannot read.`,
    );
  }
  const width = head.readInt32LE(18);
  const height = Math.abs(head.readInt32LE(22));
  const bitsPerPixel = head.readUInt16LE(28);
  const compression = head.readUInt32LE(30);
  if (width <= 0 || height === 0) throw new UserFacingError(`${fileName} has no pixels to show.`);
  if (width * height > MAX_INPUT_PIXELS) {
    throw new UserFacingError(
      `${fileName} is too large: ${width}×${height} pixels is more than the ${MAX_INPUT_PIXELS / 1e6} million this extension decodes.`,
    );
  }
  const readable =
    [1, 4, 8, 16, 24, 32].includes(bitsPerPixel) &&
    (compression === 0 ||
      (compression === 1 && bitsPerPixel === 8) ||
      (compression === 2 && bitsPerPixel === 4) ||
      ((compression === 3 || compression === 6) && (bitsPerPixel === 16 || bitsPerPixel === 32)));
  if (!readable) {
    throw new UserFacingError(
      `${fileName} is a BMP with ${bitsPerPixel} bits per pixel and compression ${compression}, a variant this extension cannot read.`,
    );
  }
  if (compression === 0 || compression === 3 || compression === 6) {
    const rowBytes = Math.ceil((width * bitsPerPixel) / 32) * 4;
    const needed = pixelOffset + rowBytes * height;
    if (needed > fileSize) {
      throw damaged(
        `its header promises ${width}×${height} pixels at ${bitsPerPixel} bits, ${formatBytes(needed)} with the headers; the file has ${formatBytes(fileSize)}`,
      );
    }
  }
}

/** libvips has no BMP reader: decode with bmp-ts, then hand sharp raw RGB. */
function bmpToSharp(bytes: Buffer): sharp.Sharp {
  const bmp = decodeBmp(bytes, { toRGBA: true });
  const width = bmp.width;
  const height = Math.abs(bmp.height);
  if (width * height > MAX_INPUT_PIXELS) throw new Error(`${width}×${height} exceeds the pixel limit`);
  // BMP alpha is almost never meaningful (often 0): keep RGB only.
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = bmp.data[i];
    rgb[j + 1] = bmp.data[i + 1];
    rgb[j + 2] = bmp.data[i + 2];
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } });
}

function decodeFailure(fileName: string, error: unknown): UserFacingError {
  if (error instanceof UserFacingError) return error;
  const text = errorText(error);
  if (/pixel limit/i.test(text)) {
    return new UserFacingError(
      `${fileName} is too large to decode safely (over ${MAX_INPUT_PIXELS / 1e6} million pixels).`,
      text,
    );
  }
  if (/unsupported image format/i.test(text)) {
    return new UserFacingError(`${fileName} is not an image format this extension can read.`, text);
  }
  if (/premature end|truncated|corrupt|bad (huffman|seek)|out of range|invalid/i.test(text)) {
    return new UserFacingError(`${fileName} could not be decoded: the file looks damaged or incomplete.`, text);
  }
  return new UserFacingError(`${fileName} could not be decoded.`, text);
}

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { encode as encodeBmp } from 'bmp-ts';
import { decodeImage, MAX_INPUT_PIXELS } from '../../src/engine/image';
import { image, tempDir } from './fixtures';
import { rejectsWith } from './assertions';

const SIZE = { width: 224, height: 224 };

function channelStats(rgb: Uint8Array, channel: number): { min: number; max: number; mean: number } {
  let min = 255;
  let max = 0;
  let sum = 0;
  for (let i = channel; i < rgb.length; i += 3) {
    min = Math.min(min, rgb[i]);
    max = Math.max(max, rgb[i]);
    sum += rgb[i];
  }
  return { min, max, mean: sum / (rgb.length / 3) };
}

/** A PNG whose header claims width × height but holds almost no data: a decompression bomb. */
function bombPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(zlib.crc32(body) >>> 0, 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const idat = zlib.deflateSync(Buffer.alloc(1 + width * 3));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('decoding images as the model sees them', () => {
  it('resizes a colour photo to the model size with real content', async () => {
    const decoded = await decodeImage(image('chelsea.png'), SIZE);
    assert.equal(decoded.width, 224);
    assert.equal(decoded.height, 224);
    assert.equal(decoded.rgb.length, 224 * 224 * 3);
    assert.equal(decoded.originalWidth, 451);
    assert.equal(decoded.originalHeight, 300);
    for (const c of [0, 1, 2]) {
      const s = channelStats(decoded.rgb, c);
      assert.ok(s.max - s.min > 100, `channel ${c} has contrast`);
    }
    assert.deepEqual(decoded.notes, []);
  });

  it('applies EXIF orientation, as a photo viewer shows the picture', async () => {
    // Chelsea stored sideways with "rotate 90° clockwise to view" (orientation 6).
    const file = path.join(tempDir(), 'sideways.jpg');
    await sharp(image('chelsea.png')).rotate(-90).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toFile(file);
    const sideways = await decodeImage(file, SIZE);
    assert.equal(sideways.originalWidth, 451);
    assert.equal(sideways.originalHeight, 300);
    assert.ok(sideways.notes.includes('EXIF orientation applied'));
    const upright = await decodeImage(image('chelsea.png'), SIZE);
    let diff = 0;
    for (let i = 0; i < upright.rgb.length; i++) diff += Math.abs(upright.rgb[i] - sideways.rgb[i]);
    assert.ok(
      diff / upright.rgb.length < 6,
      `same picture after rotation (mean abs diff ${(diff / upright.rgb.length).toFixed(1)})`,
    );
  });

  it('fits the image by stretching, cropping the centre, or letterboxing with black bars', async () => {
    const row = (rgb: Uint8Array, y: number) => rgb.subarray(y * 224 * 3, (y + 1) * 224 * 3);
    const blackRow = (rgb: Uint8Array, y: number) => row(rgb, y).every((v) => v === 0);
    const stretch = await decodeImage(image('chelsea.png'), { ...SIZE, resize: 'stretch' });
    const crop = await decodeImage(image('chelsea.png'), { ...SIZE, resize: 'center-crop' });
    const letterbox = await decodeImage(image('chelsea.png'), { ...SIZE, resize: 'letterbox' });
    // 451×300 into 224×224: letterboxing leaves 224×149 of picture and black above and below.
    assert.ok(blackRow(letterbox.rgb, 0) && blackRow(letterbox.rgb, 223), 'letterbox bars');
    assert.ok(!blackRow(letterbox.rgb, 112), 'the picture in the middle');
    assert.ok(!blackRow(stretch.rgb, 0) && !blackRow(crop.rgb, 0), 'stretch and crop fill the frame');
    assert.ok(!Buffer.from(stretch.rgb).equals(Buffer.from(crop.rgb)), 'cropping differs from stretching');
  });

  it('shows a grayscale image as equal R, G and B', async () => {
    const decoded = await decodeImage(image('camera.png'), SIZE);
    for (let i = 0; i < decoded.rgb.length; i += 3) {
      assert.equal(decoded.rgb[i], decoded.rgb[i + 1]);
      assert.equal(decoded.rgb[i], decoded.rgb[i + 2]);
    }
    assert.ok(decoded.notes.some((n) => /grayscale/.test(n)));
  });

  it('keeps a 16-bit TIFF that holds 0–255 values visible instead of near-black', async () => {
    const decoded = await decodeImage(image('chessboard_GRAY_U16.tif'), SIZE);
    const s = channelStats(decoded.rgb, 0);
    assert.ok(s.max >= 250 && s.min <= 5, `chessboard spans black to white (got ${s.min}..${s.max})`);
    assert.ok(decoded.notes.some((n) => /16-bit/.test(n)));
  });

  it('drops the alpha channel of an RGBA image and says so', async () => {
    const decoded = await decodeImage(image('horse.png'), SIZE);
    assert.equal(decoded.rgb.length, 224 * 224 * 3);
    assert.ok(decoded.notes.includes('alpha channel dropped'));
  });

  it('uses the first frame of an animated GIF and says how many there are', async () => {
    const decoded = await decodeImage(image('no_time_for_that_tiny.gif'), SIZE);
    assert.equal(decoded.rgb.length, 224 * 224 * 3);
    assert.ok(
      decoded.notes.some((n) => /^first of \d+ frames$/.test(n)),
      decoded.notes.join(),
    );
  });

  it('expands an indexed-colour PNG', async () => {
    const decoded = await decodeImage(image('palette_color.png'), SIZE);
    assert.ok(decoded.notes.includes('palette colours expanded'));
    assert.ok(channelStats(decoded.rgb, 0).max > channelStats(decoded.rgb, 0).min);
  });

  it('reads a BMP (which libvips cannot) with the same pixels as the PNG it was made from', async () => {
    const { data, info } = await sharp(image('chelsea.png')).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    // bmp-ts encodes from ABGR byte order.
    const abgr = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i += 4) {
      abgr[i] = 255;
      abgr[i + 1] = data[i + 2];
      abgr[i + 2] = data[i + 1];
      abgr[i + 3] = data[i];
    }
    const file = path.join(tempDir(), 'chelsea.bmp');
    fs.writeFileSync(file, encodeBmp({ data: abgr, width: info.width, height: info.height, bitPP: 24 }).data);
    const fromBmp = await decodeImage(file, SIZE);
    const fromPng = await decodeImage(image('chelsea.png'), SIZE);
    assert.deepEqual(Buffer.from(fromBmp.rgb), Buffer.from(fromPng.rgb));
  });

  it('refuses a truncated JPEG with a message naming the file', async () => {
    const error = await rejectsWith(
      decodeImage(image('truncated.jpg'), SIZE),
      /truncated\.jpg .*damaged or incomplete/,
    );
    assert.match(error.detail ?? '', /premature end/i);
  });

  it('refuses a multi-page TIFF libvips cannot read, with a message', async () => {
    await rejectsWith(decodeImage(image('multipage_rgb.tif'), SIZE), /multipage_rgb\.tif could not be decoded/);
  });

  it('refuses a text file named .png', async () => {
    const file = path.join(tempDir(), 'notes.png');
    fs.writeFileSync(file, 'this is not an image\n');
    await rejectsWith(decodeImage(file, SIZE), /notes\.png is not an image format/);
  });

  it('refuses an empty file and a missing file', async () => {
    const file = path.join(tempDir(), 'empty.jpg');
    fs.writeFileSync(file, '');
    await rejectsWith(decodeImage(file, SIZE), /empty\.jpg is empty/);
    await rejectsWith(decodeImage(path.join(tempDir(), 'gone.png'), SIZE), /gone\.png: the file does not exist/);
  });

  it('refuses a decompression bomb before decoding it', async () => {
    const file = path.join(tempDir(), 'bomb.png');
    const side = Math.ceil(Math.sqrt(MAX_INPUT_PIXELS)) + 1000;
    fs.writeFileSync(file, bombPng(side, side));
    assert.ok(fs.statSync(file).size < 1_000_000, 'the bomb is small on disk');
    const before = process.memoryUsage().rss;
    await rejectsWith(decodeImage(file, SIZE), /bomb\.png is too large/);
    assert.ok(process.memoryUsage().rss - before < 200e6, 'nothing large was allocated');
  });
});

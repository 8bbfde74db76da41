import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { FeatureMapEngine } from '../../src/engine/engine';
import { MAX_MODEL_FILE_BYTES, readRegularFile } from '../../src/engine/files';
import { decodeImage } from '../../src/engine/image';
import { rejectsWith } from './assertions';
import { DIST, image, tempDir } from './fixtures';
import { HOSTILE_CASES, writeTinyLayersModel } from './hostileInputs';

const BUNDLED = { kind: 'bundled' } as const;
/** Peak memory a refused file may add to the process (today's worst cases took 2 to 6 GB). */
const MAX_PEAK_GROWTH_MB = 300;

/** The process's peak resident memory so far, in MB. */
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;

describe('hostile files: refused in plain words, in bounded time and memory, and the engine works after', function () {
  this.timeout(120_000);
  let engine: FeatureMapEngine;
  let dir: string;
  before(async () => {
    engine = new FeatureMapEngine({ assetsDir: DIST });
    dir = tempDir();
    // Load the bundled model first, so that what a case adds to the peak is the case's own.
    await engine.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
  });
  after(() => {
    engine.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the tiny TF.js model the cases damage loads and runs when it is whole', async () => {
    const modelJson = writeTinyLayersModel(path.join(dir, 'whole'));
    const result = await engine.extract({
      imagePath: image('chelsea.png'),
      model: { kind: 'file', path: modelJson },
      layerPatterns: [],
    });
    assert.deepEqual(
      result.layers.map((l) => `${l.name} ${l.op} ${l.shape.join('×')}`),
      ['conv Conv2D 8×8×2'],
    );
  });

  for (const hostile of HOSTILE_CASES) {
    it(`${hostile.name}: says why within ${hostile.boundMs / 1000} s, then chelsea.png works`, async () => {
      const input = await hostile.make(fs.mkdtempSync(path.join(dir, 'case-')));
      const peakBefore = peakRssMb();
      const rssBefore = process.memoryUsage().rss;
      const started = performance.now();
      const error = await rejectsWith(
        engine.extract({
          imagePath: input.imagePath ?? image('chelsea.png'),
          model: input.model ?? BUNDLED,
          layerPatterns: [],
          labelsPath: input.labelsPath,
        }),
        hostile.expect,
      );
      const elapsedMs = performance.now() - started;
      const growth = peakRssMb() - peakBefore;
      const rssNow = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
      // The peak is the process's so far: after bigger tests it stays flat; RSS now shows what the case kept.
      console.log(
        `      ${elapsedMs.toFixed(0)} ms, peak RSS +${growth.toFixed(0)} MB, RSS now ${rssNow >= 0 ? '+' : ''}${rssNow.toFixed(0)} MB: "${error.message}"`,
      );
      assert.ok(elapsedMs < hostile.boundMs, `took ${elapsedMs.toFixed(0)} ms`);
      assert.ok(growth < MAX_PEAK_GROWTH_MB, `the peak RSS grew by ${growth.toFixed(0)} MB`);

      const next = await engine.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
      assert.equal(next.input.fileName, 'chelsea.png');
      const conv1 = next.layers.find((l) => l.name === 'Conv1');
      assert.deepEqual(conv1?.shape, [112, 112, 32], 'the bundled model still runs');
    });
  }
});

describe('hostile files, one reader at a time', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = tempDir();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('decodes a real PNG followed by 1.5 GB of zeros without reading the file whole', async () => {
    const file = path.join(dir, 'padded.png');
    fs.writeFileSync(file, await sharp(image('chelsea.png')).resize(32, 32).png().toBuffer());
    fs.truncateSync(file, 1.5e9); // sparse zeros after IEND, which PNG readers ignore
    const peakBefore = peakRssMb();
    const decoded = await decodeImage(file, { width: 16, height: 16 });
    const growth = peakRssMb() - peakBefore;
    console.log(`      peak RSS +${growth.toFixed(0)} MB`);
    assert.equal(decoded.originalWidth, 32);
    assert.ok(growth < 200, `the peak RSS grew by ${growth.toFixed(0)} MB`);
  });

  it('decodes an image rewritten under the same name afresh, not from libvips’ cache', async () => {
    const file = path.join(dir, 'rewritten.png');
    fs.writeFileSync(file, await sharp(image('chelsea.png')).resize(20, 10).png().toBuffer());
    assert.equal((await decodeImage(file, { width: 8, height: 8 })).originalWidth, 20);
    fs.writeFileSync(file, await sharp(image('coffee.png')).resize(30, 10).png().toBuffer());
    assert.equal((await decodeImage(file, { width: 8, height: 8 })).originalWidth, 30);
  });

  it('refuses an image that is a FIFO or a symlink to /dev/zero, without blocking', async () => {
    const fifo = path.join(dir, 'pipe.webp');
    execFileSync('mkfifo', [fifo]);
    await rejectsWith(decodeImage(fifo, { width: 8, height: 8 }), /Cannot read pipe\.webp: it is a named pipe/);
    const zero = path.join(dir, 'zero.gif');
    fs.symlinkSync('/dev/zero', zero);
    await rejectsWith(
      decodeImage(zero, { width: 8, height: 8 }),
      /Cannot read zero\.gif: it is a device \(it leads to \/dev\/zero\), not a regular file/,
    );
  });

  it('refuses a BMP whose header promises more rows than the file holds, before decoding it', async () => {
    const file = path.join(dir, 'cut.bmp');
    const header = Buffer.alloc(54);
    header.write('BM', 0, 'ascii');
    header.writeUInt32LE(54, 10);
    header.writeUInt32LE(40, 14);
    header.writeInt32LE(5000, 18);
    header.writeInt32LE(5000, 22);
    header.writeUInt16LE(1, 26);
    header.writeUInt16LE(24, 28);
    fs.writeFileSync(file, Buffer.concat([header, Buffer.alloc(1000)]));
    const error = await rejectsWith(
      decodeImage(file, { width: 8, height: 8 }),
      /cut\.bmp could not be decoded: the file looks damaged or incomplete/,
    );
    assert.match(
      error.detail ?? '',
      /promises 5000×5000 pixels at 24 bits, 75 MB with the headers; the file has 1.1 kB/,
    );
  });

  it('reads a file only up to its cap, checked before reading', async () => {
    const file = path.join(dir, 'big.onnx');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, 3e9); // sparse
    await rejectsWith(
      readRegularFile(file, { describe: 'the model file big.onnx', maxBytes: MAX_MODEL_FILE_BYTES }),
      /Cannot read the model file big\.onnx: it is 3 GB, more than the 2 GB Feature Maps reads/,
    );
    const small = path.join(dir, 'small.bin');
    fs.writeFileSync(small, Buffer.from([1, 2, 3]));
    assert.deepEqual([...(await readRegularFile(small, { maxBytes: 3 }))], [1, 2, 3]);
  });
});

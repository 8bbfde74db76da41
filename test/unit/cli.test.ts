import * as assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { TEST_PUBLISHED_HASHES_ENV, catalogEntry } from '../../src/engine/catalog';
import { startMirror } from '../mirror.mjs';
import { DIST, image, oracleCacheFile, shared, tempDir } from './fixtures';

function cli(...args: string[]) {
  return spawnSync(process.execPath, [path.join(DIST, 'cli.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** The CLI without blocking this process, which may be serving its downloads. */
function cliAsync(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(DIST, 'cli.js'), ...args], { timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('the feature-maps command line', () => {
  it('writes a contact sheet of the chosen layers × channels as a PNG', async () => {
    const out = path.join(tempDir(), 'sheet.png');
    const run = cli(
      image('chelsea.png'),
      '--layers',
      'Conv1,block_1_expand',
      '--channels',
      '4',
      '--tile',
      '64',
      '-o',
      out,
    );
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /Conv1 \(4 of 32\), block_1_expand \(4 of 96\)/);
    const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    // Two columns of 64 px tiles (√4) with 4 px gaps and 12 px margins.
    assert.equal(info.width, 12 * 2 + 2 * 64 + 4);
    // The tiles are drawn: many distinct colours, not one flat fill.
    const colours = new Set<number>();
    for (let i = 0; i < data.length; i += info.channels)
      colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    assert.ok(colours.size > 200, `${colours.size} colours`);
  });

  it('uses your own model with --model, its preprocessing guessed', async () => {
    const out = path.join(tempDir(), 'onnx.png');
    const model = shared('fixtures', 'models', 'squeezenet-imagenet.onnx', 'SqueezeNet_fp16.onnx');
    const run = cli(image('coffee.png'), '--model', model, '--layers', 'conv1_1', '--channels', '9', '-o', out);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /conv1_1 \(9 of 64\)/);
    const { width } = await sharp(out).metadata();
    assert.equal(width, 12 * 2 + 3 * 128 + 2 * 4, 'a 3×3 grid of 128 px tiles');
  });

  it('prints the layers with --list', () => {
    const run = cli(image('coffee.png'), '--list');
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^Conv1\tConv2D\t112×112×32$/m);
  });

  it('exits with a message for a broken image or an unknown layer', () => {
    const broken = cli(image('truncated.jpg'));
    assert.equal(broken.status, 1);
    assert.match(broken.stderr, /truncated\.jpg could not be decoded/);
    const unknown = cli(image('coffee.png'), '--layers', 'nope*');
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /No layer with spatial maps matches nope\*/);
  });

  it('reproduces the Keras recipe: --model vgg16 downloads once, then one 3×3 PNG per seed layer', async function () {
    this.timeout(120_000);
    const vgg16 = catalogEntry('catalog:vgg16');
    assert.ok(vgg16);
    const weights = fs.readFileSync(oracleCacheFile(vgg16.fileName, this));
    const sha256 = createHash('sha256').update(weights).digest('hex');
    // The oracle's weights are random (seeded): their hash stands in for Keras' published MD5
    // (a test-only switch; a mirror's SHA256SUMS cannot override Keras' hash).
    const mirror = await startMirror({ files: { [vgg16.urlPath]: weights } });
    process.env[TEST_PUBLISHED_HASHES_ENV] = `${sha256}  ${vgg16.fileName}\n`;
    try {
      const dir = tempDir();
      const args = [image('chelsea.png'), '--model', 'vgg16', '--mirror', mirror.base, '--cache-dir', dir];
      const run = await cliAsync(...args, '--split', '-o', path.join(dir, 'chelsea.png'));
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /Downloading VGG16 ImageNet \(no top\) from http:\/\/127\.0\.0\.1/);
      assert.match(run.stderr, /56\.2 of 56\.2 MB/);
      for (const [layer, total] of [
        ['block1_conv1', 64],
        ['block2_conv1', 128],
        ['block3_conv1', 256],
      ] as const) {
        assert.match(run.stdout, new RegExp(`chelsea\\.${layer}\\.png: ${layer} \\(9 of ${total}\\)`));
        const { width, height } = await sharp(path.join(dir, `chelsea.${layer}.png`)).metadata();
        assert.equal(width, 12 * 2 + 3 * 128 + 2 * 4, `${layer}: three tiles across`);
        assert.ok(height > 3 * 128 + 2 * 4, `${layer}: three rows`);
      }
      // Once per machine: a second run uses the cached file.
      const requests = mirror.requests.length;
      const again = await cliAsync(...args, '--list');
      assert.equal(again.status, 0, again.stderr);
      assert.equal(mirror.requests.length, requests);
      assert.doesNotMatch(again.stderr, /Downloading/);
    } finally {
      delete process.env[TEST_PUBLISHED_HASHES_ENV];
      await mirror.close();
    }
  });
});

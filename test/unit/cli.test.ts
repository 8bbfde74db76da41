import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import sharp from 'sharp';
import { DIST, image, shared, tempDir } from './fixtures';

function cli(...args: string[]) {
  return spawnSync(process.execPath, [path.join(DIST, 'cli.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
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
});

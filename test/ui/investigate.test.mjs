// Investigating one layer like a person would: rank its channels, page through all of them, zoom
// into one and step through the ranking with the keyboard, hide the dead ones, and find it all
// again after a window reload. The expected channels and values come from the engine itself:
// the CLI (same engine, same preprocessing) writes the layer as .npy, read here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { ctx } from '../vscode/context.mjs';
import { clickContextMenuItem, reloadWindow, screenshot, webviewFrame } from '../vscode/harness.mjs';

const TIMEOUT = 60_000;
const LAYER = 'block_3_expand'; // a convolution: no ReLU6 cap, so no ties at the top of "max"

/** The layer as the engine computes it for `image` (H×W×C), via the CLI's --npy. */
async function engineLayer(image, layer) {
  const { readNpy } = await import(pathToFileURL(path.join(ctx.repoRoot, '..', 'shared', 'oracle', 'npy.mjs')).href);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fm-npy-')), `${layer}.npy`);
  execFileSync(process.execPath, [path.join(ctx.repoRoot, 'dist', 'cli.js'), image, '-l', layer, '--npy', file]);
  const { shape, data } = readNpy(file);
  const [height, width, channels] = shape;
  const at = (c, x, y) => data[(y * width + x) * channels + c];
  const max = Array.from({ length: channels }, (_, c) => {
    let m = -Infinity;
    for (let p = 0; p < height * width; p++) m = Math.max(m, data[p * channels + c]);
    return m;
  });
  // Largest first, ties by index: the order the panel promises.
  const byMax = max.map((_, c) => c).sort((a, b) => max[b] - max[a] || a - b);
  return { height, width, channels, at, max, byMax };
}

/** The channel of each tile on show, in order. */
const tileChannels = (frame) =>
  frame
    .locator('.channel-grid .tile[data-channel]')
    .evaluateAll((tiles) => tiles.map((t) => Number(t.dataset.channel)));

async function waitFor(check, what) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/** A canvas's size, its pixels and how many colours it has. */
function pixelsOf(canvas) {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return { width: canvas.width, height: canvas.height, data: Array.from(data), colours: colours.size };
}

/** Mean absolute difference per channel value of two same-sized RGBA pictures. */
function meanDifference(a, b) {
  assert.equal(a.data.length, b.data.length, `${a.width}×${a.height} vs ${b.width}×${b.height}`);
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) if (i % 4 !== 3) sum += Math.abs(a.data[i] - b.data[i]);
  return sum / ((a.data.length / 4) * 3);
}

/** The number a readout shows (with the typographic minus). */
const readNumber = (text) => Number(text.replace('−', '-'));

describe('Investigating a layer: every channel, ranked and zoomed', () => {
  let frame;
  let engine;
  // The exports are written beside the image: the tests after these see the workspace as it was.
  after(() => {
    for (const file of fs.readdirSync(ctx.workspace)) {
      if (file.startsWith(`chelsea.${LAYER}.`)) fs.rmSync(path.join(ctx.workspace, file));
    }
  });
  before(async () => {
    await ctx.reload();
    engine = await engineLayer(path.join(ctx.workspace, 'chelsea.png'), LAYER);
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="ready"]').waitFor({ timeout: TIMEOUT });
    await frame.locator(`.layer-row[data-layer="${LAYER}"]`).click();
    await frame.locator(`.layer-row[data-layer="${LAYER}"][aria-selected="true"]`).waitFor({ timeout: TIMEOUT });
  });

  it('sorts by max: the first tiles are the channels with the largest max, each labelled with it', async () => {
    await frame.locator('.sort-select').selectOption('max');
    const shown = await waitFor(async () => {
      const channels = await tileChannels(frame);
      return channels.length === 16 && channels[0] === engine.byMax[0] ? channels : undefined;
    }, 'the grid sorted by max');
    assert.deepEqual(shown, engine.byMax.slice(0, 16));
    const stat = await frame.locator('.channel-grid .tile').first().locator('.tile-stat').innerText();
    assert.match(stat, /^max /);
    const labelled = readNumber(stat.slice(4));
    assert.ok(Math.abs(labelled - engine.max[shown[0]]) <= 0.005 * Math.abs(engine.max[shown[0]]), `${stat}`);
    await screenshot(ctx.page, 'investigate-sorted-by-max');
  });

  it('pages to the last channel of the order with End, and back with Home', async () => {
    await frame.locator('.channel-grid .tile').first().focus();
    await ctx.page.keyboard.press('End');
    const last = await waitFor(async () => {
      const channels = await tileChannels(frame);
      return channels.at(-1) === engine.byMax.at(-1) ? channels : undefined;
    }, 'the last page');
    assert.deepEqual(last, engine.byMax.slice(-last.length));
    assert.equal(await frame.locator('.page-range').innerText(), `129–144 of ${engine.channels}`);
    assert.ok(await frame.locator('.page-next').isDisabled());
    await frame.locator('.channel-grid .tile').first().focus();
    await ctx.page.keyboard.press('Home');
    await waitFor(async () => (await tileChannels(frame))[0] === engine.byMax[0], 'the first page');
  });

  it('zooms into a tile with Enter: the value under the pointer is the engine’s; ←/→ follow the ranking; Esc returns', async () => {
    const pixels = (canvas) => Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data);
    const tilePixels = await frame.locator('.channel-grid .tile canvas').first().evaluate(pixels);
    await frame.locator('.channel-grid .tile').first().focus();
    await ctx.page.keyboard.press('Enter');
    const title = frame.locator('.zoom-title');
    await waitFor(async () => (await title.innerText()) === `${LAYER} #${engine.byMax[0]}`, 'the zoomed channel');
    await waitFor(async () => /^min /.test(await frame.locator('.zoom-summary').innerText()), 'its values');
    const canvas = frame.locator('.zoom-canvas');
    // The zoom draws the channel's exact values as its tile draws their 8-bit form: the same picture.
    assert.deepEqual(await canvas.evaluate(pixels), tilePixels);
    const box = await canvas.boundingBox();
    const [x, y] = [9, 21];
    await canvas.hover({
      position: { x: ((x + 0.5) * box.width) / engine.width, y: ((y + 0.5) * box.height) / engine.height },
    });
    const readout = await frame.locator('.zoom-readout').innerText();
    const match = /^\((\d+), (\d+)\) = (.+)$/.exec(readout);
    assert.ok(match, readout);
    assert.deepEqual([Number(match[1]), Number(match[2])], [x, y]);
    const expected = engine.at(engine.byMax[0], x, y);
    assert.ok(
      Math.abs(readNumber(match[3]) - expected) <= 0.005 * Math.abs(expected) + 1e-6,
      `${readout} vs ${expected}`,
    );
    assert.equal(await frame.locator('.zoom-position').innerText(), `1 of ${engine.channels}, by max`);
    await screenshot(ctx.page, 'investigate-zoom');
    await ctx.page.keyboard.press('ArrowRight');
    await waitFor(
      async () => (await title.innerText()) === `${LAYER} #${engine.byMax[1]}`,
      '→: the second in the ranking',
    );
    await ctx.page.keyboard.press('ArrowRight');
    await waitFor(async () => (await title.innerText()) === `${LAYER} #${engine.byMax[2]}`, '→: the third');
    await ctx.page.keyboard.press('ArrowLeft');
    await waitFor(async () => (await title.innerText()) === `${LAYER} #${engine.byMax[1]}`, '←: the second again');
    await ctx.page.keyboard.press('Escape');
    await frame.locator('.channel-zoom').waitFor({ state: 'hidden', timeout: TIMEOUT });
    const focused = await waitFor(
      () =>
        frame
          .locator('.tile:focus')
          .getAttribute('data-channel')
          .catch(() => undefined),
      'the zoomed channel’s tile focused',
    );
    assert.equal(Number(focused), engine.byMax[1]);
  });

  it('remembers the ranking and the zoom across a window reload', async () => {
    await frame.locator('.channel-grid .tile').nth(2).click();
    await waitFor(
      async () => (await frame.locator('.zoom-title').innerText()) === `${LAYER} #${engine.byMax[2]}`,
      'the zoom',
    );
    // As a person would: the command flushes the window's state before reloading.
    await reloadWindow(ctx.page, { timeoutMs: TIMEOUT });
    const restored = webviewFrame(ctx.page);
    await waitFor(
      async () =>
        (await restored
          .locator('.zoom-title')
          .innerText()
          .catch(() => '')) === `${LAYER} #${engine.byMax[2]}` &&
        (
          await restored
            .locator('.zoom-summary')
            .innerText()
            .catch(() => '')
        ).startsWith('min '),
      'the zoom restored',
    );
    assert.equal(await restored.locator('.sort-select').inputValue(), 'max');
    await restored.locator('.channel-zoom').press('Escape');
    await waitFor(async () => (await tileChannels(restored))[0] === engine.byMax[0], 'the ranked grid restored');
    frame = restored;
  });

  it('draws every tile over the image with Overlay, and the max over channels in the zoomed view', async () => {
    await frame.locator('.layer-row[data-layer="' + LAYER + '"]').click();
    await waitFor(async () => (await tileChannels(frame)).length === 16, 'the grid');
    const plain = await frame.locator('.channel-grid .tile canvas').first().evaluate(pixelsOf);
    await frame.locator('.overlay-toggle').check();
    const overlaid = await waitFor(async () => {
      const tile = await frame.locator('.channel-grid .tile canvas').first().evaluate(pixelsOf);
      return tile.width === 224 ? tile : undefined;
    }, 'tiles drawn over the 224×224 input');
    const input = await frame.locator('canvas.input-preview').evaluate(pixelsOf);
    assert.ok(overlaid.colours > 200, `a picture, not a blank canvas (${overlaid.colours} colours)`);
    assert.ok(meanDifference(overlaid, input) > 8, 'not the plain image');
    assert.notEqual(plain.width, overlaid.width, 'not the plain map');
    await screenshot(ctx.page, 'investigate-overlay');

    await frame.locator('.layer-max').click();
    const title = frame.locator('.zoom-title');
    await waitFor(async () => (await title.innerText()) === `${LAYER} · max over channels`, 'the max map');
    await waitFor(async () => /^min /.test(await frame.locator('.zoom-summary').innerText()), 'its values');
    const canvas = frame.locator('.zoom-canvas');
    const box = await canvas.boundingBox();
    const [x, y] = [30, 12];
    await canvas.hover({ position: { x: ((x + 0.5) * box.width) / 224, y: ((y + 0.5) * box.height) / 224 } });
    const match = /^\((\d+), (\d+)\) = (.+)$/.exec(await frame.locator('.zoom-readout').innerText());
    assert.ok(match);
    const [mx, my] = [Number(match[1]), Number(match[2])];
    let expected = -Infinity;
    for (let c = 0; c < engine.channels; c++) expected = Math.max(expected, engine.at(c, mx, my));
    assert.ok(Math.abs(readNumber(match[3]) - expected) <= 0.005 * Math.abs(expected), `${match[0]} vs ${expected}`);
    await screenshot(ctx.page, 'investigate-max-overlay');
    await ctx.page.keyboard.press('Escape');
    await frame.locator('.channel-zoom').waitFor({ state: 'hidden', timeout: TIMEOUT });
    await frame.locator('.overlay-toggle').uncheck();
  });

  it('exports the layer as .npy beside the image, equal to the engine’s values, and the grid and statistics', async () => {
    const save = async (choice, name) => {
      await frame.locator('.export-button').click();
      const row = ctx.page.locator('.quick-input-list .monaco-list-row', { hasText: choice });
      await row.waitFor({ timeout: TIMEOUT });
      await row.click();
      // The save dialog starts beside the image, with a name made of the image's and the layer's.
      const input = ctx.page.locator('.quick-input-box input');
      await waitFor(async () => (await input.inputValue()).endsWith(name), `the save dialog on ${name}`);
      await input.press('Enter');
      const file = path.join(ctx.workspace, name);
      await waitFor(() => fs.existsSync(file) && fs.statSync(file).size > 0, `${name} written`);
      return file;
    };
    const { readNpy } = await import(pathToFileURL(path.join(ctx.repoRoot, '..', 'shared', 'oracle', 'npy.mjs')).href);
    // Both layouts from the panel hold the same engine values, transposed; and they are the values
    // the CLI's engine computes (to float rounding: its pass stops at the layer, the panel's may not).
    const hwc = readNpy(await save('H×W×C (Keras)', `chelsea.${LAYER}.npy`));
    const chw = readNpy(await save('C×H×W (PyTorch)', `chelsea.${LAYER}.chw.npy`));
    const { channels, height, width } = engine;
    assert.deepEqual(hwc.shape, [height, width, channels]);
    assert.deepEqual(chw.shape, [channels, height, width]);
    let transposed = 0;
    let worst = 0;
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const value = hwc.data[(y * width + x) * channels + c];
          if (chw.data[(c * height + y) * width + x] !== value) transposed++;
          worst = Math.max(worst, Math.abs(value - engine.at(c, x, y)) / Math.max(1, Math.abs(engine.max[c])));
        }
      }
    }
    assert.equal(transposed, 0, 'C×H×W is H×W×C transposed, value for value');
    assert.ok(worst < 1e-4, `the engine's values (worst relative difference ${worst})`);

    const png = await save('Grid as PNG', `chelsea.${LAYER}.grid.png`);
    const sheet = await sharp(png).metadata();
    assert.ok(sheet.width > 256 && sheet.height > 256, `${sheet.width}×${sheet.height}`);
    const { channels: stats } = await sharp(png).stats();
    assert.ok(
      stats.some((c) => c.stdev > 10),
      'not blank',
    );

    const csv = fs.readFileSync(await save('Channel statistics as CSV', `chelsea.${LAYER}.stats.csv`), 'utf8');
    const rows = csv.trim().split('\n');
    assert.equal(rows[0], 'channel,min,max,mean,std,active');
    assert.equal(rows.length, engine.channels + 1, 'one row per channel');
    const [channel, , max] = rows[1 + engine.byMax[0]].split(',').map(Number);
    assert.equal(channel, engine.byMax[0]);
    assert.equal(max, engine.max[engine.byMax[0]]);
  });

  it('hides the constant channels of Conv1 (its dead filters), and says how many', async () => {
    await frame.locator('.layer-row[data-layer="Conv1"]').click();
    await frame.locator('.sort-select').selectOption('index');
    await frame.locator('.hide-constant-toggle').check();
    const range = await waitFor(async () => {
      const text = await frame.locator('.page-range').innerText();
      return /constant hidden/.test(text) ? text : undefined;
    }, 'constant channels hidden');
    const [, shown, hidden] = /^1–\d+ of (\d+) \((\d+) constant hidden\)$/.exec(range) ?? [];
    assert.ok(shown && hidden, range);
    assert.equal(Number(shown) + Number(hidden), 32);
    await waitFor(async () => (await tileChannels(frame)).length === Math.min(16, Number(shown)), 'the tiles');
    assert.equal(await frame.locator('.channel-grid .tile.constant').count(), 0);
    await frame.locator('.hide-constant-toggle').uncheck();
    await waitFor(async () => (await frame.locator('.channel-grid .tile.constant').count()) > 0, 'constant tiles back');
  });
});

// ResNet50V2's last block has 2,048 channels: the Keras oracle's copy (random weights, seeded),
// made by tools/make-keras-apps-oracle.sh; without it this is skipped, as the other Keras tests are.
const RESNET = path.join(
  process.env.ORACLE_CACHE ??
    path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..', '.oracle-cache'),
  'keras-apps',
  'resnet50v2',
  'resnet50v2.h5',
);

(fs.existsSync(RESNET) ? describe : describe.skip)('A layer with 2,048 channels', () => {
  const settingsDir = () => path.join(ctx.workspace, '.vscode');
  after(() => fs.rmSync(settingsDir(), { recursive: true, force: true }));

  it('pages from its first channels to its last, #2047, with End', async function () {
    this.timeout(240_000);
    fs.mkdirSync(settingsDir(), { recursive: true });
    fs.writeFileSync(path.join(settingsDir(), 'settings.json'), JSON.stringify({ 'featureMaps.model': RESNET }));
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    await frame.locator('.model-name', { hasText: 'resnet50v2' }).waitFor({ timeout: 180_000 });
    await frame.locator('.layer-row[data-layer="post_bn"]').click();
    await frame.locator('.sort-select').selectOption('index');
    await frame.locator('.hide-constant-toggle').uncheck();
    await waitFor(async () => (await tileChannels(frame))[0] === 0, 'its first channels');
    assert.equal(await frame.locator('.page-range').innerText(), '1–16 of 2048');
    await frame.locator('.channel-grid .tile').first().focus();
    const pressed = Date.now();
    await ctx.page.keyboard.press('End');
    const last = await waitFor(async () => {
      const channels = await tileChannels(frame);
      return channels.at(-1) === 2047 ? channels : undefined;
    }, 'the last page');
    console.log(
      `      (measured, not asserted: End → the last page of 2,048 channels drawn: ${Date.now() - pressed} ms)`,
    );
    assert.deepEqual(
      last,
      Array.from({ length: 16 }, (_, k) => 2032 + k),
    );
    assert.equal(await frame.locator('.page-range').innerText(), '2033–2048 of 2048');
    await screenshot(ctx.page, 'investigate-2048-channels-last-page');
  });
});

// A person picks their own model with "Feature Maps: Select Model…" and looks at an image with it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ctx } from '../vscode/context.mjs';
import {
  clickContextMenuItem,
  expandFolder,
  pickQuickPickRow,
  runCommand,
  screenshot,
  waitForPaintedGrid,
  webviewFrame,
} from '../vscode/harness.mjs';

const TIMEOUT = 60_000;

describe('Your own model, picked with Select Model…', () => {
  after(() => fs.rmSync(path.join(ctx.workspace, '.vscode'), { recursive: true, force: true }));

  it('lists the workspace model, and the panel shows its layers, grid and top-5', async () => {
    await ctx.reload();
    await pickQuickPickRow(ctx.page, 'Feature Maps: Select Model…', 'darknet-tiny-imagenet.tfjs', {
      beforeClick: () => screenshot(ctx.page, 'select-model-quick-pick'),
    });

    // The choice lands in the workspace settings, as a path relative to the folder.
    const file = path.join(ctx.workspace, '.vscode', 'settings.json');
    const deadline = Date.now() + 10_000;
    let model;
    while (Date.now() < deadline && model === undefined) {
      try {
        model = JSON.parse(fs.readFileSync(file, 'utf8'))['featureMaps.model'];
      } catch {
        // not written yet, or half written
      }
      if (model === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(model, 'models/darknet-tiny-imagenet.tfjs/model.json');

    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="ready"]').waitFor({ timeout: TIMEOUT });
    assert.equal(await frame.locator('.model-name').innerText(), 'darknet-tiny-imagenet.tfjs');
    assert.match(await frame.locator('.model-preprocessing').innerText(), /raw01/);
    assert.equal(await frame.locator('.layer-row[data-layer="conv2d_1"]').count(), 1, 'Darknet layers in the tree');
    // The top-5 follows the first grid (the first pass stops at the layer on screen).
    await frame.locator('.prediction').nth(4).waitFor({ timeout: TIMEOUT });
    const top5 = await frame.locator('.prediction .label').allInnerTexts();
    assert.equal(top5.length, 5);
    assert.ok(
      top5.some((label) => /cat|tabby/i.test(label)),
      top5.join(', '),
    );
    // The grid is drawn (its tiles come from the engine process a moment after the result).
    await waitForPaintedGrid(ctx.page, 'chelsea.png', 16);
    await screenshot(ctx.page, 'panel-own-model-darknet');
  });

  it('uses an ONNX file picked with "Use as Feature Map Model" in the explorer', async () => {
    await ctx.reload();
    // Earlier tests may have left these folders open: a click would close them.
    await expandFolder(ctx.page, 'models');
    await expandFolder(ctx.page, 'squeezenet-imagenet.onnx');
    await clickContextMenuItem(ctx.page, 'SqueezeNet_fp16.onnx', 'Use as Feature Map Model');
    await clickContextMenuItem(ctx.page, 'coffee.png', 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    await frame.locator('.model-name', { hasText: 'SqueezeNet_fp16.onnx' }).waitFor({ timeout: TIMEOUT });
    await frame.locator('body[data-state="ready"]').waitFor({ timeout: TIMEOUT });
    assert.match(await frame.locator('.model-preprocessing').innerText(), /caffe/);
    await frame.locator('.prediction').nth(4).waitFor({ timeout: TIMEOUT });
    const top5 = await frame.locator('.prediction .label').allInnerTexts();
    assert.ok(
      top5.some((label) => /espresso|cup/i.test(label)),
      top5.join(', '),
    );
    await screenshot(ctx.page, 'panel-own-model-onnx');
  });

  it('keeps the last maps on show, under a message, when the chosen model is missing', async () => {
    const file = path.join(ctx.workspace, '.vscode', 'settings.json');
    const settings = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...settings, 'featureMaps.model': 'models/gone.onnx' }));
    const frame = webviewFrame(ctx.page);
    const message = frame.locator('.error-message', { hasText: 'gone.onnx does not exist' });
    await message.waitFor({ timeout: TIMEOUT });
    assert.ok((await frame.locator('.channel-grid .tile canvas').count()) > 0, 'the last grid is still there');
    await screenshot(ctx.page, 'panel-missing-model-banner');
  });
});

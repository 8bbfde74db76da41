// The classic Keras view in the editor: pick "VGG16 ImageNet (no top)" in Select Model…, watch
// it download (from a local stand-in for Keras' server), then see the seed's block1_conv1 3×3 grid.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ctx } from '../vscode/context.mjs';
import { clickContextMenuItem, runCommand, screenshot, waitForPaintedGrid, webviewFrame } from '../vscode/harness.mjs';

const TIMEOUT = 90_000;
const VGG16_FILE = 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5';

describe('The model catalogue: VGG16 ImageNet downloaded on first use', () => {
  before(function () {
    if (!ctx.mirror) this.skip();
  });
  after(() => fs.rmSync(path.join(ctx.workspace, '.vscode'), { recursive: true, force: true }));

  const cacheFile = () =>
    path.join(ctx.server.userDataDir, 'User', 'globalStorage', 'feature-maps.feature-maps', 'models', VGG16_FILE);

  it('downloads VGG16 with MB progress, then shows the seed’s layers with a 3×3 block1_conv1 grid', async () => {
    await ctx.reload();
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="ready"]').waitFor({ timeout: TIMEOUT });
    assert.equal(fs.existsSync(cacheFile()), false, 'not downloaded before it is chosen');

    await runCommand(ctx.page, 'Feature Maps: Select Model…');
    const row = ctx.page.locator('.quick-input-list .monaco-list-row', { hasText: 'VGG16 ImageNet (no top)' });
    await row.first().waitFor({ timeout: 20_000 });
    assert.match(await row.first().innerText(), /download 56\.2 MB/);
    await screenshot(ctx.page, 'catalog-select-model');
    await row.first().click();

    // The notification counts megabytes while the file arrives.
    const notification = ctx.page.locator('.notification-toast', { hasText: 'Downloading VGG16 ImageNet (no top)' });
    await notification.first().waitFor({ timeout: 20_000 });
    await ctx.page
      .locator('.notification-toast', { hasText: /[1-9]\d*\.\d of 56\.2 MB/ })
      .first()
      .waitFor({ timeout: 20_000 });
    await screenshot(ctx.page, 'catalog-download-progress');

    await frame.locator('.model-name', { hasText: 'VGG16 ImageNet (no top)' }).waitFor({ timeout: TIMEOUT });
    await frame.locator('body[data-state="ready"]').waitFor({ timeout: TIMEOUT });
    assert.ok(fs.statSync(cacheFile()).size > 50e6, 'the weights are in the extension’s global storage');
    const transfers = ctx.mirror.requests.filter((r) => r.path.endsWith(VGG16_FILE));
    assert.equal(transfers.length, 1, 'downloaded once');

    // The seed's view: its three layers listed, block1_conv1 selected, 9 channels.
    const listed = await frame.locator('.layer-row').evaluateAll((rows) => rows.map((r) => r.dataset.layer));
    assert.deepEqual(listed, ['block1_conv1', 'block2_conv1', 'block3_conv1']);
    assert.equal(await frame.locator('.layer-row[aria-selected="true"]').getAttribute('data-layer'), 'block1_conv1');
    assert.match(await frame.locator('.model-preprocessing').innerText(), /caffe/);
    // All nine maps are drawn (their tiles come from the engine process a moment after the result).
    await waitForPaintedGrid(ctx.page, 'chelsea.png', 9);
    await screenshot(ctx.page, 'catalog-vgg16-block1_conv1');

    // The pass stopped at block3_conv1; a deeper layer is computed when first shown.
    await frame.locator('.show-all-toggle').check();
    await frame.locator('.layer-row[data-layer="block5_conv3"]').click();
    await frame.locator('.layer-row[data-layer="block5_conv3"][aria-selected="true"]').waitFor({ timeout: TIMEOUT });
    const deep = frame.locator('.channel-grid .tile canvas');
    await deep.nth(8).waitFor({ timeout: TIMEOUT });
    assert.match(
      await frame
        .locator('.channel-grid')
        .innerText()
        .catch(() => ''),
      /#8/,
    );
    assert.match(await frame.locator('body').innerText(), /14×14×512/);
    await frame.locator('.show-all-toggle').uncheck();
  });

  it('says why a download failed, leaves nothing behind, and keeps the current model', async () => {
    // The stand-in serves VGG16 only: ResNet50's file is a 404, as on a mirror that lacks it.
    await runCommand(ctx.page, 'Feature Maps: Select Model…');
    const row = ctx.page.locator('.quick-input-list .monaco-list-row', { hasText: 'ResNet50 ImageNet' });
    await row.first().waitFor({ timeout: 20_000 });
    await row.first().click();
    const toast = ctx.page.locator('.notification-toast', {
      hasText: /Cannot download resnet50_weights_tf_dim_ordering_tf_kernels\.h5: the server answered HTTP 404/,
    });
    await toast.first().waitFor({ timeout: 30_000 });
    assert.match(await toast.first().innerText(), /keeps its current model/);
    await screenshot(ctx.page, 'catalog-download-failed');
    const models = path.dirname(cacheFile());
    assert.deepEqual(fs.readdirSync(models), [VGG16_FILE], 'no partial ResNet50 file');
    const frame = webviewFrame(ctx.page);
    assert.equal(await frame.locator('.model-name').innerText(), 'VGG16 ImageNet (no top)');
    await toast.first().locator('.codicon-notifications-clear, .codicon-close').first().click();
  });

  it('lists the download with its size in Manage Downloaded Models…, and deletes it', async () => {
    await runCommand(ctx.page, 'Feature Maps: Manage Downloaded Models…');
    const row = ctx.page.locator('.quick-input-list .monaco-list-row', { hasText: 'VGG16 ImageNet (no top)' });
    await row.first().waitFor({ timeout: 20_000 });
    assert.match(await row.first().innerText(), /56\.2 MB · in use/);
    await screenshot(ctx.page, 'catalog-manage-models');
    await row.first().click();
    await ctx.page.keyboard.press('Enter');
    const dialog = ctx.page.locator('.monaco-dialog-box', { hasText: 'Delete VGG16 ImageNet (no top) (56.2 MB)?' });
    await dialog.waitFor({ timeout: 20_000 });
    await dialog.locator('.monaco-button', { hasText: 'Delete' }).click();
    const deadline = Date.now() + 10_000;
    while (fs.existsSync(cacheFile()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(fs.existsSync(cacheFile()), false, 'the file is gone from global storage');
  });
});

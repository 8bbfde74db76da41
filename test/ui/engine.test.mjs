// The engine runs in a process of its own: when it dies, the panel says so in plain words, the
// next right-click works, and VS Code goes on as if nothing happened. The dev code-server runs
// with FEATURE_MAPS_TEST_FAULTS=1, so that an image named crash-the-engine.png aborts the
// engine process (as a native crash in a model would).
import assert from 'node:assert/strict';
import { ctx } from '../vscode/context.mjs';
import {
  clickContextMenuItem,
  explorerRow,
  reloadWindow,
  screenshot,
  waitForPaintedGrid,
  webviewFrame,
} from '../vscode/harness.mjs';

const TIMEOUT = 60_000;
const CRASHING = 'crash-the-engine.png';

async function errorMessage(frame) {
  await frame.locator('body[data-state="error"]').waitFor({ timeout: TIMEOUT });
  return frame.locator('.error-message').first().innerText();
}

describe('When the engine process dies', () => {
  it('the panel says so, the next image works, and the workbench still responds', async () => {
    await ctx.reload();
    await clickContextMenuItem(ctx.page, CRASHING, 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    const message = await errorMessage(frame);
    assert.match(
      message,
      /^The feature-map engine crashed \(signal SIGABRT\) while computing the feature maps of crash-the-engine\.png/,
    );
    assert.match(message, /VS Code and your other extensions are not affected/);
    await screenshot(ctx.page, 'panel-engine-crashed');

    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    await waitForPaintedGrid(ctx.page, 'chelsea.png', 16);

    // The workbench: a file opens in an editor.
    await explorerRow(ctx.page, 'notes.txt').dblclick();
    await ctx.page.locator('.editor-instance .view-lines', { hasText: 'Not an image' }).waitFor({ timeout: 20_000 });
  });

  it('a panel restored after a reload does not run the pass that crashed the engine until you ask', async () => {
    await clickContextMenuItem(ctx.page, CRASHING, 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    assert.match(await errorMessage(frame), /engine crashed/);
    await reloadWindow(ctx.page, { timeoutMs: TIMEOUT });
    await ctx.page
      .locator('.tabs-container .tab', { hasText: `Feature Maps: ${CRASHING}` })
      .waitFor({ timeout: TIMEOUT });
    const restored = webviewFrame(ctx.page);
    assert.match(
      await errorMessage(restored),
      /^Not run again after the reload: last time, this image with this model stopped the engine. The feature-map engine crashed \(signal SIGABRT\) while computing the feature maps of crash-the-engine\.png with the bundled MobileNetV2\. Retry runs it again\.$/,
    );
    await screenshot(ctx.page, 'panel-restored-after-engine-crash');
    // Asked for: it runs (and crashes) again.
    await restored.locator('button.retry').click();
    await restored
      .locator('.error-message', { hasText: 'The feature-map engine crashed' })
      .waitFor({ timeout: TIMEOUT });
    // And a good image clears the panel of it.
    await clickContextMenuItem(ctx.page, 'coffee.png', 'Show Feature Maps');
    await waitForPaintedGrid(ctx.page, 'coffee.png', 16);
  });
});

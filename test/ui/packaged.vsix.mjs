// Smoke test of the packaged extension: the .vsix installed into a fresh code-server, used like
// a person would. Runs from test/vscode/run.mjs (ctx.mode === 'vsix'), in Restricted Mode, on a
// folder whose .vscode/settings.json names its own model (SqueezeNet).
import assert from 'node:assert/strict';
import { ctx } from '../vscode/context.mjs';
import { clickContextMenuItem, screenshot, webviewFrame } from '../vscode/harness.mjs';

describe('Packaged extension (.vsix), in Restricted Mode', () => {
  it('shows feature maps of chelsea.png from the explorer menu, with the bundled model', async () => {
    await ctx.page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).waitFor({ timeout: 30_000 });
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="ready"], body[data-state="error"]').waitFor({ timeout: 120_000 });
    await screenshot(ctx.page, 'vsix-feature-maps-restricted-mode');
    const state = await frame.locator('body').getAttribute('data-state');
    const error = state === 'error' ? await frame.locator('.error-message').innerText() : '';
    assert.equal(state, 'ready', `webview in state ${state}: ${error}`);
    assert.ok((await frame.locator('.channel-grid .tile').count()) > 0, 'no tiles');
    // The package's own ONNX Runtime ran it (the linux-x64 binding it carries), on the CPU.
    assert.match(await frame.locator('.elapsed').innerText(), /· onnxruntime · CPU$/);
    // The workspace's own model is not opened in an untrusted folder, and the panel says why.
    assert.equal(await frame.locator('.model-name').innerText(), 'MobileNetV2 (bundled)');
    assert.equal(
      await frame.locator('.model-notice').innerText(),
      "Restricted Mode: this workspace's featureMaps.model is ignored until you trust the folder.",
    );
  });
});

// Smoke test of the packaged extension: the .vsix installed into a fresh code-server, used like
// a person would. Runs from test/vscode/run.mjs (ctx.mode === 'vsix').
import assert from 'node:assert/strict';
import { ctx } from '../vscode/context.mjs';
import { clickContextMenuItem, screenshot, webviewFrame } from '../vscode/harness.mjs';

describe('Packaged extension (.vsix)', () => {
  it('shows feature maps of chelsea.png from the explorer menu', async () => {
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="ready"], body[data-state="error"]').waitFor({ timeout: 120_000 });
    await screenshot(ctx.page, 'vsix-feature-maps');
    const state = await frame.locator('body').getAttribute('data-state');
    const error = state === 'error' ? await frame.locator('.error-message').innerText() : '';
    assert.equal(state, 'ready', `webview in state ${state}: ${error}`);
    assert.ok((await frame.locator('.channel-grid .tile').count()) > 0, 'no tiles');
  });
});

// Example UI test: a person right-clicks files in the explorer.
import assert from 'node:assert/strict';
import { ctx } from '../vscode/context.mjs';
import { contextMenuItems, rightClickExplorerItem, screenshot } from '../vscode/harness.mjs';

describe('Explorer context menu', () => {
  afterEach(async () => {
    await ctx.page.keyboard.press('Escape');
  });

  it('offers "Show Feature Maps" on an image', async () => {
    // Retries until the extension's menu item has appeared (2–3 s after load).
    const items = await rightClickExplorerItem(ctx.page, 'chelsea.png', { waitFor: 'Show Feature Maps' });
    await screenshot(ctx.page, 'explorer-menu-image');
    assert.ok(items.includes('Show Feature Maps'), JSON.stringify(items));
  });

  it('does not offer it on a text file', async () => {
    await rightClickExplorerItem(ctx.page, 'notes.txt');
    const items = await contextMenuItems(ctx.page);
    assert.ok(items.length > 0, 'no context menu');
    assert.ok(!items.includes('Show Feature Maps'), JSON.stringify(items));
  });
});

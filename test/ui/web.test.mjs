// VS Code for the Web without a remote (vscode.dev): the extension host runs in the browser, with
// no Node, and the extension's `browser` entry says it cannot run there. code-server is a remote
// host, so the extension normally runs on its Node; VS Code's own `remote.extensionKind` setting
// makes it run in the browser's extension host instead, as on vscode.dev.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ctx } from '../vscode/context.mjs';
import { clickContextMenuItem, runCommand, screenshot, webviewFrame } from '../vscode/harness.mjs';

describe('VS Code for the Web, without a remote', () => {
  const settingsFile = () => path.join(ctx.server.userDataDir, 'User', 'settings.json');
  let saved;
  before(async () => {
    saved = fs.readFileSync(settingsFile(), 'utf8');
    const settings = { ...JSON.parse(saved), 'remote.extensionKind': { 'feature-maps.feature-maps': ['web'] } };
    fs.writeFileSync(settingsFile(), JSON.stringify(settings, null, 2));
    await ctx.reload();
  });
  after(async () => {
    fs.writeFileSync(settingsFile(), saved);
    await ctx.reload();
  });

  it('shows a panel restored from an earlier window as a page that says why', async function () {
    // The earlier tests left a Feature Maps panel open: the window restores it, here in the browser.
    const tab = ctx.page.locator('.tabs-container .tab', { hasText: 'Feature Maps' });
    if ((await tab.count()) === 0) this.skip();
    await tab.first().click();
    const message = webviewFrame(ctx.page).locator('.not-supported');
    await message.waitFor({ timeout: 30_000 });
    assert.match(await message.innerText(), /^Feature Maps does not run in VS Code for the Web without a remote/);
    await screenshot(ctx.page, 'web-not-supported-restored-panel');
    await runCommand(ctx.page, 'View: Close All Editors');
  });

  it('says in a notification that it needs Node, instead of opening a broken panel', async () => {
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const toast = ctx.page.locator('.notification-toast', {
      hasText: 'Feature Maps does not run in VS Code for the Web',
    });
    await toast.waitFor({ timeout: 30_000 });
    assert.match(await toast.innerText(), /Remote - SSH, WSL, Dev Containers, Codespaces/);
    await screenshot(ctx.page, 'web-not-supported-notification');
    assert.equal(
      await ctx.page.locator('.tabs-container .tab', { hasText: 'Feature Maps' }).count(),
      0,
      'no panel was opened',
    );
  });
});

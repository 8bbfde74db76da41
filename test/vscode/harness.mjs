// Runs a real VS Code (code-server 4.100.3, installed by tools/setup-code-server.sh)
// and drives its web workbench with playwright-core + Debian's Chromium.
// Recipe and pitfalls: /work/shared/guides/VSCODE-TESTS.md.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const codeServerEntry = path.join(repoRoot, 'tools/code-server/node_modules/code-server/out/node/entry.js');
export const resultsDir = path.join(repoRoot, 'test-results');

const setupMarker = path.join(repoRoot, 'tools/code-server/node_modules/.feature-maps-setup-done');

/** Settings that keep the workbench quiet: no walkthroughs, tips, chat or update popups over the things tests click. */
export const quietSettings = {
  'workbench.startupEditor': 'none',
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'workbench.layoutControl.enabled': false,
  'window.commandCenter': false,
  'chat.commandCenter.enabled': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'update.showReleaseNotes': false,
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'git.enabled': false,
  'editor.minimap.enabled': false,
  'files.hotExit': 'off',
  'workbench.editor.enablePreview': false,
};

/** Workspace Trust on, with no prompt: an untrusted folder opens in Restricted Mode. */
const restrictedModeSettings = {
  'security.workspace.trust.enabled': true,
  'security.workspace.trust.startupPrompt': 'never',
  'security.workspace.trust.emptyWindow': false,
};

/** Every process group this module started and has not stopped yet (killed on exit as a last resort). */
const liveGroups = new Set();
process.on('exit', () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Throws with a clear message when tools/setup-code-server.sh has not run. */
export function assertCodeServerInstalled() {
  if (!fs.existsSync(setupMarker) || !fs.existsSync(codeServerEntry)) {
    throw new Error(
      `code-server is not set up (${path.relative(repoRoot, setupMarker)} missing). Run: bash tools/setup-code-server.sh`,
    );
  }
}

/** The Chromium to drive: $CHROMIUM_PATH or Debian's `chromium` on PATH. */
export function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    throw new Error('chromium is not installed: apt-get install -y chromium');
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts code-server in its own process group with every file it writes in a temp dir.
 * code-server has no --extensionDevelopmentPath flag: the path is kept on the returned
 * object and openWorkbench() passes it in the `payload` URL parameter.
 * @param {{ workspace: string, extensionsDir?: string, env?: Record<string,string>,
 *   extensionDevelopmentPath?: string, settings?: object, label?: string, port?: number,
 *   host?: string, timeoutMs?: number }} options
 */
export async function startCodeServer({
  workspace,
  extensionsDir,
  env = {},
  extensionDevelopmentPath,
  settings = {},
  label = 'code-server',
  port,
  host = '127.0.0.1',
  timeoutMs = 90_000,
  // false: Workspace Trust is off (every folder trusted); true: it is on and the folder is not
  // trusted, so the workbench is in Restricted Mode (without the modal prompt).
  restrictedMode = false,
}) {
  assertCodeServerInstalled();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-code-server-'));
  const userDataDir = path.join(tmp, 'user-data');
  const extDir = extensionsDir ?? path.join(tmp, 'extensions');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  fs.mkdirSync(extDir, { recursive: true });
  fs.writeFileSync(
    path.join(userDataDir, 'User', 'settings.json'),
    JSON.stringify({ ...quietSettings, ...(restrictedMode ? restrictedModeSettings : {}), ...settings }, null, 2),
  );
  port ??= await freePort();
  fs.writeFileSync(path.join(tmp, 'config.yaml'), `bind-addr: ${host}:${port}\nauth: none\ncert: false\n`);

  fs.mkdirSync(path.join(resultsDir, 'logs'), { recursive: true });
  const logFile = path.join(resultsDir, 'logs', `${label}.log`);
  const log = fs.openSync(logFile, 'w');
  const args = [
    codeServerEntry,
    '--config',
    path.join(tmp, 'config.yaml'),
    '--auth',
    'none',
    '--bind-addr',
    `${host}:${port}`,
    '--disable-telemetry',
    '--disable-update-check',
    ...(restrictedMode ? [] : ['--disable-workspace-trust']),
    '--disable-getting-started-override',
    '--ignore-last-opened',
    '--user-data-dir',
    userDataDir,
    '--extensions-dir',
    extDir,
    workspace,
  ];
  // detached: setsid(), so the child leads a new process group we can kill as a whole.
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', log, log],
    env: {
      ...process.env,
      XDG_CONFIG_HOME: path.join(tmp, 'config'),
      XDG_DATA_HOME: path.join(tmp, 'data'),
      XDG_CACHE_HOME: path.join(tmp, 'cache'),
      TMPDIR: tmp,
      ...env,
    },
  });
  fs.closeSync(log);
  const pgid = child.pid;
  liveGroups.add(pgid);
  let exited = null;
  const exitPromise = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );

  let stopped = false;
  async function stop() {
    if (stopped) return;
    stopped = true;
    try {
      process.kill(-pgid, 'SIGTERM');
    } catch {
      // group already gone
    }
    await Promise.race([exitPromise, sleep(5000)]);
    try {
      process.kill(-pgid, 'SIGKILL'); // leftovers (file watcher, extension host)
    } catch {
      // none left
    }
    liveGroups.delete(pgid);
    fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  }

  const url = `http://${host}:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) {
      liveGroups.delete(pgid);
      throw new Error(
        `code-server exited (${JSON.stringify(exited)}) before it answered; log: ${logFile}\n` +
          fs.readFileSync(logFile, 'utf8').slice(-2000),
      );
    }
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`code-server did not answer ${url}/healthz within ${timeoutMs} ms; log: ${logFile}`);
    }
    await sleep(250);
  }
  return {
    port,
    url,
    host,
    pid: pgid,
    logFile,
    userDataDir,
    extensionsDir: extDir,
    workspace,
    extensionDevelopmentPath,
    stop,
  };
}

/** Installs a .vsix into an extensions dir with code-server's own CLI (no network needed). */
export function installVsix(vsixPath, extensionsDir) {
  assertCodeServerInstalled();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-install-'));
  try {
    return execFileSync(
      process.execPath,
      [
        codeServerEntry,
        '--user-data-dir',
        path.join(tmp, 'user-data'),
        '--extensions-dir',
        extensionsDir,
        '--install-extension',
        vsixPath,
        '--force',
      ],
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          XDG_CONFIG_HOME: path.join(tmp, 'config'),
          XDG_DATA_HOME: path.join(tmp, 'data'),
          TMPDIR: tmp,
        },
      },
    );
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Launches Debian's Chromium headless with a fresh profile. Returns { browser, context, page, close }. */
export async function launchBrowser({ headless = true } = {}) {
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await context.newPage();
  return {
    browser,
    context,
    page,
    async newPage() {
      const ctx = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
      return ctx.newPage();
    },
    close: () => browser.close().catch(() => {}),
  };
}

/** `vscode-remote://host:port/abs/path`: how the web workbench names a path on the server. */
export function remoteUri(server, absPath) {
  return `vscode-remote://${server.host}:${server.port}${absPath.split(path.sep).join('/')}`;
}

/** The workbench URL for a folder, with an optional `payload` (extensionDevelopmentPath etc.). */
export function workbenchUrl(server, { folder = server.workspace, payload } = {}) {
  if (!payload && server.extensionDevelopmentPath) {
    payload = [
      ['extensionDevelopmentPath', remoteUri(server, server.extensionDevelopmentPath)],
      ['skipWelcome', 'true'],
    ];
  }
  let url = `${server.url}/?folder=${encodeURIComponent(folder)}`;
  if (payload) url += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  return url;
}

/** Opens the workbench on `folder` and waits until it has rendered. */
export async function openWorkbench(page, server, { folder, payload, timeoutMs = 60_000 } = {}) {
  await page.goto(workbenchUrl(server, { folder, payload }));
  await page.locator('.monaco-workbench').waitFor({ timeout: timeoutMs });
  return page;
}

const workbenchNoise =
  /^(Resolving connection token|Resolved connection token|Creating a socket|Updating additional builtin extensions|\[Service Worker\]|ChatSessionStore:|getaddrinfo ENOTFOUND open-vsx\.org|\[lifecycle\] Long running operations during shutdown)/;

/**
 * Runs a compiled Mocha suite inside the extension host, like extensionTestsPath does under
 * Electron. Prints the suite's output; resolves with { code, passes, failures, log }.
 * `passes`/`failures` come from the line test/integration/index.ts prints (null if absent).
 */
export async function runInHostSuite({
  server,
  extensionPath,
  testsPath,
  folder = server.workspace,
  browser,
  timeoutMs = 300_000,
  print = (line) => console.log(line),
}) {
  const own = browser ? null : await launchBrowser();
  const b = browser ?? own.browser;
  const context = await b.newContext({ viewport: { width: 1600, height: 1000 } });
  const lines = [];
  try {
    const page = await context.newPage();
    let resolveExit;
    const exit = new Promise((r) => (resolveExit = r));
    let skippingStack = false;
    await page.exposeFunction('codeAutomationLog', (type, args) => {
      const text = Array.isArray(args) ? args.join(' ') : String(args);
      for (const line of text.split('\n')) {
        lines.push(line);
        // The workbench's own start-up chatter is kept in the log file, not printed.
        if (workbenchNoise.test(line)) skippingStack = true;
        else if (!(skippingStack && /^\s+at /.test(line))) {
          skippingStack = false;
          print(line);
        }
      }
    });
    await page.exposeFunction('codeAutomationExit', (code) => resolveExit(code));
    page.on('pageerror', (err) => print(`[page error] ${err.message}`));
    const payload = [
      ['extensionDevelopmentPath', remoteUri(server, extensionPath)],
      ['extensionTestsPath', remoteUri(server, testsPath)],
      ['enableProposedApi', ''],
      ['skipWelcome', 'true'],
    ];
    await page.goto(workbenchUrl(server, { folder, payload }));
    let timer;
    const timeout = new Promise((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    });
    const code = await Promise.race([exit, timeout]);
    clearTimeout(timer);
    if (code === 'timeout') {
      print(`in-host suite did not finish within ${timeoutMs} ms`);
      await screenshot(page, 'in-host-timeout').catch(() => {});
    }
    fs.mkdirSync(path.join(resultsDir, 'logs'), { recursive: true });
    fs.writeFileSync(path.join(resultsDir, 'logs', 'in-host-suite.log'), lines.join('\n') + '\n');
    const summary = lines
      .map((l) => /FEATURE_MAPS_RESULTS (\{.*\})/.exec(l))
      .filter(Boolean)
      .map((m) => JSON.parse(m[1]))
      .pop();
    return {
      code: code === 'timeout' ? 1 : Number(code),
      passes: summary?.passes ?? null,
      failures: summary?.failures ?? null,
      log: lines,
    };
  } finally {
    await context.close().catch(() => {});
    if (own) await own.close();
  }
}

// ---------- Driving the UI like a person ----------

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The explorer row of a file or folder, by its exact name. */
export function explorerRow(page, name) {
  return page
    .locator('.explorer-folders-view .monaco-list-row')
    .filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(name)}$`) }) });
}

/** Opens an explorer folder; one already open stays open (a click on it would close it). */
export async function expandFolder(page, name, timeoutMs = 60_000) {
  const row = explorerRow(page, name);
  await row.waitFor({ timeout: timeoutMs });
  if ((await row.getAttribute('aria-expanded')) !== 'true') await row.click();
}

/** The context menu's action labels, in order (separators left out). */
export async function contextMenuItems(page) {
  const labels = page.locator('.context-view .monaco-menu .action-label');
  await labels.first().waitFor({ timeout: 5000 });
  const texts = await labels.allInnerTexts();
  return texts.map((t) => t.trim()).filter((t) => t.length > 0);
}

/**
 * Closes an open context menu, even when the keyboard focus is elsewhere (a webview keeps
 * Escape to itself): the key goes to the menu's first item.
 */
export async function closeContextMenu(page) {
  const menu = page.locator('.context-view .monaco-menu');
  if (!(await menu.isVisible())) return;
  await page.keyboard.press('Escape');
  await menu.waitFor({ state: 'hidden', timeout: 1000 }).catch(async () => {
    await page.locator('.context-view .monaco-menu .action-label').first().press('Escape');
    await menu.waitFor({ state: 'hidden', timeout: 2000 });
  });
}

/**
 * Right-clicks an explorer item and returns the menu's labels. With `waitFor`, retries
 * (Escape, right-click again) until that label is in the menu: extension menu items
 * appear 2–3 s after the workbench loads. The menu is left open.
 */
export async function rightClickExplorerItem(page, name, { waitFor, timeoutMs = 30_000 } = {}) {
  const row = explorerRow(page, name);
  await row.waitFor({ timeout: timeoutMs });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await closeContextMenu(page); // one left open (by an earlier test) would take the click
    await row.click({ button: 'right' });
    let items = [];
    try {
      items = await contextMenuItems(page);
    } catch {
      // no menu yet
    }
    if (!waitFor || items.includes(waitFor)) return items;
    if (Date.now() > deadline) {
      throw new Error(`context menu of ${name} has no "${waitFor}" after ${timeoutMs} ms: ${JSON.stringify(items)}`);
    }
    await sleep(500);
  }
}

/**
 * Right-clicks an explorer item and clicks a context menu item (retrying until it shows up).
 * A click in the first moments after the menu opens is ignored by the workbench, so it
 * hovers, waits a little, clicks, and presses Enter on the hovered item if the menu stayed open.
 */
export async function clickContextMenuItem(page, name, label, options = {}) {
  await rightClickExplorerItem(page, name, { ...options, waitFor: label });
  const menu = page.locator('.context-view .monaco-menu');
  const item = menu.locator('.action-label', { hasText: new RegExp(`^\\s*${escapeRegExp(label)}\\s*$`) }).first();
  await item.hover();
  await sleep(400);
  // When the menu item runs is when the browser delivers the mouse-up (the menu acts on it), not
  // when Playwright starts its click (which first waits for the item to be stable for two frames).
  await page.evaluate(() => {
    window.__menuMouseUpAt = undefined;
    window.addEventListener('mouseup', () => (window.__menuMouseUpAt = Date.now()), { capture: true, once: true });
  });
  const requestedAt = Date.now();
  await item.click();
  try {
    await menu.waitFor({ state: 'hidden', timeout: 2000 });
  } catch {
    await item.hover();
    await page.keyboard.press('Enter');
    await menu.waitFor({ state: 'hidden', timeout: 5000 });
  }
  return (await page.evaluate(() => window.__menuMouseUpAt)) ?? requestedAt;
}

/**
 * Runs `command`, waits for its quick pick's row that has `text`, calls `beforeClick` (a
 * screenshot, say) and clicks the row. Runs the command again if the pick closes before the
 * click lands: a panel the window restores takes the focus when its page loads, and a quick pick
 * closes when it loses the focus, sometimes between the row showing and the click.
 */
export async function pickQuickPickRow(page, command, text, { timeoutMs = 30_000, beforeClick } = {}) {
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: text }).first();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await runCommand(page, command);
    try {
      await row.waitFor({ state: 'visible', timeout: 5000 });
      await beforeClick?.();
      await row.click({ timeout: 5000 });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await page.keyboard.press('Escape');
    }
  }
}

/**
 * Developer: Reload Window, as a person runs it (the command saves the window's state first), and
 * the new workbench. The wait for the page's load starts before the command: a fast reload
 * would otherwise load before anyone listens.
 */
export async function reloadWindow(page, { timeoutMs = 60_000 } = {}) {
  const loaded = page.waitForEvent('load', { timeout: timeoutMs });
  // Not awaited yet: a failing command must not leave this promise's rejection unhandled.
  loaded.catch(() => undefined);
  await runCommand(page, 'Developer: Reload Window');
  await loaded;
  await page.locator('.monaco-workbench').waitFor({ timeout: timeoutMs });
}

/** Runs a command from the palette by its full title ("Category: Title"), like a person: F1, type, Enter. */
export async function runCommand(page, title, { timeoutMs = 30_000 } = {}) {
  const input = page.locator('.quick-input-widget input');
  const row = page.locator('.quick-input-list .monaco-list-row', {
    has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(title)}$`) }),
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Keys pressed while a webview (ours, or the image preview) has focus never reach the
    // workbench: give the focus to the side bar's title first, as a click there would.
    const inWebview = await page.evaluate(() => document.activeElement?.tagName === 'IFRAME');
    if (inWebview) await page.locator('.part.sidebar .composite.title').click();
    try {
      await page.keyboard.press('F1');
      await input.waitFor({ timeout: 3000 });
      await input.fill(`>${title}`);
      await row.first().waitFor({ timeout: 3000 });
      await row.first().click();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`command "${title}" not found in the palette: ${err.message}`);
      await page.keyboard.press('Escape');
      await sleep(500);
    }
  }
}

/** The content frame of our visible webview (not, say, the image preview's beside it). */
export function webviewFrame(page, extensionId = 'feature-maps.feature-maps') {
  return page.frameLocator(`iframe.webview.ready[src*="extensionId=${extensionId}"]`).frameLocator('#active-frame');
}

/**
 * In the webview: watches for `count` painted tiles of the current layer of `fileName`'s grid at
 * every animation frame (one watch per `id`); returns when (Date.now()) it first saw them, or
 * undefined. Self-contained: the page runs it from its source.
 */
function paintedWatch(_body, { fileName, count, id }) {
  const painted = () => {
    const name = document.querySelector('.file-name')?.textContent;
    const canvases = [...document.querySelectorAll('.channel-grid .tile canvas')];
    return (
      document.body.dataset.state === 'ready' &&
      name === fileName &&
      canvases.length === count &&
      canvases.every((c) => c.getContext('2d').getImageData(0, 0, 1, 1).data[3] === 255)
    );
  };
  const key = id;
  const seen = (window.__paintedAt ??= {});
  if (!(key in seen)) {
    seen[key] = undefined;
    const check = () => {
      if (painted()) seen[key] = Date.now();
      else requestAnimationFrame(check);
    };
    check();
  }
  // Frames do not come while the webview is hidden: each poll checks too.
  if (seen[key] === undefined && painted()) seen[key] = Date.now();
  return seen[key];
}

/**
 * Polls the webview every ~10 ms until `count` tiles of `fileName`'s grid are painted; returns
 * when (Date.now()) the webview first painted them, as seen inside it at an animation frame (the
 * polling itself lags by a round trip to the webview).
 */
export async function waitForPaintedGrid(page, fileName, count, { timeoutMs = 120_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  const id = `${fileName}:${count}:${Math.random()}`;
  for (;;) {
    const painted = await webviewFrame(page)
      .locator('body')
      .evaluate(paintedWatch, { fileName, count, id })
      .catch(() => undefined);
    if (painted !== undefined && painted !== null) return painted;
    if (Date.now() > deadline) throw new Error(`no painted grid for ${fileName} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The newest log of the extension's "Feature Maps" output channel under code-server's user data
 * (each window reload starts another), or undefined before the extension has logged.
 */
export function extensionLog(server) {
  const found = [];
  const walk = (dir) => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name === 'Feature Maps.log') found.push({ full, mtime: fs.statSync(full).mtimeMs });
    }
  };
  walk(path.join(server.userDataDir, 'logs'));
  return found.sort((a, b) => b.mtime - a.mtime)[0]?.full;
}

/** Saves a full-window screenshot to test-results/screenshots/<name>.png and returns its path. */
export async function screenshot(page, name) {
  const dir = path.join(resultsDir, 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name.replace(/[^\w.-]+/g, '_')}.png`);
  await page.screenshot({ path: file });
  return file;
}

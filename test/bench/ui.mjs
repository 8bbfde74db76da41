// The benchmark's real-UI part: code-server + Chromium, the extension from the repo, a person's
// clicks. For each model: right-click → Show Feature Maps → first grid painted, cold (first
// use in a folder), warm (other images), cold again in a new window on that folder (the engine
// started early, EngineWarmUp), and layer click → grid repainted (timed inside the webview).
// Also the resident memory of the window's extension host (ours active but no engine yet, as
// its engine starts, after the run, peak) and of the engine process it forks, from
// /proc, and the bytes sent to the webview per image (from the extension's log). Prints one JSON
// line. Used by test/bench/run.mjs.
//   node test/bench/ui.mjs [--model bundled|vgg16] [--weights FILE]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import {
  clickContextMenuItem,
  extensionLog,
  launchBrowser,
  openWorkbench,
  repoRoot,
  startCodeServer,
  waitForPaintedGrid,
  webviewFrame,
} from '../vscode/harness.mjs';

const { values } = parseArgs({
  options: { model: { type: 'string', default: 'bundled' }, weights: { type: 'string' } },
});
const IMAGES = ['chelsea.png', 'coffee.png', 'astronaut.png', 'horse.png', 'palette_color.png'];
const fixtures = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'images');
const TIMEOUT = 120_000;

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const r = (x) => Math.round(x);
  return { min: r(sorted[0]), median: r(median), max: r(sorted.at(-1)), n: sorted.length };
}

/** Ms from the click (Date.now() `clickedAt`) until the webview painted the grid for `fileName`. */
async function waitPainted(page, fileName, count, clickedAt) {
  const paintedAt = await waitForPaintedGrid(page, fileName, count, { timeoutMs: TIMEOUT });
  return paintedAt - clickedAt;
}

/** The newest window's extension log ('' before it has one). */
function readLog(server) {
  const file = extensionLog(server);
  return file ? fs.readFileSync(file, 'utf8') : '';
}

/**
 * Waits for a line matching `pattern` in the extension's log of a window newer than `previousLog`;
 * returns when (Date.now()) it saw it.
 */
async function waitForLog(server, previousLog, pattern, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const file = extensionLog(server);
    if (file && file !== previousLog && pattern.test(fs.readFileSync(file, 'utf8'))) return Date.now();
    if (Date.now() > deadline) {
      const text = file && file !== previousLog ? fs.readFileSync(file, 'utf8') : '(none)';
      throw new Error(`no ${pattern} in the new window's log after ${timeoutMs} ms; its log:\n${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Clicks each layer row in the webview and times click → all tiles repainted, inside the frame. */
function layerSwitchInFrame(body, { layers, count }) {
  const painted = () => {
    const canvases = [...document.querySelectorAll('.channel-grid .tile canvas')];
    return (
      canvases.length === count && canvases.every((c) => c.getContext('2d').getImageData(0, 0, 1, 1).data[3] === 255)
    );
  };
  const one = (layer) =>
    new Promise((resolve, reject) => {
      const row = document.querySelector(`.layer-row[data-layer="${layer}"]`);
      if (!row) return reject(new Error(`no row for ${layer}`));
      const grid = document.querySelector('.channel-grid');
      const started = performance.now();
      row.click();
      const check = () => {
        const selected = document.querySelector('.layer-row[aria-selected="true"]')?.dataset.layer === layer;
        if (selected && painted() && grid.getAttribute('aria-busy') !== 'true') resolve(performance.now() - started);
        else requestAnimationFrame(check);
      };
      requestAnimationFrame(check);
    });
  return (async () => {
    const times = [];
    for (const layer of layers) times.push(await one(layer));
    return times;
  })();
}

/**
 * The peer for the extension host's longest block: an idle Node process on the same machine,
 * whose only work is a 5 ms timer. Its longest gap is how long any thread waited for a core.
 */
function startIdleProbe() {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `let last = performance.now(), worst = 0;
       setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last); last = now; }, 5);
       process.on('message', () => { process.send(Math.round(worst)); process.exit(0); });
       process.on('disconnect', () => process.exit(0));`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
  );
  return {
    worstGapMs: () =>
      new Promise((resolve) => {
        child.once('message', resolve);
        child.send('stop');
      }),
  };
}

/** Every process's parent, from /proc (Linux). */
function parents() {
  const parentOf = new Map();
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      // The command name (field 2) may hold spaces and parentheses: the parent is after the last ')'.
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      parentOf.set(Number(pid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  return parentOf;
}

/** The processes under `root` (children, their children…). */
function descendants(root) {
  const parentOf = parents();
  const under = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, parent] of parentOf) {
      if (under.has(parent) && !under.has(pid)) {
        under.add(pid);
        grew = true;
      }
    }
  }
  under.delete(root);
  return [...under];
}

/** A process's direct children (each of its threads lists those it started). */
function children(pid) {
  const found = [];
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const list = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (list) found.push(...list.split(' ').map(Number));
    }
  } catch {
    // gone (or a thread ended while we read)
  }
  return found;
}

function commandLine(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** A process's resident memory now (VmRSS) and its peak (VmHWM), in MB; undefined once it is gone. */
function memoryMB(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name) => Math.round(Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) / 1024);
    return { rss: field('VmRSS'), peak: field('VmHWM') };
  } catch {
    return undefined;
  }
}

/**
 * Watches the processes under code-server every 100 ms: the window's extension host (found once,
 * by a walk of /proc), and the engine process our extension forks from it (dist/engine.js, a
 * direct child: cheap to look up, so the watch costs the cores next to nothing). Keeps the extension host's memory
 * when the engine first appears (the extension is active, no model loaded yet), and each engine
 * process's last figures (a recycled or crashed engine is replaced by a new pid).
 */
function watchProcesses(serverPid) {
  let host;
  let hostAtEngineStart;
  const engines = new Map();
  const sample = () => {
    host ??= descendants(serverPid).find((pid) => commandLine(pid).includes('--type=extensionHost'));
    if (host === undefined) return;
    for (const pid of children(host)) {
      if (!commandLine(pid).includes(path.join('dist', 'engine.js'))) continue;
      const memory = memoryMB(pid);
      if (!memory) continue;
      if (engines.size === 0) hostAtEngineStart = memoryMB(host);
      engines.set(pid, memory);
    }
  };
  const timer = setInterval(sample, 100);
  return {
    /** The extension host's memory now. */
    host: () => (sample(), host === undefined ? undefined : memoryMB(host)),
    hostAtEngineStart: () => hostAtEngineStart,
    /** The engine process's memory now (the last one started), its peak over every one, how many. */
    engine() {
      sample();
      const all = [...engines.values()];
      return { rss: all.at(-1)?.rss ?? null, peak: Math.max(0, ...all.map((m) => m.peak)), starts: engines.size };
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * Ends the extension hosts under code-server (pid `serverPid`), as quitting VS Code does; code-server
 * would keep a closed window's for it to reconnect, holding its workspace storage folder (a new
 * window would get another). Returns once they have exited (or after 10 s).
 */
async function endExtensionHosts(serverPid) {
  const hosts = descendants(serverPid).filter((pid) => commandLine(pid).includes('--type=extensionHost'));
  for (const pid of hosts) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (hosts.some((pid) => fs.existsSync(`/proc/${pid}`)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The extension host's memory once it has started its built-in extensions: it exists and its
 * resident memory moved less than 2 MB a second for 3 s (or 30 s have passed).
 */
async function settledHost(processes) {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const deadline = Date.now() + 30_000;
  let last = processes.host();
  let steady = 0;
  while (Date.now() < deadline) {
    await sleep(1000);
    const now = processes.host();
    steady = last && now && Math.abs(now.rss - last.rss) < 2 ? steady + 1 : 0;
    if (steady === 3) return now;
    last = now;
  }
  return last;
}

async function main() {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-ws-'));
  for (const name of IMAGES) fs.copyFileSync(path.join(fixtures, name), path.join(workspace, name));
  const catalog = values.model !== 'bundled';
  if (catalog) {
    fs.mkdirSync(path.join(workspace, '.vscode'));
    fs.writeFileSync(
      path.join(workspace, '.vscode', 'settings.json'),
      JSON.stringify({
        'featureMaps.model': `catalog:${values.model}`,
        'featureMaps.layers': [],
        'featureMaps.channels': 16,
      }),
    );
  }
  const probe = startIdleProbe();
  const server = await startCodeServer({
    workspace,
    extensionDevelopmentPath: repoRoot,
    label: 'code-server-bench',
    env: { FEATURE_MAPS_MONITOR_MAIN_THREAD: '1' },
  });
  let browser = await launchBrowser();
  let processes;
  try {
    if (catalog) {
      // As if downloaded before: the benchmark times the model, not the network.
      const models = path.join(server.userDataDir, 'User', 'globalStorage', 'feature-maps.feature-maps', 'models');
      fs.mkdirSync(models, { recursive: true });
      fs.copyFileSync(values.weights, path.join(models, path.basename(values.weights)));
    }
    let page = browser.page;
    await openWorkbench(page, server);
    processes = watchProcesses(server.pid);
    // Before the first click: the workbench is loaded, our extension active (onStartupFinished)
    // but no engine yet (this folder never showed feature maps), the extension host settled.
    const hostAtStart = await settledHost(processes);
    const open = async (image) => {
      const clickedAt = await clickContextMenuItem(page, image, 'Show Feature Maps');
      return waitPainted(page, image, 16, clickedAt);
    };
    // From the click on the menu item to the animation frame at which the webview has painted
    // the grid (both by this machine's clock, Date.now()).
    const cold = await open(IMAGES[0]);
    const warm = [];
    for (const image of IMAGES.slice(1)) warm.push(await open(image));
    // Reopening an image seen before: its activations are cached.
    const reopen = await open(IMAGES[1]);

    const frame = webviewFrame(page);
    const layers = await frame
      .locator('.layer-row')
      .evaluateAll((rows) =>
        rows.filter((r) => r.getAttribute('aria-disabled') !== 'true').map((r) => r.dataset.layer),
      );
    // Up to 12 layers spread through the model, after the one shown first.
    const step = Math.max(1, Math.floor(layers.length / 12));
    const picks = layers.filter((_, i) => i > 0 && i % step === 0).slice(0, 12);
    const switches = await frame.locator('body').evaluate(layerSwitchInFrame, { layers: picks, count: 16 });

    const hostAfter = processes.host();
    const engine = processes.engine();
    const log = extensionLog(server);
    const text = readLog(server);

    // The same folder opened again, in a new browser after the window's extension host ended
    // (as VS Code quit and started again: no webview, nothing restored): it showed feature maps before, so the engine starts, and opens the
    // model, a moment after the window does (EngineWarmUp). The click comes once the log says
    // so, as a person's first right-click would a few seconds in.
    await browser.close();
    await endExtensionHosts(server.pid);
    browser = await launchBrowser();
    page = browser.page;
    const windowOpened = Date.now();
    await openWorkbench(page, server);
    const restoredPanels = await page.locator('.tabs-container .tab', { hasText: 'Feature Maps' }).count();
    if (restoredPanels) throw new Error('a Feature Maps panel came back with the new window');
    const earlyStartMs = await waitForLog(server, log, /engine started early/, TIMEOUT);
    const returning = await open(IMAGES[0]);
    if (process.env.BENCH_UI_LOG) fs.writeFileSync(`${process.env.BENCH_UI_LOG}.returning`, readLog(server));
    if (!hostAfter || !engine.starts) {
      throw new Error(`no extension host or engine process found under code-server (pid ${server.pid})`);
    }
    // The extension's log, kept for reading the run's timeline (BENCH_UI_LOG=<file>).
    if (process.env.BENCH_UI_LOG) fs.writeFileSync(process.env.BENCH_UI_LOG, text);
    const resultKB = [...text.matchAll(/layers in \d+ ms .*?; ([\d.]+) KB to the webview/g)].map((m) => Number(m[1]));
    const layerKB = [...text.matchAll(/: \d+ channels, ([\d.]+) KB to the webview/g)].map((m) => Number(m[1]));
    const blocks = [...text.matchAll(/main thread: longest block so far (\d+) ms/g)].map((m) => Number(m[1]));
    console.log(
      JSON.stringify({
        model: values.model,
        images: IMAGES.length,
        coldMs: Math.round(cold),
        // Cold in a new window on this folder: the engine started early, when the log said so.
        returningColdMs: Math.round(returning),
        earlyStartAfterMs: earlyStartMs - windowOpened,
        warm: stats(warm),
        warmMs: warm.map(Math.round),
        reopenMs: Math.round(reopen),
        layerSwitch: stats(switches),
        layerSwitchMs: switches.map(Math.round),
        // The layers clicked, in that order.
        layerSwitchLayers: picks,
        // Resident memory (MB) of the window's extension host: with the workbench loaded, when our
        // extension has just started its engine (no model loaded yet), after every image and layer
        // switch above, and its peak; then the engine process's, after the run and at its peak.
        extensionHost: {
          workbenchLoadedMB: hostAtStart?.rss ?? null,
          engineStartingMB: processes.hostAtEngineStart()?.rss ?? null,
          afterMB: hostAfter.rss,
          peakMB: hostAfter.peak,
        },
        engineProcess: { afterMB: engine.rss, peakMB: engine.peak, starts: engine.starts },
        // The longest the extension host's thread was blocked, from activation to the end.
        mainThreadMaxBlockMs: blocks.at(-1) ?? null,
        idleProcessMaxDelayMs: await probe.worstGapMs(),
        // The result (header, tree, the input image, and the first layer's 16 channels with it).
        kbPerImage: resultKB.length ? Math.round(resultKB[0]) : null,
        kbPerLayerSwitch: layerKB.length ? stats(layerKB) : null,
      }),
    );
  } finally {
    processes?.stop();
    await browser.close();
    await server.stop();
    fs.rmSync(workspace, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);

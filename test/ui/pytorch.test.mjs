// A PyTorch user's own checkpoint, in the real VS Code (issue 10): right-click a `.pt` → Use as
// Feature Map Model → right-click a photo → the grid, under PyTorch's module names; converted once
// with the user's Python, then opened from the conversion cache with no Python at all. And what a
// user sees when it cannot open: no Python at the configured path, a state_dict without its
// architecture (the quick pick), a pickled module (the modal, declined).
//
// Needs the torch oracle (tools/make-torch-oracle.sh: $TORCH_ORACLE or ../.oracle-cache/torch) and
// a Python with torch ($FEATURE_MAPS_TEST_PYTHON, ../.oracle-cache/.torch-venv or ../.torch-venv);
// skipped, saying why, without them. The model files are copied into the test workspace at run
// time and removed afterwards.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ctx } from '../vscode/context.mjs';
import {
  clickContextMenuItem,
  expandFolder,
  extensionLog,
  runCommand,
  screenshot,
  waitForPaintedGrid,
  webviewFrame,
} from '../vscode/harness.mjs';

/** Converting ResNet-18 takes 5–15 s on an idle machine; a busy CI runner may take several times that. */
const CONVERSION_TIMEOUT = 180_000;
const TIMEOUT = 60_000;
const ARCH = 'resnet18';
const MISSING_PYTHON = '/nonexistent/feature-maps-test/bin/python3';

/** The torch oracle's folder and a Python with torch, as test/unit/fixtures.ts torchOracle() finds them; or why not. */
function findTorch(repoRoot) {
  const fromEnv = (name) => {
    const value = process.env[name];
    if (value && !fs.existsSync(value)) throw new Error(`${name}=${value} does not exist`);
    return value || undefined;
  };
  const oracle = fromEnv('TORCH_ORACLE') ?? path.resolve(repoRoot, '..', '.oracle-cache', 'torch');
  const python =
    fromEnv('FEATURE_MAPS_TEST_PYTHON') ??
    [
      path.resolve(repoRoot, '..', '.oracle-cache', '.torch-venv', 'bin', 'python'),
      path.resolve(repoRoot, '..', '.torch-venv', 'bin', 'python'),
    ].find((p) => fs.existsSync(p));
  if (!python) return { why: 'no Python with torch (FEATURE_MAPS_TEST_PYTHON, ../.torch-venv)' };
  const dir = path.join(oracle, ARCH);
  if (!fs.existsSync(path.join(dir, 'torchscript.pt'))) {
    return { why: `no torch oracle at ${dir} (run tools/make-torch-oracle.sh)` };
  }
  return { python, dir };
}

function writeWorkspaceSettings(settings) {
  const dir = path.join(ctx.workspace, '.vscode');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'settings.json'), JSON.stringify(settings, null, 2));
}

function readExtensionLog() {
  const log = extensionLog(ctx.server);
  return log ? fs.readFileSync(log, 'utf8') : '';
}

async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function readWorkspaceSettings() {
  try {
    return JSON.parse(fs.readFileSync(path.join(ctx.workspace, '.vscode', 'settings.json'), 'utf8'));
  } catch {
    return {};
  }
}

/** Waits until the workspace settings satisfy `check` (VS Code writes them a moment after a choice). */
async function waitForSettings(check, what) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const settings = readWorkspaceSettings();
    if (check(settings)) return settings;
    if (Date.now() > deadline) assert.fail(`${what}: settings are ${JSON.stringify(settings)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Text of a locator in the panel. */
const text = (frame, selector) => frame.locator(selector).first().innerText();

describe('PyTorch models in the panel (issue 10)', function () {
  this.timeout(CONVERSION_TIMEOUT + 2 * TIMEOUT);
  /** @type {{ python: string, dir: string }} */
  let torch;
  const added = [];
  /** Copies an oracle file into the workspace's models/ folder (removed after the tests). */
  const addModel = (file, name) => {
    const target = path.join(ctx.workspace, 'models', name);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(path.join(torch.dir, file), target);
    added.push(target);
    return target;
  };

  before(function () {
    const found = findTorch(ctx.repoRoot);
    if (found.why) {
      console.log(`      (skipped: ${found.why})`);
      this.skip();
    }
    torch = found;
  });

  after(() => {
    for (const file of added) fs.rmSync(file, { force: true });
    fs.rmSync(path.join(ctx.workspace, '.vscode'), { recursive: true, force: true });
  });

  it('right-click a .pt → Use as Feature Map Model → a photo shows its grid under PyTorch module names', async () => {
    addModel('torchscript.pt', 'resnet18.pt');
    writeWorkspaceSettings({ 'featureMaps.pythonPath': torch.python });
    await ctx.reload();
    await expandFolder(ctx.page, 'models');
    await clickContextMenuItem(ctx.page, 'resnet18.pt', 'Use as Feature Map Model');
    await waitForSettings((s) => s['featureMaps.model'] === 'models/resnet18.pt', 'the .pt is the model');

    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const clicked = Date.now();
    const frame = webviewFrame(ctx.page);
    // While Python converts it, the panel says so.
    await frame
      .locator('.loading-message', { hasText: /convert resnet18\.pt|resnet18\.pt/ })
      .first()
      .waitFor({ timeout: TIMEOUT });
    await screenshot(ctx.page, 'pytorch-converting');
    await frame.locator('body[data-state="ready"]').waitFor({ timeout: CONVERSION_TIMEOUT });
    console.log(
      `      (measured, not asserted: menu click → panel ready, with the conversion: ${Date.now() - clicked} ms)`,
    );

    assert.equal(await text(frame, '.model-name'), 'resnet18.pt');
    // The header says what ran: PyTorch's file, converted now, on onnxruntime, torchvision's preprocessing.
    const description = await text(frame, '.model-description');
    assert.match(description, /^PyTorch model \(torchscript\): .*resnet18\.pt\. Converted now with torch \d/);
    assert.match(await text(frame, '.elapsed'), /· onnxruntime \(converted from PyTorch\) · CPU$/);
    assert.match(await text(frame, '.model-preprocessing'), /torch/);

    // PyTorch's module names, grouped by the module tree down to the numbered block (layer1.0),
    // module classes as op types.
    const block = frame.locator('.layer-group', { has: frame.locator('.group-row[data-group="layer1.0"]') });
    // In the order the modules finish, as forward hooks see them: the block after its layers.
    assert.deepEqual(await block.locator('.layer-row').evaluateAll((rows) => rows.map((row) => row.dataset.layer)), [
      'layer1.0.conv1',
      'layer1.0.bn1',
      'layer1.0.relu',
      'layer1.0.conv2',
      'layer1.0.bn2',
      'layer1.0',
    ]);
    assert.equal(await text(frame, '.layer-row[data-layer="layer1.0.conv1"] .layer-op'), 'Conv2d');
    assert.equal(await text(frame, '.layer-row[data-layer="layer1.0.bn1"] .layer-op'), 'BatchNorm2d');
    assert.equal(await text(frame, '.layer-row[data-layer="layer2.0.downsample.0"] .layer-op'), 'Conv2d');
    assert.equal(await frame.locator('.layer-row[data-layer^="/"]').count(), 0, 'no ONNX node names in the tree');
    // The first layer is selected and its 16 tiles are painted.
    assert.equal(await frame.locator('.layer-row[aria-selected="true"]').getAttribute('data-layer'), 'conv1');
    await waitForPaintedGrid(ctx.page, 'chelsea.png', 16);

    // Another layer, by its PyTorch name.
    await frame.locator('.layer-row[data-layer="layer2.0.conv1"]').click();
    await frame.locator('.layer-row[data-layer="layer2.0.conv1"][aria-selected="true"]').waitFor({ timeout: TIMEOUT });
    await waitForPaintedGrid(ctx.page, 'chelsea.png', 16);
    await screenshot(ctx.page, 'pytorch-resnet18-layer2.0.conv1');
  });

  it('a second image, after a reload, opens from the conversion cache without Python', async () => {
    // No Python now: the cached conversion needs none (issue 10, point 4).
    writeWorkspaceSettings({ ...readWorkspaceSettings(), 'featureMaps.pythonPath': MISSING_PYTHON });
    await ctx.reload();
    await clickContextMenuItem(ctx.page, 'coffee.png', 'Show Feature Maps');
    const clicked = Date.now();
    const frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="ready"]').waitFor({ timeout: TIMEOUT });
    const elapsed = Date.now() - clicked;
    console.log(`      (measured, not asserted: menu click → panel ready, from the cache: ${elapsed} ms)`);
    assert.equal(await text(frame, '.model-name'), 'resnet18.pt');
    assert.match(await text(frame, '.model-description'), /Converted with torch \S+, cached/);
    assert.match(await text(frame, '.elapsed'), /onnxruntime \(converted from PyTorch\)/);
    await waitForPaintedGrid(ctx.page, 'coffee.png', 16);
    assert.equal(await frame.locator('.layer-row[data-layer="layer4.1.conv2"]').count(), 1);
    await screenshot(ctx.page, 'pytorch-resnet18-from-cache');
  });

  it('no Python at featureMaps.pythonPath: the panel names the path and offers its fixes; the bundled model still works', async () => {
    // A file not converted yet (the cache would need no Python), with a Python that does not exist.
    addModel('exported.pt2', 'resnet18-export.pt2');
    writeWorkspaceSettings({
      'featureMaps.model': 'models/resnet18-export.pt2',
      'featureMaps.pythonPath': MISSING_PYTHON,
    });
    await ctx.reload();
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="error"]').waitFor({ timeout: TIMEOUT });
    const message = await text(frame, '.error-message');
    assert.equal(message, `The Python interpreter ${MISSING_PYTHON} (featureMaps.pythonPath) does not exist.`);
    const buttons = (await frame.locator('.status-actions button').allInnerTexts()).map((t) => t.trim());
    assert.deepEqual(buttons, ['Set Python Path…', 'Retry', 'Change Model…', 'Open Settings']);
    await screenshot(ctx.page, 'pytorch-no-python');

    // Change Model… → the bundled MobileNetV2: the panel works again, with no Python.
    await frame.locator('.status-actions button', { hasText: 'Change Model…' }).click();
    const bundled = ctx.page.locator('.quick-input-list .monaco-list-row', { hasText: 'MobileNetV2 (bundled)' });
    await bundled.first().waitFor({ timeout: 20_000 });
    await bundled.first().click();
    await waitForSettings((s) => !s['featureMaps.model'], 'the model setting is cleared');
    await frame.locator('.model-name', { hasText: 'MobileNetV2' }).waitFor({ timeout: TIMEOUT });
    await waitForPaintedGrid(ctx.page, 'chelsea.png', 16);
    // The bundled model's tree, with one of its layers selected (which one depends on what was
    // looked at last with it, in earlier tests).
    assert.equal(await frame.locator('.layer-row[data-layer="Conv1"]').count(), 1, 'the bundled model’s layers');
    const selected = await frame.locator('.layer-row[aria-selected="true"]').getAttribute('data-layer');
    assert.ok(
      selected && !selected.includes('.'),
      `a MobileNetV2 layer is selected, not a PyTorch module: ${selected}`,
    );
  });

  it('a state_dict asks for its architecture (searchable), then shows the grid', async () => {
    addModel('state_dict.pth', 'resnet18-weights.pth');
    writeWorkspaceSettings({
      'featureMaps.model': 'models/resnet18-weights.pth',
      'featureMaps.pythonPath': torch.python,
    });
    await ctx.reload();
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const title = ctx.page.locator('.quick-input-title', {
      hasText: 'Which architecture are the weights of resnet18-weights.pth?',
    });
    await title.waitFor({ timeout: TIMEOUT });
    await ctx.page.keyboard.type(ARCH);
    const rows = ctx.page.locator('.quick-input-list .monaco-list-row');
    // What was typed is offered as it resolves (a bare name → torchvision's), above the matches.
    await rows
      .filter({ hasText: `Use “${ARCH}”` })
      .filter({ hasText: `torchvision:${ARCH}` })
      .first()
      .waitFor({ timeout: 10_000 });
    // Searchable: typing narrows torchvision's and timm's hundreds of names to the few like it.
    const shown = (await rows.locator('.label-name').allInnerTexts()).filter((name) => !name.startsWith('Use '));
    assert.ok(shown.includes(`torchvision:${ARCH}`), shown.join(', '));
    assert.ok(shown.length < 20, `the list is narrowed to ${ARCH}: ${shown.join(', ')}`);
    assert.ok(
      shown.every((name) => /resnet.*18/.test(name)),
      shown.join(', '),
    );
    const pick = rows.filter({
      has: ctx.page.locator('.label-name', { hasText: new RegExp(`^torchvision:${ARCH}$`) }),
    });
    await screenshot(ctx.page, 'pytorch-architecture-quick-pick');
    await pick.first().click();
    const frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="ready"]').waitFor({ timeout: CONVERSION_TIMEOUT });
    assert.match(
      await text(frame, '.model-description'),
      /^PyTorch model \(state_dict \+ torchvision:resnet18\): .*resnet18-weights\.pth\. Converted now/,
    );
    assert.equal(await text(frame, '.layer-row[data-layer="layer1.0.conv1"] .layer-op'), 'Conv2d');
    await waitForPaintedGrid(ctx.page, 'chelsea.png', 16);
    await screenshot(ctx.page, 'pytorch-state-dict-ready');
  });

  it('a pickled module asks first ("Loading this file can run code it contains"); declined, the panel says so', async () => {
    // One panel: a panel of an earlier test, restored by the reload, would ask about the file too,
    // and its question (after this one's answer: a decline is not remembered) would stay on screen.
    await runCommand(ctx.page, 'View: Close All Editors');
    addModel('pickled.pt', 'resnet18-pickled.pt');
    writeWorkspaceSettings({
      'featureMaps.model': 'models/resnet18-pickled.pt',
      'featureMaps.pythonPath': torch.python,
    });
    await ctx.reload();
    await clickContextMenuItem(ctx.page, 'chelsea.png', 'Show Feature Maps');
    const dialog = ctx.page.locator('.monaco-dialog-box', { hasText: 'Loading this file can run code it contains.' });
    await dialog.waitFor({ timeout: TIMEOUT });
    assert.match(await dialog.innerText(), /resnet18-pickled\.pt/);
    await screenshot(ctx.page, 'pytorch-pickle-prompt');
    // While the question is open, a setting changes and the panel opens the model again: that
    // second try waits for the answer on screen, it does not queue a second question (CI once saw
    // a restored panel and a click do that, and the panel wait behind the second dialog).
    const asked = () => (readExtensionLog().match(/resnet18-pickled\.pt: needs-pickle/g) ?? []).length;
    const askedBefore = asked();
    writeWorkspaceSettings({ ...readWorkspaceSettings(), 'featureMaps.memoryBudget': 4096 });
    await until(() => asked() > askedBefore, TIMEOUT, 'the second try to reach the question');
    await dialog.locator('.monaco-button', { hasText: 'Cancel' }).click();
    const frame = webviewFrame(ctx.page);
    await frame.locator('body[data-state="error"]').waitFor({ timeout: TIMEOUT });
    assert.equal(await dialog.count(), 0, 'one answer closes the question for both tries');
    assert.match(
      await text(frame, '.error-message'),
      /^You declined to load resnet18-pickled\.pt: it is a pickled Python object, and loading it can run code it contains\./,
    );
    await screenshot(ctx.page, 'pytorch-pickle-declined');
    // Retry asks again (a decline is not remembered).
    await frame.locator('button.retry').click();
    await dialog.waitFor({ timeout: TIMEOUT });
    await dialog.locator('.monaco-button', { hasText: 'Cancel' }).click();
    await frame.locator('body[data-state="error"]').waitFor({ timeout: TIMEOUT });
  });
});

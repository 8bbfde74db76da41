// Makes the README's pictures in a real VS Code (code-server + Chromium), as a person sees them:
//   docs/screenshot.png  the bundled model on chelsea.png, beside the Explorer;
//   docs/vgg16.png       the panel on VGG16 ImageNet (no top), the seed's three layers;
//   docs/engine-crashed.png  the panel after the engine process died (the tests' crash switch);
//   docs/restricted-mode.png the panel in Restricted Mode, the folder's own model ignored;
//   docs/pytorch.png     the panel on a PyTorch ResNet-18 TorchScript file (converted with the torch
//                        venv's Python), under PyTorch's module names, layer2.0.conv1 selected.
//   docs/keras.png       the panel on a Keras 3 ConvNeXtTiny .keras file (the Keras apps oracle's,
//                        random weights), converted to ONNX and run on onnxruntime, a stage-1 layer selected.
//   docs/ranked.png, docs/zoom.png, docs/overlay.png  investigating block_3_expand of the bundled
//                        model: its channels by max, the top one zoomed, and every tile over the image.
// VGG16 uses the Keras oracle's weights (random, seeded: ImageNet's cannot be downloaded here),
// put where a download would have left them; the ResNet-18 is the torch oracle's (random, seeded).
// Run after `npm run build`:
//   node tools/readme-screenshots.mjs [ORACLE_CACHE] [--only name,name]
// (--only pytorch makes docs/pytorch.png alone). The torch Python: $FEATURE_MAPS_TEST_PYTHON, else
// ORACLE_CACHE/.torch-venv or ../.torch-venv; the torch oracle: $TORCH_ORACLE, else ORACLE_CACHE/torch.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  clickContextMenuItem,
  explorerRow,
  launchBrowser,
  webviewFrame,
  openWorkbench,
  repoRoot,
  startCodeServer,
  waitForPaintedGrid,
} from '../test/vscode/harness.mjs';

const args = process.argv.slice(2);
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? new Set(args.splice(onlyIndex, 2)[1]?.split(',')) : undefined;
const wanted = (name) => !only || only.has(name);

const fixtures = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'images');
const oracle = path.resolve(args[0] ?? path.join(repoRoot, '..', '.oracle-cache'));
const VGG16_WEIGHTS = path.join(oracle, 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5');
const KERAS_CONVNEXT = path.join(oracle, 'keras-apps', 'convnexttiny', 'convnexttiny.keras');
const TORCH_RESNET18 = path.join(process.env.TORCH_ORACLE ?? path.join(oracle, 'torch'), 'resnet18', 'torchscript.pt');
const TORCH_PYTHON =
  process.env.FEATURE_MAPS_TEST_PYTHON ??
  [
    path.join(oracle, '.torch-venv', 'bin', 'python'),
    path.resolve(repoRoot, '..', '.torch-venv', 'bin', 'python'),
  ].find((p) => fs.existsSync(p));

/** Opens `image` from the Explorer menu and waits until its grid is painted and the progress is gone. */
async function showFeatureMaps(page, image, tiles) {
  await clickContextMenuItem(page, image, 'Show Feature Maps');
  await waitForPaintedGrid(page, image, tiles);
  await page.locator('.notification-toast').waitFor({ state: 'detached', timeout: 30_000 });
  await page.waitForTimeout(500);
}

/** Opens `image` from the Explorer menu and waits for the panel's message. */
async function showError(page, image) {
  await clickContextMenuItem(page, image, 'Show Feature Maps');
  await webviewFrame(page).locator('body[data-state="error"]').waitFor({ timeout: 60_000 });
  await page.waitForTimeout(500);
}

/** Clicks a layer in the panel's tree and waits until its grid is painted. */
async function selectLayer(page, layer, image, tiles) {
  const row = webviewFrame(page).locator(`.layer-row[data-layer="${layer}"]`);
  await row.click();
  await webviewFrame(page)
    .locator(`.layer-row[data-layer="${layer}"][aria-selected="true"]`)
    .waitFor({ timeout: 30_000 });
  await waitForPaintedGrid(page, image, tiles);
  await page.waitForTimeout(500);
}

async function capture({
  name,
  settings,
  weights,
  image,
  tiles,
  clipToEditor,
  env,
  restrictedMode,
  error,
  files = {},
  layer,
  expand = [],
  investigate,
}) {
  if (!wanted(name)) return;
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-readme-'));
  for (const file of ['chelsea.png', 'coffee.png', 'astronaut.png', 'horse.png']) {
    fs.copyFileSync(path.join(fixtures, file), path.join(workspace, file));
  }
  // Model files the workspace holds (relative path → source), copied at run time.
  for (const [target, source] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(workspace, target)), { recursive: true });
    fs.copyFileSync(source, path.join(workspace, target));
  }
  if (env?.FEATURE_MAPS_TEST_FAULTS) {
    fs.copyFileSync(path.join(fixtures, 'chelsea.png'), path.join(workspace, 'crash-the-engine.png'));
  }
  fs.mkdirSync(path.join(workspace, '.vscode'));
  fs.writeFileSync(path.join(workspace, '.vscode', 'settings.json'), JSON.stringify(settings));
  const server = await startCodeServer({
    workspace,
    extensionDevelopmentPath: repoRoot,
    label: 'code-server-readme',
    env,
    restrictedMode,
  });
  const browser = await launchBrowser();
  try {
    if (weights) {
      const models = path.join(server.userDataDir, 'User', 'globalStorage', 'feature-maps.feature-maps', 'models');
      fs.mkdirSync(models, { recursive: true });
      fs.copyFileSync(weights, path.join(models, path.basename(weights)));
    }
    const page = browser.page;
    await openWorkbench(page, server);
    for (const folder of expand) await explorerRow(page, folder).click();
    if (error) await showError(page, image);
    else await showFeatureMaps(page, image, tiles);
    if (layer) await selectLayer(page, layer, image, tiles);
    if (investigate) {
      await investigate(webviewFrame(page));
      await page.waitForTimeout(800);
    }
    const file = path.join(repoRoot, 'docs', `${name}.png`);
    const editor = clipToEditor ? await page.locator('.part.editor').boundingBox() : undefined;
    await page.screenshot({ path: file, ...(editor ? { clip: editor } : {}) });
    console.log(file);
  } finally {
    await browser.close();
    await server.stop();
    fs.rmSync(workspace, { recursive: true, force: true });
  }
}

await capture({ name: 'screenshot', settings: {}, image: 'chelsea.png', tiles: 16 });
if (fs.existsSync(VGG16_WEIGHTS)) {
  await capture({
    name: 'vgg16',
    settings: { 'featureMaps.model': 'catalog:vgg16' },
    weights: VGG16_WEIGHTS,
    image: 'chelsea.png',
    tiles: 9,
    clipToEditor: true,
  });
} else if (wanted('vgg16')) {
  console.error(`no ${VGG16_WEIGHTS}: docs/vgg16.png not made (run ../shared/oracle/make-oracle.sh first)`);
}
await capture({
  name: 'engine-crashed',
  settings: {},
  env: { FEATURE_MAPS_TEST_FAULTS: '1' },
  image: 'crash-the-engine.png',
  error: true,
});
await capture({
  name: 'restricted-mode',
  settings: { 'featureMaps.model': 'models/my-model.onnx' },
  restrictedMode: true,
  image: 'chelsea.png',
  tiles: 16,
});
if (fs.existsSync(TORCH_RESNET18) && TORCH_PYTHON) {
  // The first open converts the file with the user's Python (about 10-20 s here), as a person's would.
  await capture({
    name: 'pytorch',
    settings: { 'featureMaps.model': 'models/resnet18.pt', 'featureMaps.pythonPath': TORCH_PYTHON },
    files: { 'models/resnet18.pt': TORCH_RESNET18 },
    image: 'chelsea.png',
    tiles: 16,
    layer: 'layer2.0.conv1',
    expand: ['models'],
  });
} else if (wanted('pytorch')) {
  console.error(
    `no ${TORCH_RESNET18} or no torch Python: docs/pytorch.png not made (run tools/make-torch-oracle.sh first)`,
  );
}
if (fs.existsSync(KERAS_CONVNEXT)) {
  await capture({
    name: 'keras',
    settings: { 'featureMaps.model': 'models/convnexttiny.keras' },
    files: { 'models/convnexttiny.keras': KERAS_CONVNEXT },
    image: 'chelsea.png',
    tiles: 16,
    layer: 'convnext_tiny_stage_1_block_0_depthwise_conv',
    expand: ['models'],
  });
} else if (wanted('keras')) {
  console.error(`no ${KERAS_CONVNEXT}: docs/keras.png not made (run tools/make-keras-apps-oracle.sh first)`);
}
// Investigating a layer (ranked, zoomed, overlaid): block_3_expand, a convolution, on chelsea.png.
const rankByMax = async (frame) => {
  await frame.locator('.sort-select').selectOption('max');
  await frame.locator('.channel-grid .tile .tile-stat').first().waitFor({ timeout: 30_000 });
};
await capture({
  name: 'ranked',
  settings: {},
  image: 'chelsea.png',
  tiles: 16,
  layer: 'block_3_expand',
  clipToEditor: true,
  investigate: rankByMax,
});
await capture({
  name: 'zoom',
  settings: {},
  image: 'chelsea.png',
  tiles: 16,
  layer: 'block_3_expand',
  clipToEditor: true,
  investigate: async (frame) => {
    await rankByMax(frame);
    await frame.locator('.channel-grid .tile').first().click();
    await frame.locator('.zoom-summary', { hasText: 'min ' }).waitFor({ timeout: 30_000 });
    const canvas = frame.locator('.zoom-canvas');
    const box = await canvas.boundingBox();
    await canvas.hover({ position: { x: box.width * 0.6, y: box.height * 0.4 } });
  },
});
await capture({
  name: 'overlay',
  settings: {},
  image: 'chelsea.png',
  tiles: 16,
  layer: 'block_3_expand',
  clipToEditor: true,
  investigate: async (frame) => {
    await rankByMax(frame);
    await frame.locator('.overlay-toggle').check();
    await frame.locator('.channel-grid.overlaid').waitFor({ timeout: 30_000 });
  },
});
process.exit(0);

// Makes the README's pictures in a real VS Code (code-server + Chromium), as a person sees them:
//   docs/screenshot.png  the bundled model on chelsea.png, beside the Explorer;
//   docs/vgg16.png       the panel on VGG16 ImageNet (no top), the seed's three layers;
//   docs/engine-crashed.png  the panel after the engine process died (the tests' crash switch);
//   docs/restricted-mode.png the panel in Restricted Mode, the folder's own model ignored.
// VGG16 uses the Keras oracle's weights (random, seeded: ImageNet's cannot be downloaded here),
// put where a download would have left them. Run after `npm run build`:
//   node tools/readme-screenshots.mjs [ORACLE_CACHE]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  clickContextMenuItem,
  launchBrowser,
  webviewFrame,
  openWorkbench,
  repoRoot,
  startCodeServer,
  waitForPaintedGrid,
} from '../test/vscode/harness.mjs';

const fixtures = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'images');
const oracle = path.resolve(process.argv[2] ?? path.join(repoRoot, '..', '.oracle-cache'));
const VGG16_WEIGHTS = path.join(oracle, 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5');

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

async function capture({ name, settings, weights, image, tiles, clipToEditor, env, restrictedMode, error }) {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-readme-'));
  for (const file of ['chelsea.png', 'coffee.png', 'astronaut.png', 'horse.png']) {
    fs.copyFileSync(path.join(fixtures, file), path.join(workspace, file));
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
    if (error) await showError(page, image);
    else await showFeatureMaps(page, image, tiles);
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
} else {
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
process.exit(0);

#!/usr/bin/env node
// `npm run test:vscode`: the extension in a real VS Code (code-server), three ways:
//   1. the in-host Mocha suite (dist/test/integration/index.js) in the extension host;
//   2. the UI tests (test/ui/*.test.mjs), clicking the workbench in Chromium, against the
//      extension loaded from the repo (extensionDevelopmentPath);
//   3. this machine's platform package (dist/packages, `npm run package`; made when missing),
//      installed into a fresh extensions dir of a second code-server, with the smoke tests
//      test/ui/*.vsix.mjs.
// Needs `npm run build` and `bash tools/setup-code-server.sh` first.
// Options: --skip-in-host --skip-ui --skip-vsix --grep <text> (UI tests only).
// FEATURE_MAPS_EXTENSION_PATH=<dir> tests another extension folder (for checking the harness).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Mocha from 'mocha';
import { hostTarget, packageFile, TARGETS } from '../../tools/package.mjs';
import { startMirror } from '../mirror.mjs';
import { ctx } from './context.mjs';
import {
  assertCodeServerInstalled,
  extensionLog,
  installVsix,
  launchBrowser,
  openWorkbench,
  repoRoot,
  runInHostSuite,
  screenshot,
  startCodeServer,
} from './harness.mjs';

const FIXTURES = [
  'chelsea.png',
  'coffee.png',
  'astronaut.png',
  'truncated.jpg',
  'chessboard_GRAY_U16.tif',
  'horse.png',
  'no_time_for_that_tiny.gif',
  'palette_color.png',
];

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const grepIndex = argv.indexOf('--grep');
const grep = grepIndex >= 0 ? argv[grepIndex + 1] : undefined;

const extensionPath = path.resolve(process.env.FEATURE_MAPS_EXTENSION_PATH ?? repoRoot);
const fixturesDir = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'images');
const uiDir = path.join(repoRoot, 'test', 'ui');
const MIRROR_ENV = 'FEATURE_MAPS_MODEL_MIRROR';
const VGG16_FILE = 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5';
const totals = { passed: 0, failed: 0 };

function fail(message) {
  console.error(`test:vscode: ${message}`);
  process.exit(2);
}

// ---------- cleanup, also on Ctrl-C ----------
const cleanups = [];
let cleaning = null;
function cleanup() {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (error) {
        console.error(`cleanup: ${error.message}`);
      }
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`\ntest:vscode: ${signal}, stopping code-server and the browser…`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---------- preconditions ----------
function checkPreconditions() {
  if (!fs.existsSync(fixturesDir)) {
    fail(`fixture images not found at ${fixturesDir} (expected ../shared/fixtures/images next to the repo)`);
  }
  for (const name of FIXTURES) {
    if (!fs.existsSync(path.join(fixturesDir, name))) fail(`fixture ${name} is missing in ${fixturesDir}`);
  }
  for (const file of ['package.json', 'dist/extension.js', 'dist/test/integration/index.js']) {
    if (!fs.existsSync(path.join(extensionPath, file))) {
      fail(`${path.join(extensionPath, file)} is missing: run \`npm run build\` first`);
    }
  }
  try {
    assertCodeServerInstalled();
  } catch (error) {
    fail(error.message);
  }
}

function makeWorkspace() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-workspace-'));
  for (const name of FIXTURES) fs.copyFileSync(path.join(fixturesDir, name), path.join(dir, name));
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'Not an image: the Feature Maps menu item must not show here.\n');
  // With FEATURE_MAPS_TEST_FAULTS=1 (the dev server), this image aborts the engine process (test/ui/engine.test.mjs).
  fs.copyFileSync(path.join(fixturesDir, 'chelsea.png'), path.join(dir, 'crash-the-engine.png'));
  // A user's own model in the workspace, as "Select Model…" finds it.
  const models = path.resolve(fixturesDir, '..', 'models');
  for (const model of ['darknet-tiny-imagenet.tfjs', 'squeezenet-imagenet.onnx']) {
    fs.cpSync(path.join(models, model), path.join(dir, 'models', model), { recursive: true });
  }
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startServer(options) {
  const server = await startCodeServer(options);
  cleanups.push(() => server.stop());
  console.log(`code-server ${options.label} on ${server.url} (log: ${path.relative(repoRoot, server.logFile)})`);
  return server;
}

/** Runs Mocha over ESM test files in this process; adds to the totals. */
async function runMocha(title, files) {
  console.log(`\n=== ${title} (${files.length} file${files.length === 1 ? '' : 's'}) ===`);
  if (files.length === 0) return;
  const mocha = new Mocha({
    ui: 'bdd',
    reporter: 'spec',
    timeout: 90_000,
    grep,
    rootHooks: {
      async afterEach() {
        const test = this.currentTest;
        if (test?.state === 'failed' && ctx.page) {
          const file = await screenshot(ctx.page, `FAILED ${ctx.mode} ${test.fullTitle()}`).catch(() => null);
          if (file) console.log(`      screenshot: ${path.relative(repoRoot, file)}`);
          // What the extension did, for a failure seen only in CI's printout.
          const log = ctx.server && extensionLog(ctx.server);
          if (log) {
            const tail = fs.readFileSync(log, 'utf8').trimEnd().split('\n').slice(-40);
            console.log(
              `      the extension's log, last ${tail.length} lines:\n${tail.map((l) => `        ${l}`).join('\n')}`,
            );
          }
        }
      },
    },
  });
  for (const file of files) mocha.addFile(file);
  await mocha.loadFilesAsync();
  const stats = await new Promise((resolve) => {
    const runner = mocha.run(() => resolve(runner.stats));
  });
  mocha.dispose();
  totals.passed += stats.passes;
  totals.failed += stats.failures;
}

const uiFiles = (suffix) =>
  fs.existsSync(uiDir)
    ? fs
        .readdirSync(uiDir)
        .filter((f) => f.endsWith(suffix))
        .sort()
        .map((f) => path.join(uiDir, f))
    : [];

/**
 * The package `npm run package` makes for this machine's target (tools/package.mjs): the test
 * installs exactly what ships. Made here when dist/packages has none newer than the last build
 * (dist/extension.js).
 */
function packageVsix() {
  if (extensionPath !== repoRoot) return packageFolder();
  const target = hostTarget();
  const vsix = packageFile(target);
  const built = fs.statSync(path.join(repoRoot, 'dist', 'extension.js')).mtimeMs;
  if (fs.existsSync(vsix) && fs.statSync(vsix).mtimeMs >= built) {
    console.log(`\n=== ${path.relative(repoRoot, vsix)} (made after the last build) ===`);
    return vsix;
  }
  console.log(`\n=== packaging ${target} ===`);
  execFileSync(process.execPath, [path.join(repoRoot, 'tools', 'package.mjs'), '--target', target], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return vsix;
}

/** Another extension folder (FEATURE_MAPS_EXTENSION_PATH), packaged as it is with vsce (dependency detection on). */
function packageFolder() {
  const out = path.join(extensionPath, 'dist', 'feature-maps-test.vsix');
  fs.rmSync(out, { force: true });
  const vsce = path.join(repoRoot, 'node_modules', '@vscode', 'vsce', 'vsce');
  console.log(`\n=== packaging ${path.relative(repoRoot, out) || out} ===`);
  execFileSync(
    process.execPath,
    [vsce, 'package', '--allow-missing-repository', '--no-rewrite-relative-links', '--out', out],
    {
      cwd: extensionPath,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, npm_config_loglevel: 'error' },
    },
  );
  return out;
}

/** A plain-Node check that the installed extension carries its native dependencies. */
function checkInstalledExtension(extensionsDir) {
  const { publisher, name, version } = JSON.parse(fs.readFileSync(path.join(extensionPath, 'package.json'), 'utf8'));
  // VS Code may name a platform-specific extension's folder <id>-<version>-<target> (code-server does not).
  const id = `${publisher}.${name}-${version}`;
  const folder = fs.readdirSync(extensionsDir).find((f) => f === id || f.startsWith(`${id}-`)) ?? id;
  const dir = path.join(extensionsDir, folder);
  const problems = [];
  if (!fs.existsSync(path.join(dir, 'dist', 'extension.js'))) problems.push('dist/extension.js is missing');
  if (fs.existsSync(path.join(dir, 'dist', 'test'))) problems.push('dist/test/ was shipped');
  const deps = JSON.parse(fs.readFileSync(path.join(extensionPath, 'package.json'), 'utf8')).dependencies ?? {};
  // darwin-x64 and alpine-x64 packages carry no onnxruntime-node (tools/package.mjs TARGETS).
  if (extensionPath === repoRoot && !TARGETS[hostTarget()]?.onnxruntime) delete deps['onnxruntime-node'];
  // Native addons: requiring them loads their platform binaries (onnxruntime-node's at require time).
  for (const addon of ['sharp', 'onnxruntime-node'].filter((name) => name in deps)) {
    try {
      execFileSync(process.execPath, ['-e', 'require(process.argv[1])', path.join(dir, 'node_modules', addon)], {
        stdio: 'pipe',
      });
    } catch (error) {
      problems.push(
        `${addon} does not load from the installed extension: ${String(error.stderr).trim().split('\n')[0]}`,
      );
    }
  }
  const label = 'the installed .vsix has dist/extension.js, no dist/test/, and loadable sharp and onnxruntime-node';
  if (problems.length) {
    console.log(`  ✗ ${label}\n    ${problems.join('\n    ')}`);
    totals.failed += 1;
  } else {
    console.log(`  ✓ ${label}`);
    totals.passed += 1;
  }
}

/**
 * A stand-in for Keras' download server, for the catalogue UI test: it serves the Keras
 * oracle's VGG16 weights (random, seeded, so their SHA-256 stands in for Keras' MD5), throttled so the
 * progress notification can be seen. Without the oracle there is nothing to serve.
 */
async function startModelMirror() {
  const cache = process.env.ORACLE_CACHE ?? path.resolve(repoRoot, '..', '.oracle-cache');
  const file = path.join(cache, VGG16_FILE);
  if (!fs.existsSync(file)) {
    if (process.env.ORACLE_CACHE) fail(`${file} is missing from ORACLE_CACHE=${cache}`);
    console.log(`(no ${VGG16_FILE} in ${cache}: the model catalogue UI test will be skipped)`);
    return undefined;
  }
  const weights = fs.readFileSync(file);
  const sha256 = createHash('sha256').update(weights).digest('hex');
  const mirror = await startMirror({
    files: { [`vgg16/${VGG16_FILE}`]: weights },
    bytesPerSecond: 16 * 1024 * 1024,
  });
  // Their hash stands in for Keras' published MD5 (a test-only switch read by src/engine/catalog.ts).
  mirror.publishedHashes = `${sha256}  ${VGG16_FILE}\n`;
  cleanups.push(() => mirror.close());
  ctx.mirror = mirror;
  return mirror;
}

async function main() {
  checkPreconditions();
  // Screenshots of this run only: stale failure shots from an earlier run would mislead.
  fs.rmSync(path.join(repoRoot, 'test-results', 'screenshots'), { recursive: true, force: true });
  const started = Date.now();
  const workspace = makeWorkspace();
  Object.assign(ctx, { workspace, repoRoot });

  const browser = await launchBrowser();
  cleanups.push(() => browser.close());

  // 1 + 2: the extension from the repo.
  if (!flag('--skip-in-host') || !flag('--skip-ui')) {
    const mirror = await startModelMirror();
    const server = await startServer({
      workspace,
      extensionDevelopmentPath: extensionPath,
      label: 'code-server-dev',
      env: {
        FEATURE_MAPS_TEST_FAULTS: '1',
        ...(mirror ? { [MIRROR_ENV]: mirror.base, FEATURE_MAPS_TEST_PUBLISHED_HASHES: mirror.publishedHashes } : {}),
      },
    });
    if (!flag('--skip-in-host')) {
      console.log('\n=== in-host suite (dist/test/integration) ===');
      const result = await runInHostSuite({
        server,
        extensionPath,
        testsPath: path.join(extensionPath, 'dist', 'test', 'integration', 'index.js'),
        browser: browser.browser,
        print: (line) => console.log(`  ${line}`),
      });
      if (result.passes !== null) {
        totals.passed += result.passes;
        totals.failed += result.failures;
        if (result.code !== 0 && result.failures === 0) totals.failed += 1; // run() itself failed
      } else {
        console.log(`  (no results line from the suite; exit code ${result.code})`);
        totals.failed += 1;
      }
    }
    if (!flag('--skip-ui')) {
      const reload = () => openWorkbench(browser.page, server);
      Object.assign(ctx, { page: browser.page, server, mode: 'development', reload });
      await reload();
      await runMocha('UI tests (extension from the repo)', uiFiles('.test.mjs'));
    }
    await server.stop();
  }

  // 3: the packaged extension.
  if (!flag('--skip-vsix')) {
    const vsix = packageVsix();
    const extensionsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-extensions-'));
    cleanups.push(() => fs.rmSync(extensionsDir, { recursive: true, force: true }));
    console.log(installVsix(vsix, extensionsDir).trim());
    checkInstalledExtension(extensionsDir);
    // In Restricted Mode, with a workspace that names its own model: the packaged extension must
    // still work there, on the bundled model, and say why (test/ui/packaged.vsix.mjs).
    const untrusted = makeWorkspace();
    fs.mkdirSync(path.join(untrusted, '.vscode'));
    fs.writeFileSync(
      path.join(untrusted, '.vscode', 'settings.json'),
      JSON.stringify({ 'featureMaps.model': 'models/squeezenet-imagenet.onnx/SqueezeNet_fp16.onnx' }),
    );
    const server = await startServer({
      workspace: untrusted,
      extensionsDir,
      label: 'code-server-vsix',
      restrictedMode: true,
    });
    const page = await browser.newPage();
    const reload = () => openWorkbench(page, server);
    Object.assign(ctx, { page, server, mode: 'vsix', reload });
    await reload();
    await runMocha('smoke tests (packaged .vsix installed)', uiFiles('.vsix.mjs'));
  }

  console.log(`\ntest:vscode took ${Math.round((Date.now() - started) / 1000)} s`);
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  console.error(`\ntest:vscode: ${error.stack ?? error}`);
  totals.failed += 1;
} finally {
  await cleanup();
  console.log(`${totals.passed} passed, ${totals.failed} failed`);
  exitCode = totals.failed > 0 || totals.passed === 0 ? 1 : 0;
}
process.exit(exitCode);

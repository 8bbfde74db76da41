// Builds every bundle: extension host (node, cjs), engine worker, CLI, webview (browser),
// the two test suites, the bundled model decoded into dist/models/ and converted to ONNX there.
// Usage: node esbuild.js [--watch] [--production] [--outdir <dir>]
// --outdir puts everything in <dir> instead of dist/: tools/package.mjs builds the packages' production
// bundles apart, so that dist/ keeps the development build (and dist/test) the other test steps run.
const esbuild = require('esbuild');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { buildBundledModel, buildImagenetLabels } = require('./tools/bundled-model.js');

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');
const outdirIndex = process.argv.indexOf('--outdir');
const dist = outdirIndex >= 0 ? path.resolve(process.argv[outdirIndex + 1]) : path.join(__dirname, 'dist');

/** Prints errors in the format VS Code's esbuild problem matcher reads. */
const problemMatcher = {
  name: 'problem-matcher',
  setup(build) {
    build.onStart(() => console.log('[watch] build started'));
    build.onEnd((result) => {
      for (const { text, location } of result.errors) {
        console.error(`✘ [ERROR] ${text}`);
        if (location) console.error(`    ${location.file}:${location.line}:${location.column}:`);
      }
      console.log('[watch] build finished');
    });
  },
};

const common = {
  bundle: true,
  minify: production,
  sourcemap: !production,
  sourcesContent: false,
  logLevel: 'warning',
  plugins: watch ? [problemMatcher] : [],
};

// Native addons (and vscode itself) stay outside the bundles and ship in node_modules.
const nodeExternal = ['vscode', 'sharp', '@tensorflow/tfjs-node', 'onnxruntime-node', 'mocha', 'playwright-core'];

/**
 * TensorFlow.js (src/engine/tfjsRuntime.ts, 3 MB) and h5wasm (the HDF5 reader of Keras files, 4 MB)
 * become files of their own, dist/tfjs.js and dist/h5wasm.js, which the engine and CLI bundles load
 * only when a model needs them: a process that opens an ONNX model or a cached conversion never
 * parses them. (The test bundles keep them inside, so they share node_modules' one TensorFlow.js.)
 */
const APART = { './tfjsRuntime': './tfjs.js', h5wasm: './h5wasm.js' };
const apart = {
  name: 'apart',
  setup(build) {
    build.onResolve({ filter: /^(\.\/tfjsRuntime|h5wasm)$/ }, (args) =>
      args.kind === 'entry-point' ? undefined : { path: APART[args.path], external: true },
    );
  },
};

const builds = [
  {
    ...common,
    entryPoints: {
      extension: 'src/extension.ts',
      engine: 'src/engine/engineProcess.ts',
      // A thread of the engine process holding ONNX Runtime sessions (src/engine/models/sessionWorker.ts).
      'session-worker': 'src/engine/models/sessionWorkerMain.ts',
      // The command (a launcher, see src/cliLauncher.ts) and the CLI it runs.
      cli: 'src/cliLauncher.ts',
      'cli-main': 'src/cli.ts',
      // Run by the build below, not shipped (.vscodeignore).
      'bundled-onnx': 'src/engine/bundledOnnx.ts',
      tfjs: 'src/engine/tfjsRuntime.ts',
      h5wasm: 'h5wasm',
    },
    outdir: dist,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: nodeExternal,
    plugins: [...common.plugins, apart],
    // import('h5wasm') becomes require('./h5wasm.js'): Node's ESM loader would first parse the
    // 5 MB file to tell whether it is ESM (module syntax detection), then scan its exports, about
    // 140 ms of a Keras model's first open; the file is a CJS bundle, and require loads it as one.
    supported: { 'dynamic-import': false },
    // jsonc-parser's UMD build requires its parts at run time, which a bundle cannot; its ESM build bundles.
    alias: { 'jsonc-parser': 'jsonc-parser/lib/esm/main.js' },
  },
  {
    // VS Code for the Web without a remote: the extension host is a web worker (src/webExtension.ts).
    ...common,
    entryPoints: { web: 'src/webExtension.ts' },
    outdir: dist,
    platform: 'browser',
    format: 'cjs',
    target: 'es2022',
    external: ['vscode'],
  },
  {
    ...common,
    entryPoints: { webview: 'webview-ui/main.ts' },
    outdir: dist,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
  },
];

if (!production) {
  const testEntries = (dir) =>
    fs.existsSync(dir)
      ? fs
          .readdirSync(dir)
          .filter((f) => f.endsWith('.ts'))
          .map((f) => path.join(dir, f))
      : [];
  builds.push({
    ...common,
    entryPoints: [...testEntries('test/unit'), ...testEntries('test/integration'), ...testEntries('test/bench')],
    outdir: path.join(dist, 'test'),
    outbase: 'test',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // Mocha loads every test file into one process: they must share one TensorFlow.js
    // (its kernel registry is global), so it comes from node_modules, not from each bundle.
    external: [...nodeExternal, '@tensorflow/*'],
  });
}

function copyRuntimeAssets() {
  fs.mkdirSync(dist, { recursive: true });
  // Compiled tests whose source is gone would still run: start the test bundles afresh.
  if (!production) fs.rmSync(path.join(dist, 'test'), { recursive: true, force: true });
  // The tfjs wasm backend loads its .wasm binary from disk at run time.
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  for (const file of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) {
    fs.copyFileSync(path.join(wasmDir, 'dist', file), path.join(dist, file));
  }
  // The bridge to the user's own PyTorch (src/engine/python.ts runs it in their interpreter).
  fs.mkdirSync(path.join(dist, 'python'), { recursive: true });
  fs.copyFileSync('src/engine/python/torch_bridge.py', path.join(dist, 'python', 'torch_bridge.py'));
  // The CLI's one-process launcher for Linux and macOS (the shell sets what malloc reads at start).
  fs.copyFileSync('src/feature-maps.sh', path.join(dist, 'feature-maps'));
  fs.chmodSync(path.join(dist, 'feature-maps'), 0o755);
  buildBundledModel(path.join(dist, 'models'));
  buildImagenetLabels(path.join(dist, 'models'));
}

async function main() {
  copyRuntimeAssets();
  const contexts = await Promise.all(builds.map((options) => esbuild.context(options)));
  if (watch) {
    await Promise.all(contexts.map((ctx) => ctx.rebuild()));
    writeBundledOnnx();
    await Promise.all(contexts.map((ctx) => ctx.watch()));
    return;
  }
  await Promise.all(contexts.map((ctx) => ctx.rebuild()));
  await Promise.all(contexts.map((ctx) => ctx.dispose()));
  writeBundledOnnx();
}

/**
 * The bundled model's ONNX form (dist/models/mobilenet_v2-onnx), made with the engine just built
 * (src/engine/bundledOnnx.ts): the extension and the CLI open it without converting anything.
 */
function writeBundledOnnx() {
  execFileSync(process.execPath, [path.join(dist, 'bundled-onnx.js'), dist], { stdio: 'inherit' });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

#!/usr/bin/env node
// `npm run bench`: our engine against its peers, in one run on this machine, side by side.
//   - every layer of VGG16 (no top), MobileNetV2 and the bundled model at 224×224, through our
//     engine process, native (onnxruntime) and tfjs-wasm, against PyTorch on the same
//     architectures (random weights) and against the seed's Keras script (three sub-models);
//   - the real VS Code UI: right-click → first grid painted (cold, warm), layer switch → repaint,
//     the bytes sent to the webview per image, and the resident memory of the extension host and
//     of the engine process, side by side (the model lives in the engine process only).
// Needs the Keras oracle's weight files (made here when missing, from the local wheel mirror)
// and a venv with PyTorch (test/bench/setup-python.sh). Writes test-results/bench.{json,md}.
// BENCH_RUNS (default 10) passes after BENCH_WARMUP (default 2) warm-up passes.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = path.resolve(repo, '..', 'shared');
const oracleDir = process.env.ORACLE_CACHE ?? path.resolve(repo, '..', '.oracle-cache');
const benchVenv = process.env.BENCH_VENV ?? path.resolve(repo, '..', '.bench-venv');
const runs = Number(process.env.BENCH_RUNS ?? 10);
const warmup = Number(process.env.BENCH_WARMUP ?? 2);
const image = path.join(shared, 'fixtures', 'images', 'chelsea.png');
const log = (line) => console.error(`bench: ${line}`);

function run(command, args, { env = {}, json = true } = {}) {
  const result = spawnSync(command, args, {
    cwd: repo,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(`${path.basename(command)} ${args.join(' ')} failed (${result.status}):\n${result.stderr}`);
  }
  if (!json) return result.stdout;
  // One JSON line from our scripts; the seed's bench_seed.py prints an indented object.
  const out = result.stdout.trim();
  const line = out
    .split('\n')
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .at(-1);
  return JSON.parse(line ?? out.slice(out.indexOf('{')));
}

function prepare() {
  if (!fs.existsSync(shared)) throw new Error(`${shared} is missing: the benchmark uses its photos and Keras oracle`);
  if (!fs.existsSync(path.join(repo, 'dist', 'test', 'bench', 'engine.bench.js'))) {
    log('building');
    execFileSync('npm', ['run', 'build'], { cwd: repo, stdio: 'inherit' });
  }
  if (!fs.existsSync(path.join(oracleDir, VGG16_FILE))) {
    log(`making the Keras oracle's weights in ${oracleDir} (local wheel mirror, about a minute)`);
    execFileSync('bash', [path.join(shared, 'oracle', 'make-oracle.sh'), oracleDir], {
      stdio: 'inherit',
      env: { ...process.env, ORACLE_CROSSCHECK: '0' },
    });
  }
  if (!fs.existsSync(path.join(oracleDir, 'applications', MOBILENET_FILE))) {
    execFileSync('bash', [path.join(repo, 'tools', 'make-app-oracle.sh'), oracleDir], { stdio: 'inherit' });
  }
  log(`PyTorch venv ${benchVenv}`);
  execFileSync('bash', [path.join(repo, 'test', 'bench', 'setup-python.sh'), benchVenv], { stdio: 'inherit' });
}

const SEED_LAYERS = ['block1_conv1', 'block2_conv1', 'block3_conv1'];
const VGG16_FILE = 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5';
const MOBILENET_FILE = 'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5';

const MODELS = [
  { id: 'vgg16', name: 'VGG16 (no top)', weights: () => path.join(oracleDir, VGG16_FILE), torch: 'vgg16' },
  {
    id: 'mobilenet_v2',
    name: 'MobileNetV2',
    weights: () => path.join(oracleDir, 'applications', MOBILENET_FILE),
    torch: 'mobilenet_v2',
  },
  { id: 'bundled', name: 'bundled MobileNetV2', weights: () => undefined, torch: 'mobilenet_v2' },
];

function engine(model, native, layers) {
  const args = [path.join(repo, 'dist', 'test', 'bench', 'engine.bench.js'), '--model', model.id, '--image', image];
  if (model.weights()) args.push('--weights', model.weights());
  if (layers) args.push('--layers', layers.join(','));
  args.push('--runs', String(runs), '--warmup', String(warmup));
  return run(process.execPath, args, { env: { FEATURE_MAPS_NATIVE: native ? '1' : '0' } });
}

const fmt = (s) => `${s.min} / ${s.median} / ${s.max}`;
const ratio = (a, b) => (a / b).toFixed(2) + '×';

async function main() {
  prepare();
  const started = Date.now();
  const results = { date: new Date().toISOString(), machine: machine(), runs, warmup, engine: [], torch: {}, ui: [] };

  for (const model of MODELS) {
    for (const native of [true, false]) {
      log(`engine: ${model.name}, ${native ? 'native' : 'tfjs'}`);
      results.engine.push({ ...engine(model, native), name: model.name, native });
    }
  }
  log("engine: the seed's view (VGG16 block1/2/3_conv1), native");
  results.seedView = engine(MODELS[0], true, SEED_LAYERS);
  for (const name of ['vgg16', 'mobilenet_v2']) {
    log(`PyTorch: ${name}`);
    results.torch[name] = run(path.join(benchVenv, 'bin', 'python'), [
      path.join(repo, 'test', 'bench', 'torch_bench.py'),
      name,
      String(os.availableParallelism()),
      String(runs),
      String(warmup),
    ]);
  }
  log("the seed's Keras script");
  results.seed = run(path.join(oracleDir, '.venv', 'bin', 'python'), [
    path.join(shared, 'oracle', 'bench_seed.py'),
    image,
    String(os.availableParallelism()),
    String(Math.min(runs, 5)),
  ]);
  for (const model of [MODELS[2], MODELS[0]]) {
    log(`real VS Code UI: ${model.name}`);
    const args = [path.join(repo, 'test', 'bench', 'ui.mjs'), '--model', model.id];
    if (model.weights()) args.push('--weights', model.weights());
    results.ui.push({ ...run(process.execPath, args), name: model.name });
  }
  results.seconds = Math.round((Date.now() - started) / 1000);

  const markdown = report(results);
  fs.mkdirSync(path.join(repo, 'test-results'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'test-results', 'bench.json'), JSON.stringify(results, null, 2));
  fs.writeFileSync(path.join(repo, 'test-results', 'bench.md'), markdown);
  console.log(markdown);
}

function machine() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
}

function report(r) {
  const lines = [];
  const torch = (m) => r.torch[MODELS.find((x) => x.name === m.name).torch];
  lines.push(`Feature Maps benchmark, ${r.date.slice(0, 10)}, ${r.machine}`);
  lines.push('');
  lines.push(
    `**Every layer at 224×224, one image** (ms, min / median / max of ${r.runs} passes after ${r.warmup} warm-up; forward pass in the engine process, all activations copied out)`,
  );
  lines.push('');
  lines.push(
    '| model | layers | ours, native | ours, tfjs-wasm | PyTorch ' +
      Object.values(r.torch)[0].torch +
      ' | native / PyTorch | tfjs / PyTorch |',
  );
  lines.push('| --- | --- | --- | --- | --- | --- | --- |');
  for (const model of MODELS) {
    const native = r.engine.find((e) => e.name === model.name && e.native);
    const tfjs = r.engine.find((e) => e.name === model.name && !e.native);
    const t = torch(model);
    lines.push(
      `| ${model.name} | ${native.layers} | ${fmt(native.forward)} (${native.backend}) | ${fmt(tfjs.forward)} (${tfjs.backend}) | ${fmt(t)} | ${ratio(native.forward.median, t.median)} | ${ratio(tfjs.forward.median, t.median)} |`,
    );
  }
  const vgg = r.engine.find((e) => e.name === MODELS[0].name && e.native);
  const seed = r.seed.seed_3_submodels;
  const ms = (s) => Math.round(s * 1000);
  lines.push('');
  lines.push(
    `**The seed's view** (VGG16 block1_conv1, block2_conv1, block3_conv1; ms, min / median / max, image decode included for ours)`,
  );
  lines.push('');
  lines.push(
    "| the seed's Keras script (3 sub-models, `predict` each) | ours, the 3 layers (the pass stops at block3_conv1) | ours, every layer | seed / ours (3 layers) | seed / ours (every layer) |",
  );
  lines.push('| --- | --- | --- | --- | --- |');
  lines.push(
    `| ${ms(seed.min_s)} / ${ms(seed.median_s)} / ${ms(seed.max_s)} | ${fmt(r.seedView.wall)} | ${fmt(vgg.wall)} | **${(ms(seed.median_s) / r.seedView.wall.median).toFixed(1)}×** | ${(ms(seed.median_s) / vgg.wall.median).toFixed(1)}× |`,
  );
  lines.push('');
  lines.push(
    `Keras itself with one all-layers model (\`model(x)\`): ${ms(r.seed.all_18_outputs_call.median_s)} ms median.`,
  );
  lines.push('');
  lines.push(
    "**Through the engine process, per model** (native path; the client is a plain Node process in the extension host's place)",
  );
  lines.push('');
  lines.push(
    '| model | first image (load + pass) | layer switch (16 channels, quantised) | client: longest block of its thread | client peak RSS | engine process peak RSS |',
  );
  lines.push('| --- | --- | --- | --- | --- | --- |');
  for (const e of r.engine.filter((x) => x.native)) {
    lines.push(
      `| ${e.name} | ${e.firstMs} ms | ${fmt(e.layerSwitch)} ms | ${e.mainThreadMaxBlockMs} ms | ${e.clientPeakRssMB} MB | ${e.enginePeakRssMB} MB |`,
    );
  }
  lines.push('');
  lines.push('**Real VS Code UI** (code-server + Chromium; from the menu click to all 16 tiles painted)');
  lines.push('');
  lines.push(
    '| model | right-click → grid, cold | warm (other images) | reopen a seen image | layer click → repaint | extension host: longest block of its thread | an idle process: longest delay | sent per image |',
  );
  lines.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const u of r.ui) {
    lines.push(
      `| ${u.name} | ${u.coldMs} ms | ${fmt(u.warm)} ms | ${u.reopenMs} ms | ${fmt(u.layerSwitch)} ms | ${u.mainThreadMaxBlockMs} ms | ${u.idleProcessMaxDelayMs} ms | ${u.kbPerImage} KB |`,
    );
  }
  lines.push('');
  lines.push(
    `**Memory in the real VS Code UI** (resident, from /proc: VmRSS now, VmHWM for the peak; the same run as above, ${r.ui[0].images} images and ${r.ui[0].layerSwitch.n} layer switches per model)`,
  );
  lines.push('');
  lines.push(
    '| model | extension host: workbench loaded, ours not active | extension host: ours active, engine starting (no model yet) | extension host: after the run | extension host: peak | engine process: after the run | engine process: peak |',
  );
  lines.push('| --- | --- | --- | --- | --- | --- | --- |');
  const mb = (x) => (x === null || x === undefined ? 'n/a' : `${x} MB`);
  for (const u of r.ui) {
    const h = u.extensionHost;
    const e = u.engineProcess;
    const restarts = e.starts > 1 ? ` (${e.starts} processes)` : '';
    lines.push(
      `| ${u.name} | ${mb(h.workbenchLoadedMB)} | ${mb(h.engineStartingMB)} | ${mb(h.afterMB)} | ${mb(h.peakMB)} | ${mb(e.afterMB)}${restarts} | ${mb(e.peakMB)} |`,
    );
  }
  lines.push('');
  lines.push(`(benchmark took ${r.seconds} s)`);
  return lines.join('\n') + '\n';
}

main().catch((error) => {
  console.error(`bench: ${error.message}`);
  process.exit(1);
});

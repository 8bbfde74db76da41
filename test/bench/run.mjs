#!/usr/bin/env node
// `npm run bench`: our engine against its peers, in one run on this machine, side by side.
//   - every layer of VGG16 (no top), MobileNetV2 and the bundled model at 224×224, through our
//     engine process, native (onnxruntime) and tfjs-wasm, against PyTorch on the same
//     architectures (random weights; eager, and torch.compile channels_last) and against the
//     seed's Keras script (three sub-models);
//   - the seed's view as whole processes, the same weights file and image: the seed's Keras script
//     (test/bench/seed_process.py: three sub-models, a 3×3 PNG per layer) against our CLI (the same
//     three layers, --split), its first run (converts) and the runs after it;
//   - the real VS Code UI: right-click → first grid painted (cold, warm), layer switch → repaint,
//     the bytes sent to the webview per image, and the resident memory of the extension host and
//     of the engine process, side by side (the model lives in the engine process only);
//   - a PyTorch file (a ResNet-50 state_dict .pth made here, random weights): the engine's first
//     open (conversion in Python) and second open (its cache, no Python), every layer's pass, and
//     the CLI as whole processes (cache empty, then warm), beside PyTorch's own process on the same
//     file (import + load, then the forward pass with a hook on every module). Uses the torch venv
//     of the PyTorch tests (FEATURE_MAPS_TEST_PYTHON, else ../.oracle-cache/.torch-venv, else
//     ../.torch-venv); skipped, saying so, without one.
//   - Keras files (EfficientNetB0 and ConvNeXtTiny, random weights, each as .h5 and .keras, from
//     the Keras applications oracle, made here when missing): the engine's first open in a fresh
//     process and second open (the file read, converted to ONNX, onnxruntime's session), every
//     layer's pass, the first layer alone, its peak memory, and the CLI as whole processes; beside
//     Keras itself in the oracle's venv (import, load_model, one model of every layer's output,
//     the first layer alone, its peak memory, and a user's script as a whole process).
// Needs the Keras oracle's weight files (made here when missing, from the local wheel mirror)
// and a venv with PyTorch (test/bench/setup-python.sh). Writes test-results/bench.{json,md}.
// BENCH_RUNS (default 10) passes after BENCH_WARMUP (default 2) warm-up passes; the Keras part
// runs BENCH_PROCESS_RUNS (default 3) whole processes per side and file; the real UI runs
// BENCH_UI_RUNS (default 3) times per model (a new code-server, browser and folder each), the
// models taking turns.
// `--only keras` (or a comma list of engine, torch, seed, ui, cli, pytorch, keras) runs only those parts.
// `--readme` writes the report into README.md's Speed section (between its bench markers).
// `--report test-results/bench.json` measures nothing: it prints (and with --readme writes) the
// report of the run saved there, as this script's current version words it.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = path.resolve(repo, '..', 'shared');
const oracleDir = process.env.ORACLE_CACHE ?? path.resolve(repo, '..', '.oracle-cache');
const benchVenv = process.env.BENCH_VENV ?? path.resolve(repo, '..', '.bench-venv');
const runs = Number(process.env.BENCH_RUNS ?? 10);
const warmup = Number(process.env.BENCH_WARMUP ?? 2);
const uiRuns = Number(process.env.BENCH_UI_RUNS ?? 3);
const image = path.join(shared, 'fixtures', 'images', 'chelsea.png');
const log = (line) => console.error(`bench: ${line}`);

const PARTS = ['engine', 'torch', 'seed', 'ui', 'cli', 'pytorch', 'keras', 'rank'];
const { values: flags } = parseArgs({
  options: { only: { type: 'string' }, readme: { type: 'boolean' }, report: { type: 'string' } },
});
const parts = new Set(flags.only ? flags.only.split(',') : PARTS);
for (const part of parts) {
  if (!PARTS.includes(part)) throw new Error(`--only: unknown part "${part}" (parts: ${PARTS.join(', ')})`);
}

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
  const built = ['engine.bench.js', 'pytorch.bench.js', 'keras.bench.js', 'rank.bench.js'].map((f) =>
    path.join(repo, 'dist', 'test', 'bench', f),
  );
  if (![...built, path.join(repo, 'dist', 'cli.js')].every((f) => fs.existsSync(f))) {
    log('building');
    execFileSync('npm', ['run', 'build'], { cwd: repo, stdio: 'inherit' });
  }
  if (parts.has('keras')) prepareKerasFiles();
  if (!['engine', 'seed', 'ui', 'rank'].some((part) => parts.has(part))) return;
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
  if (!parts.has('torch')) return;
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
  if (flags.report) {
    const markdown = report(JSON.parse(fs.readFileSync(flags.report, 'utf8')));
    console.log(markdown);
    if (flags.readme) writeReadme(markdown);
    return;
  }
  prepare();
  const started = Date.now();
  const results = {
    date: new Date().toISOString(),
    machine: machine(),
    runs,
    warmup,
    engine: [],
    torch: {},
    torchCompiled: {},
    ui: [],
  };

  if (parts.has('engine')) {
    for (const model of MODELS) {
      for (const native of [true, false]) {
        log(`engine: ${model.name}, ${native ? 'native' : 'tfjs'}`);
        results.engine.push({ ...engine(model, native), name: model.name, native });
      }
    }
    log("engine: the seed's view (VGG16 block1/2/3_conv1), native");
    results.seedView = engine(MODELS[0], true, SEED_LAYERS);
  }
  if (parts.has('torch')) {
    for (const name of ['vgg16', 'mobilenet_v2']) {
      for (const mode of ['eager', 'compile']) {
        log(
          `PyTorch: ${name}, ${mode === 'eager' ? 'eager' : 'torch.compile (channels_last; compiling takes a minute)'}`,
        );
        const figures = run(path.join(benchVenv, 'bin', 'python'), [
          path.join(repo, 'test', 'bench', 'torch_bench.py'),
          name,
          String(os.availableParallelism()),
          String(runs),
          String(warmup),
          mode,
        ]);
        if (mode === 'eager') results.torch[name] = figures;
        else results.torchCompiled[name] = figures;
      }
    }
  }
  if (parts.has('seed')) {
    log("the seed's Keras script");
    results.seed = run(path.join(oracleDir, '.venv', 'bin', 'python'), [
      path.join(shared, 'oracle', 'bench_seed.py'),
      image,
      String(os.availableParallelism()),
      String(Math.min(runs, 5)),
    ]);
    log("the seed's view as whole processes: the seed's Keras script, our CLI");
    results.seedProcesses = seedProcesses();
  }
  if (parts.has('ui')) {
    const uiModels = [MODELS[2], MODELS[0]];
    const perModel = uiModels.map(() => []);
    for (let i = 0; i < uiRuns; i++) {
      uiModels.forEach((model, m) => {
        log(`real VS Code UI: ${model.name} (${i + 1} of ${uiRuns})`);
        const args = [path.join(repo, 'test', 'bench', 'ui.mjs'), '--model', model.id];
        if (model.weights()) args.push('--weights', model.weights());
        perModel[m].push(run(process.execPath, args));
      });
    }
    results.ui = uiModels.map((model, m) => ({ ...uiRunsTogether(perModel[m]), name: model.name }));
  }
  if (parts.has('cli')) {
    log('the CLI, bundled model, one image, as whole processes');
    results.cli = cliProcesses();
  }
  if (parts.has('pytorch')) {
    try {
      results.pytorch = pytorchFile();
    } catch (error) {
      // The other parts' figures are still written; the run fails at the end.
      log(`the PyTorch file part failed: ${error.message}`);
      results.pytorch = { error: reasonOf(error.message) };
      process.exitCode = 1;
    }
  }
  if (parts.has('keras')) {
    try {
      results.keras = kerasFiles();
    } catch (error) {
      log(`the Keras part failed: ${error.message}`);
      results.keras = { error: reasonOf(error.message) };
      process.exitCode = 1;
    }
  }
  if (parts.has('rank')) {
    log('ranking and paging a 512-channel 56×56 layer: ours, NumPy');
    results.rank = rankLayer();
  }
  results.seconds = Math.round((Date.now() - started) / 1000);

  const markdown = report(results);
  fs.mkdirSync(path.join(repo, 'test-results'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'test-results', 'bench.json'), JSON.stringify(results, null, 2));
  fs.writeFileSync(path.join(repo, 'test-results', 'bench.md'), markdown);
  console.log(markdown);
  if (flags.readme) writeReadme(markdown);
}

const README_START = '<!-- bench:start (written by npm run bench -- --readme; do not edit) -->';
const README_END = '<!-- bench:end -->';

/** Puts the report in README.md between its markers: the Speed section's figures are one run's. */
function writeReadme(markdown) {
  const file = path.join(repo, 'README.md');
  const text = fs.readFileSync(file, 'utf8');
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${README_START} … ${README_END} section`);
  const body = markdown.replace(/^(Feature Maps benchmark, .*)$/m, '_$1._');
  fs.writeFileSync(file, `${text.slice(0, start + README_START.length)}\n\n${body}\n${text.slice(end)}`);
  execFileSync(path.join(repo, 'node_modules', '.bin', 'prettier'), ['--write', file], { cwd: repo });
  log('README.md: the Speed section now shows this run');
}

/**
 * The CLI drawing the bundled model's default sheet for one image, as a user runs it (spawn to
 * exit, BENCH_PROCESS_RUNS times after one to warm the disk cache), beside a Node process that
 * does nothing (the floor any Node command has).
 */
function cliProcesses() {
  const count = Number(process.env.BENCH_PROCESS_RUNS ?? 5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-cli-'));
  try {
    const args = [image, '--out', path.join(dir, 'sheet.png')];
    // dist/feature-maps (a shell script: one Node process) and `node dist/cli.js` (which starts
    // Node a second time to set glibc's malloc tunables), taking turns.
    const oneProcess = () => wholeProcess(path.join(repo, 'dist', 'feature-maps'), args);
    const launcher = () => wholeProcess(process.execPath, [path.join(repo, 'dist', 'cli.js'), ...args]);
    launcher();
    const runs = { ours: [], launcher: [] };
    for (let i = 0; i < count; i++) {
      if (process.platform !== 'win32') runs.ours.push(oneProcess());
      runs.launcher.push(launcher());
    }
    const node = processStats(Array.from({ length: count }, () => wholeProcess(process.execPath, ['-e', '0'])));
    const launched = processStats(runs.launcher);
    return { ours: runs.ours.length ? processStats(runs.ours) : launched, launcher: launched, node };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The seed's view (VGG16 without top: block1_conv1, block2_conv1, block3_conv1, 9 channels each,
 * one PNG per layer) as a user gets it, whole processes from the same weights file: the seed's
 * Keras script (test/bench/seed_process.py), and our CLI, its first run (an empty cache: the
 * model is converted, then kept) and the runs after it.
 */
function seedProcesses() {
  const count = Number(process.env.BENCH_PROCESS_RUNS ?? 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-seed-'));
  try {
    const weights = MODELS[0].weights();
    const cacheDir = path.join(dir, 'models');
    fs.mkdirSync(cacheDir);
    fs.copyFileSync(weights, path.join(cacheDir, VGG16_FILE));
    const env = { XDG_CACHE_HOME: path.join(dir, 'xdg-cache') };
    const cli = () =>
      wholeProcess(
        process.execPath,
        [
          path.join(repo, 'dist', 'cli.js'),
          image,
          ...['--model', 'vgg16', '--cache-dir', cacheDir, '--layers', SEED_LAYERS.join(','), '--channels', '9'],
          ...['--split', '--out', path.join(dir, 'ours.png')],
        ],
        env,
      );
    const first = cli();
    if (first.error) return { error: first.error };
    const ours = processStats(Array.from({ length: count }, cli));
    const python = path.join(oracleDir, '.venv', 'bin', 'python');
    const script = [path.join(repo, 'test', 'bench', 'seed_process.py'), image, weights, dir];
    const seed = processStats(Array.from({ length: count }, () => wholeProcess(python, script)));
    for (const name of SEED_LAYERS) {
      for (const file of [`ours.${name}.png`, `seed.${name}.png`]) {
        if (!fs.existsSync(path.join(dir, file))) throw new Error(`the seed's view: no ${file} was written`);
      }
    }
    return { first, ours, seed };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A failed command's reason: its first `Error:` line (the stack's head), else the message's first line. */
function reasonOf(message) {
  const lines = message.split('\n');
  return (lines.find((l) => /^\w*Error\b/.test(l.trim())) ?? lines[0]).trim();
}

/** The torch venv's Python (as the PyTorch tests find it), or why there is none. */
function torchPython() {
  const fromEnv = process.env.FEATURE_MAPS_TEST_PYTHON;
  if (fromEnv) {
    return fs.existsSync(fromEnv)
      ? { python: fromEnv }
      : { reason: `FEATURE_MAPS_TEST_PYTHON names ${fromEnv}, which does not exist` };
  }
  const candidates = [
    path.resolve(repo, '..', '.oracle-cache', '.torch-venv', 'bin', 'python'),
    path.resolve(repo, '..', '.torch-venv', 'bin', 'python'),
  ];
  const python = candidates.find((p) => fs.existsSync(p));
  return python
    ? { python }
    : { reason: `no torch venv: FEATURE_MAPS_TEST_PYTHON is unset and ${candidates.join(' and ')} do not exist` };
}

const PYTORCH_ARCH = 'torchvision:resnet50';
/** Warm runs of the CLI after its first (converting) run. */
const CLI_WARM_RUNS = 3;

/**
 * A ResNet-50 state_dict made with the torch venv, opened by the engine (first open, second open,
 * every layer's pass), by the CLI as whole processes, and by PyTorch itself with forward hooks.
 */
function pytorchFile() {
  const { python, reason } = torchPython();
  if (!python) {
    log(`PyTorch file: skipped, ${reason}`);
    return { skipped: reason };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-pytorch-'));
  try {
    const file = path.join(dir, 'resnet50.pth');
    const torchScript = path.join(repo, 'test', 'bench', 'torch_open_bench.py');
    log(`PyTorch file: making a ResNet-50 state_dict with ${python}`);
    const made = run(python, [torchScript, 'make', file]);

    log('PyTorch file: our engine, first open (conversion), second open (cache), every layer');
    const ours = run(process.execPath, [
      path.join(repo, 'dist', 'test', 'bench', 'pytorch.bench.js'),
      ...['--file', file, '--arch', PYTORCH_ARCH, '--python', python, '--image', image],
      ...['--runs', String(runs), '--warmup', String(warmup)],
    ]);

    log('PyTorch file: PyTorch itself (import, load, forward hooks on every module)');
    const spawnedAt = Date.now();
    const torch = run(python, [
      torchScript,
      'run',
      file,
      image,
      String(os.availableParallelism()),
      String(runs),
      String(warmup),
      String(spawnedAt),
    ]);
    torch.processMs = Date.now() - spawnedAt;

    return { python, architecture: PYTORCH_ARCH, made, ours, torch, cli: cliRuns(file, python, dir) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `feature-maps --model FILE --arch … --python …` as whole processes: with an empty cache, then warm. */
function cliRuns(file, python, dir) {
  const cli = path.join(repo, 'dist', 'cli.js');
  const help = run(process.execPath, [cli, '--help'], { json: false });
  if (!/--arch\b/.test(help) || !/--python\b/.test(help)) {
    const reason = 'the CLI has no --arch/--python options';
    log(`PyTorch file, CLI: skipped, ${reason}`);
    return { skipped: reason };
  }
  // XDG_CACHE_HOME: the CLI's default cache folder, empty before the first run.
  const env = { XDG_CACHE_HOME: path.join(dir, 'xdg-cache') };
  const args = [cli, '--model', file, '--arch', PYTORCH_ARCH, '--python', python, image];
  const times = [];
  for (let i = 0; i <= CLI_WARM_RUNS; i++) {
    log(`PyTorch file, CLI: ${i === 0 ? 'first run (empty cache)' : `warm run ${i}`}`);
    const out = path.join(dir, `sheet-${i}.png`);
    const t = Date.now();
    run(process.execPath, [...args, '--out', out], { env, json: false });
    times.push(Date.now() - t);
    if (!fs.existsSync(out)) throw new Error(`the CLI wrote no ${out}`);
  }
  // The first run was cold only if its conversion went under XDG_CACHE_HOME.
  const converted = conversionsUnder(env.XDG_CACHE_HOME);
  if (converted.length !== 1) {
    throw new Error(`the CLI left ${converted.length} conversions under XDG_CACHE_HOME (${env.XDG_CACHE_HOME}), not 1`);
  }
  return {
    command: `feature-maps --model resnet50.pth --arch ${PYTORCH_ARCH} --python <torch venv> chelsea.png`,
    firstMs: times[0],
    warm: stats(times.slice(1)),
    conversion: path.relative(env.XDG_CACHE_HOME, converted[0]),
  };
}

/** The conversion folders (holding a model.onnx) under `dir`. */
function conversionsUnder(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true })
    .filter((f) => path.basename(f) === 'model.onnx')
    .map((f) => path.dirname(path.join(dir, f)));
}

const KERAS_MODELS = [
  { id: 'efficientnetb0', name: 'EfficientNetB0' },
  { id: 'convnexttiny', name: 'ConvNeXtTiny' },
];
const KERAS_KINDS = ['h5', 'keras'];
/** Whole processes per side and file: the CLI, and a Keras user's script (BENCH_PROCESS_RUNS, default 3). */
const KERAS_PROCESS_RUNS = Number(process.env.BENCH_PROCESS_RUNS ?? 3);
const kerasPython = path.join(oracleDir, '.venv', 'bin', 'python');
const kerasFile = (model, kind) => path.join(oracleDir, 'keras-apps', model.id, `${model.id}.${kind}`);

/**
 * The Keras applications oracle's EfficientNetB0 and ConvNeXtTiny files (random weights, seed 0),
 * made when missing with tools/make-keras-apps-oracle.sh, in the venv of the Keras oracle (made
 * first, when missing, as for the other parts).
 */
function prepareKerasFiles() {
  const missing = KERAS_MODELS.filter((m) => KERAS_KINDS.some((kind) => !fs.existsSync(kerasFile(m, kind))));
  if (missing.length === 0) return;
  if (!fs.existsSync(kerasPython)) {
    log(`making the Keras oracle's venv in ${oracleDir} (local wheel mirror, about a minute)`);
    execFileSync('bash', [path.join(shared, 'oracle', 'make-oracle.sh'), oracleDir], {
      stdio: 'inherit',
      env: { ...process.env, ORACLE_CROSSCHECK: '0' },
    });
  }
  log(`making ${missing.map((m) => m.name).join(' and ')} in ${path.join(oracleDir, 'keras-apps')}`);
  execFileSync(
    'bash',
    [path.join(repo, 'tools', 'make-keras-apps-oracle.sh'), oracleDir, ...missing.map((m) => m.id)],
    { stdio: 'inherit' },
  );
}

/**
 * Each Keras file opened by our engine (keras.bench.js: first and second open, every layer, the
 * first layer alone) and by Keras itself (keras_bench.py run), then as whole processes: the CLI
 * and a Keras user's script (keras_bench.py whole), in turn.
 */
function kerasFiles() {
  const result = { loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100), files: [] };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-keras-'));
  try {
    for (const model of KERAS_MODELS) {
      for (const kind of KERAS_KINDS) {
        const file = kerasFile(model, kind);
        log(`Keras file ${model.name} .${kind}: our engine (first open, second open, every layer, the first layer)`);
        const ours = run(process.execPath, [
          path.join(repo, 'dist', 'test', 'bench', 'keras.bench.js'),
          ...['--file', file, '--image', image, '--runs', String(runs), '--warmup', String(warmup)],
        ]);
        log(`Keras file ${model.name} .${kind}: Keras itself (import, load_model, every layer, the first layer)`);
        const spawnedAt = Date.now();
        const keras = run(kerasPython, [
          path.join(repo, 'test', 'bench', 'keras_bench.py'),
          'run',
          file,
          image,
          String(os.availableParallelism()),
          String(runs),
          String(warmup),
          String(spawnedAt),
        ]);
        keras.processMs = Date.now() - spawnedAt;
        // The CLI keeps conversions in the user's cache folder: here one of its own per file, so its
        // first run converts and keeps the conversion, and the runs after it open what it kept, as
        // a user's later runs do. The first is timed apart.
        const cache = { XDG_CACHE_HOME: fs.mkdtempSync(path.join(dir, 'cache-')) };
        log(`Keras file ${model.name} .${kind}: the CLI's first run (converts, keeps the conversion)`);
        const cliFirst = wholeProcess(
          process.execPath,
          [
            path.join(repo, 'dist', 'cli.js'),
            image,
            '--model',
            file,
            '--out',
            path.join(dir, `sheet-${model.id}-${kind}-first.png`),
          ],
          cache,
        );
        const cli = [];
        const script = [];
        for (let i = 0; i < KERAS_PROCESS_RUNS; i++) {
          log(
            `Keras file ${model.name} .${kind}: whole processes ${i + 1} of ${KERAS_PROCESS_RUNS}, the CLI and Keras`,
          );
          const out = path.join(dir, `sheet-${model.id}-${kind}-${i}.png`);
          cli.push(
            wholeProcess(
              process.execPath,
              [path.join(repo, 'dist', 'cli.js'), image, '--model', file, '--out', out],
              cache,
            ),
          );
          if (!cli.at(-1).error && !fs.existsSync(out)) throw new Error(`the CLI wrote no ${out}`);
          // A file Keras cannot load fails the same way every time.
          if (script.at(-1)?.error) continue;
          script.push(
            wholeProcess(kerasPython, [
              path.join(repo, 'test', 'bench', 'keras_bench.py'),
              'whole',
              file,
              image,
              String(os.availableParallelism()),
            ]),
          );
        }
        result.files.push({
          model: model.name,
          kind,
          file: path.relative(oracleDir, file),
          ours,
          keras,
          process: { cliFirst, cli: processStats(cli), keras: processStats(script) },
        });
      }
    }
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A whole process's wall time (spawn to exit) and peak resident memory (GNU time's %M, when there is /usr/bin/time). */
function wholeProcess(command, args, extraEnv = {}) {
  const timed = fs.existsSync('/usr/bin/time');
  const options = { cwd: repo, encoding: 'utf8', env: { ...process.env, ...extraEnv } };
  const t = Date.now();
  const result = timed
    ? spawnSync('/usr/bin/time', ['-f', 'fm-bench-peak-kb %M', command, ...args], options)
    : spawnSync(command, args, options);
  const ms = Date.now() - t;
  if (result.status !== 0) return { ms, error: reasonOf(result.stderr || `exit ${result.status}`) };
  const peak = /^fm-bench-peak-kb (\d+)$/m.exec(result.stderr ?? '');
  return { ms, peakRssMB: peak ? Math.round(Number(peak[1]) / 1024) : undefined };
}

/** Whole processes' wall times (and peak memory), or the first failure's reason when any failed. */
function processStats(processes) {
  const failed = processes.find((p) => p.error);
  if (failed) return { error: failed.error, n: processes.length };
  const peaks = processes.map((p) => p.peakRssMB).filter((x) => x !== undefined);
  return { wall: stats(processes.map((p) => p.ms)), peakRssMB: peaks.length ? Math.max(...peaks) : undefined };
}

/**
 * Several runs of test/bench/ui.mjs for one model as one row: each moment a run has once (cold,
 * the folder again, a seen image) as min / median / max over the runs; the warm clicks and layer
 * switches of every run pooled; each memory figure and longest block as its median over the runs.
 */
function uiRunsTogether(list) {
  const over = (pick) => stats(list.map(pick));
  const pooled = (pick) => stats(list.flatMap(pick));
  // A figure some run could not read (null) is left out; none read at all stays null ('n/a').
  const median = (pick) => {
    const known = list.map(pick).filter((x) => x !== null && x !== undefined);
    return known.length ? stats(known).median : null;
  };
  const memory = (part) =>
    Object.fromEntries(Object.keys(list[0][part]).map((key) => [key, median((u) => u[part][key])]));
  return {
    runs: list.length,
    images: list[0].images,
    cold: over((u) => u.coldMs),
    returningCold: over((u) => u.returningColdMs),
    earlyStartAfterMs: median((u) => u.earlyStartAfterMs),
    warm: pooled((u) => u.warmMs),
    reopen: over((u) => u.reopenMs),
    layerSwitch: pooled((u) => u.layerSwitchMs),
    extensionHost: memory('extensionHost'),
    engineProcess: { ...memory('engineProcess'), starts: Math.max(...list.map((u) => u.engineProcess.starts)) },
    mainThreadMaxBlockMs: median((u) => u.mainThreadMaxBlockMs),
    idleProcessMaxDelayMs: median((u) => u.idleProcessMaxDelayMs),
    kbPerImage: list[0].kbPerImage,
  };
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { min: sorted[0], median, max: sorted.at(-1), n: sorted.length };
}

function machine() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
}

/** Ranking a 512-channel layer and paging through it: ours (in the engine) and NumPy on the same values. */
function rankLayer() {
  const npy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fm-rank-')), 'block4_conv1.npy');
  const ours = run(process.execPath, [
    path.join(repo, 'dist', 'test', 'bench', 'rank.bench.js'),
    '--model',
    path.join(oracleDir, 'vgg16_notop.h5'),
    '--image',
    image,
    '--npy',
    npy,
    '--runs',
    String(runs),
  ]);
  const peer = run(path.join(oracleDir, '.venv', 'bin', 'python'), [
    path.join(repo, 'test', 'bench', 'rank_peer.py'),
    npy,
    String(runs),
  ]);
  fs.rmSync(path.dirname(npy), { recursive: true, force: true });
  return { ours, peer };
}

function rankReport(r, lines) {
  const { ours, peer } = r.rank;
  lines.push('');
  lines.push(
    `**Investigating a layer**: VGG16 ${ours.layer} at 448×448 input (${ours.shape.join('×')}), ms, min / median / max of ${ours.rankMs.n} fresh passes; ranking = every channel's min, max, mean, std and fraction active, then the order by max; a page = ${ours.pageChannels} channels in that order quantised for drawing`,
  );
  lines.push('');
  lines.push(`| | ours (engine) | NumPy ${peer.numpy} | ours / NumPy (median) |`);
  lines.push('| --- | --- | --- | --- |');
  lines.push(
    `| rank 512 channels | ${fmt(ours.rankMs)} | ${fmt(peer.rankMs)} | ${ratio(ours.rankMs.median, peer.rankMs.median)} |`,
  );
  lines.push(
    `| one page | ${fmt(ours.pageMs)} | ${fmt(peer.pageMs)} | ${ratio(ours.pageMs.median, peer.pageMs.median)} |`,
  );
  lines.push(`| every page (32) | ${fmt(ours.everyPageMs)} | | |`);
}

function report(r) {
  const lines = [];
  lines.push(`Feature Maps benchmark, ${r.date.slice(0, 10)}, ${r.machine}`);
  if (r.engine.length && Object.keys(r.torch).length) everyLayer(r, lines);
  if (r.seedView && r.seed) seedView(r, lines);
  if (r.seedProcesses) seedProcessReport(r, lines);
  if (r.engine.length) perModel(r, lines);
  if (r.ui.length) ui(r, lines);
  if (r.cli) cliReport(r, lines);
  targets(r, lines);
  if (r.pytorch) pytorchReport(r, lines);
  if (r.keras) kerasReport(r, lines);
  if (r.rank) rankReport(r, lines);
  lines.push('');
  lines.push(`(benchmark took ${r.seconds} s)`);
  return lines.join('\n') + '\n';
}

function everyLayer(r, lines) {
  const torch = (m) => r.torch[MODELS.find((x) => x.name === m.name).torch];
  lines.push('');
  lines.push(
    `**Every layer at 224×224, one image** (ms, min / median / max of ${r.runs} passes after ${r.warmup} warm-up; forward pass in the engine process, all activations copied out)`,
  );
  lines.push('');
  lines.push(
    `| model | layers | ours, native | ours, tfjs-wasm | PyTorch ${Object.values(r.torch)[0].torch} eager | PyTorch torch.compile, channels_last | native / PyTorch eager | native / torch.compile | tfjs / PyTorch eager |`,
  );
  lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const model of MODELS) {
    const native = r.engine.find((e) => e.name === model.name && e.native);
    const tfjs = r.engine.find((e) => e.name === model.name && !e.native);
    const t = torch(model);
    const c = r.torchCompiled?.[MODELS.find((x) => x.name === model.name).torch];
    const compiled = c ? `${fmt(c)} (compiling: ${(c.first_ms / 1000).toFixed(0)} s)` : 'n/a';
    lines.push(
      `| ${model.name} | ${native.layers} | ${fmt(native.forward)} (${native.backend}) | ${fmt(tfjs.forward)} (${tfjs.backend}) | ${fmt(t)} | ${compiled} | ${ratio(native.forward.median, t.median)} | ${c ? ratio(native.forward.median, c.median) : 'n/a'} | ${ratio(tfjs.forward.median, t.median)} |`,
    );
  }
  lines.push('');
  lines.push(
    "PyTorch keeps every leaf module's output with a forward hook (in-place ReLUs made out-of-place); torch.compile is inductor on the same module and hooks, model and image channels_last, its first pass (the compile) left out of the figures.",
  );
  // Until the activation cache is full (256 MB) each pass's outputs are fresh memory; after, they
  // reuse what the images let go held: the order shows both.
  const inOrder = r.engine
    .filter((e) => e.native && e.passes)
    .map((e) => `${e.name} ${e.passes.join(', ')} (${e.keptMB} MB kept per image)`);
  if (inOrder.length) {
    lines.push('');
    lines.push(`Native passes in the order they ran, ms: ${inOrder.join('; ')}.`);
  }
}

function seedView(r, lines) {
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
}

/** The seed's view as whole processes: the seed's Keras script beside our CLI (seedProcesses). */
function seedProcessReport(r, lines) {
  const p = r.seedProcesses;
  lines.push('');
  lines.push(
    `**The seed's view as whole processes** (spawn to exit, ms, min / median / max of ${p.ours?.wall?.n ?? 'n/a'}; the same VGG16 weights file and image; each writes the three layers' 9 channels as one PNG per layer: the seed's Keras script \`test/bench/seed_process.py\`, our \`feature-maps chelsea.png --model vgg16 --layers block1_conv1,block2_conv1,block3_conv1 --channels 9 --split\`)`,
  );
  lines.push('');
  if (p.error || p.ours.error || p.seed.error) {
    lines.push(`fails: ${p.error ?? p.ours.error ?? p.seed.error}`);
    return;
  }
  lines.push(
    "| the seed's script | ours, first run (converts, keeps the conversion) | ours, later runs | seed / ours (later runs) |",
  );
  lines.push('| --- | --- | --- | --- |');
  lines.push(
    `| ${fmt(p.seed.wall)} (peak ${p.seed.peakRssMB ?? 'n/a'} MB) | ${p.first.ms} (peak ${p.first.peakRssMB ?? 'n/a'} MB) | ${fmt(p.ours.wall)} (peak ${p.ours.peakRssMB ?? 'n/a'} MB) | **${(p.seed.wall.median / p.ours.wall.median).toFixed(1)}×** |`,
  );
}

function perModel(r, lines) {
  lines.push('');
  lines.push(
    "**Through the engine process, per model** (native path; the client is a plain Node process in the extension host's place)",
  );
  lines.push('');
  lines.push(
    '| model | first image (load + pass) | layer switch (16 channels, quantised) | kept per cached image (every layer) | client: longest block of its thread | client peak RSS | engine process peak RSS |',
  );
  lines.push('| --- | --- | --- | --- | --- | --- | --- |');
  for (const e of r.engine.filter((x) => x.native)) {
    lines.push(
      `| ${e.name} | ${e.firstMs} ms | ${fmt(e.layerSwitch)} ms | ${e.keptMB} MB | ${e.mainThreadMaxBlockMs} ms | ${e.clientPeakRssMB} MB | ${e.enginePeakRssMB} MB |`,
    );
  }
}

function ui(r, lines) {
  lines.push('');
  const u0 = r.ui[0];
  lines.push(
    `**Real VS Code UI** (code-server + Chromium; from the menu click to all 16 tiles painted; ${u0.runs} run${u0.runs === 1 ? '' : 's'} per model, each a new code-server, browser and folder, the models taking turns; ms, min / median / max: of the ${u0.runs} runs for the moments a run has once, of every run's clicks pooled for warm images (${u0.warm.n}) and layer clicks (${u0.layerSwitch.n}); the longest block and delay: their median over the runs)`,
  );
  lines.push('');
  lines.push(
    '| model | right-click → grid, cold: first use in the folder | cold: the folder opened again (engine started early) | warm (other images) | reopen a seen image | layer click → repaint | extension host: longest block of its thread | an idle process: longest delay | sent per image |',
  );
  lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const u of r.ui) {
    lines.push(
      `| ${u.name} | ${fmt(u.cold)} | ${fmt(u.returningCold)} (started ${(u.earlyStartAfterMs / 1000).toFixed(1)} s after the window) | ${fmt(u.warm)} | ${fmt(u.reopen)} | ${fmt(u.layerSwitch)} | ${u.mainThreadMaxBlockMs} ms | ${u.idleProcessMaxDelayMs} ms | ${u.kbPerImage} KB |`,
    );
  }
  lines.push('');
  lines.push(
    `**Memory in the real VS Code UI** (resident, from /proc: VmRSS now, VmHWM for the peak; the same runs as above, the median of ${u0.runs}; ${u0.images} images and ${u0.layerSwitch.n / u0.runs} layer switches per run)`,
  );
  lines.push('');
  lines.push(
    '| model | extension host: workbench loaded (ours active, no engine) | extension host: ours active, engine starting (no model yet) | extension host: after the run | extension host: peak | engine process: after the run | engine process: peak |',
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
}

/** Issue 12's targets, each against this run's figure (a part not run is left out). */
function targets(r, lines) {
  const rows = [];
  const row = (target, measured, met) => rows.push(`| ${target} | ${measured} | ${met ? 'yes' : 'no'} |`);
  const [bundled, vgg] = [r.ui.find((u) => u.name === MODELS[2].name), r.ui.find((u) => u.name === MODELS[0].name)];
  for (const [u, target, limitMs] of [
    [bundled, 'UI cold, bundled model ≤ 1.0 s', 1000],
    [vgg, 'UI cold, VGG16 on disk ≤ 2.0 s', 2000],
  ]) {
    if (!u) continue;
    row(`${target}: first use in a folder (median of ${u.runs})`, `${u.cold.median} ms`, u.cold.median <= limitMs);
    row(
      `${target}: a folder used before (engine started early; median of ${u.runs})`,
      `${u.returningCold.median} ms`,
      u.returningCold.median <= limitMs,
    );
  }
  if (bundled) row('UI warm median ≤ 200 ms (bundled)', `${bundled.warm.median} ms`, bundled.warm.median <= 200);
  if (vgg) row('UI warm median ≤ 200 ms (VGG16)', `${vgg.warm.median} ms`, vgg.warm.median <= 200);
  if (bundled)
    row('layer click ≤ 50 ms (median, bundled)', `${bundled.layerSwitch.median} ms`, bundled.layerSwitch.median <= 50);
  if (r.cli?.ours.wall)
    row(
      'CLI, one image, bundled model ≤ 0.5 s',
      `${r.cli.ours.wall.median} ms (\`dist/feature-maps\`; \`node dist/cli.js\` ${r.cli.launcher?.wall?.median ?? 'n/a'} ms)`,
      r.cli.ours.wall.median <= 500,
    );
  const p = r.seedProcesses;
  if (p?.ours?.wall && p.seed?.wall) {
    const x = p.seed.wall.median / p.ours.wall.median;
    row("the seed's view ≥ 4× the seed's script, as whole processes", `${x.toFixed(1)}×`, x >= 4);
  }
  if (r.seedView && r.seed) {
    const x = (r.seed.seed_3_submodels.median_s * 1000) / r.seedView.wall.median;
    row("the seed's view ≥ 4× the seed's script, in process (the 3 layers' passes)", `${x.toFixed(1)}×`, x >= 4);
  }
  if (r.engine.length && Object.keys(r.torch).length) {
    for (const [model, limit] of [
      [MODELS[1], 1.0],
      [MODELS[0], 0.9],
    ]) {
      const native = r.engine.find((e) => e.name === model.name && e.native);
      const x = native.forward.median / r.torch[model.torch].median;
      row(`every layer, ${model.name} ≤ ${limit.toFixed(1)}× PyTorch eager`, `${x.toFixed(2)}×`, x <= limit);
    }
  }
  const mobilenet = r.engine.find((e) => e.name === MODELS[1].name && e.native);
  if (mobilenet?.keptMB !== undefined) {
    row('memory per cached MobileNetV2 image ≤ 35 MB', `${mobilenet.keptMB} MB`, mobilenet.keptMB <= 35);
  }
  if (!rows.length) return;
  lines.push('');
  lines.push("**Against issue 12's targets**, in this run");
  lines.push('');
  lines.push('| target | measured | met |');
  lines.push('| --- | --- | --- |');
  lines.push(...rows);
}

function cliReport(r, lines) {
  const { ours, launcher, node } = r.cli;
  lines.push('');
  lines.push(
    `**The CLI, one image** (\`dist/feature-maps chelsea.png\`, one Node process, and \`node dist/cli.js chelsea.png\`, which starts Node again with glibc's malloc tuned, taking turns: the bundled model, its three default layers, the PNG sheet written; whole processes, spawn to exit, ms, min / median / max of ${ours.wall?.n ?? ours.n})`,
  );
  lines.push('');
  lines.push('| `dist/feature-maps` | `node dist/cli.js` | peak RSS | Node doing nothing (`node -e 0`) |');
  lines.push('| --- | --- | --- | --- |');
  if (ours.error || launcher?.error) lines.push(`| failed: ${ours.error ?? launcher.error} | | | |`);
  else
    lines.push(
      `| ${fmt(ours.wall)} | ${launcher ? fmt(launcher.wall) : 'n/a'} | ${ours.peakRssMB ?? 'n/a'} MB | ${fmt(node.wall)} |`,
    );
}

function pytorchReport(r, lines) {
  const p = r.pytorch;
  lines.push('');
  if (p.skipped || p.error) {
    lines.push(
      `**A PyTorch file (ResNet-50 state_dict)**: ${p.skipped ? `skipped, ${p.skipped}` : `failed: ${p.error}`}.`,
    );
    return;
  }
  const { ours, torch, cli } = p;
  const s = (ms) => (ms / 1000).toFixed(1) + ' s';
  lines.push(
    `**A PyTorch file**: torchvision's ResNet-50 with random weights, saved as a state_dict \`.pth\` (${ours.fileMB} MB), opened as \`${p.architecture}\` with the torch venv's Python (torch ${torch.torch}, ${torch.threads} threads), the same file on both sides`,
  );
  lines.push('');
  lines.push(
    "| ours: first open (Python imports torch, loads the file, exports ONNX; then onnxruntime's session) | ours: second open (the cached conversion, no Python) | PyTorch: a process until the model is loaded (spawn, import torch + torchvision, resnet50(), torch.load, load_state_dict) |",
  );
  lines.push('| --- | --- | --- |');
  lines.push(
    `| ${s(ours.firstOpenMs)} (in Python after import: load + export ${ours.conversion.pythonSeconds} s; ONNX ${ours.conversion.onnxMB} MB) | ${s(ours.secondOpenMs)} | ${s(torch.readyMs)} (import ${s(torch.importMs)}, build ${s(torch.buildMs)}, load ${s(torch.loadMs)}) |`,
  );
  lines.push('');
  lines.push(
    `**Every layer of the PyTorch ResNet-50, one image** (chelsea.png at 224×224; ms, min / median / max of ${ours.forward.n} passes after ${r.warmup} warm-up)`,
  );
  lines.push('');
  lines.push(
    '| layers (ours / PyTorch hook outputs) | ours, forward pass (onnxruntime, every layer copied out) | ours, with image decode + preprocessing | PyTorch, forward hooks on every module | PyTorch, no hooks | ours / PyTorch with hooks |',
  );
  lines.push('| --- | --- | --- | --- | --- | --- |');
  lines.push(
    `| ${ours.layers} / ${torch.outputs} | ${fmt(ours.forward)} | ${fmt(ours.wall)} | ${fmt(torch.forwardHooks)} | ${fmt(torch.forwardPlain)} | ${ratio(ours.forward.median, torch.forwardHooks.median)} |`,
  );
  lines.push('');
  lines.push(
    `Ours, the first image after the second open (the engine opens the cached conversion, then the pass): ${s(ours.firstImageMs)}; our bench process peaked at ${ours.peakRssMB} MB resident. PyTorch's image preprocessing (PIL decode, resize, normalise): ${torch.preprocessMs} ms; its whole process (load, ${2 * (r.warmup + ours.forward.n)} passes): ${s(torch.processMs)}.`,
  );
  lines.push('');
  if (cli.skipped) {
    lines.push(`**The CLI on the PyTorch file**: skipped, ${cli.skipped}.`);
    return;
  }
  lines.push(
    `**The CLI on the PyTorch file, whole processes** (\`${cli.command}\`, a contact sheet of its default layers)`,
  );
  lines.push('');
  lines.push(`| first run (empty cache: converts) | later runs (cache warm), min / median / max of ${cli.warm.n} |`);
  lines.push('| --- | --- |');
  lines.push(`| ${s(cli.firstMs)} | ${s(cli.warm.min)} / ${s(cli.warm.median)} / ${s(cli.warm.max)} |`);
}

function kerasReport(r, lines) {
  const k = r.keras;
  lines.push('');
  if (k.error) {
    lines.push(`**Keras files (EfficientNetB0, ConvNeXtTiny)**: failed: ${k.error}.`);
    return;
  }
  const first = k.files[0];
  const secs = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
  const msOf = (ms) => `${ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
  const whole = (p) =>
    p.error ? `fails: ${p.error}` : `${secs(p.wall.median)}${p.peakRssMB === undefined ? '' : `, ${p.peakRssMB} MB`}`;
  // A run saved before the first run was timed apart has none.
  const firstRun = (p) =>
    !p
      ? ''
      : p.error
        ? `; first run fails: ${p.error}`
        : `; first run (converts) ${secs(p.ms)}${p.peakRssMB === undefined ? '' : `, ${p.peakRssMB} MB`}`;
  lines.push(
    `**Keras files**: keras.applications models with random weights (seed 0), saved by Keras ${first.keras.keras} as \`.h5\` and \`.keras\`, the same file on both sides; chelsea.png at 224×224; ${first.keras.threads} threads for TensorFlow (TF_ENABLE_ONEDNN_OPTS=${first.keras.oneDnnOpts}), onnxruntime on every core; load average ${k.loadAverage.join(', ')} when the part started`,
  );
  lines.push('');
  lines.push(
    `| model | file | side | open | layers read out | every layer (median of ${first.ours.forward.n}) | the first layer alone | bench process: resident after the (first) open; peak | whole process (median of ${KERAS_PROCESS_RUNS}; peak RSS) |`,
  );
  lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const f of k.files) {
    const { ours, keras } = f;
    const size = `${ours.fileMB} MB`;
    lines.push(
      `| ${f.model} | .${f.kind} (${size}) | ours | ${secs(ours.firstOpenMs)}; again ${secs(ours.secondOpenMs)} | ${ours.layers} | ${msOf(ours.forward.median)} | ${msOf(ours.firstLayer.pass.median)} | ${ours.rssAfterOpenMB} MB; ${ours.peakRssMB} MB | CLI: ${whole(f.process.cli)}${firstRun(f.process.cliFirst)} |`,
    );
    if (keras.loadError) {
      lines.push(
        `| ${f.model} | .${f.kind} | Keras | **load_model fails**: ${keras.loadError} (after import ${secs(keras.importMs)}) | – | – | – | –; ${keras.peakRssMB} MB | script: ${whole(f.process.keras)} |`,
      );
      continue;
    }
    const pass = (p) => `predict ${msOf(p.predict.median)}; call ${msOf(p.call.median)}`;
    lines.push(
      `| ${f.model} | .${f.kind} | Keras | ${secs(keras.loadMs)} + import ${secs(keras.importMs)}; again ${secs(keras.secondLoadMs)} | ${keras.outputs} | ${pass(keras.everyLayer)} | ${pass(keras.firstLayer)} | ${keras.rssAfterLoadMB} MB; ${keras.peakRssMB} MB | script: ${whole(f.process.keras)} |`,
    );
  }
  lines.push('');
  lines.push(
    "Open, ours: the engine's `loadModel` (the file read, its architecture and weights written into an ONNX graph, onnxruntime's session), the first in a fresh process (Node modules, h5wasm and onnxruntime start with it), then again after disposing that engine. Keras: `keras.saving.load_model(file, compile=False)` after `import tensorflow, keras` (timed apart), then again after `clear_session()`. " +
      `Every layer, ours: the engine's forward pass with every layer copied out (preprocessing included, image decode not); Keras: one \`keras.Model(inputs, [every layer's output])\`, \`predict\` and \`model(x, training=False)\` with every output to numpy (a nested model, ConvNeXt's stem and downsampling blocks, gives one output to Keras, its layers to us). ` +
      `The first layer alone (${k.files
        .map((f) => f.ours.firstLayer.layer)
        .filter((x, i, a) => a.indexOf(x) === i)
        .join(
          ', ',
        )}): ours, \`run\` with only that layer, on a graph cut down to it; Keras, a model of that layer's output. ` +
      "Whole process: spawn to exit; ours `feature-maps <image> --model <file> --out sheet.png` (every layer's pass, a contact sheet of three), Keras a script that imports, loads, `predict`s every layer's output and takes them as numpy arrays; the CLI's figures are of the runs after its first, which converted the file and kept the conversion (shown apart). Peak RSS of whole processes by GNU time, the largest of the runs. " +
      "Bench process memory: ours with the engine keeping the latest image's activations only (the extension's engine keeps recent images' on top, up to activationCache.ts' DEFAULT_CACHE_BYTES), Keras holding one pass's outputs; both after two opens and every pass above.",
  );
  const firstOpen = k.files.map(
    (f) =>
      `${f.model} .${f.kind} ${secs(f.ours.firstOpenMs)} (conversion + session ${secs(f.ours.firstConvertedInMs)}; again ${secs(f.ours.secondConvertedInMs)})`,
  );
  lines.push('');
  lines.push(`Ours, what the open spends converting and making the session: ${firstOpen.join(', ')}.`);
}

main().catch((error) => {
  console.error(`bench: ${error.message}`);
  process.exit(1);
});

import * as assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { TEST_PUBLISHED_HASHES_ENV, catalogEntry } from '../../src/engine/catalog';
import { withMallocTuning } from '../../src/engine/mallocTuning';
import { colormapLut } from '../../src/shared/colormaps';
import { startMirror } from '../mirror.mjs';
import { DIST, image, oracleCacheFile, shared, tempDir, torchOracle } from './fixtures';
import { readNpy } from './npy';

function cli(...args: string[]) {
  return spawnSync(process.execPath, [path.join(DIST, 'cli.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** The CLI without blocking this process, which may be serving its downloads. */
function cliAsync(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(DIST, 'cli.js'), ...args], { timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The CLI in `cwd` with extra environment (a private cache folder), without blocking this process. */
function cliIn(
  options: { cwd?: string; env?: NodeJS.ProcessEnv },
  ...args: string[]
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(DIST, 'cli.js'), ...args],
      { timeout: 300_000, cwd: options.cwd, env: { ...process.env, ...options.env } },
      (error, stdout, stderr) => resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('the feature-maps command line', () => {
  it('converts a Keras file once: the next run draws the same sheet from the kept conversion', async () => {
    const cache = tempDir();
    const env = { XDG_CACHE_HOME: cache };
    const model = shared('fixtures', 'models', 'fer2013_mini_XCEPTION.102-0.66.hdf5');
    const [first, second] = [path.join(cache, 'first.png'), path.join(cache, 'second.png')];
    const run = await cliIn({ env }, image('chelsea.png'), '--model', model, '-o', first);
    assert.equal(run.status, 0, run.stderr);
    const kept = path.join(cache, 'feature-maps', 'conversions', 'keras-tfjs');
    assert.equal(fs.readdirSync(kept).length, 1, 'the conversion is kept when the CLI exits');
    const keptJson = path.join(kept, fs.readdirSync(kept)[0]!, 'model.json');
    const written = fs.statSync(keptJson).mtimeMs;
    const again = await cliIn({ env }, image('chelsea.png'), '--model', model, '-o', second);
    assert.equal(again.status, 0, again.stderr);
    assert.ok(fs.statSync(keptJson).mtimeMs > written, 'the second run opened the kept conversion');
    assert.ok(fs.readFileSync(second).equals(fs.readFileSync(first)), 'the same sheet');
  });

  it('writes a contact sheet of the chosen layers × channels as a PNG', async () => {
    const out = path.join(tempDir(), 'sheet.png');
    const run = cli(
      image('chelsea.png'),
      '--layers',
      'Conv1,block_1_expand',
      '--channels',
      '4',
      '--tile',
      '64',
      '-o',
      out,
    );
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /Conv1 \(4 of 32\), block_1_expand \(4 of 96\)/);
    const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    // Two columns of 64 px tiles (√4) with 4 px gaps and 12 px margins.
    assert.equal(info.width, 12 * 2 + 2 * 64 + 4);
    // The tiles are drawn: many distinct colours, not one flat fill.
    const colours = new Set<number>();
    for (let i = 0; i < data.length; i += info.channels)
      colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    assert.ok(colours.size > 200, `${colours.size} colours`);
  });

  it('draws tile k of a block as channel k, colormapped and scaled in pixel blocks, like the --npy of the same run', async () => {
    const dir = tempDir();
    const [out, npy] = [path.join(dir, 'sheet.png'), path.join(dir, 'conv1.npy')];
    const run = cli(image('chelsea.png'), '-l', 'Conv1', '-c', '4', '--tile', '64', '--npy', npy, '-o', out);
    assert.equal(run.status, 0, run.stderr);
    const { shape, data: values } = readNpy(npy);
    const [h, w, channels] = shape;
    const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) =>
      data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3);
    // The label's text is grey (r = g = b); the first row that is not is the tiles' first.
    let top = 12;
    while (top < info.height && new Set(at(12, top)).size === 1) top++;
    const lut = colormapLut('viridis');
    for (let k = 0; k < 4; k++) {
      const channel = Array.from({ length: h * w }, (_, p) => values[p * channels + k]);
      const [lo, hi] = [Math.min(...channel), Math.max(...channel)];
      const [left, tileTop] = [12 + (k % 2) * (64 + 4), top + Math.floor(k / 2) * (64 + 4)];
      let wrong = 0;
      for (let y = 0; y < 64; y++)
        for (let x = 0; x < 64; x++) {
          // The source pixel under the tile pixel's centre, its colour from the channel's own range
          // (a flat channel is the colormap's first colour).
          const v = channel[Math.floor(((y + 0.5) * h) / 64) * w + Math.floor(((x + 0.5) * w) / 64)];
          const q = hi > lo ? Math.round(((v - lo) / (hi - lo)) * 255) : 0;
          const colour = at(left + x, tileTop + y);
          const near = [q - 1, q, q + 1].some(
            (i) => i >= 0 && i < 256 && [0, 1, 2].every((c) => Math.abs(lut[i * 3 + c] - colour[c]) <= 1),
          );
          if (!near) wrong++;
        }
      assert.equal(wrong, 0, `tile ${k}: ${wrong} of ${64 * 64} pixels are not channel ${k}'s`);
    }
  });

  it('uses your own model with --model, its preprocessing guessed', async () => {
    const out = path.join(tempDir(), 'onnx.png');
    const model = shared('fixtures', 'models', 'squeezenet-imagenet.onnx', 'SqueezeNet_fp16.onnx');
    const run = cli(image('coffee.png'), '--model', model, '--layers', 'conv1_1', '--channels', '9', '-o', out);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /conv1_1 \(9 of 64\)/);
    const { width } = await sharp(out).metadata();
    assert.equal(width, 12 * 2 + 3 * 128 + 2 * 4, 'a 3×3 grid of 128 px tiles');
  });

  it('ranks channels with --sort, draws them over the image with --overlay, and writes the layer with --npy', async () => {
    const dir = tempDir();
    const npy = path.join(dir, 'layer.npy');
    const asNpy = cli(image('horse.png'), '-l', 'block_2_expand', '--npy', npy, '--npy-layout', 'chw');
    assert.equal(asNpy.status, 0, asNpy.stderr);
    const { shape, data } = readNpy(npy);
    assert.deepEqual(shape, [144, 56, 56]);
    const max = Array.from({ length: 144 }, (_, c) => Math.max(...data.subarray(c * 3136, (c + 1) * 3136)));
    const top = max
      .map((_, c) => c)
      .sort((a, b) => max[b] - max[a] || a - b)
      .slice(0, 4);
    const sorted = cli(
      image('horse.png'),
      '-l',
      'block_2_expand',
      '--sort',
      'max',
      '-c',
      '4',
      '-o',
      path.join(dir, 's.png'),
    );
    assert.equal(sorted.status, 0, sorted.stderr);
    assert.match(sorted.stdout, new RegExp(`by max: #${top.join(' #')}\\)`));
    const over = path.join(dir, 'over.png');
    const overlaid = cli(image('horse.png'), '-l', 'block_2_expand', '-c', '4', '--overlay', '-o', over);
    assert.equal(overlaid.status, 0, overlaid.stderr);
    const plain = path.join(dir, 'plain.png');
    assert.equal(cli(image('horse.png'), '-l', 'block_2_expand', '-c', '4', '-o', plain).status, 0);
    const [a, b] = await Promise.all([over, plain].map((f) => sharp(f).raw().toBuffer()));
    assert.ok(!a.equals(b), 'the overlaid sheet differs from the plain one');
    assert.match(cli(image('horse.png'), '--overlay', '--opacity', '2').stderr, /--opacity must be between 0 and 1/);
  });

  it('prints the layers with --list', () => {
    const run = cli(image('coffee.png'), '--list');
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^Conv1\tConv2D\t112×112×32$/m);
  });

  (process.platform === 'win32' ? it.skip : it)(
    'with no --layers draws three convolutions spread through the model; dist/feature-maps (one process) draws the same sheet as node dist/cli.js naming them',
    () => {
      // The expected layers, from --list: the convolutions with maps, at 0, ⅓ and ⅔ of them.
      const convs = cli(image('coffee.png'), '--list')
        .stdout.split('\n')
        .map((line) => line.split('\t'))
        .filter(([, op, , noMaps]) => /conv/i.test(op ?? '') && noMaps === undefined)
        .map(([name]) => name!);
      const expected = [0, Math.floor(convs.length / 3), Math.floor((2 * convs.length) / 3)].map((i) => convs[i]!);
      const dir = tempDir();
      const [picked, named] = [path.join(dir, 'picked.png'), path.join(dir, 'named.png')];
      const run = spawnSync(path.join(DIST, 'feature-maps'), [image('coffee.png'), '-o', picked], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(run.status, 0, run.stderr);
      const drawn = [...run.stdout.matchAll(/(?:: |, )(\S+) \(9 of \d+\)/g)].map((m) => m[1]);
      assert.deepEqual(drawn, expected, run.stdout);
      const byName = cli(image('coffee.png'), '--layers', expected.join(','), '-o', named);
      assert.equal(byName.status, 0, byName.stderr);
      assert.ok(fs.readFileSync(picked).equals(fs.readFileSync(named)), 'the same sheet');
    },
  );

  it('exits with a message for a broken image, an unknown layer or a sheet too large to draw', () => {
    const broken = cli(image('truncated.jpg'));
    assert.equal(broken.status, 1);
    assert.match(broken.stderr, /truncated\.jpg could not be decoded/);
    const unknown = cli(image('coffee.png'), '--layers', 'nope*');
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /No layer with spatial maps matches nope\*/);
    // 27 tiles of 20000 px would be 43 GB of pixels: refused before any is drawn.
    const huge = path.join(tempDir(), 'huge.png');
    const tooLarge = cli(image('coffee.png'), '--tile', '20000', '-o', huge);
    assert.equal(tooLarge.status, 1, tooLarge.stderr);
    assert.match(tooLarge.stderr, /A sheet of 27 tiles of 20000 px, 3 across, would have more than 100 million pixels/);
    assert.ok(!fs.existsSync(huge), 'no sheet written');
  });

  it('reproduces the Keras recipe: --model vgg16 downloads once, then one 3×3 PNG per seed layer', async function () {
    this.timeout(120_000);
    const vgg16 = catalogEntry('catalog:vgg16');
    assert.ok(vgg16);
    const weights = fs.readFileSync(oracleCacheFile(vgg16.fileName, this));
    const sha256 = createHash('sha256').update(weights).digest('hex');
    // The oracle's weights are random (seeded): their hash stands in for Keras' published MD5
    // (a test-only switch; a mirror's SHA256SUMS cannot override Keras' hash).
    const mirror = await startMirror({ files: { [vgg16.urlPath]: weights } });
    process.env[TEST_PUBLISHED_HASHES_ENV] = `${sha256}  ${vgg16.fileName}\n`;
    try {
      const dir = tempDir();
      const args = [image('chelsea.png'), '--model', 'vgg16', '--mirror', mirror.base, '--cache-dir', dir];
      const run = await cliAsync(...args, '--split', '-o', path.join(dir, 'chelsea.png'));
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /Downloading VGG16 ImageNet \(no top\) from http:\/\/127\.0\.0\.1/);
      assert.match(run.stderr, /56\.2 of 56\.2 MB/);
      for (const [layer, total] of [
        ['block1_conv1', 64],
        ['block2_conv1', 128],
        ['block3_conv1', 256],
      ] as const) {
        assert.match(run.stdout, new RegExp(`chelsea\\.${layer}\\.png: ${layer} \\(9 of ${total}\\)`));
        const { width, height } = await sharp(path.join(dir, `chelsea.${layer}.png`)).metadata();
        assert.equal(width, 12 * 2 + 3 * 128 + 2 * 4, `${layer}: three tiles across`);
        assert.ok(height > 3 * 128 + 2 * 4, `${layer}: three rows`);
      }
      // Once per machine: a second run uses the cached file.
      const requests = mirror.requests.length;
      const again = await cliAsync(...args, '--list');
      assert.equal(again.status, 0, again.stderr);
      assert.equal(mirror.requests.length, requests);
      assert.doesNotMatch(again.stderr, /Downloading/);
    } finally {
      delete process.env[TEST_PUBLISHED_HASHES_ENV];
      await mirror.close();
    }
  });
});

const torch = torchOracle();

// PyTorch files from the oracle (tools/make-torch-oracle.sh), opened with the test venv's Python.
(torch ? describe : describe.skip)('the feature-maps command line with PyTorch files', function () {
  this.timeout(300_000);
  const resnet = path.join(torch?.dir ?? '', 'resnet18');
  /** What PyTorch's forward hooks saw of a module: its class and C×H×W shape (the oracle's manifest). */
  const hooked = (dir: string, name: string) => {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
      modules: { name: string; class: string; shape: number[] }[];
    };
    const module = manifest.modules.find((m) => m.name === name);
    assert.ok(module, `${name} is not in ${dir}/manifest.json`);
    const [c, h, w] = module.shape;
    return { op: module.class, shape: `${h}×${w}×${c}`, channels: c };
  };
  let cache: string;
  beforeEach(() => (cache = tempDir()));
  afterEach(() => fs.rmSync(cache, { recursive: true, force: true }));

  it('draws a .pt2 program under PyTorch’s module names, converted once: the next run needs no Python', async () => {
    const out = path.join(cache, 'sheet.png');
    const env = { XDG_CACHE_HOME: cache };
    const model = path.join(resnet, 'exported.pt2');
    const args = [image('chelsea.png'), '--model', model, '--layers', 'layer1.0.conv1', '-c', '4', '-o', out];
    const first = await cliIn({ env }, ...args, '--python', torch!.python);
    assert.equal(first.status, 0, first.stderr);
    const conv = hooked(resnet, 'layer1.0.conv1');
    assert.match(first.stdout, new RegExp(`layer1\\.0\\.conv1 \\(4 of ${conv.channels}\\)`));
    const { width } = await sharp(out).metadata();
    assert.equal(width, 12 * 2 + 2 * 128 + 4, 'a 2×2 grid of 128 px tiles');
    // The conversion is kept in the user's cache folder: a Python that does not exist is never asked.
    const conversions = fs.readdirSync(path.join(cache, 'feature-maps', 'conversions'));
    assert.equal(conversions.length, 1, conversions.join(', '));
    const again = await cliIn({ env }, ...args, '--python', path.join(cache, 'no-such-python'));
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /layer1\.0\.conv1 \(4 of/);
  });

  it('runs a PyTorch file in Python (forward hooks) where there is no ONNX Runtime (the Intel Mac and Alpine packages)', async () => {
    const out = path.join(cache, 'sheet.png');
    const env = { XDG_CACHE_HOME: cache, FEATURE_MAPS_WITHOUT_ONNXRUNTIME: '1' };
    const model = path.join(resnet, 'state_dict.pth');
    const args = [
      image('chelsea.png'),
      '--model',
      model,
      '--arch',
      'torchvision:resnet18',
      '--layers',
      'layer1.0.conv1',
    ];
    const run = await cliIn({ env }, ...args, '-c', '4', '-o', out, '--python', torch!.python);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`layer1\\.0\\.conv1 \\(4 of ${hooked(resnet, 'layer1.0.conv1').channels}\\)`));
    // Nothing was converted: there is nothing to run a conversion on.
    assert.ok(
      !fs.existsSync(path.join(cache, 'feature-maps', 'conversions')) ||
        fs.readdirSync(path.join(cache, 'feature-maps', 'conversions')).length === 0,
    );
    // A TorchScript file cannot run with hooks: it is refused in words that say what to save instead.
    const script = await cliIn(
      { env },
      image('chelsea.png'),
      '--model',
      path.join(resnet, 'torchscript.pt'),
      '--python',
      torch!.python,
    );
    assert.equal(script.status, 1);
    assert.match(
      script.stderr,
      /torchscript\.pt is a TorchScript file, which runs only converted to ONNX, and ONNX Runtime is not available on this platform\. Save the model's state_dict/,
    );
  });

  it('asks for --arch for a state_dict, and lists its layers with it', async () => {
    const env = { XDG_CACHE_HOME: cache };
    const model = path.join(resnet, 'state_dict.pth');
    const asked = await cliIn({ env }, image('chelsea.png'), '--model', model, '--python', torch!.python, '--list');
    assert.notEqual(asked.status, 0);
    assert.match(asked.stderr, /state_dict\.pth holds only weights/);
    assert.match(asked.stderr, /pass --arch torchvision:resnet50, timm:NAME or module:callable/);
    assert.equal(asked.stdout, '');

    const architecture = fs.readFileSync(path.join(resnet, 'architecture.txt'), 'utf8').trim();
    const listed = await cliIn(
      { env },
      image('chelsea.png'),
      ...['--model', model, '--python', torch!.python, '--arch', architecture, '--list'],
    );
    assert.equal(listed.status, 0, listed.stderr);
    const conv = hooked(resnet, 'layer1.0.conv1');
    assert.match(listed.stdout, new RegExp(`^layer1\\.0\\.conv1\t${conv.op}\t${conv.shape}$`, 'm'));
  });

  it('imports a module:callable architecture from the current folder', async () => {
    const custom = path.join(torch?.dir ?? '', 'custom');
    const architecture = fs.readFileSync(path.join(custom, 'architecture.txt'), 'utf8').trim();
    const manifest = JSON.parse(fs.readFileSync(path.join(custom, 'manifest.json'), 'utf8')) as {
      modules: { name: string; shape: number[] }[];
    };
    const mapped = manifest.modules.find((m) => m.shape.length === 3);
    assert.ok(mapped, 'the custom model has a module with maps');
    const expected = hooked(custom, mapped.name);
    const run = await cliIn(
      { cwd: custom, env: { XDG_CACHE_HOME: cache } },
      image('chelsea.png'),
      ...['--model', 'weights.safetensors', '--python', torch!.python, '--arch', architecture, '--list'],
    );
    assert.equal(run.status, 0, run.stderr);
    const escaped = mapped.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(run.stdout, new RegExp(`^${escaped}\t${expected.op}\t${expected.shape}$`, 'm'));
  });

  it('loads a pickled model only with --allow-pickle, which says it runs code from the file', async () => {
    const env = { XDG_CACHE_HOME: cache };
    const model = path.join(resnet, 'pickled.pt');
    const refused = await cliIn({ env }, image('chelsea.png'), '--model', model, '--python', torch!.python, '--list');
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /pickled\.pt is a pickled Python object: loading it can run code it contains/);
    assert.match(refused.stderr, /pass --allow-pickle/);
    assert.ok(
      !fs.existsSync(path.join(cache, 'feature-maps', 'conversions')) ||
        fs.readdirSync(path.join(cache, 'feature-maps', 'conversions')).length === 0,
      'nothing converted',
    );

    const help = await cliIn({}, '--help');
    assert.match(help.stdout, /--allow-pickle\s+load a PyTorch file that is a whole pickled model[\s\S]*runs code/);

    const loaded = await cliIn(
      { env },
      image('chelsea.png'),
      ...['--model', model, '--python', torch!.python, '--allow-pickle', '--list'],
    );
    assert.equal(loaded.status, 0, loaded.stderr);
    const conv = hooked(resnet, 'layer1.0.conv1');
    assert.match(loaded.stdout, new RegExp(`^layer1\\.0\\.conv1\t${conv.op}\t${conv.shape}$`, 'm'));
  });
});

describe('the tunables both launchers give the CLI on Linux (mallocTuning.ts)', () => {
  // The shell launcher with a stand-in for Node that prints what it was started with.
  const fakeNode = path.join(tempDir(), 'node');
  fs.writeFileSync(fakeNode, '#!/bin/sh\nprintf %s "${GLIBC_TUNABLES-unset}"\n', { mode: 0o755 });
  const viaShell = (tunables: string | undefined): string => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NODE: fakeNode };
    if (tunables !== undefined) env.GLIBC_TUNABLES = tunables;
    const run = spawnSync(path.join(DIST, 'feature-maps'), [], { env, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return run.stdout;
  };

  for (const [case_, own, expected] of [
    ['none of the user’s', undefined, 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824'],
    [
      'beside the user’s others',
      'glibc.cpu.x86_foo=1',
      'glibc.cpu.x86_foo=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824',
    ],
    [
      'the user’s own threshold kept',
      'glibc.malloc.mmap_threshold=65536',
      'glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=1073741824',
    ],
    [
      'the user’s own thresholds kept, nothing added',
      'glibc.malloc.trim_threshold=0:glibc.malloc.mmap_threshold=65536',
      'glibc.malloc.trim_threshold=0:glibc.malloc.mmap_threshold=65536',
    ],
    [
      'huge pages when the user asks for them, with the thresholds',
      'glibc.malloc.hugetlb=1',
      'glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824',
    ],
  ] as const) {
    it(`${case_}: ${expected}`, function () {
      if (process.platform !== 'linux') this.skip();
      assert.equal(viaShell(own), expected, 'dist/feature-maps');
      const env = own === undefined ? {} : { GLIBC_TUNABLES: own };
      assert.equal(withMallocTuning(env).GLIBC_TUNABLES, expected, 'node dist/cli.js');
    });
  }

  it('the engine process (whose session worker is a thread of its own) gets one heap for every thread besides', () => {
    assert.equal(
      withMallocTuning({}, 'linux', { oneHeap: true }).GLIBC_TUNABLES,
      'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1',
    );
    assert.equal(
      withMallocTuning({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' }, 'linux', { oneHeap: true }).GLIBC_TUNABLES,
      'glibc.malloc.arena_max=4:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824',
      'the user’s own arena_max wins',
    );
  });
});

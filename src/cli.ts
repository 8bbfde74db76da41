// Headless entry point: image in, PNG contact sheet of layers × channels out,
// like the classic Keras 3×3 plots. Same engine and colormaps as the panel.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CATALOG,
  CATALOG_PREFIX,
  MIRROR_ENV,
  type CatalogEntry,
  cachedPath,
  catalogEntry,
  discardDownloaded,
  downloadedBytes,
  ensureDownloaded,
  isCatalogSetting,
  normalizeBaseUrl,
} from './engine/catalog';
import { redactCredentials } from './engine/download';
import { FeatureMapEngine } from './engine/engine';
import { PythonError, UserFacingError, errorText } from './engine/errors';
import { describeModelFiles } from './engine/formats';
import { OVERLAY_OPACITY, renderSheet, type SheetOptions } from './engine/contactSheet';
import { isSpatial, type LayerMeta } from './engine/layers';
import { NPY_LAYOUTS, layerNpy } from './engine/npy';
import { channelOrder } from './shared/channelOrder';
import { EXECUTION_PROVIDERS } from './engine/models/executionProvider';
import type { FileModelHints, ModelSource } from './engine/model';
import { defaultCacheDir as conversionCacheDir } from './engine/conversionStore';
import { endWithLauncher } from './engine/mallocTuning';
import { CHANNEL_SORTS, COLORMAPS, NORMALIZATIONS } from './shared/protocol';

/** An option's description, wrapped under the description column (28) at the width of the others (55). */
function wrapOption(text: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > 55) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(28)}`);
}

/** How an architecture is named, for --arch's help and the message when one is needed. */
const ARCH_FORMS = 'torchvision:NAME (e.g. torchvision:resnet50), timm:NAME or module:callable';

const USAGE = `Usage: feature-maps <image> [options]

Writes a PNG contact sheet: one block per layer, the first N channels of each
drawn with a colormap, using the bundled MobileNetV2 or your model.

Options:
  -m, --model <model>       ${wrapOption(`${describeModelFiles(' or ')}, or a catalogue model, downloaded once from Keras:`)}
                            ${CATALOG.map((e) => e.id).join(' | ')} (default: the bundled MobileNetV2)
      --mirror <url>        download catalogue models from this mirror of Keras'
                            folder (default: $${MIRROR_ENV} or Keras' URL)
      --cache-dir <dir>     where catalogue models are kept
                            (default: ${defaultCacheDir().replace(os.homedir(), '~')})
      --arch <name>         ${wrapOption(`the architecture of PyTorch weights (a state_dict or .safetensors file): ${ARCH_FORMS}, imported from the current folder`)}
      --python <path>       ${wrapOption('the Python (with torch) that opens PyTorch models (default: python3, then python, on PATH)')}
      --allow-pickle        ${wrapOption('load a PyTorch file that is a whole pickled model (torch.save(model)): this runs code the file contains, so use it only for files you trust. TorchScript, .pt2, state_dict and safetensors files need no flag.')}
      --execution-provider <p>
                            ${wrapOption(`${EXECUTION_PROVIDERS.join(' | ')} (default auto): the device ONNX Runtime runs on; one that is missing or does not start falls back to the CPU, with a note`)}
      --sort <s>            ${wrapOption(`${CHANNEL_SORTS.join(' | ')} (default index): draw the channels with the largest mean, max, standard deviation or fraction active instead of the first ones`)}
      --overlay             ${wrapOption('draw each map over the image as the model saw it (where in the image each channel fires)')}
      --opacity <0–1>       the maps' opacity over the image (default ${OVERLAY_OPACITY})
      --npy <file.npy>      ${wrapOption('also write each chosen layer as a float32 .npy (one layer: that file; several: <file>.<layer>.npy); with no --out, only the .npy')}
      --npy-layout <l>      hwc (Keras, the default) | chw (PyTorch)
      --preprocessing <p>   auto | raw01 | tf | caffe | torch | none (default auto)
  -l, --layers <a,b,…>      layer names or glob patterns (default: three
                            convolutions spread through the model)
  -c, --channels <n>        channels per layer (default 9, i.e. a 3×3 grid)
      --columns <n>         tiles per row (default: √channels, rounded up)
      --tile <px>           tile size in pixels (default 128)
      --colormap <name>     ${COLORMAPS.join(' | ')} (default viridis)
      --normalization <m>   channel | layer (default channel)
  -o, --out <file.png>      output file (default <image>.feature-maps.png)
      --split               one PNG per layer instead, <out>.<layer>.png, like
                            the Keras recipe's one 3×3 plot per layer
      --list                print the model's layers and exit
  -h, --help                show this help

A PyTorch model is converted with Python once, a Keras or TF.js model to ONNX
once, and the result kept in
${path.join(conversionCacheDir(), 'conversions').replace(os.homedir(), '~')}: later runs need no Python and
no conversion.`;

const PREPROCESSING_CHOICES = ['auto', 'raw01', 'tf', 'caffe', 'torch', 'none'] as const;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      layers: { type: 'string', short: 'l' },
      model: { type: 'string', short: 'm' },
      preprocessing: { type: 'string', default: 'auto' },
      channels: { type: 'string', short: 'c', default: '9' },
      columns: { type: 'string' },
      tile: { type: 'string', default: '128' },
      colormap: { type: 'string', default: 'viridis' },
      normalization: { type: 'string', default: 'channel' },
      out: { type: 'string', short: 'o' },
      list: { type: 'boolean', default: false },
      split: { type: 'boolean', default: false },
      mirror: { type: 'string' },
      'cache-dir': { type: 'string' },
      arch: { type: 'string' },
      python: { type: 'string' },
      'allow-pickle': { type: 'boolean', default: false },
      'execution-provider': { type: 'string', default: 'auto' },
      sort: { type: 'string', default: 'index' },
      overlay: { type: 'boolean', default: false },
      opacity: { type: 'string' },
      npy: { type: 'string' },
      'npy-layout': { type: 'string', default: 'hwc' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 1) {
    (values.help ? console.log : console.error)(USAGE);
    return values.help ? 0 : 2;
  }
  const channels = positiveInt(values.channels, 'channels');
  const options: SheetOptions = {
    columns: values.columns ? positiveInt(values.columns, 'columns') : Math.ceil(Math.sqrt(channels)),
    tile: positiveInt(values.tile, 'tile'),
    colormap: oneOf(values.colormap, COLORMAPS, 'colormap'),
    normalization: oneOf(values.normalization, NORMALIZATIONS, 'normalization'),
  };
  const imagePath = path.resolve(positionals[0]);
  const entry = values.model ? (catalogEntry(values.model) ?? catalogEntry(CATALOG_PREFIX + values.model)) : undefined;
  const patterns = values.layers
    ? values.layers
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : (entry?.defaultLayers ?? []);
  if (values.model && !entry && isCatalogSetting(values.model)) {
    throw new UserFacingError(
      `${values.model} is not in the catalogue (${CATALOG.map((e) => CATALOG_PREFIX + e.id).join(', ')}).`,
    );
  }

  const cacheDir = path.resolve(values['cache-dir'] ?? defaultCacheDir());
  const model: ModelSource = entry
    ? {
        kind: 'catalog',
        id: entry.id,
        weightsPath: await download(entry, cacheDir, values.mirror ?? process.env[MIRROR_ENV]),
      }
    : values.model
      ? { kind: 'file', path: path.resolve(values.model), hints: pytorchHints(values) }
      : { kind: 'bundled' };
  const engine = new FeatureMapEngine({
    assetsDir: __dirname,
    conversionsDir: path.join(conversionCacheDir(), 'conversions'),
    executionProvider: oneOf(values['execution-provider'], EXECUTION_PROVIDERS, 'execution-provider'),
  });
  try {
    if (entry) await loadCatalogModel(engine, model, entry, cacheDir);
    // No --layers: the sheet's three layers are picked from the model's list before the pass, so
    // that the pass computes just those (unless the loader learns the shapes only from a pass).
    const picked = patterns.length === 0 && !values.list ? defaultLayers((await engine.loadModel(model)).layers) : [];
    const result = await engine.extract({
      imagePath,
      model,
      layerPatterns: picked.length > 0 ? picked.map((l) => escapeGlob(l.name)) : patterns,
      // Listed layers: the pass stops at the deepest (the sheet has no top-5: no head either).
      onlyListedLayers: !values.list && (patterns.length > 0 || picked.length > 0),
      headLater: true,
      preprocessing: oneOf(values.preprocessing, PREPROCESSING_CHOICES, 'preprocessing'),
    });
    // The sheet does not show the header: a provider that fell back to the CPU is said here.
    if (result.model.device?.note) console.error(`note: ${result.model.device.note}`);
    if (values.list) {
      for (const l of result.layers)
        console.log(`${l.name}\t${l.op}\t${l.shape.join('×')}${l.spatial ? '' : '\t(no maps)'}`);
      return 0;
    }
    const names = new Set(picked.map((l) => l.name));
    const chosen =
      picked.length > 0
        ? result.layers.filter((l) => names.has(l.name))
        : patterns.length > 0
          ? result.layers.filter((l) => l.matched)
          : defaultLayers(result.layers);
    if (chosen.length === 0)
      throw new UserFacingError(`No layer with spatial maps matches ${patterns.join(', ')}. Try --list.`);
    if (values.npy) {
      const layout = oneOf(values['npy-layout'], NPY_LAYOUTS, 'npy-layout');
      const file = path.resolve(values.npy);
      for (const l of chosen) {
        const activation = engine.activation(result.resultKey, l.name);
        if (!activation) throw new Error(`${l.name} was not computed`);
        const target = chosen.length === 1 ? file : `${file.replace(/\.npy$/i, '')}.${safeName(l.name)}.npy`;
        const { bytes, shape } = layerNpy(activation, layout);
        await fs.writeFile(target, bytes);
        console.log(`${target}: ${l.name}, float32 ${shape.join('×')} (${layout === 'hwc' ? 'H×W×C' : 'C×H×W'})`);
      }
      if (!values.out) return 0;
    }
    const sort = oneOf(values.sort, CHANNEL_SORTS, 'sort');
    const { rgba, width, height } = result.input;
    const sheet: SheetOptions = {
      ...options,
      overlay: values.overlay ? { rgba, width, height, opacity: opacity(values.opacity) } : undefined,
    };
    const blocks = chosen.map((l) => {
      if (sort === 'index') return engine.layerData(result.resultKey, l.name, channels);
      const stats = engine.channelStats(result.resultKey, l.name);
      const top = channelOrder(stats.totalChannels, sort, false, stats).slice(0, channels);
      return engine.layerData(result.resultKey, l.name, top.length, top);
    });
    const out = path.resolve(values.out ?? `${imagePath}.feature-maps.png`);
    if (values.split) {
      const stem = out.replace(/\.png$/i, '');
      for (const block of blocks) {
        const file = `${stem}.${safeName(block.layer)}.png`;
        await fs.writeFile(file, await renderSheet([block], result.layers, sheet));
        console.log(`${file}: ${block.layer} (${block.count} of ${block.totalChannels})`);
      }
      return 0;
    }
    await fs.writeFile(out, await renderSheet(blocks, result.layers, sheet));
    console.log(
      `${out}: ${blocks.map((b) => `${b.layer} (${b.count} of ${b.totalChannels}${sort === 'index' ? '' : `, by ${sort}: #${[...b.channels].join(' #')}`})`).join(', ')}`,
    );
    return 0;
  } finally {
    // A conversion made in this run is kept for the next one.
    await engine.keptConversions();
    engine.dispose();
  }
}

/** What a PyTorch file needs beyond its path, from the flags; other formats ignore it. */
function pytorchHints(values: { arch?: string; python?: string; 'allow-pickle'?: boolean }): FileModelHints {
  return {
    architecture: values.arch?.trim() || undefined,
    python: values.python
      ? values.python.includes(path.sep)
        ? path.resolve(values.python)
        : values.python
      : undefined,
    allowPickle: values['allow-pickle'] || undefined,
    cacheDir: conversionCacheDir(),
    // A module:callable architecture (and a pickle's own classes) come from here.
    workspace: process.cwd(),
  };
}

/** What to pass to get past a PyTorch file's question, which the command line cannot ask. */
function pythonProblemHint(error: PythonError): string | undefined {
  switch (error.problem.code) {
    case 'needs-architecture':
      return 'pass --arch torchvision:resnet50, timm:NAME or module:callable (a function that builds the model, imported from the current folder)';
    case 'wrong-architecture':
    case 'unknown-architecture':
    case 'bad-architecture':
      return `pass the architecture the weights were saved from with --arch (${ARCH_FORMS})`;
    case 'needs-pickle':
      return 'pass --allow-pickle to load it, only if you trust where the file came from: unpickling runs code it contains';
    case 'no-python':
      return 'pass --python <path> to name the Python that has torch';
    default:
      return undefined;
  }
}

function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'feature-maps', 'models');
}

/** The catalogue model's weights, downloaded once (progress on stderr, like Keras' own get_file). */
async function download(entry: CatalogEntry, dir: string, mirror: string | undefined): Promise<string> {
  if ((await downloadedBytes(entry, dir)) !== undefined) return cachedPath(entry, dir);
  const from = redactCredentials(new URL(entry.urlPath, normalizeBaseUrl(mirror)).href);
  process.stderr.write(`Downloading ${entry.name} from ${from}\n`);
  const interactive = process.stderr.isTTY;
  let lastLine = 0;
  const file = await ensureDownloaded(entry, dir, {
    baseUrl: mirror,
    onWaiting: () => {
      process.stderr.write(`${interactive ? '\n' : ''}Another process is downloading it to ${dir}; waiting for it.\n`);
    },
    onProgress: (received, total) => {
      const now = Date.now();
      if (!interactive && now - lastLine < 2000 && received !== total) return;
      lastLine = now;
      const line = `  ${mb(received)} of ${mb(total ?? entry.approxBytes)} MB`;
      process.stderr.write(interactive ? `\r${line}` : `${line}\n`);
    },
  });
  if (interactive) process.stderr.write('\n');
  return file;
}

/**
 * Loads the downloaded catalogue model; when the loader rejects the file, removes it from the
 * cache, so the next run downloads it afresh instead of failing on it forever.
 */
async function loadCatalogModel(
  engine: FeatureMapEngine,
  model: ModelSource,
  entry: CatalogEntry,
  cacheDir: string,
): Promise<void> {
  try {
    await engine.loadModel(model);
  } catch (error) {
    if (!(error instanceof UserFacingError)) throw error;
    await discardDownloaded(entry, cacheDir);
    throw new UserFacingError(
      `${error.message} The downloaded file was removed from ${cacheDir}; the next run downloads it again.`,
      error.detail,
    );
  }
}

function mb(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

/** A layer name as part of a file name. */
function safeName(layer: string): string {
  return layer.replace(/[^\w.-]+/g, '_');
}

/**
 * The sheet's layers when none are named: three convolutions spread through the model, like
 * block1/2/3_conv1 in the Keras recipe (or three layers with maps, in a model without
 * convolutions). None while a shape is unknown (some loaders learn the shapes from the first pass).
 */
function defaultLayers<L extends LayerMeta>(layers: readonly L[]): L[] {
  if (layers.some((l) => l.shape.length === 0)) return [];
  const spatial = layers.filter((l) => isSpatial(l.shape));
  const convs = spatial.filter((l) => /conv/i.test(l.op));
  const pool = convs.length > 0 ? convs : spatial;
  const picks = [0, Math.floor(pool.length / 3), Math.floor((2 * pool.length) / 3)];
  return [...new Set(picks)].filter((i) => i < pool.length).map((i) => pool[i]);
}

/** A layer's name as a --layers pattern that matches just that name. */
function escapeGlob(name: string): string {
  return name.replace(/[\\*?[\]{}()!+@|^$]/g, '\\$&');
}

/** --opacity: a fraction from 0 to 1 (default OVERLAY_OPACITY). */
function opacity(value: string | undefined): number {
  if (value === undefined) return OVERLAY_OPACITY;
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new UserFacingError(`--opacity must be between 0 and 1, not "${value}".`);
  return n;
}

function positiveInt(value: string | undefined, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UserFacingError(`--${name} must be a positive whole number, not "${value}".`);
  return n;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], name: string): T {
  if (allowed.includes(value as T)) return value as T;
  throw new UserFacingError(`--${name} must be one of ${allowed.join(', ')}, not "${value}".`);
}

endWithLauncher();
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`feature-maps: ${errorText(error)}`);
    const hint = error instanceof PythonError ? pythonProblemHint(error) : undefined;
    if (hint) console.error(`feature-maps: ${hint}`);
    if (error instanceof UserFacingError && error.detail) {
      // A Python traceback is many lines: indented under the message, not in parentheses.
      console.error(error.detail.includes('\n') ? error.detail.replace(/^/gm, '  ') : `  (${error.detail})`);
    }
    process.exit(1);
  },
);

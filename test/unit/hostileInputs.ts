import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Zip, ZipDeflate, zipSync } from 'fflate';
import type { ModelSource } from '../../src/engine/model';

// Hostile model, image and labels files, each made on the spot in a folder the caller gives
// (nothing binary is committed). A case names what it makes, the message a user must see, and
// how long that may take at most. The table is run in-process by hostile.test.ts; the same table
// can be run through the engine process.

/** What one case asks the engine to do: the bundled model and chelsea.png unless it says otherwise. */
export interface HostileInput {
  model?: ModelSource;
  imagePath?: string;
  labelsPath?: string;
}

export interface HostileCase {
  name: string;
  make(dir: string): Promise<HostileInput>;
  /** The message the user sees (a UserFacingError's message). */
  expect: RegExp;
  /** It must end within this many milliseconds (generous: a hang or a gigabyte read takes far longer). */
  boundMs: number;
}

const BOUND_MS = 10_000;

// ---------------------------------------------------------------- a tiny TF.js LayersModel

interface TinyOptions {
  /** Bytes added to (positive) or cut from (negative) the end of the weight shard. */
  extraBytes?: number;
  /** What the manifest names as the shard; `make` replaces the shard file itself. */
  shardName?: string;
  /** The conv layer's inbound nodes (default: the input layer's first call). */
  convInbound?: unknown;
  /** More layers after the conv layer. */
  moreLayers?: unknown[];
  /** The shape the manifest declares for the conv kernel (default its real [3, 3, 3, 2]). */
  kernelShape?: number[];
}

const ZEROS = { class_name: 'Zeros', config: {} };

function convLayer(name: string, inbound: unknown): Record<string, unknown> {
  return {
    class_name: 'Conv2D',
    name,
    config: {
      name,
      filters: 2,
      kernel_size: [3, 3],
      strides: [1, 1],
      padding: 'same',
      data_format: 'channels_last',
      dilation_rate: [1, 1],
      activation: 'relu',
      use_bias: true,
      kernel_initializer: ZEROS,
      bias_initializer: ZEROS,
    },
    inbound_nodes: inbound,
  };
}

/**
 * A real TF.js functional LayersModel (8×8×3 → 3×3 conv with 2 filters) as tfjs' `model.save`
 * writes it: model.json plus one shard of 56 float32 weights (224 bytes). Returns the model.json path.
 */
export function writeTinyLayersModel(dir: string, options: TinyOptions = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  const shardName = options.shardName ?? 'weights.bin';
  const layers = [
    {
      class_name: 'InputLayer',
      name: 'input',
      config: { name: 'input', batch_input_shape: [null, 8, 8, 3], dtype: 'float32', sparse: false },
      inbound_nodes: [],
    },
    convLayer('conv', options.convInbound ?? [[['input', 0, 0, {}]]]),
    ...(options.moreLayers ?? []),
  ];
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'hostile test',
    convertedBy: null,
    modelTopology: {
      class_name: 'Model',
      keras_version: '2.15.0',
      backend: 'tensorflow',
      config: { name: 'tiny', layers, input_layers: [['input', 0, 0]], output_layers: [['conv', 0, 0]] },
    },
    weightsManifest: [
      {
        paths: [shardName],
        weights: [
          { name: 'conv/kernel', shape: options.kernelShape ?? [3, 3, 3, 2], dtype: 'float32' },
          { name: 'conv/bias', shape: [2], dtype: 'float32' },
        ],
      },
    ],
  };
  const file = path.join(dir, 'model.json');
  fs.writeFileSync(file, JSON.stringify(modelJson));
  if (options.shardName === undefined) {
    const weights = Float32Array.from({ length: 56 + (options.extraBytes ?? 0) / 4 }, (_, i) => ((i % 7) - 3) / 10);
    fs.writeFileSync(path.join(dir, shardName), Buffer.from(weights.buffer));
  }
  return file;
}

const modelFile = (file: string): HostileInput => ({ model: { kind: 'file', path: file } });

function mkfifo(file: string): string {
  execFileSync('mkfifo', [file]);
  return file;
}

// ---------------------------------------------------------------- Keras files

/** A Keras 3 Sequential config (input 5×5×3, one 3×3 conv): a real config.json. */
function kerasConfigJson(): Uint8Array {
  const policy = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' }, registered_name: null };
  const config = {
    module: 'keras',
    class_name: 'Sequential',
    config: {
      name: 'tiny',
      layers: [
        { module: 'keras.layers', class_name: 'InputLayer', config: { batch_shape: [null, 5, 5, 3], name: 'in' } },
        {
          module: 'keras.layers',
          class_name: 'Conv2D',
          config: { name: 'conv', dtype: policy, filters: 2, kernel_size: [3, 3], strides: [1, 1], padding: 'valid' },
          registered_name: null,
        },
      ],
    },
    registered_name: null,
  };
  return new TextEncoder().encode(JSON.stringify(config));
}

/**
 * A zip made by fflate's streaming writer (sizes in data descriptors, as a zip written to a
 * pipe has them): config.json, then `name` holding `megabytes` MB of zeros, deflated.
 */
function zipWithZeros(name: string, megabytes: number): Uint8Array {
  const key = `${name}:${megabytes}`;
  const made = zipsMade.get(key);
  if (made) return new Uint8Array(made); // a copy: callers may patch it
  const chunks: Uint8Array[] = [];
  const zip = new Zip((error, chunk) => {
    if (error) throw error;
    chunks.push(chunk);
  });
  const config = new ZipDeflate('config.json');
  zip.add(config);
  config.push(kerasConfigJson(), true);
  const big = new ZipDeflate(name, { level: 9 });
  zip.add(big);
  const megabyte = new Uint8Array(1_000_000);
  for (let i = 0; i < megabytes; i++) big.push(megabyte, false);
  big.push(new Uint8Array(0), true);
  zip.end();
  const bytes = Buffer.concat(chunks);
  zipsMade.set(key, bytes);
  return new Uint8Array(bytes);
}

/** Compressing 200 MB takes seconds: each zip is made once. */
const zipsMade = new Map<string, Uint8Array>();

/** Rewrites the uncompressed size the central directory declares for `name`. */
function declareSize(zip: Uint8Array, name: string, size: number): void {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const wanted = Buffer.from(name);
  for (let at = zip.length - 46; at >= 0; at--) {
    if (view.getUint32(at, true) !== 0x02014b50) continue;
    const nameLength = view.getUint16(at + 28, true);
    if (Buffer.from(zip.subarray(at + 46, at + 46 + nameLength)).equals(wanted)) {
      view.setUint32(at + 24, size, true);
      return;
    }
  }
  throw new Error(`no central directory entry for ${name}`);
}

/**
 * A legacy Keras .h5 (model_config + /model_weights) whose one weight dataset declares
 * 100000×100000 float32 values (40 GB) in a file of a few kB: a chunked dataset resized
 * without writing its chunks, which HDF5 allows.
 */
async function writeHugeDatasetH5(file: string): Promise<void> {
  const h5 = await import('h5wasm');
  const module = await h5.ready;
  const memPath = `/hostile-${path.basename(file)}`;
  const root = new h5.File(memPath, 'w');
  root.create_attribute(
    'model_config',
    JSON.stringify({ class_name: 'Sequential', config: { name: 'tiny', layers: [] } }),
  );
  const weights = root.create_group('model_weights');
  weights.create_attribute('layer_names', ['conv']);
  const conv = weights.create_group('conv');
  conv.create_attribute('weight_names', ['conv/kernel:0']);
  const dataset = conv.create_group('conv').create_dataset({
    name: 'kernel:0',
    data: new Float32Array(1),
    shape: [1, 1],
    maxshape: [null, null],
    chunks: [1, 1],
  });
  dataset.resize([100_000, 100_000]);
  root.close();
  fs.writeFileSync(file, module.FS.readFile(memPath));
  module.FS.unlink(memPath);
}

// ---------------------------------------------------------------- images

/**
 * An 8-bit RLE BMP whose header claims 30000×30000 pixels (bmp-ts would allocate 3.6 GB for it)
 * followed by about 7 MB of run-length data.
 */
function rleBmpClaiming(width: number, height: number): Buffer {
  const palette = Buffer.alloc(256 * 4);
  for (let i = 0; i < 256; i++) palette.writeUInt32LE(i * 0x010101, i * 4);
  // Runs of 255 pixels of colour 7, a row end after each 118 runs (30090 pixels ≥ a row), then the end.
  const row = Buffer.concat([Buffer.from(new Array<number>(118).fill(0).flatMap(() => [255, 7])), Buffer.from([0, 0])]);
  const rows = Math.min(height, 30_000);
  const data = Buffer.concat([Buffer.concat(new Array<Buffer>(rows).fill(row)), Buffer.from([0, 1])]);
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'ascii');
  header.writeUInt32LE(54 + palette.length + data.length, 2);
  header.writeUInt32LE(54 + palette.length, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(width, 18);
  header.writeInt32LE(height, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(8, 28);
  header.writeUInt32LE(1, 30); // BI_RLE8
  header.writeUInt32LE(data.length, 34);
  header.writeUInt32LE(256, 46);
  return Buffer.concat([header, palette, data]);
}

// ---------------------------------------------------------------- the table

export const HOSTILE_CASES: HostileCase[] = [
  {
    name: 'a TF.js weight shard 4 bytes too long (every later weight would be shifted)',
    make: async (dir) => modelFile(writeTinyLayersModel(path.join(dir, 'long-shard'), { extraBytes: 4 })),
    expect:
      /model\.json: the weight file "weights\.bin" holds 228 bytes, but the manifest's weights take 224 bytes \(4 bytes too many\)/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a TF.js weight shard 8 bytes too short',
    make: async (dir) => modelFile(writeTinyLayersModel(path.join(dir, 'short-shard'), { extraBytes: -8 })),
    expect: /model\.json: the weight file "weights\.bin" holds 216 bytes, .* \(8 bytes too few\)/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a TF.js weights manifest that declares a 40 GB kernel beside a 224-byte shard',
    make: async (dir) =>
      modelFile(writeTinyLayersModel(path.join(dir, 'huge-manifest'), { kernelShape: [100_000, 100_000] })),
    expect:
      /model\.json: its weights manifest declares more than 2 GB of weights \(the weight "conv\/kernel" alone is \[100000,100000\]\)/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a TF.js weight shard path that climbs out of the model folder to /dev/zero',
    make: async (dir) => {
      const folder = path.join(dir, 'climbing');
      // As many "../" as it takes to reach /dev/zero from this folder.
      const shard = path.relative(folder, '/dev/zero');
      return modelFile(writeTinyLayersModel(folder, { shardName: shard }));
    },
    expect:
      /Cannot read the weight file "(\.\.\/)+dev\/zero" named in model\.json: it lies outside the folder climbing/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a TF.js weight shard that is a symlink to /dev/zero inside the model folder',
    make: async (dir) => {
      const folder = path.join(dir, 'zero-shard');
      const file = writeTinyLayersModel(folder, { shardName: 'weights.bin' });
      fs.symlinkSync('/dev/zero', path.join(folder, 'weights.bin'));
      return modelFile(file);
    },
    expect:
      /Cannot read the weight file "weights\.bin" named in model\.json: it lies outside the folder zero-shard \(it leads to \/dev\/zero\)/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a TF.js weight shard that is a FIFO (a read would block forever)',
    make: async (dir) => {
      const folder = path.join(dir, 'fifo-shard');
      const file = writeTinyLayersModel(folder, { shardName: 'weights.bin' });
      mkfifo(path.join(folder, 'weights.bin'));
      return modelFile(file);
    },
    expect:
      /Cannot read the weight file "weights\.bin" named in model\.json: it is a named pipe \(FIFO\), not a regular file/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a TF.js weight shard that is a folder',
    make: async (dir) => {
      const folder = path.join(dir, 'folder-shard');
      const file = writeTinyLayersModel(folder, { shardName: 'weights.bin' });
      fs.mkdirSync(path.join(folder, 'weights.bin'));
      return modelFile(file);
    },
    expect: /Cannot read the weight file "weights\.bin" named in model\.json: it is a folder, not a regular file/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a TF.js layer whose inbound layer does not exist (tfjs: 100 % CPU forever)',
    make: async (dir) =>
      modelFile(writeTinyLayersModel(path.join(dir, 'missing-inbound'), { convInbound: [[['nowhere', 0, 0, {}]]] })),
    expect:
      /model\.json: the model architecture cannot be put together: layer "conv" takes its input from "nowhere", which the model does not define/,
    boundMs: BOUND_MS,
  },
  {
    name: 'two TF.js layers that take their input from each other (a cycle: tfjs loops forever)',
    make: async (dir) =>
      modelFile(
        writeTinyLayersModel(path.join(dir, 'cycle'), {
          convInbound: [[['conv_b', 0, 0, {}]]],
          moreLayers: [convLayer('conv_b', [[['conv', 0, 0, {}]]])],
        }),
      ),
    expect:
      /model\.json: the model architecture cannot be put together: layer "conv" takes its input from call 1 of layer "conv_b", which never happens/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a model.json that is a symlink to /dev/zero',
    make: async (dir) => {
      const folder = path.join(dir, 'zero-json');
      fs.mkdirSync(folder);
      fs.symlinkSync('/dev/zero', path.join(folder, 'model.json'));
      return modelFile(folder);
    },
    expect: /Cannot read the model file model\.json: it is a device \(it leads to \/dev\/zero\), not a regular file/,
    boundMs: BOUND_MS,
  },
  {
    name: 'an .onnx model file that is a symlink to /dev/zero',
    make: async (dir) => {
      const file = path.join(dir, 'zero.onnx');
      fs.symlinkSync('/dev/zero', file);
      return modelFile(file);
    },
    expect: /Cannot read the model file zero\.onnx: it is a device \(it leads to \/dev\/zero\), not a regular file/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a Keras .h5 model file that is a FIFO',
    make: async (dir) => modelFile(mkfifo(path.join(dir, 'pipe.h5'))),
    expect: /Cannot read the model file pipe\.h5: it is a named pipe \(FIFO\), not a regular file/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a Keras .h5 of 9 kB whose weight dataset declares 100000×100000 float32 (40 GB)',
    make: async (dir) => {
      const file = path.join(dir, 'huge-dataset.h5');
      await writeHugeDatasetH5(file);
      return modelFile(file);
    },
    expect:
      /huge-dataset\.h5: the weight "conv\/conv\/kernel:0" declares \[100000,100000\] values \(40 GB\), more than the whole file holds/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a .keras zip bomb: config.json and a model.weights.h5 of 200 MB of zeros in about 200 kB',
    make: async (dir) => {
      const file = path.join(dir, 'bomb.keras');
      fs.writeFileSync(file, zipWithZeros('model.weights.h5', 200));
      return modelFile(file);
    },
    expect:
      /bomb\.keras: its model\.weights\.h5 declares 200 MB uncompressed from \d+ kB \(\d+:1\): .* refused as a zip bomb/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a .keras zip whose directory understates an entry (declares 100 kB, inflates to 200 MB)',
    make: async (dir) => {
      const file = path.join(dir, 'liar.keras');
      const zip = zipWithZeros('model.weights.h5', 200);
      declareSize(zip, 'model.weights.h5', 100_000);
      fs.writeFileSync(file, zip);
      return modelFile(file);
    },
    expect:
      /liar\.keras is a damaged zip file: its model\.weights\.h5 inflates to more than the 100000 bytes it declares/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a .keras zip whose config.json declares 4 GB',
    make: async (dir) => {
      const file = path.join(dir, 'big-config.keras');
      const zip = zipSync({ 'config.json': kerasConfigJson(), 'model.weights.h5': new Uint8Array(16) });
      declareSize(zip, 'config.json', 0xfffffff0);
      fs.writeFileSync(file, zip);
      return modelFile(file);
    },
    expect: /big-config\.keras: its config\.json declares 4.3 GB uncompressed, more than the 100 MB Feature Maps reads/,
    boundMs: BOUND_MS,
  },
  {
    name: 'an RLE BMP of 7 MB whose header claims 30000×30000 pixels',
    make: async (dir) => {
      const file = path.join(dir, 'huge.bmp');
      fs.writeFileSync(file, rleBmpClaiming(30_000, 30_000));
      return { imagePath: file };
    },
    expect: /huge\.bmp is too large: 30000×30000 pixels is more than the 100 million this extension decodes/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a sparse 1.5 GB file of zeros named .png',
    make: async (dir) => {
      const file = path.join(dir, 'sparse.png');
      fs.writeFileSync(file, '');
      fs.truncateSync(file, 1.5e9); // sparse: costs no disk
      return { imagePath: file };
    },
    expect: /sparse\.png is not an image format this extension can read/,
    boundMs: BOUND_MS,
  },
  {
    name: 'an image that is a FIFO',
    make: async (dir) => ({ imagePath: mkfifo(path.join(dir, 'pipe.png')) }),
    expect: /pipe\.png( is not a file|: it is a named pipe)/,
    boundMs: BOUND_MS,
  },
  {
    name: 'an image that is a symlink to /dev/zero',
    make: async (dir) => {
      const file = path.join(dir, 'zero.jpg');
      fs.symlinkSync('/dev/zero', file);
      return { imagePath: file };
    },
    expect: /zero\.jpg( is not a file|: it is a device)/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a labels file with the class index 100000000',
    make: async (dir) => {
      const file = path.join(dir, 'labels.txt');
      fs.writeFileSync(file, '0,first class\n100000000,second class\n2,third class\n');
      return { labelsPath: file };
    },
    expect: /The labels file labels\.txt gives the class index 100000000 on line 2; class indices go up to 999,999/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a labels file that is a FIFO',
    make: async (dir) => ({ labelsPath: mkfifo(path.join(dir, 'classes.txt')) }),
    expect: /Cannot read the labels file classes\.txt: it is a named pipe \(FIFO\), not a regular file/,
    boundMs: BOUND_MS,
  },
  {
    name: 'an .onnx model file that is a FIFO',
    make: async (dir) => modelFile(mkfifo(path.join(dir, 'pipe.onnx'))),
    expect: /Cannot read the (model file|ONNX model) pipe\.onnx: it is a named pipe \(FIFO\), not a regular file/,
    boundMs: BOUND_MS,
  },
  {
    name: 'a fully convolutional TF.js model (input size not fixed) at featureMaps.inputSize [4096, 4096]: 4 GB a layer',
    make: async (dir) => ({
      model: {
        kind: 'file',
        path: writeFullyConvolutionalModel(path.join(dir, 'fcn')),
        inputSize: { height: 4096, width: 4096 },
      },
    }),
    expect:
      /^The forward pass of fcn on chelsea\.png needs about [\d.]+ GB \(layer "conv2": 4096×4096×64 float32 is 4 GB\); the memory budget is 2 GB \(featureMaps\.memoryBudget\)\.$/,
    boundMs: BOUND_MS,
  },
];

// ---------------------------------------------------------------- a model whose pass is over the budget

/**
 * A fully convolutional TF.js LayersModel whose input size is not fixed ([null, null, null, 3],
 * as Keras' VGG16 without top or a segmentation network has it), as tfjs' `model.save` writes
 * it: a 3×3 "same" convolution with ReLU per entry of `filters` (conv1, conv2…), then a 2×2 max
 * pooling (pool). Its weights are a few kB whatever size it runs at: at 4096×4096 a layer of 64
 * channels is 4 GB. Returns the model.json path.
 */
export function writeFullyConvolutionalModel(dir: string, filters: readonly number[] = [16, 64]): string {
  fs.mkdirSync(dir, { recursive: true });
  const layers: unknown[] = [
    {
      class_name: 'InputLayer',
      name: 'input',
      config: { name: 'input', batch_input_shape: [null, null, null, 3], dtype: 'float32', sparse: false },
      inbound_nodes: [],
    },
  ];
  const weights: { name: string; shape: number[]; dtype: 'float32' }[] = [];
  let previous = 'input';
  let channels = 3;
  filters.forEach((count, i) => {
    const name = `conv${i + 1}`;
    const layer = convLayer(name, [[[previous, 0, 0, {}]]]);
    layers.push({ ...layer, config: { ...(layer.config as object), filters: count } });
    weights.push(
      { name: `${name}/kernel`, shape: [3, 3, channels, count], dtype: 'float32' },
      { name: `${name}/bias`, shape: [count], dtype: 'float32' },
    );
    previous = name;
    channels = count;
  });
  layers.push({
    class_name: 'MaxPooling2D',
    name: 'pool',
    config: { name: 'pool', pool_size: [2, 2], strides: [2, 2], padding: 'valid', data_format: 'channels_last' },
    inbound_nodes: [[[previous, 0, 0, {}]]],
  });
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'hostile test',
    convertedBy: null,
    modelTopology: {
      class_name: 'Model',
      keras_version: '2.15.0',
      backend: 'tensorflow',
      config: { name: 'fcn', layers, input_layers: [['input', 0, 0]], output_layers: [['pool', 0, 0]] },
    },
    weightsManifest: [{ paths: ['weights.bin'], weights }],
  };
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson));
  const count = weights.reduce((total, w) => total + w.shape.reduce((a, b) => a * b, 1), 0);
  const values = Float32Array.from({ length: count }, (_, i) => ((i % 11) - 5) / 50);
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(values.buffer));
  return path.join(dir, 'model.json');
}

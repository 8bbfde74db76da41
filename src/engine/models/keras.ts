import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type * as tfl from '@tensorflow/tfjs-layers';
import { UserFacingError, errorText } from '../errors';
import { MAX_JSON_BYTES, MAX_MODEL_FILE_BYTES, formatBytes, readRegularFile } from '../files';
import type { LoadedModel } from '../model';
import type { Tf } from '../tf';
import { openConvertedKeras } from './layersToOnnx';
import { DEFAULT_INPUT_SIZE, type TfjsLayersOptions, checkLayerGraph, wrapLayersModel } from './tfjsLayers';
import type { KerasModelInput } from './kerasToOnnx';

// h5wasm's plain ESM build (not `h5wasm/node`): its wasm is embedded and it needs neither
// `import.meta.url` nor `fs`, so it survives esbuild's CJS bundle and worker threads.
export type H5 = typeof import('h5wasm', { with: { 'resolution-mode': 'import' } });
export type H5Group = InstanceType<H5['Group']>;

type Json = null | boolean | number | string | Json[] | JsonObject;
interface JsonObject {
  [key: string]: Json;
}

export interface WeightArray {
  /** Where it sits in the file, for error messages. */
  path: string;
  shape: number[];
  data: Float32Array;
}

/** Weights per layer name, each layer's in Keras order (kernel, bias; gamma, beta, mean, variance…). */
export type LayerWeights = Map<string, WeightArray[]>;

interface KerasModelData {
  config: JsonObject;
  weights: LayerWeights;
  /** The Keras that wrote the file ("3.15.1", "2.2.4-tf"), when it says. */
  kerasVersion?: string;
}

export type KerasOptions = Omit<TfjsLayersOptions, 'modelJsonPath'> & {
  modelPath: string;
  /** Convert to ONNX and run on onnxruntime when every layer converts (default true). */
  native?: boolean;
};

/**
 * Loads a whole Keras model, either a legacy HDF5 file (`model.save('m.h5')`, Keras 2 or 3)
 * or a Keras 3 `.keras` zip. Its architecture and weights are written straight into an ONNX
 * graph that onnxruntime runs (kerasToOnnx.ts); a model with a layer that has no ONNX form is
 * rebuilt in TensorFlow.js Layers instead, and says why (`nativeRefusal`).
 */
export async function loadKerasModel(
  tfOrLoader: Tf | (() => Promise<Tf>),
  options: KerasOptions,
): Promise<LoadedModel> {
  const fileName = path.basename(options.modelPath);
  const bytes = await readRegularFile(options.modelPath, {
    describe: `the Keras model ${fileName}`,
    maxBytes: MAX_MODEL_FILE_BYTES,
  });
  const { config, weights, kerasVersion } = isZip(bytes)
    ? await readKerasZip(bytes, fileName)
    : isHdf5(bytes)
      ? await readLegacyH5(bytes, fileName)
      : fail(
          `${fileName} is not a Keras model: it is neither an HDF5 file (.h5) nor a Keras 3 zip (.keras).`,
          `The file starts with bytes ${Buffer.from(bytes.subarray(0, 8)).toString('hex')}.`,
        );

  let nativeRefusal: string | undefined;
  if (options.native !== false) {
    const native = await openNativeKeras(
      {
        config,
        weights,
        dialect: kerasVersion && !kerasVersion.startsWith('2') && !kerasVersion.startsWith('1') ? 'keras3' : 'keras2',
        inputSize: options.inputSize ?? { height: DEFAULT_INPUT_SIZE, width: DEFAULT_INPUT_SIZE },
      },
      options,
    );
    if (!('unsupported' in native)) return native;
    nativeRefusal = native.unsupported;
  }

  // TensorFlow.js (and its wasm) is loaded only for a model that needs it.
  const tf = typeof tfOrLoader === 'function' ? await tfOrLoader() : tfOrLoader;
  let model: tfl.LayersModel;
  try {
    model = await buildModel(tf, config, fileName);
  } catch (error) {
    // Neither runtime can run it: the layer the ONNX conversion stopped at says more than tfjs' refusal.
    if (nativeRefusal && error instanceof UserFacingError) {
      throw new UserFacingError(
        `${fileName}: Feature Maps cannot run this model: ${nativeRefusal}.`,
        `TensorFlow.js could not rebuild it either: ${error.message}${error.detail ? `\n${error.detail}` : ''}`,
      );
    }
    throw error;
  }
  try {
    setWeights(tf, model, weights, fileName);
    const loaded = wrapLayersModel(tf, model, options);
    return nativeRefusal ? { ...loaded, nativeRefusal } : loaded;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** The model on onnxruntime, converted from its architecture and weights, or why it cannot be. */
function openNativeKeras(input: KerasModelInput, options: KerasOptions) {
  return openConvertedKeras(input, {
    key: options.key,
    summary: options.summary,
    preprocessing: options.preprocessing,
  });
}

function fail(message: string, detail?: string): never {
  throw new UserFacingError(message, detail);
}

// ---------------------------------------------------------------- reading the files

function isZip(bytes: Uint8Array): boolean {
  return bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/** The HDF5 superblock sits at 0, or after a user block of 512, 1024, 2048… bytes. */
export function isHdf5(bytes: Uint8Array): boolean {
  for (let offset = 0; offset + 8 <= bytes.length; offset = offset === 0 ? 512 : offset * 2) {
    if (HDF5_SIGNATURE.every((b, i) => bytes[offset + i] === b)) return true;
  }
  return false;
}

let h5FileCounter = 0;

/**
 * An open HDF5 file being read: what it is called, how big it is, and how many bytes its
 * datasets have declared so far, so that a dataset claiming a huge shape is refused before
 * h5wasm allocates for it.
 */
export interface H5Context {
  h5: H5;
  fileName: string;
  fileBytes: number;
  declaredBytes: number;
}

/** Emscripten's FS.writeFile, with the option h5wasm's types leave out. */
type EmscriptenWriteFile = (path: string, data: Uint8Array, options: { canOwn: boolean }) => void;

/** Opens HDF5 bytes in h5wasm's in-memory file system, runs `read`, then closes and frees it. */
export async function withH5File<T>(
  bytes: Uint8Array,
  fileName: string,
  read: (file: H5Group, context: H5Context) => T,
): Promise<T> {
  const h5 = await import('h5wasm');
  const module = await h5.ready;
  const memPath = `/keras-model-${++h5FileCounter}.h5`;
  // canOwn: the in-memory file is `bytes` itself, not a copy (58 MB for VGG16, in fresh pages,
  // which are slow to touch); it is only read, and unlinked below.
  (module.FS.writeFile as EmscriptenWriteFile)(memPath, bytes, { canOwn: true });
  try {
    let file: InstanceType<H5['File']>;
    try {
      file = new h5.File(memPath, 'r');
    } catch (error) {
      throw new UserFacingError(`${fileName} is not a readable HDF5 file.`, errorText(error));
    }
    try {
      return read(file, { h5, fileName, fileBytes: bytes.length, declaredBytes: 0 });
    } finally {
      file.close();
    }
  } finally {
    module.FS.unlink(memPath);
  }
}

/** HDF5 filters that change how many bytes data takes on disk (all but shuffle, 2, and fletcher32, 3). */
function isCompressed(filters: readonly { id: number }[]): boolean {
  return filters.some((filter) => filter.id !== 2 && filter.id !== 3);
}

/**
 * Refuses a dataset whose declared shape needs more bytes than the file can hold (uncompressed
 * data is stored in full, so it cannot exceed the file) or than Feature Maps loads in total.
 * Reads only the metadata: HDF5 lets a tiny file declare a dataset of any shape.
 */
function checkDeclaredSize(context: H5Context, dataset: InstanceType<H5['Dataset']>, where: string): void {
  const metadata = dataset.metadata;
  const count = metadata.total_size;
  const bytes = count * metadata.size;
  const shape = JSON.stringify(dataset.shape ?? []);
  const total = context.declaredBytes + bytes;
  if (!isCompressed(dataset.filters) && bytes > context.fileBytes) {
    throw new UserFacingError(
      `${context.fileName}: the weight "${where}" declares ${shape} values (${formatBytes(bytes)}), more than the whole file holds (${formatBytes(context.fileBytes)}): the file is damaged.`,
    );
  }
  if (total > MAX_MODEL_FILE_BYTES) {
    throw new UserFacingError(
      `${context.fileName}: the weight "${where}" declares ${shape} values (${formatBytes(bytes)}), which brings the weights to more than the ${formatBytes(MAX_MODEL_FILE_BYTES)} Feature Maps loads.`,
    );
  }
  context.declaredBytes = total;
}

/** A string attribute, or undefined when absent. */
function stringAttr(group: H5Group, name: string): string | undefined {
  const attr = group.attrs[name];
  if (!attr) return undefined;
  const value = attr.value;
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text === 'string') return trimNul(text);
  if (text instanceof Uint8Array) return trimNul(new TextDecoder().decode(text));
  return undefined;
}

/**
 * A list-of-strings attribute as Keras writes it: maybe split into `name0`, `name1`… when
 * large, NUL-padded in old files, and an empty float64 array when the list is empty.
 */
export function stringListAttr(group: H5Group, name: string): string[] {
  const attrs = group.attrs; // h5wasm rebuilds this record on every access
  if (attrs[name]) return toStrings(attrs[name].value);
  const chunks: string[] = [];
  for (let i = 0; attrs[`${name}${i}`]; i++) chunks.push(...toStrings(attrs[`${name}${i}`].value));
  return chunks;
}

function toStrings(value: unknown): string[] {
  if (typeof value === 'string') return [trimNul(value)];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string').map(trimNul);
  return [];
}

function trimNul(text: string): string {
  return text.replace(/\0+$/, '');
}

function readDataset(context: H5Context, entity: unknown, where: string): WeightArray {
  const { h5, fileName } = context;
  if (!(entity instanceof h5.Dataset)) {
    throw new UserFacingError(`${fileName} lists the weight "${where}" but does not contain it.`);
  }
  const notNumeric = () =>
    new UserFacingError(
      `${fileName}: the weight "${where}" is not stored as numbers Feature Maps can read (float32, float64 or integers).`,
      `HDF5 dtype ${JSON.stringify(entity.dtype)}`,
    );
  // Checked from the metadata, before h5wasm allocates for the values. Integers are counters
  // (Normalization's count, any width); they are read as float32 like the rest.
  if (typeof entity.dtype !== 'string' || !/^[<>|]?[fdbBhHiIlLqQ]$/.test(entity.dtype)) throw notNumeric();
  checkDeclaredSize(context, entity, where);
  const value: unknown = entity.value;
  let data: Float32Array;
  if (value instanceof Float32Array) data = value;
  else if (value instanceof Float64Array || value instanceof Int32Array || value instanceof Uint32Array) {
    data = Float32Array.from(value);
  } else if (
    value instanceof Int8Array ||
    value instanceof Uint8Array ||
    value instanceof Int16Array ||
    value instanceof Uint16Array
  ) {
    data = Float32Array.from(value);
  } else if (value instanceof BigInt64Array || value instanceof BigUint64Array) {
    data = Float32Array.from(value, (v) => Number(v));
  } else if (typeof value === 'number' || typeof value === 'bigint') {
    data = Float32Array.of(Number(value));
  } else throw notNumeric();
  return { path: where, shape: entity.shape ?? [], data };
}

function parseConfig(text: string, fileName: string, what: string): JsonObject {
  let config: Json;
  try {
    config = JSON.parse(text) as Json;
  } catch (error) {
    throw new UserFacingError(
      `${fileName} has a model architecture (${what}) that is not valid JSON.`,
      errorText(error),
    );
  }
  if (!isObject(config)) throw new UserFacingError(`${fileName}: the model architecture (${what}) is not an object.`);
  return config;
}

/** A full-model HDF5 file: the `model_config` root attribute plus the legacy `/model_weights` group. */
function readLegacyH5(bytes: Uint8Array, fileName: string): Promise<KerasModelData> {
  return withH5File(bytes, fileName, (file, context) => {
    const { h5 } = context;
    const configText = stringAttr(file, 'model_config');
    if (configText === undefined) {
      const weightsOnly = file.attrs['layer_names'] !== undefined || file.get('layers') instanceof h5.Group;
      throw new UserFacingError(
        weightsOnly
          ? `${fileName} holds only weights, without the model architecture. Save the whole model with model.save("model.keras") or model.save("model.h5").`
          : `${fileName} is an HDF5 file but not a Keras model (it has no model_config attribute).`,
        `Root attributes: ${Object.keys(file.attrs).join(', ') || 'none'}; root members: ${file.keys().join(', ') || 'none'}.`,
      );
    }
    const config = parseConfig(configText, fileName, 'model_config');
    const group = file.get('model_weights');
    if (!(group instanceof h5.Group)) {
      throw new UserFacingError(`${fileName} has a model architecture but no weights (no /model_weights group).`);
    }
    const kerasVersion = stringAttr(file, 'keras_version') ?? stringAttr(group, 'keras_version');
    return { config, weights: splitNestedWeights(config, readLegacyWeights(group, context)), kerasVersion };
  });
}

/**
 * A model nested in this one (ConvNeXt's stem is a Sequential) keeps all its layers' weights in
 * one group, named `outer/inner/kernel`: they are filed under `outer/inner` as kerasToOnnx reads them.
 */
function splitNestedWeights(config: JsonObject, weights: LayerWeights): LayerWeights {
  const nested = new Set(
    rawLayers(config, '')
      .filter((l) => NESTED_MODELS.has(String(l.class_name)))
      .map((l) => layerName(l)),
  );
  if (nested.size === 0) return weights;
  const result: LayerWeights = new Map();
  for (const [layer, arrays] of weights) {
    if (!nested.has(layer)) {
      result.set(layer, arrays);
      continue;
    }
    for (const array of arrays) {
      const parts = array.path.split('/');
      const inner = parts[parts.length - 2];
      const key = `${layer}/${inner}`;
      result.set(key, [...(result.get(key) ?? []), array]);
    }
  }
  return result;
}

/**
 * The legacy layout's weights under `group` (the root of a weights-only file, or `/model_weights`),
 * keyed by layer name in the file's layer order.
 */
export function readLegacyWeights(group: H5Group, context: H5Context): LayerWeights {
  const { h5, fileName } = context;
  const weights: LayerWeights = new Map();
  // Walk `layer_names` (HDF5 lists groups sorted, and Keras 3 adds groups that are not layers).
  for (const layerName of stringListAttr(group, 'layer_names')) {
    const layerGroup = group.get(layerName);
    if (!(layerGroup instanceof h5.Group)) {
      throw new UserFacingError(`${fileName} lists the layer "${layerName}" but has no weights group for it.`);
    }
    // Weight names are paths relative to the layer group (`conv2d_1/kernel:0`, `block1_conv1/kernel`).
    const arrays = stringListAttr(layerGroup, 'weight_names').map((weightName) =>
      readDataset(context, layerGroup.get(weightName), `${layerName}/${weightName}`),
    );
    if (arrays.length > 0) weights.set(layerName, arrays);
  }
  return weights;
}

// ---------------------------------------------------------------- .keras zips

/** One entry of a zip's central directory. */
interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  compression: number;
  flags: number;
  compressedSize: number;
  /** The uncompressed size the directory declares: checked before inflating, enforced while inflating. */
  size: number;
  /** Where the entry's local header starts. */
  offset: number;
}

/** Above this size, an entry may be compressed at most WEIGHTS_MAX_RATIO:1 (weights barely compress). */
const WEIGHTS_RATIO_FREE_BYTES = 64e6;
const WEIGHTS_MAX_RATIO = 20;

class DamagedZip extends Error {}

/** The entries of a zip's central directory (zip64 too), read without inflating anything. */
function zipEntries(bytes: Uint8Array): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number) => {
    if (at < 0 || at + 2 > bytes.length) throw new DamagedZip(`offset ${at} is outside the file`);
    return view.getUint16(at, true);
  };
  const u32 = (at: number) => {
    if (at < 0 || at + 4 > bytes.length) throw new DamagedZip(`offset ${at} is outside the file`);
    return view.getUint32(at, true);
  };
  const u64 = (at: number) => u32(at) + u32(at + 4) * 2 ** 32;
  // The end-of-central-directory record, within the last 64 kB (its comment is at most 65535 bytes).
  let end = bytes.length - 22;
  while (end >= 0 && u32(end) !== 0x06054b50) {
    if (bytes.length - end > 65557 || end === 0) throw new DamagedZip('no end of central directory');
    end--;
  }
  if (end < 0) throw new DamagedZip('no end of central directory');
  let count = u16(end + 10);
  let at = u32(end + 16);
  if (end >= 20 && u32(end - 20) === 0x07064b50) {
    const zip64End = u64(end - 12);
    if (u32(zip64End) === 0x06064b50) {
      count = u64(zip64End + 32);
      at = u64(zip64End + 48);
    }
  }
  if (count > bytes.length / 46) throw new DamagedZip(`${count} entries cannot fit in the file`);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (u32(at) !== 0x02014b50) throw new DamagedZip(`central directory entry ${i} has no signature`);
    const nameLength = u16(at + 28);
    const extraLength = u16(at + 30);
    const commentLength = u16(at + 32);
    if (at + 46 + nameLength > bytes.length) throw new DamagedZip(`entry ${i}'s name is outside the file`);
    const entry: ZipEntry = {
      name: new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength)),
      flags: u16(at + 8),
      compression: u16(at + 10),
      compressedSize: u32(at + 20),
      size: u32(at + 24),
      offset: u32(at + 42),
    };
    // Zip64: the sizes and offset that do not fit 32 bits are in extra field 0x0001, in this order.
    for (let extra = at + 46 + nameLength; extra + 4 <= at + 46 + nameLength + extraLength;) {
      const id = u16(extra);
      const length = u16(extra + 2);
      if (id === 0x0001) {
        let field = extra + 4;
        for (const key of ['size', 'compressedSize', 'offset'] as const) {
          if (entry[key] === 0xffffffff) {
            entry[key] = u64(field);
            field += 8;
          }
        }
      }
      extra += 4 + length;
    }
    entries.push(entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/**
 * One entry's bytes, inflated to at most its declared size: an entry whose data inflates to
 * more than it declares (a lying header) is stopped there, so a zip bomb never costs more than
 * `maxBytes`.
 */
function inflateEntry(bytes: Uint8Array, entry: ZipEntry, maxBytes: number, fileName: string): Uint8Array {
  const where = `${fileName}: its ${entry.name}`;
  if (entry.size > maxBytes) {
    throw new UserFacingError(
      `${where} declares ${formatBytes(entry.size)} uncompressed, more than the ${formatBytes(maxBytes)} Feature Maps reads.`,
    );
  }
  if (entry.size > WEIGHTS_RATIO_FREE_BYTES && entry.size > WEIGHTS_MAX_RATIO * entry.compressedSize) {
    throw new UserFacingError(
      `${where} declares ${formatBytes(entry.size)} uncompressed from ${formatBytes(entry.compressedSize)} (${Math.round(entry.size / Math.max(1, entry.compressedSize))}:1): model files do not compress like that, so it is refused as a zip bomb.`,
    );
  }
  if (entry.flags & 1) throw new UserFacingError(`${where} is encrypted, which Feature Maps cannot read.`);
  const damaged = (why: string, detail?: string) =>
    new UserFacingError(`${fileName} is a damaged zip file: its ${entry.name} ${why}.`, detail);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (entry.offset + 30 > bytes.length || view.getUint32(entry.offset, true) !== 0x04034b50) {
    throw damaged('is not where the zip directory says');
  }
  const start = entry.offset + 30 + view.getUint16(entry.offset + 26, true) + view.getUint16(entry.offset + 28, true);
  const end = start + entry.compressedSize;
  if (end > bytes.length) throw damaged('runs past the end of the file');
  const data = bytes.subarray(start, end);
  if (entry.compression === 0) {
    if (entry.compressedSize !== entry.size) throw damaged('is stored with two different sizes');
    return data;
  }
  if (entry.compression !== 8) {
    throw new UserFacingError(
      `${where} is compressed with method ${entry.compression}; Feature Maps reads stored and deflated entries.`,
    );
  }
  let out: Buffer;
  try {
    // zlib stops as soon as the output passes the declared size: a lying header costs no more.
    out = zlib.inflateRawSync(data, { maxOutputLength: Math.max(1, entry.size) });
  } catch (error) {
    const tooLong = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    if (tooLong) throw damaged(`inflates to more than the ${entry.size} bytes it declares`);
    throw damaged('cannot be inflated', errorText(error));
  }
  if (out.length !== entry.size) throw damaged(`inflates to ${out.length} bytes, not the ${entry.size} it declares`);
  return out;
}

/**
 * A Keras 3 `.keras` zip: `config.json` plus `model.weights.h5`, weights keyed by class-name
 * counters. `config.json` is read and checked first; each entry's declared size is capped
 * before it is inflated, and enforced while it is.
 */
async function readKerasZip(bytes: Uint8Array, fileName: string): Promise<KerasModelData> {
  let entries: ZipEntry[];
  try {
    entries = zipEntries(bytes);
  } catch (error) {
    throw new UserFacingError(`${fileName} is a damaged zip file.`, errorText(error));
  }
  const configEntry = entries.find((e) => e.name === 'config.json');
  const weightsEntry = entries.find((e) => e.name === 'model.weights.h5');
  if (!configEntry || !weightsEntry) {
    throw new UserFacingError(
      `${fileName} is a zip file but not a Keras 3 model (it needs config.json and model.weights.h5).`,
    );
  }
  const configBytes = inflateEntry(bytes, configEntry, MAX_JSON_BYTES, fileName);
  const config = parseConfig(new TextDecoder().decode(configBytes), fileName, 'config.json');
  const metadataEntry = entries.find((e) => e.name === 'metadata.json');
  let kerasVersion: string | undefined;
  if (metadataEntry) {
    try {
      const metadata = JSON.parse(
        new TextDecoder().decode(inflateEntry(bytes, metadataEntry, MAX_JSON_BYTES, fileName)),
      ) as Json;
      if (isObject(metadata) && typeof metadata.keras_version === 'string') kerasVersion = metadata.keras_version;
    } catch {
      // The version only tells which Keras' definitions apply; Keras 3 wrote every .keras file.
    }
  }
  const weightBytes = inflateEntry(bytes, weightsEntry, MAX_MODEL_FILE_BYTES, fileName);
  const weights = await withH5File(weightBytes, fileName, (file, context) => {
    const result: LayerWeights = new Map();
    readZipLayers(file, context, 'layers', config, '', result);
    return result;
  });
  return { config, weights, kerasVersion: kerasVersion ?? '3' };
}

/**
 * The weights of `model`'s layers under `groupPath` of model.weights.h5: `<groupPath>/<snake_case(class)>[_N]/vars/<i>`,
 * N counting same-class layers in config order; a nested model's layers one level down
 * (`…/sequential/layers/conv2d/vars/0`), filed as `outer/inner`; a layer made of sublayers
 * (MultiHeadAttention: `…/query_dense/vars/0`) gets theirs after its own.
 */
function readZipLayers(
  file: H5Group,
  context: H5Context,
  groupPath: string,
  model: JsonObject,
  prefix: string,
  result: LayerWeights,
): void {
  const used = new Map<string, number>();
  for (const layer of rawLayers(model, context.fileName)) {
    // Keras 3 ops in a functional model (`x + 3.0`) are no layers: they have no group.
    if (typeof layer.module === 'string' && layer.module.startsWith('keras.src.ops')) continue;
    const base = toSnakeCase(String(layer.class_name));
    const count = used.get(base);
    used.set(base, count === undefined ? 0 : count + 1);
    const key = `${groupPath}/${count === undefined ? base : `${base}_${count + 1}`}`;
    const name = `${prefix}${layerName(layer)}`;
    if (NESTED_MODELS.has(String(layer.class_name))) {
      readZipLayers(file, context, `${key}/layers`, layer, `${name}/`, result);
      continue;
    }
    const arrays = readZipVars(file, context, key);
    if (arrays.length > 0) result.set(name, arrays);
  }
}

/** Sublayers in the order their weights come in Keras' `layer.weights` (MultiHeadAttention's). */
const SUBLAYER_ORDER = ['query', 'key', 'value', 'output', 'attention_output'];

function readZipVars(file: H5Group, context: H5Context, key: string): WeightArray[] {
  const { h5 } = context;
  const group = file.get(key);
  if (!(group instanceof h5.Group)) return [];
  const arrays: WeightArray[] = [];
  const vars = group.get('vars');
  if (vars instanceof h5.Group) {
    const indices = vars.keys().sort((a, b) => Number(a) - Number(b));
    arrays.push(...indices.map((i) => readDataset(context, vars.get(i), `${key}/vars/${i}`)));
  }
  const rank = (name: string) => {
    const bare = name.replace(/^_+/, '').replace(/_dense$/, '');
    const i = SUBLAYER_ORDER.indexOf(bare);
    return i < 0 ? SUBLAYER_ORDER.length : i;
  };
  const sublayers = group
    .keys()
    .filter((k) => k !== 'vars' && group.get(k) instanceof h5.Group)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  for (const sub of sublayers) arrays.push(...readZipVars(file, context, `${key}/${sub}`));
  return arrays;
}

/** Keras' own `naming.to_snake_case`, which names the groups inside model.weights.h5. */
function toSnakeCase(name: string): string {
  return name
    .replace(/\W+/g, '')
    .replace(/(.)([A-Z][a-z]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

// ---------------------------------------------------------------- the model config

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The model's layer list: `config.layers`, or the bare list of Keras 2.0 Sequential models. */
function rawLayers(model: JsonObject, fileName: string): JsonObject[] {
  const inner = model.config;
  const layers = Array.isArray(inner) ? inner : isObject(inner) ? inner.layers : undefined;
  if (!Array.isArray(layers) || !layers.every(isObject)) {
    throw new UserFacingError(`${fileName}: the model architecture has no layer list.`);
  }
  return layers;
}

function layerName(layer: JsonObject): string {
  const config = layer.config;
  if (isObject(config) && typeof config.name === 'string') return config.name;
  return typeof layer.name === 'string' ? layer.name : '';
}

const NESTED_MODELS = new Set(['Functional', 'Model', 'Sequential']);

/** Config keys that only matter for training or for Keras 3 internals, which tfjs does not know. */
const DROPPED_KEYS = new Set([
  'groups',
  'optional',
  'ragged',
  'synchronized',
  'renorm',
  'renorm_clipping',
  'renorm_momentum',
  'quantization_config',
  'lora_rank',
  'lora_alpha',
]);

/** Keras 3 activation names that tfjs spells differently. */
const ACTIVATION_ALIASES: Record<string, string> = { silu: 'swish' };

/**
 * Turns a Keras 2 or Keras 3 model config into the Keras 2 form `tf.models.modelFromJSON`
 * reads, and refuses, by layer name and class, what TensorFlow.js cannot run.
 */
function normaliseModel(model: JsonObject, fileName: string, isKnown: (className: string) => boolean): JsonObject {
  const className = model.class_name;
  const inner = isObject(model.config) ? model.config : {};
  const name = typeof inner.name === 'string' ? inner.name : 'model';
  const layers = rawLayers(model, fileName).map((layer) => normaliseLayer(layer, fileName, isKnown));

  if (className === 'Sequential') {
    // tfjs wants the input shape on the first real layer, as Keras 2 wrote it.
    let batchShape: Json | undefined = inner.build_input_shape;
    if (layers[0]?.class_name === 'InputLayer') {
      batchShape = (layers.shift()?.config as JsonObject).batch_input_shape;
    }
    const first = layers[0];
    if (!first) throw new UserFacingError(`${fileName}: the model has no layers.`);
    const firstConfig = first.config as JsonObject;
    if (firstConfig.batch_input_shape === undefined) {
      if (!Array.isArray(batchShape)) {
        throw new UserFacingError(`${fileName}: the model does not record its input shape, so it cannot be rebuilt.`);
      }
      firstConfig.batch_input_shape = batchShape;
    }
    return { class_name: 'Sequential', config: { name, layers } };
  }
  if (className !== 'Functional' && className !== 'Model') {
    throw new UserFacingError(
      `${fileName} holds a ${String(className)}, not a Functional or Sequential Keras model; Feature Maps cannot load it.`,
    );
  }

  // tfjs loops forever on an inbound layer that does not exist: check every reference first.
  const names = new Set(layers.map(layerName));
  const checkRef = (ref: Json): void => {
    const target = Array.isArray(ref) ? ref[0] : undefined;
    if (typeof target !== 'string' || !names.has(target)) {
      throw new UserFacingError(
        `${fileName}: the model architecture refers to a layer it does not define.`,
        JSON.stringify(ref),
      );
    }
  };
  for (const layer of layers) {
    for (const node of (layer.inbound_nodes ?? []) as Json[][]) node.forEach(checkRef);
  }
  const inputLayers = tensorRefs(inner.input_layers, fileName);
  const outputLayers = tensorRefs(inner.output_layers, fileName);
  [...inputLayers, ...outputLayers].forEach(checkRef);
  return { class_name: 'Model', config: { name, layers, input_layers: inputLayers, output_layers: outputLayers } };
}

/** `input_layers` / `output_layers`: Keras 3 writes a single `[name, 0, 0]` where Keras 2 wrote a list of them. */
function tensorRefs(value: Json | undefined, fileName: string): Json[] {
  if (Array.isArray(value) && typeof value[0] === 'string') return [value];
  if (Array.isArray(value) && value.every(Array.isArray)) return value;
  throw new UserFacingError(
    `${fileName}: the model's inputs or outputs are not in a form Feature Maps can read.`,
    JSON.stringify(value),
  );
}

function normaliseLayer(raw: JsonObject, fileName: string, isKnown: (className: string) => boolean): JsonObject {
  const className = raw.class_name;
  const name = layerName(raw);
  if (typeof className !== 'string' || !isObject(raw.config)) {
    throw new UserFacingError(`${fileName}: layer "${name}" has no class or config in the model architecture.`);
  }
  const unsupported = (why: string): never => {
    throw new UserFacingError(`${fileName}: layer "${name}" (${className}) ${why}, which Feature Maps cannot run.`);
  };
  if (NESTED_MODELS.has(className)) unsupported('is a whole model nested inside this one');
  if (!isKnown(className)) unsupported('is not a layer type TensorFlow.js has');

  const config: JsonObject = { name };
  for (const [key, value] of Object.entries(raw.config)) {
    if (key === 'name' || DROPPED_KEYS.has(key)) continue;
    // Weights are overwritten from the file, so initialisers, regularisers and constraints
    // (some only Keras 3 knows) are replaced by ones tfjs has.
    else if (key.endsWith('_initializer')) config[key] = { class_name: 'Zeros', config: {} };
    else if (key.endsWith('_regularizer') || key.endsWith('_constraint')) config[key] = null;
    else if (key === 'dtype') config.dtype = dtypeName(value);
    else if (key === 'batch_shape' || key === 'batch_input_shape') config.batch_input_shape = value;
    else if (key === 'activation') config.activation = activationName(value);
    else config[key] = value;
  }
  const options = raw.config;
  if (typeof options.groups === 'number' && options.groups !== 1)
    unsupported(`uses grouped convolution (groups=${options.groups})`);
  if (options.renorm === true) unsupported('uses batch renormalisation');
  if (className === 'LeakyReLU' && 'negative_slope' in config) {
    config.alpha = config.negative_slope;
    delete config.negative_slope;
  }
  if (className === 'ReLU') {
    if (options.negative_slope || options.threshold) unsupported('has a negative slope or threshold');
    delete config.negative_slope;
    delete config.threshold;
  }

  const layer: JsonObject = { class_name: className, name, config };
  if (raw.inbound_nodes !== undefined) layer.inbound_nodes = inboundNodes(raw.inbound_nodes, name, fileName);
  return layer;
}

/** A DTypePolicy object (Keras 3) becomes its name; mixed precision runs in float32 here. */
function dtypeName(value: Json): Json {
  const policy = isObject(value) && isObject(value.config) ? value.config.name : value;
  return typeof policy === 'string' && ['float32', 'int32', 'bool'].includes(policy) ? policy : 'float32';
}

function activationName(value: Json): Json {
  // Keras 3 may serialise an activation as `{class_name: "function", config: "relu"}`.
  const name = isObject(value) && typeof value.config === 'string' ? value.config : value;
  return typeof name === 'string' ? (ACTIVATION_ALIASES[name] ?? name) : name;
}

/**
 * Inbound nodes in the Keras 2 form tfjs reads: `[[[layer, node, tensor, kwargs], …], …]`.
 * Keras 3 writes `[{args: [...], kwargs: {...}}]` with `__keras_tensor__` objects whose
 * `keras_history` is `[layer, node, tensor]`.
 */
function inboundNodes(value: Json, name: string, fileName: string): Json[] {
  if (!Array.isArray(value)) {
    throw new UserFacingError(`${fileName}: layer "${name}" has unreadable inbound nodes.`, JSON.stringify(value));
  }
  return value.map((node) => {
    if (Array.isArray(node)) return node;
    if (!isObject(node)) {
      throw new UserFacingError(`${fileName}: layer "${name}" has an unreadable inbound node.`, JSON.stringify(node));
    }
    const refs: Json[] = [];
    const collect = (arg: Json): void => {
      if (Array.isArray(arg)) arg.forEach(collect);
      else if (isObject(arg) && arg.class_name === '__keras_tensor__' && isObject(arg.config)) {
        const history = arg.config.keras_history;
        if (Array.isArray(history) && history.length === 3) refs.push([...history, {}]);
      }
    };
    collect(node.args ?? []);
    return refs;
  });
}

async function buildModel(tf: Tf, raw: JsonObject, fileName: string): Promise<tfl.LayersModel> {
  const registry = tf.serialization.SerializationMap.getMap().classNameMap;
  const config = normaliseModel(raw, fileName, (className) => className in registry);
  // tfjs loops forever on a layer call that can never be made (a cycle, a wrong node index).
  checkLayerGraph(config, fileName);
  try {
    return await tf.models.modelFromJSON({ modelTopology: config });
  } catch (error) {
    throw new UserFacingError(
      `${fileName}: TensorFlow.js could not rebuild the model from its Keras architecture.`,
      errorText(error),
    );
  }
}

// ---------------------------------------------------------------- weights

function setWeights(tf: Tf, model: tfl.LayersModel, weights: LayerWeights, fileName: string): void {
  const assigned = new Set<string>();
  for (const layer of model.layers) {
    const expected = layer.weights;
    if (expected.length === 0) continue;
    const arrays = weights.get(layer.name);
    const where = `layer "${layer.name}" (${layer.getClassName()})`;
    if (!arrays || arrays.length !== expected.length) {
      throw new UserFacingError(
        `${fileName}: ${where} needs ${expected.length} weight arrays, the file has ${arrays?.length ?? 0}.`,
        `Expected ${expected.map((w) => w.name).join(', ')}; found ${arrays?.map((a) => a.path).join(', ') || 'none'}.`,
      );
    }
    arrays.forEach((array, i) => {
      const shape = expected[i].shape;
      if (array.shape.length !== shape.length || array.shape.some((d, j) => d !== shape[j])) {
        throw new UserFacingError(
          `${fileName}: ${where} expects its weight ${expected[i].name} to be ${JSON.stringify(shape)}, the file has ${JSON.stringify(array.shape)}.`,
          `File dataset: ${array.path}`,
        );
      }
    });
    const tensors = arrays.map((array) => tf.tensor(array.data, array.shape, 'float32'));
    try {
      layer.setWeights(tensors);
    } finally {
      tf.dispose(tensors);
    }
    assigned.add(layer.name);
  }
  const unused = [...weights.keys()].filter((name) => !assigned.has(name));
  if (unused.length > 0) {
    throw new UserFacingError(
      `${fileName} has weights for ${unused.length === 1 ? 'a layer' : 'layers'} the rebuilt model does not have: ${unused.join(', ')}.`,
    );
  }
}

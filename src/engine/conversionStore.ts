import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { errorText } from './errors';
import { MAX_JSON_BYTES, MAX_MODEL_FILE_BYTES, readRegularFile } from './files';
import type { LayerMeta } from './layers';
import type { LoadedModel, OnnxForm } from './model';
import type { ImageInput, TappedOutput } from './models/onnx';

// Keras and TF.js models run on onnxruntime converted to ONNX (layersToOnnx.ts). Converting costs
// what opening costs again (TensorFlow.js or h5wasm loaded, every weight read and rewritten), so a
// conversion is kept on disk, one per model file, with what decided its result: the file's size
// and modification time, the input size, and the engine that converted it (its own bundle's
// bytes, so any change to the converter converts anew). The next open reads the ONNX graph and
// what the model said of itself, and neither TensorFlow.js nor h5wasm is loaded; a file that
// changed since (a checkpoint rewritten during training) is converted again, in the same place.
//
// Each conversion is a folder <dir>/<hash of the model's file>/ with model.onnx and model.json,
// written to a private folder and renamed into place, so a reader sees all of it or none. One
// that cannot be read or opened is converted again. The least recently opened go when all of
// them take more than MAX_STORE_BYTES.

/** What model.json holds: the model as it presented itself, and how its graph is read. */
interface StoredModel {
  format: typeof STORE_FORMAT;
  /** What decided the conversion (absent for the bundled model's, made at build time). */
  identity?: string;
  /** model.onnx's SHA-256: a damaged one is converted again rather than failing at the first image. */
  onnxSha256: string;
  summary: LoadedModel['summary'];
  inputSize: LoadedModel['inputSize'];
  preprocessing: LoadedModel['preprocessing'];
  preprocessingReason?: string;
  path?: string;
  resizeKernel?: LoadedModel['resizeKernel'];
  labels?: LoadedModel['labels'];
  inputName?: string;
  layers: LayerMeta[];
  input: ImageInput;
  outputs: TappedOutput[];
  /** How long the conversion took when it was made. */
  convertedInMs?: number;
}

/** A conversion read back: the model's fields and its ONNX form, to open on onnxruntime. */
export interface StoredConversion {
  fields: Omit<StoredModel, 'input' | 'outputs'>;
  form: OnnxForm;
  dir: string;
}

const STORE_FORMAT = 'feature-maps-conversion-1';

/** The store's folder in the conversions folder (the PyTorch conversions are its other folders). */
export const KEPT_CONVERSIONS = 'keras-tfjs';

/** How much disk the kept conversions may take (a VGG16's is 528 MB); the least recently opened go first. */
export const MAX_STORE_BYTES = 4 * 2 ** 30;

/** A private folder left by a process that died while writing is removed after this long. */
const STALE_PARTIAL_MS = 60 * 60 * 1000;

/** Where conversions are kept when the host names no folder (the CLI): the user's cache folder. */
export function defaultCacheDir(): string {
  const base =
    process.env.XDG_CACHE_HOME ||
    (process.platform === 'darwin'
      ? path.join(os.homedir(), 'Library', 'Caches')
      : process.platform === 'win32'
        ? (process.env.LOCALAPPDATA ?? path.join(os.homedir(), 'AppData', 'Local'))
        : path.join(os.homedir(), '.cache'));
  return path.join(base, 'feature-maps');
}

let engineIdentity: Promise<string> | undefined;

/**
 * Identifies the code that converts: a hash of the running bundle (dist/engine.js, dist/cli.js),
 * read once. A new build converts anew; the CLI and the extension keep their own conversions.
 */
function converterIdentity(): Promise<string> {
  engineIdentity ??= fs
    .readFile(__filename)
    .then((bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16))
    .catch(() => 'unknown');
  return engineIdentity;
}

export class ConversionStore {
  constructor(
    private readonly dir: string,
    private readonly log?: (line: string) => void,
    private readonly maxBytes = MAX_STORE_BYTES,
  ) {}

  /** The folder of `model`'s conversion (`model` says which model: its format and file). */
  folder(model: object): string {
    return path.join(this.dir, createHash('sha256').update(JSON.stringify(model)).digest('hex').slice(0, 24));
  }

  /**
   * The conversion kept for `model`, when it was made for the same `identity` (the file's size
   * and time, the input size) by this engine; else undefined (none yet, or out of date).
   */
  async read(model: object, identity: object): Promise<StoredConversion | undefined> {
    const dir = this.folder(model);
    const stored = await readConversion(dir, this.log);
    if (!stored) return undefined;
    if (stored.fields.identity !== (await identityText(identity))) {
      this.log?.(`${stored.fields.summary.name} changed since it was converted (or the engine did): converting again.`);
      return undefined;
    }
    // Opened now: the last to go when the store is over its size.
    const now = new Date();
    await fs.utimes(path.join(dir, 'model.json'), now, now).catch(() => undefined);
    return stored;
  }

  /**
   * Keeps `loaded`'s ONNX form as `model`'s conversion for `identity`, in place of any older one.
   * Never throws: a conversion that cannot be kept is made again next time.
   */
  async write(model: object, identity: object, loaded: LoadedModel): Promise<void> {
    if (!loaded.onnxForm) return;
    const dir = this.folder(model);
    const partial = `${dir}.partial-${process.pid}-${Date.now()}`;
    try {
      await writeConversion(partial, loaded, await identityText(identity));
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rename(partial, dir).catch(async (error: unknown) => {
        // Another process kept the same conversion first: theirs is as good.
        if (!(await exists(path.join(dir, 'model.json')))) throw error;
      });
      await this.prune(dir);
    } catch (error) {
      this.log?.(`The ONNX form of ${loaded.summary.name} could not be kept in ${this.dir}: ${errorText(error)}`);
    } finally {
      await fs.rm(partial, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Removes the least recently opened conversions (never `keep`) while all take more than maxBytes. */
  private async prune(keep: string): Promise<void> {
    const kept: { dir: string; bytes: number; usedMs: number }[] = [];
    for (const name of await fs.readdir(this.dir)) {
      const dir = path.join(this.dir, name);
      if (name.includes('.partial-')) {
        const stat = await fs.stat(dir).catch(() => undefined);
        if (stat && Date.now() - stat.mtimeMs > STALE_PARTIAL_MS) await discardConversion(dir);
        continue;
      }
      const [onnx, json] = await Promise.all(
        ['model.onnx', 'model.json'].map((file) => fs.stat(path.join(dir, file)).catch(() => undefined)),
      );
      kept.push({ dir, bytes: (onnx?.size ?? 0) + (json?.size ?? 0), usedMs: json?.mtimeMs ?? 0 });
    }
    let total = kept.reduce((sum, k) => sum + k.bytes, 0);
    for (const old of kept.sort((a, b) => a.usedMs - b.usedMs)) {
      if (total <= this.maxBytes) break;
      if (old.dir === keep) continue;
      await discardConversion(old.dir);
      total -= old.bytes;
      this.log?.(
        `Conversions kept in ${this.dir} over ${megabytes(this.maxBytes)} MB: removed the least recently opened.`,
      );
    }
  }
}

/** `identity` with the engine that converts, as model.json keeps it. */
async function identityText(identity: object): Promise<string> {
  return JSON.stringify({ ...identity, converter: await converterIdentity() });
}

function megabytes(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

/**
 * Writes `model`'s ONNX form to `dir`: the bundled model's at build time (bundledOnnx.ts), with no
 * `identity`, or a kept conversion's (ConversionStore.write).
 */
export async function writeConversion(dir: string, model: LoadedModel, identity?: string): Promise<void> {
  const form = model.onnxForm;
  if (!form) throw new Error(`${model.summary.name} has no ONNX form to write`);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'model.onnx'), form.bytes);
  await fs.writeFile(path.join(dir, 'model.json'), JSON.stringify({ ...storedModel(model, form), identity }));
}

/**
 * The conversion in `dir`, or undefined when there is none. One that cannot be read (cut short,
 * another format, hand-edited) is reported to `problem`. `shipped`: the bundled model's, written
 * by the build and installed with the extension, so its hash is not computed at every start (8–20
 * ms); a kept one was written by an earlier run, which may have been cut short.
 */
export async function readConversion(
  dir: string,
  problem?: (text: string) => void,
  { shipped = false }: { shipped?: boolean } = {},
): Promise<StoredConversion | undefined> {
  let json: Buffer;
  try {
    json = await readRegularFile(path.join(dir, 'model.json'), {
      describe: 'a kept conversion',
      maxBytes: MAX_JSON_BYTES,
    });
  } catch {
    return undefined;
  }
  try {
    const stored = JSON.parse(json.toString('utf8')) as StoredModel;
    if (!isStoredModel(stored)) throw new Error('its model.json is not one this engine writes');
    const bytes = await readRegularFile(path.join(dir, 'model.onnx'), {
      describe: 'a kept conversion',
      maxBytes: MAX_MODEL_FILE_BYTES,
    });
    // About 0.6 ms per MB: the session is made at the first pass, too late to convert again.
    if (!shipped && sha256(bytes) !== stored.onnxSha256) throw new Error('its model.onnx is not the one written');
    const { input, outputs, ...fields } = stored;
    return { fields, form: { bytes, input, outputs }, dir };
  } catch (error) {
    problem?.(`The conversion kept in ${dir} cannot be read (${errorText(error)}): converting again.`);
    return undefined;
  }
}

/** Removes a kept conversion that did not open, so the next open converts again. */
export async function discardConversion(dir: string): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function storedModel(model: LoadedModel, form: OnnxForm): StoredModel {
  return {
    format: STORE_FORMAT,
    onnxSha256: sha256(form.bytes),
    summary: model.summary,
    inputSize: model.inputSize,
    preprocessing: model.preprocessing,
    preprocessingReason: model.preprocessingReason,
    path: model.path,
    resizeKernel: model.resizeKernel,
    labels: model.labels,
    inputName: model.inputName,
    layers: model.layers,
    input: form.input,
    outputs: form.outputs,
    convertedInMs: model.convertedInMs,
  };
}

/** The checks that keep a damaged model.json from reaching the engine: the fields it reads, of their types. */
function isStoredModel(value: StoredModel): boolean {
  const size = (n: unknown) => Number.isInteger(n) && (n as number) > 0 && (n as number) <= 65_536;
  const { input, inputSize } = value ?? {};
  return (
    value?.format === STORE_FORMAT &&
    typeof value.onnxSha256 === 'string' &&
    typeof value.summary?.name === 'string' &&
    Array.isArray(value.layers) &&
    value.layers.every((l) => typeof l?.name === 'string' && Array.isArray(l.shape)) &&
    Array.isArray(value.outputs) &&
    value.outputs.every((o) => typeof o?.tensor === 'string' && typeof o.layer === 'string') &&
    typeof input?.name === 'string' &&
    [input.height, input.width, input.channels].every(size) &&
    [inputSize?.height, inputSize?.width, inputSize?.channels].every(size) &&
    (value.identity === undefined || typeof value.identity === 'string')
  );
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

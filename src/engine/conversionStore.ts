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
// conversion is kept on disk, by what decides its result: the model file's path, size and
// modification time, the input size, and the engine that converted it (its own bundle's bytes,
// so any change to the converter makes new conversions). The next open reads the ONNX graph and
// what the model said of itself, and neither TensorFlow.js nor h5wasm is loaded.
//
// Each conversion is a folder <dir>/<hash>/ with model.onnx and model.json, written to a private
// folder and renamed into place, so a reader sees all of it or none. One that cannot be read is
// removed and the model converted again.

/** What model.json holds: the model as it presented itself, and how its graph is read. */
interface StoredModel {
  format: typeof STORE_FORMAT;
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
  ) {}

  /** The folder of the conversion of the model `identity` describes (file, size, mtime, input size). */
  async folder(identity: object): Promise<string> {
    const text = JSON.stringify({ ...identity, converter: await converterIdentity() });
    return path.join(this.dir, createHash('sha256').update(text).digest('hex').slice(0, 24));
  }

  /** The conversion kept for `identity`, or undefined (none yet, or one that cannot be read, now removed). */
  async read(identity: object): Promise<StoredConversion | undefined> {
    return readConversion(await this.folder(identity), (problem) => this.log?.(problem));
  }

  /** Keeps `model`'s ONNX form for `identity`. Never throws: a conversion that cannot be kept is made again next time. */
  async write(identity: object, model: LoadedModel): Promise<void> {
    const form = model.onnxForm;
    if (!form) return;
    const dir = await this.folder(identity);
    const partial = `${dir}.partial-${process.pid}-${Date.now()}`;
    try {
      await fs.mkdir(partial, { recursive: true });
      await fs.writeFile(path.join(partial, 'model.onnx'), form.bytes);
      await fs.writeFile(path.join(partial, 'model.json'), JSON.stringify(storedModel(model, form)));
      await fs.rename(partial, dir).catch(async (error: unknown) => {
        // Another process kept the same conversion first: theirs is as good.
        if (!(await exists(path.join(dir, 'model.json')))) throw error;
      });
    } catch (error) {
      this.log?.(`The ONNX form of ${model.summary.name} could not be kept in ${this.dir}: ${errorText(error)}`);
    } finally {
      await fs.rm(partial, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/** Writes `model`'s ONNX form to `dir` (the bundled model's, at build time: tools/bundled-model.js). */
export async function writeConversion(dir: string, model: LoadedModel): Promise<void> {
  const form = model.onnxForm;
  if (!form) throw new Error(`${model.summary.name} has no ONNX form to write`);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'model.onnx'), form.bytes);
  await fs.writeFile(path.join(dir, 'model.json'), JSON.stringify(storedModel(model, form)));
}

/**
 * The conversion in `dir`, or undefined when there is none. One that cannot be read (cut short,
 * another format, hand-edited) is reported to `problem`.
 */
export async function readConversion(
  dir: string,
  problem?: (text: string) => void,
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

function storedModel(model: LoadedModel, form: OnnxForm): StoredModel {
  return {
    format: STORE_FORMAT,
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
    typeof value.summary?.name === 'string' &&
    Array.isArray(value.layers) &&
    value.layers.every((l) => typeof l?.name === 'string' && Array.isArray(l.shape)) &&
    Array.isArray(value.outputs) &&
    value.outputs.every((o) => typeof o?.tensor === 'string' && typeof o.layer === 'string') &&
    typeof input?.name === 'string' &&
    [input.height, input.width, input.channels].every(size) &&
    [inputSize?.height, inputSize?.width, inputSize?.channels].every(size)
  );
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

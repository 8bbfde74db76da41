import * as path from 'node:path';
import { UserFacingError } from './errors';
import type { LayerMeta } from './layers';
import type { FileModelHints, LoadedModel } from './model';
import type { ModelFile } from './modelFiles';
import { kerasFormat } from './models/kerasFormat';
import { onnxFormat } from './models/onnxFormat';
import { pytorchFormat } from './models/pytorchFormat';
import { tfjsFormat } from './models/tfjsFormat';
import type { PreprocessMode } from './preprocess';

// The model formats Feature Maps reads, in one list (like netron's ModelFactoryService): each
// format says what its files are called, how its bytes look and what preprocessing its models
// usually expect, in its own module (src/engine/models/<format>Format.ts). Everything else is
// derived from this list: which file resolveModelFile picks and what it refuses, the workspace
// search and the file dialog of "Select Model…", the CLI's help, the Explorer menu's `when`
// clause (package.json; test/unit/formats.test.ts checks it).
//
// This module and the entries import no runtime (TensorFlow.js, h5wasm, onnxruntime): the
// extension host imports it for the file lists, and a loader would add megabytes to its bundle.
// How the engine opens each format (OpenModel) is in modelSources.ts, keyed by the format's id.
//
// Adding a format: its loader module, a <format>Format.ts entry, one line below, and its opener
// in modelSources.ts' FORMAT_OPENERS (the compiler asks for it once the line below is there).

/** One model format: how its files are named, recognised and described, and its usual preprocessing. */
export interface ModelFormatEntry<Id extends string = string> {
  /** Stable id, e.g. 'keras'. */
  readonly id: Id;
  /** What a model of this format is called, e.g. "Keras model" (in its description: "Keras model: /path"). */
  readonly label: string;
  /** Its files, for lists of what Feature Maps reads, e.g. "Keras .h5/.hdf5/.keras". */
  readonly files: string;
  /** Exact file names of this format, e.g. ['model.json']; a folder holding one is opened by it. */
  readonly fileNames: readonly string[];
  /** Extensions (lower case, with the dot) offered in the Explorer menu and the workspace list. */
  readonly extensions: readonly string[];
  /**
   * Extensions also read when the user names such a file (setting, CLI, file dialog) but not
   * offered: any `.json` may be a renamed model.json, but listing every JSON file of a workspace
   * would offer package.json and tsconfig.json.
   */
  readonly alsoReads?: readonly string[];
  /** The largest file of this format read (files.ts' limits). */
  readonly maxBytes: number;
  /** What a file of this format is, with its article, e.g. "an ONNX file" ("x.onnx is not an ONNX file: …"). */
  readonly noun: string;
  /** What bytes its sniff recognises are, e.g. "an HDF5 (Keras) file" ("… its bytes are an HDF5 (Keras) file."). */
  readonly bytesAre: string;
  /**
   * What a file its sniff refuses is not, when no other format recognises the file: "x.onnx is not
   * <invalid>." (default: "a valid <label> file").
   */
  readonly invalid?: string;
  /**
   * Whether the first bytes of `file` (SNIFF_BYTES of them, fewer when the file is shorter) are
   * this format: true, they are; false, they are not; undefined, they cannot tell.
   */
  sniff(head: Buffer, file: string): boolean | undefined;
  /** The preprocessing a model of this format most likely expects when its layer names say nothing. */
  defaultPreprocessing(layers: readonly LayerMeta[], inputName?: string): { mode: PreprocessMode; why: string };
}

/** The formats Feature Maps reads, one line each; a file is offered to them in this order. */
export const MODEL_FORMATS = [
  tfjsFormat,
  kerasFormat,
  onnxFormat,
  pytorchFormat,
] as const satisfies readonly ModelFormatEntry[];

/** The id of a registered format: 'tfjs' | 'keras' | 'onnx' | … */
export type ModelFormatId = (typeof MODEL_FORMATS)[number]['id'];

/** What opening a user's model file needs: modelSources.ts builds it, a format's opener uses it. */
export interface OpenContext {
  /** Holds the bundled model and the tfjs wasm binaries. */
  assetsDir: string;
  /** The model's cache key (LocatedModel.key). */
  key: string;
  file: ModelFile;
  /** How the model presents itself: its name, "<label>: <path>", its path. */
  summary: { name: string; description: string; path: string };
  /** Height and width for models whose input size is not fixed. */
  inputSize?: { height: number; width: number };
  /** What the format needs beyond the file (PyTorch); other formats ignore it. */
  hints: FileModelHints;
  /** Aborted when nobody waits for the model any more: a long open (Python) stops. */
  signal?: AbortSignal;
  /** What a long open is doing, for the panel ("Converting … with Python"). */
  onProgress?: (message: string) => void;
  /** Whether a format that can run on onnxruntime instead of TensorFlow.js should (default true). */
  native?: boolean;
}

/** Opens a file of one format (engine only: it loads the format's runtime). */
export type OpenModel = (ctx: OpenContext) => Promise<LoadedModel>;

/**
 * How many bytes of a model file the sniffs see: 64 kB and 8 bytes, so an HDF5 superblock after
 * a user block of up to 64 kB is seen; reading it costs nothing next to loading the model.
 */
export const SNIFF_BYTES = 65_536 + 8;

const ALL: readonly ModelFormatEntry<ModelFormatId>[] = MODEL_FORMATS;

/** The registered format with this id. */
export function formatById(id: ModelFormatId): ModelFormatEntry<ModelFormatId> {
  const entry = ALL.find((f) => f.id === id);
  if (!entry) throw new Error(`No model format "${id}" is registered.`);
  return entry;
}

/** The formats that read a file of this name: its exact name first, then by extension, in registry order. */
export function formatsForFile(file: string): ModelFormatEntry<ModelFormatId>[] {
  const name = path.basename(file);
  const ext = path.extname(name).toLowerCase();
  const byName = ALL.filter((f) => f.fileNames.includes(name));
  const byExtension = ALL.filter(
    (f) => !byName.includes(f) && (f.extensions.includes(ext) || (f.alsoReads ?? []).includes(ext)),
  );
  return [...byName, ...byExtension];
}

/** A file of this exact name is named after its format, not its model (model.json): its folder names the model. */
export function namesItsFolder(file: string): boolean {
  const name = path.basename(file);
  return ALL.some((f) => f.fileNames.includes(name));
}

/** The file names a model folder may hold, in the order they are looked for. */
export function modelFolderFileNames(): string[] {
  return unique(ALL.flatMap((f) => f.fileNames));
}

/** Every extension a model file may have (lower case, with the dot), for the file dialog. */
export function modelFileExtensions(): string[] {
  return unique(
    ALL.flatMap((f) => [
      ...f.fileNames.map((name) => path.extname(name).toLowerCase()).filter((ext) => ext !== ''),
      ...f.extensions,
      ...(f.alsoReads ?? []),
    ]),
  );
}

/** The glob for workspace.findFiles: every offered file name and extension, e.g. `**\/{model.json,*.onnx}`. */
export function modelFileGlob(): string {
  const names = unique(ALL.flatMap((f) => [...f.fileNames, ...f.extensions.map((ext) => `*${ext}`)]));
  return `**/{${names.join(',')}}`;
}

/** The file dialog's filters: every model file first, then one filter per format. */
export function modelOpenDialogFilters(): Record<string, string[]> {
  const bare = (exts: readonly string[]) => unique(exts.map((ext) => ext.slice(1)));
  const filters: Record<string, string[]> = { Models: bare(modelFileExtensions()) };
  for (const f of ALL) {
    filters[`${f.label}s`] = bare([
      ...f.fileNames.map((name) => path.extname(name).toLowerCase()).filter((ext) => ext !== ''),
      ...f.extensions,
      ...(f.alsoReads ?? []),
    ]);
  }
  return filters;
}

/**
 * The `when` clause of the Explorer's "Use as Feature Map Model": package.json must hold exactly
 * this string (test/unit/formats.test.ts says so when a format changes).
 */
export function whenClauseForModelFiles(): string {
  const names = modelFolderFileNames().map((name) => `resourceFilename == ${name}`);
  const exts = unique(
    ALL.flatMap((f) => f.extensions.map((ext) => ext.slice(1).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))),
  );
  const tests = [...names, ...(exts.length > 0 ? [`resourceExtname =~ /^\\.(${exts.join('|')})$/i`] : [])];
  return `resourceScheme == file && (${tests.join(' || ')})`;
}

/** The files Feature Maps reads: "TF.js model.json, Keras .h5/.hdf5/.keras, ONNX .onnx" (`last` joins the last two). */
export function describeModelFiles(last = ', '): string {
  const parts = ALL.map((f) => f.files);
  return parts.length < 2 ? parts.join('') : `${parts.slice(0, -1).join(', ')}${last}${parts[parts.length - 1]}`;
}

/** The refusal of a file no format reads, listing what Feature Maps reads. */
export function notAModelFile(file: string): UserFacingError {
  return new UserFacingError(
    `${path.basename(file)} is not a model file this extension reads (${describeModelFiles()}).`,
  );
}

/**
 * Picks among the formats that read `file` by its name (formatsForFile) the one its first bytes
 * are: the first whose sniff says yes, else the first that cannot tell. When every candidate says
 * no, refuses the file, naming what it looks like when another format recognises it ("x.onnx is
 * not an ONNX file: its bytes are an HDF5 (Keras) file.").
 */
export function chooseFormat(
  file: string,
  head: Buffer,
  candidates: readonly ModelFormatEntry<ModelFormatId>[],
): ModelFormatEntry<ModelFormatId> {
  if (candidates.length === 0) throw notAModelFile(file);
  const answers = candidates.map((f) => f.sniff(head, file));
  const yes = candidates[answers.indexOf(true)] ?? candidates[answers.indexOf(undefined)];
  if (yes) return yes;
  const name = path.basename(file);
  const detail =
    head.length === 0 ? 'The file is empty.' : `It begins with the bytes ${head.subarray(0, 16).toString('hex')}.`;
  const other = ALL.find((f) => !candidates.includes(f) && f.sniff(head, file) === true);
  if (other) {
    const nouns = candidates.map((f) => f.noun).join(' or ');
    throw new UserFacingError(`${name} is not ${nouns}: its bytes are ${other.bytesAre}.`, detail);
  }
  const invalid =
    candidates.length === 1
      ? (candidates[0].invalid ?? `a valid ${candidates[0].label} file`)
      : `a valid ${candidates.map((f) => f.label).join(' or ')} file`;
  throw new UserFacingError(`${name} is not ${invalid}.`, detail);
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

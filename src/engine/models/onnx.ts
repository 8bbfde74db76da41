import * as os from 'node:os';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import type * as ort from 'onnxruntime-node';
import { UserFacingError, errorText } from '../errors';
import { MAX_MODEL_FILE_BYTES, readRegularFile } from '../files';
import { learnShapes, type LayerMeta } from '../layers';
import type { Activation, LoadedModel, ModelIdentity } from '../model';
import type { PreprocessMode } from '../preprocess';
import { DerivedActivation, derivedShape, fetchedFor, planDerivations, type Recipe } from './derivedLayers';
import { ExecutionProviders, type ExecutionDevice, type ExecutionProviderSetting } from './executionProvider';
import type { OrtSession, SessionMaker } from './ortSession';
import { SessionWorker } from './sessionWorker';

export interface OnnxOptions {
  modelPath: string;
  key: string;
  summary: ModelIdentity;
  preprocessing: PreprocessMode;
  /** Input height and width for models whose H/W are symbolic (default 224×224). */
  inputSize?: { height: number; width: number };
  /**
   * The layers to show, by the tensors that hold them (a converted PyTorch model: its modules'
   * outputs, named and typed as PyTorch has them), instead of every node's output.
   */
  layerPlan?: readonly PlannedLayer[];
  /** What runs it, as the header says (default 'onnxruntime'). */
  backend?: string;
}

/** A layer a converter names: the tensor holding its output, its name and its op (a module class). */
export interface PlannedLayer {
  tensor: string;
  name: string;
  op: string;
}

/** Where a 4-D tensor keeps its channels: decides how it becomes H×W×C. */
export type Layout = 'NCHW' | 'NHWC';

/** The image input of an ONNX graph: its name, layout, size and element type. */
export interface ImageInput {
  name: string;
  layout: Layout;
  height: number;
  width: number;
  channels: number;
  type: 'float32' | 'float16';
}

/** A node output that becomes a layer. */
export interface TappedOutput {
  tensor: string;
  layer: string;
  op: string;
  /** Layout of the tensor when it is 4-D: decides how it becomes H×W×C. */
  layout: Layout;
}

const DEFAULT_SIZE = 224;

// TensorProto.DataType values.
const ELEM_FLOAT = 1;
const ELEM_FLOAT16 = 10;
const DATA_LOCATION_EXTERNAL = 1;

/** Ops whose output depends only on their input's shape: bookkeeping, not feature maps. */
const SHAPE_ONLY_OPS = new Set(['Shape', 'Size', 'EyeLike', 'RandomNormalLike', 'RandomUniformLike']);
/** Ops whose extra outputs are masks, indices or running statistics. */
const FIRST_OUTPUT_ONLY_OPS = new Set(['Dropout', 'MaxPool', 'BatchNormalization']);
/** Ops that produce channel-first tensors whatever their input's layout (ONNX defines them on NCHW). */
const CHANNEL_FIRST_OPS = new Set([
  'Conv',
  'ConvTranspose',
  'ConvInteger',
  'QLinearConv',
  'MaxPool',
  'AveragePool',
  'LpPool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'GlobalLpPool',
  'BatchNormalization',
  'InstanceNormalization',
  'LRN',
  'DepthToSpace',
  'SpaceToDepth',
  'MaxUnpool',
  'MaxRoiPool',
]);
const FLOAT_TYPES = new Set<string>(['float32', 'float16', 'float64']);

/**
 * Loads an ONNX model with onnxruntime-node so that one forward pass returns every
 * node's output. The file is never modified: the extra graph outputs are added to a
 * copy in memory.
 */
export async function loadOnnxModel(options: OnnxOptions): Promise<LoadedModel> {
  const fileName = path.basename(options.modelPath);
  const bytes = await readModelFile(options.modelPath, fileName);
  const graph = decodeGraph(bytes, fileName);
  const input = findImageInput(graph, fileName, options.inputSize);
  const every = featureMapCandidates(graph, input);
  const candidates = options.layerPlan ? plannedCandidates(every, options.layerPlan, input) : every;

  const runtime = requireOrt();
  let session: OrtSession;
  try {
    session = await createSession(
      runtime,
      sessionModelBytes(bytes, graph, input, candidates),
      // Weights stored beside the model are looked up relative to the model, not the working directory.
      hasExternalData(graph)
        ? { extra: { session: { model_external_initializers_file_folder_path: path.dirname(options.modelPath) } } }
        : {},
    );
  } catch (error) {
    throw new UserFacingError(
      `ONNX Runtime cannot load ${fileName}${ortRefusalReason(errorText(error))}.`,
      errorText(error),
    );
  }

  return wrapSession(runtime, session, input, candidates, options);
}

/**
 * The model file's bytes, read through files.ts' readRegularFile: refused in words unless it is
 * a regular file (a symlink to /dev/zero, a FIFO or a folder is not; the opened descriptor is
 * checked, so a file swapped after the engine resolved it is caught too) of at most
 * MAX_MODEL_FILE_BYTES (2 GB, which is also the most a protobuf ONNX Runtime reads can hold:
 * larger models keep their weights beside), checked before anything is read.
 */
function readModelFile(modelPath: string, fileName: string): Promise<Buffer> {
  return readRegularFile(modelPath, { describe: `the ONNX model ${fileName}`, maxBytes: MAX_MODEL_FILE_BYTES });
}

/** A session on an ONNX graph held in memory, whose input and layer outputs the caller already knows. */
export interface OnnxGraphSession {
  /**
   * One forward pass on an H×W×C image: every tapped output, or only those of `only`, computed
   * by a copy of the graph cut down to what they need (the pass stops at the deepest of them).
   */
  run(nhwc: Float32Array, only?: ReadonlySet<string>): Promise<Map<string, Activation>>;
  /** Each layer's shape (H×W×C or [N]) as ORT's shape inference gives it at load; absent where it cannot tell. */
  readonly shapes: ReadonlyMap<string, number[]>;
  release(): void;
}

/**
 * How many cut-down sessions a graph keeps (one per set of layers asked for: the listed ones, or
 * the one on screen), besides the full one. Each costs what a session costs (ResNet50: about
 * 150 MB and 250 ms to make), so only the latest few stay: enough for stepping through images
 * on one layer, or two in turn.
 */
const PRUNED_SESSIONS = 2;

/**
 * Opens ONNX model bytes made in memory (a converted Keras model, see layersToOnnx.ts) or kept
 * from an earlier conversion (conversionStore.ts): unlike `loadOnnxModel`, the image input and
 * the outputs to read are given, not guessed. Layers a cheap function of others are computed from
 * them when read, not fetched (derivedLayers.ts); `layerShapes`, where the caller knows them, lets
 * more of them be. `lazy`: the session on the whole graph is made at the first pass that needs
 * every layer, not now (a first grid needs only a cut one), and `shapes` stays empty (a stored
 * conversion's shapes were checked when it was made). The session on the whole graph lives in the
 * session worker where the process has one (useSessionWorker); the cut ones on this thread.
 */
export async function openOnnxGraph(
  bytes: Uint8Array,
  input: ImageInput,
  outputs: TappedOutput[],
  options: { lazy?: boolean; layerShapes?: ReadonlyMap<string, readonly number[]> } = {},
): Promise<OnnxGraphSession> {
  const runtime = requireOrt();
  const model = onnx.ModelProto.decode(bytes);
  const recipes = planDerivations(model, outputs, options.layerShapes);
  const byTensor = new Map<string, TappedOutput>();
  for (const t of outputs) if (!byTensor.has(t.tensor)) byTensor.set(t.tensor, t);
  // The outputs a pass over every layer fetches: one per tensor, none that is derived.
  const fetched = [...byTensor.values()].filter((t) => !recipes.has(t.tensor));
  const fullBytes = (): Uint8Array =>
    recipes.size === 0
      ? bytes
      : onnx.ModelProto.encode(
          pruneGraph(
            model,
            fetched.map((t) => t.tensor),
          ),
        ).finish();
  const shapes = new Map<string, number[]>();
  let full: Promise<OrtSession> | undefined;
  if (!options.lazy) {
    const session = await createSession(runtime, fullBytes(), {}, sessionWorker?.maker);
    full = Promise.resolve(session);
    const metadata = new Map(session.outputMetadata.map((m) => [m.name, m]));
    // A derived tensor's shape follows from its first source's (every source is tapped, alike).
    const shapeOf = (tensor: string, layout: Layout): number[] | undefined => {
      const recipe = recipes.get(tensor);
      if (!recipe) {
        const dims = staticShape(metadata.get(tensor));
        return dims && activationShape(dims, layout);
      }
      const shape = shapeOf(recipe.kind === 'add' ? recipe.sources[0] : recipe.source, layout);
      return shape && derivedShape(recipe, shape);
    };
    for (const t of outputs) {
      const shape = shapeOf(t.tensor, t.layout);
      if (shape) shapes.set(t.layer, shape);
    }
  }
  const fullSession = (): Promise<OrtSession> => {
    full ??= createSession(runtime, fullBytes(), {}, sessionWorker?.maker).catch((error: unknown) => {
      full = undefined; // tried again at the next pass
      throw error;
    });
    return full;
  };
  const cut = new CutSessions(runtime, model);
  return {
    shapes,
    async run(nhwc, only) {
      const wanted = only ? outputs.filter((t) => only.has(t.layer)) : outputs;
      const needed = fetchedFor(
        wanted.map((t) => t.tensor),
        recipes,
      );
      const subset = fetched.filter((t) => needed.has(t.tensor));
      let values: Map<string, Activation>;
      if (subset.length === fetched.length) {
        const forward = forwardPass(runtime, await fullSession(), input, subset);
        values = forward.activations(await forward.run(nhwc));
      } else {
        values = await cut.use(subset, async (session) => {
          const part = forwardPass(runtime, session, input, subset);
          return part.activations(await part.run(nhwc));
        });
      }
      return withDerived(values, outputs, wanted, subset, recipes);
    },
    release() {
      full?.then(
        (session) => void session.release(),
        () => undefined,
      );
      cut.releaseAll();
    },
  };
}

/**
 * A pass's layers, in the graph's order: the `fetched` ones' `values` (by layer: one layer per
 * tensor), and each `wanted` one, derived from them where it has a recipe, or sharing a fetched
 * one's tensor. Every fetched layer is in it too (a derived one reads it).
 */
function withDerived(
  values: Map<string, Activation>,
  outputs: readonly TappedOutput[],
  wanted: readonly TappedOutput[],
  fetched: readonly TappedOutput[],
  recipes: ReadonlyMap<string, Recipe>,
): Map<string, Activation> {
  const tensors = new Map<string, Activation>();
  for (const t of fetched) {
    const value = values.get(t.layer);
    if (value) tensors.set(t.tensor, value);
  }
  const derive = (tensor: string): Activation => {
    const done = tensors.get(tensor);
    if (done) return done;
    const recipe = recipes.get(tensor);
    if (!recipe) throw new Error(`the pass did not fetch ${tensor}`);
    const sources = recipe.kind === 'add' ? recipe.sources : [recipe.source];
    const first = sources.map(derive)[0];
    const activation = new DerivedActivation(derivedShape(recipe, first.shape), first.layout, recipe, tensors);
    tensors.set(tensor, activation);
    return activation;
  };
  const shown = new Set([...wanted, ...fetched].map((t) => t.layer));
  const layers = new Map<string, Activation>();
  for (const t of outputs) if (shown.has(t.layer)) layers.set(t.layer, derive(t.tensor));
  return layers;
}

interface CutSession {
  session: Promise<OrtSession>;
  /** Passes running on it: an evicted session is released when the last one ends. */
  users: number;
  evicted: boolean;
}

/**
 * ORT runs every node of a session whichever outputs are fetched, so a pass that needs only
 * some layers runs on a copy of the graph pruned to them: the nodes behind them, and no output
 * in between that would stop ORT from fusing a convolution with its batch norm and activation.
 * The latest few are kept (PRUNED_SESSIONS), one per set of layers.
 */
class CutSessions {
  /** By the fetched tensors, least recently used first. */
  private readonly sessions = new Map<string, CutSession>();

  constructor(
    private readonly runtime: typeof ort,
    private readonly model: onnx.IModelProto,
  ) {}

  async use<T>(subset: TappedOutput[], pass: (session: OrtSession) => Promise<T>): Promise<T> {
    const entry = this.acquire(subset.map((t) => t.tensor));
    entry.users++;
    try {
      return await pass(await entry.session);
    } finally {
      entry.users--;
      this.releaseIfDone(entry);
    }
  }

  releaseAll(): void {
    for (const entry of this.sessions.values()) {
      entry.evicted = true;
      this.releaseIfDone(entry);
    }
    this.sessions.clear();
  }

  private acquire(tensors: string[]): CutSession {
    const key = tensors.join('\0');
    let entry = this.sessions.get(key);
    if (entry) {
      this.sessions.delete(key);
    } else {
      const bytes = onnx.ModelProto.encode(pruneGraph(this.model, tensors)).finish();
      entry = { session: createSession(this.runtime, bytes), users: 0, evicted: false };
      entry.session.catch(() => this.sessions.delete(key));
    }
    this.sessions.set(key, entry);
    for (const [oldKey, old] of this.sessions) {
      if (this.sessions.size <= PRUNED_SESSIONS) break;
      this.sessions.delete(oldKey);
      old.evicted = true;
      this.releaseIfDone(old);
    }
    return entry;
  }

  private releaseIfDone(entry: CutSession): void {
    if (!entry.evicted || entry.users > 0) return;
    entry.session.then(
      (session) => void session.release(),
      () => undefined,
    );
  }
}

/**
 * A copy of `model` that computes `outputs` and nothing else: the nodes they depend on (in
 * their order) and the weights those nodes use. The weights are shared, not copied.
 */
export function pruneGraph(model: onnx.IModelProto, outputs: string[]): onnx.IModelProto {
  const graph = model.graph ?? {};
  const producer = new Map<string, onnx.INodeProto>();
  for (const node of graph.node ?? []) for (const output of node.output ?? []) producer.set(output, node);
  const needed = new Set<onnx.INodeProto>();
  const pending = [...outputs];
  for (let tensor = pending.pop(); tensor !== undefined; tensor = pending.pop()) {
    const node = producer.get(tensor);
    if (node && !needed.has(node)) {
      needed.add(node);
      pending.push(...(node.input ?? []));
    }
  }
  const node = (graph.node ?? []).filter((n) => needed.has(n));
  const used = new Set(node.flatMap((n) => n.input ?? []));
  const declared = new Map((graph.output ?? []).map((o) => [o.name, o]));
  return {
    ...model,
    graph: {
      ...graph,
      node,
      initializer: (graph.initializer ?? []).filter((t) => used.has(t.name ?? '')),
      output: outputs.map((name) => declared.get(name) ?? { name }),
    },
  };
}

/** The device every session of this process runs on (the engine sets it: useExecutionProvider). */
let providers = new ExecutionProviders();
/** The runtime, once a model needed it. */
let loadedRuntime: typeof ort | undefined;

/**
 * Where the session on a graph's every layer lives (openOnnxGraph): in the session worker when the
 * process has one (the engine process: useSessionWorker), else on the calling thread (the CLI,
 * which waits for its pass anyway and would only pay the worker's start).
 */
let sessionWorker: SessionWorker | undefined;

/**
 * From now on the session on a graph's every layer is made in a worker thread running `script`
 * (dist/session-worker.js), so that making it and its passes leave this thread free; undefined
 * makes them here again. The engine process calls it at start.
 */
export function useSessionWorker(script: string | undefined): void {
  sessionWorker?.dispose();
  sessionWorker = script ? new SessionWorker(script, requireOrt) : undefined;
}

/** Sessions made from now on run on `setting` where it starts, else on the CPU (executionProvider.ts). */
export function useExecutionProvider(setting: ExecutionProviderSetting): void {
  providers = new ExecutionProviders(setting);
}

/** What onnxruntime's passes run on, and why when it is not what was asked for. */
export function executionDevice(): ExecutionDevice {
  return providers.device(loadedRuntime);
}

/**
 * Every session: all cores for one image's ops, and every graph optimisation ORT has. Its threads
 * wait for work asleep, not spinning: they share the cores with the editor, which has the result
 * to show just as a pass ends (measured on 2 cores: the same passes in the same time for about a
 * third less CPU time, and a new image's first grid painted sooner).
 */
function createSession(
  runtime: typeof ort,
  bytes: Uint8Array,
  options: ort.InferenceSession.SessionOptions = {},
  make?: SessionMaker,
): Promise<OrtSession> {
  return providers.create(
    runtime,
    bytes,
    {
      logSeverityLevel: 3,
      intraOpNumThreads: os.availableParallelism(),
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
      ...options,
    },
    make,
  );
}

/** Feeding an H×W×C image to `input`, and reading the `tapped` outputs of a pass as activations. */
function forwardPass(runtime: typeof ort, session: OrtSession, input: ImageInput, tapped: TappedOutput[]) {
  const { height, width, channels } = input;
  const feed = (nhwc: Float32Array): ort.Tensor => {
    const nchwOrNhwc = input.layout === 'NCHW' ? hwcToChw(nhwc, height, width, channels) : nhwc;
    const dims = input.layout === 'NCHW' ? [1, channels, height, width] : [1, height, width, channels];
    return input.type === 'float16'
      ? new runtime.Tensor('float16', float32ToFloat16(nchwOrNhwc), dims)
      : new runtime.Tensor('float32', nchwOrNhwc, dims);
  };
  const fetches = tapped.map((t) => t.tensor);
  const chosen = (only: ReadonlySet<string> | undefined): TappedOutput[] =>
    only ? tapped.filter((t) => only.has(t.layer)) : tapped;
  return {
    /** ORT runs every node of the session even when `only` fetches a few outputs (see openOnnxGraph). */
    async run(nhwc: Float32Array, only?: ReadonlySet<string>): Promise<Record<string, ort.Tensor>> {
      if (nhwc.length !== height * width * channels) {
        throw new Error(`Expected ${height}×${width}×${channels} input values, got ${nhwc.length}.`);
      }
      return session.run({ [input.name]: feed(nhwc) }, only ? chosen(only).map((t) => t.tensor) : fetches);
    },
    activations(results: Record<string, ort.Tensor>, only?: ReadonlySet<string>): Map<string, Activation> {
      const activations = new Map<string, Activation>();
      for (const t of chosen(only)) activations.set(t.layer, toActivation(results[t.tensor], t.layout));
      return activations;
    },
  };
}

/** The usual reasons ORT refuses a model, in a few words (its full text goes in the detail). */
function ortRefusalReason(ortMessage: string): string {
  const unknownOp = /No Op registered for (\S+)/.exec(ortMessage);
  if (unknownOp) return `: it uses the operator ${unknownOp[1]}, which ONNX Runtime does not have`;
  if (/Unsupported model IR version|Opset \d+ is under development/.test(ortMessage)) {
    return ': the model is newer than this ONNX Runtime supports';
  }
  return '';
}

/**
 * Set to 1, the engine behaves as on a platform whose package has no ONNX Runtime (an Intel Mac,
 * Alpine): the tests take that path here.
 */
export const WITHOUT_ONNXRUNTIME_ENV = 'FEATURE_MAPS_WITHOUT_ONNXRUNTIME';

/** Whether this platform's ONNX Runtime loads (the darwin-x64 and alpine-x64 packages have none). */
export function onnxRuntimeAvailable(): boolean {
  try {
    requireOrt();
    return true;
  } catch {
    return false;
  }
}

/**
 * What the passes of a model that stays on TensorFlow.js run on, when that is because ONNX
 * Runtime does not load here (undefined where it loads, or was never needed).
 */
export function withoutOnnxRuntime(): ExecutionDevice | undefined {
  if (!ortFailure) return undefined;
  return { name: 'CPU', note: `${ortFailure}: TensorFlow.js ran the passes, on one core.` };
}

/** Why onnxruntime-node did not load, once it was asked for and did not. */
let ortFailure: string | undefined;

function requireOrt(): typeof ort {
  if (loadedRuntime) return loadedRuntime;
  try {
    if (process.env[WITHOUT_ONNXRUNTIME_ENV] === '1') throw new Error(`${WITHOUT_ONNXRUNTIME_ENV}=1`);
    // Loaded on first use: the native addon costs time, and may be missing on some platforms.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loadedRuntime = require('onnxruntime-node') as typeof ort;
    return loadedRuntime;
  } catch (error) {
    ortFailure = `ONNX Runtime is not available on ${platformName()}${windowsRuntimeHint(errorText(error))}`;
    throw new UserFacingError(
      `${ortFailure}, so ONNX models cannot run here; PyTorch models run in your Python (forward hooks), Keras and TensorFlow.js models (and the bundled model) on TensorFlow.js.`,
      errorText(error),
    );
  }
}

/** The platform as a user knows it, with VS Code's target name. */
function platformName(): string {
  const target = `${process.platform}-${process.arch}`;
  if (target === 'darwin-x64') return 'an Intel Mac (darwin-x64: ONNX Runtime 1.30 has no build for it)';
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  if (process.platform === 'linux' && !report?.header?.glibcVersionRuntime) return `Alpine Linux (${target}, musl)`;
  return target;
}

/** ONNX Runtime's Windows build needs the Visual C++ runtime, which some machines lack. */
function windowsRuntimeHint(error: string): string {
  if (process.platform !== 'win32' || !/specified module could not be found/i.test(error)) return '';
  return ' (it needs the Microsoft Visual C++ Redistributable: install it from https://aka.ms/vs/17/release/vc_redist.x64.exe, or vc_redist.arm64.exe)';
}

function decodeGraph(bytes: Uint8Array, fileName: string): onnx.IGraphProto {
  if (bytes.length === 0) throw new UserFacingError(`${fileName} is empty (0 bytes).`);
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new UserFacingError(`${fileName} is not an ONNX model, or the file is damaged.`, errorText(error));
  }
  // Many non-ONNX files happen to decode as a protobuf with unknown fields only.
  if (!model.graph?.node?.length) {
    throw new UserFacingError(`${fileName} is not an ONNX model, or the file is damaged (it has no graph).`);
  }
  return model.graph;
}

function findImageInput(graph: onnx.IGraphProto, fileName: string, inputSize: OnnxOptions['inputSize']): ImageInput {
  // Older models also list their weights as inputs.
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (graph.input ?? []).filter((i) => !initializers.has(i.name ?? ''));
  if (inputs.length !== 1) {
    throw new UserFacingError(
      `${fileName} must take one image input; it takes ${inputs.length} (${inputs.map((i) => i.name).join(', ')}).`,
    );
  }
  const [input] = inputs;
  const tensorType = input.type?.tensorType;
  const dims = (tensorType?.shape?.dim ?? []).map((d) => (d.dimValue ? Number(d.dimValue) : undefined));
  const shapeText = `[${dims.map((d, i) => d ?? (tensorType?.shape?.dim?.[i].dimParam || '?')).join(', ')}]`;
  if (dims.length !== 4) {
    throw new UserFacingError(
      `${fileName} must take an image input of rank 4 (N,C,H,W or N,H,W,C); its input "${input.name}" has shape ${shapeText}.`,
    );
  }
  const type =
    tensorType?.elemType === ELEM_FLOAT ? 'float32' : tensorType?.elemType === ELEM_FLOAT16 ? 'float16' : undefined;
  if (!type) {
    throw new UserFacingError(
      `${fileName} takes ${onnx.TensorProto.DataType[tensorType?.elemType ?? 0] ?? 'unknown'} input; only float32 and float16 image inputs are supported.`,
    );
  }
  const isChannelCount = (d: number | undefined) => d === 1 || d === 3;
  // Channels-first is ONNX's own convention: it wins when both readings fit.
  const layout: Layout | undefined = isChannelCount(dims[1]) ? 'NCHW' : isChannelCount(dims[3]) ? 'NHWC' : undefined;
  if (!layout) {
    throw new UserFacingError(
      `${fileName}'s input "${input.name}" ${shapeText} is not an image with 1 or 3 channels (N,C,H,W or N,H,W,C).`,
    );
  }
  const [channels, height, width] = layout === 'NCHW' ? [dims[1], dims[2], dims[3]] : [dims[3], dims[1], dims[2]];
  return {
    name: input.name ?? '',
    layout,
    channels: channels ?? 3,
    height: height ?? inputSize?.height ?? DEFAULT_SIZE,
    width: width ?? inputSize?.width ?? DEFAULT_SIZE,
    type,
  };
}

/**
 * The outputs of every node that carry data computed from the image, in graph
 * (topological) order, with the layout of each. Weights, constants and shape
 * arithmetic are left out.
 */
function featureMapCandidates(graph: onnx.IGraphProto, input: ImageInput): TappedOutput[] {
  const layoutOf = new Map<string, Layout>([[input.name, input.layout]]);
  const candidates: TappedOutput[] = [];
  for (const node of graph.node ?? []) {
    const op = node.opType ?? '';
    const dataInputs = (node.input ?? []).filter((name) => layoutOf.has(name));
    if (dataInputs.length === 0 || SHAPE_ONLY_OPS.has(op)) continue;
    const layout = outputLayout(node, layoutOf.get(dataInputs[0]) ?? 'NCHW');
    const outputs = (node.output ?? []).filter((name) => name !== '');
    outputs.forEach((tensor, i) => {
      layoutOf.set(tensor, layout);
      if (i > 0 && FIRST_OUTPUT_ONLY_OPS.has(op)) return;
      candidates.push({ tensor, layer: node.name || tensor, op, layout });
    });
  }
  return candidates;
}

/**
 * The planned layers as tapped outputs, with the layout each tensor has in the graph (a module
 * that permutes to channels last, as ConvNeXt's MLP does, gives an N×H×W×C map).
 */
function plannedCandidates(every: TappedOutput[], plan: readonly PlannedLayer[], input: ImageInput): TappedOutput[] {
  const layoutOf = new Map(every.map((t) => [t.tensor, t.layout]));
  return plan.map((p) => ({
    tensor: p.tensor,
    layer: p.name,
    op: p.op,
    layout: layoutOf.get(p.tensor) ?? input.layout,
  }));
}

function outputLayout(node: onnx.INodeProto, inputLayout: Layout): Layout {
  const op = node.opType ?? '';
  if (CHANNEL_FIRST_OPS.has(op)) return 'NCHW';
  if (op === 'Transpose') {
    const perm = (node.attribute ?? [])
      .find((a) => a.name === 'perm')
      ?.ints?.map(Number)
      .join(',');
    if (perm === '0,2,3,1') return 'NHWC';
    if (perm === '0,3,1,2') return 'NCHW';
  }
  return inputLayout;
}

/**
 * The bytes ONNX Runtime loads: the model with its image input's free dimensions fixed to what it
 * will be fed (batch 1, and the input size where H and W are symbolic), so that ORT's shape
 * inference knows every layer's shape at load, and the candidates as extra graph outputs.
 *
 * The model is edited as protobuf, not re-encoded: fields onnx-proto (ONNX 1.10) does not know
 * survive, and the weights are not copied through JavaScript objects. Protobuf merges a repeated
 * embedded message field, so appending `graph { output … }` adds outputs. The input's shape
 * cannot be changed that way (its dims would be appended to the old ones), so that one
 * ValueInfoProto is re-encoded in place and the graph's length rewritten. The session option
 * made for this, `freeDimensionOverrides`, is ignored by onnxruntime-node 1.30 (its binding
 * does not read it: a model created with it still takes any size, and its outputs stay symbolic).
 */
function sessionModelBytes(
  bytes: Uint8Array,
  graph: onnx.IGraphProto,
  input: ImageInput,
  candidates: TappedOutput[],
): Uint8Array {
  const chunks = withFixedInput(bytes, graph, input) ?? [bytes];
  const existing = new Set((graph.output ?? []).map((o) => o.name));
  const valueInfo = new Map((graph.valueInfo ?? []).map((v) => [v.name, v]));
  // ORT infers the type of an untyped output; value_info, when present, says the same.
  const output = candidates
    .filter((c) => !existing.has(c.tensor))
    .map((c) => valueInfo.get(c.tensor) ?? { name: c.tensor });
  chunks.push(onnx.ModelProto.encode({ graph: { output } }).finish());
  return concatBytes(chunks);
}

// Field numbers and wire types of onnx.proto, for editing a model's bytes (sessionModelBytes).
const MODEL_GRAPH = 7;
const GRAPH_INPUT = 11;
const WIRE_LENGTH_DELIMITED = 2;

/**
 * The model's bytes as chunks (slices of `bytes`, and the new parts) with the image input's
 * shape fixed to the one it is fed; undefined when none of its dimensions is free.
 */
function withFixedInput(bytes: Uint8Array, graph: onnx.IGraphProto, input: ImageInput): Uint8Array[] | undefined {
  const declared = (graph.input ?? []).find((i) => i.name === input.name);
  const dims = declared?.type?.tensorType?.shape?.dim ?? [];
  const fed =
    input.layout === 'NCHW'
      ? [1, input.channels, input.height, input.width]
      : [1, input.height, input.width, input.channels];
  if (!declared || dims.length !== 4 || dims.every((d) => Number(d.dimValue ?? 0) > 0)) return undefined;
  // A fixed dimension stays as the model declares it.
  const fixed: onnx.IValueInfoProto = {
    ...declared,
    type: {
      ...declared.type,
      tensorType: {
        ...declared.type?.tensorType,
        shape: {
          dim: dims.map((d, i) => (Number(d.dimValue ?? 0) > 0 ? d : { dimValue: fed[i], denotation: d.denotation })),
        },
      },
    },
  };
  const inputField = lengthDelimited(GRAPH_INPUT, onnx.ValueInfoProto.encode(fixed).finish());

  const chunks: Uint8Array[] = [];
  for (const field of protoFields(bytes, 0, bytes.length)) {
    if (field.number !== MODEL_GRAPH || field.wireType !== WIRE_LENGTH_DELIMITED) {
      chunks.push(bytes.subarray(field.start, field.end));
      continue;
    }
    const graphChunks = protoFields(bytes, field.body, field.end).map((g) =>
      g.number === GRAPH_INPUT &&
      g.wireType === WIRE_LENGTH_DELIMITED &&
      onnx.ValueInfoProto.decode(bytes.subarray(g.body, g.end)).name === input.name
        ? inputField
        : bytes.subarray(g.start, g.end),
    );
    const length = graphChunks.reduce((total, c) => total + c.length, 0);
    chunks.push(Uint8Array.of(MODEL_GRAPH * 8 + WIRE_LENGTH_DELIMITED, ...varint(length)), ...graphChunks);
  }
  return chunks;
}

interface ProtoField {
  number: number;
  wireType: number;
  /** Where the field starts (its tag), its value starts (after a length, if any) and it ends. */
  start: number;
  body: number;
  end: number;
}

/** The fields of the protobuf message in bytes[start, end), in order. */
function protoFields(bytes: Uint8Array, start: number, end: number): ProtoField[] {
  const fields: ProtoField[] = [];
  for (let at = start; at < end;) {
    const [tag, afterTag] = readVarint(bytes, at);
    const wireType = tag % 8;
    let body = afterTag;
    let fieldEnd: number;
    switch (wireType) {
      case 0:
        fieldEnd = readVarint(bytes, afterTag)[1];
        break;
      case 1:
        fieldEnd = afterTag + 8;
        break;
      case WIRE_LENGTH_DELIMITED: {
        const [length, afterLength] = readVarint(bytes, afterTag);
        body = afterLength;
        fieldEnd = afterLength + length;
        break;
      }
      case 5:
        fieldEnd = afterTag + 4;
        break;
      default:
        throw new Error(`protobuf wire type ${wireType} at byte ${at}`);
    }
    if (fieldEnd > end) throw new Error(`a protobuf field at byte ${at} runs past its message`);
    fields.push({ number: Math.floor(tag / 8), wireType, start: at, body, end: fieldEnd });
    at = fieldEnd;
  }
  return fields;
}

function readVarint(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  for (let scale = 1; at < bytes.length && scale <= 2 ** 49; scale *= 128) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
  }
  throw new Error(`a protobuf varint at byte ${at} is cut short or too long`);
}

function varint(value: number): number[] {
  const out: number[] = [];
  for (; value >= 0x80; value = Math.floor(value / 128)) out.push((value % 128) | 0x80);
  out.push(value);
  return out;
}

function lengthDelimited(field: number, body: Uint8Array): Uint8Array {
  return concatBytes([Uint8Array.of(field * 8 + WIRE_LENGTH_DELIMITED, ...varint(body.length)), body]);
}

function concatBytes(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((total, c) => total + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function hasExternalData(graph: onnx.IGraphProto): boolean {
  return (graph.initializer ?? []).some((t) => t.dataLocation === DATA_LOCATION_EXTERNAL);
}

function wrapSession(
  runtime: typeof ort,
  session: OrtSession,
  input: ImageInput,
  candidates: TappedOutput[],
  options: OnnxOptions,
): LoadedModel {
  const { height, width, channels } = input;
  const metadata = new Map(session.outputMetadata.map((m) => [m.name, m]));
  // Integer and boolean tensors (indices, masks, shapes) are not feature maps.
  const tapped = candidates.filter((c) => {
    const meta = metadata.get(c.tensor);
    return meta?.isTensor && FLOAT_TYPES.has(meta.type);
  });
  uniqueLayerNames(tapped);
  const forward = forwardPass(runtime, session, input, tapped);

  // Every shape comes from ORT's shape inference, which knows them once the input's size is
  // fixed (sessionModelBytes): no pass runs at load. An op whose output size depends on the
  // data (NonZero, a Resize to computed sizes, a Loop) leaves its shape unknown: the layer is
  // listed with an empty shape (no maps to select yet), the memory budget counts it as a large
  // map (budget.ts), and the first pass that computes it tells its real shape.
  const layers: LayerMeta[] = tapped.map((t) => {
    const shape = staticShape(metadata.get(t.tensor));
    return { name: t.layer, op: t.op, shape: shape ? activationShape(shape, t.layout) : [] };
  });
  const unknown = layers.filter((l) => l.shape.length === 0);

  return {
    key: options.key,
    summary: { ...options.summary, inputShape: [height, width, channels] },
    inputSize: { height, width, channels },
    preprocessing: options.preprocessing,
    inputName: input.name,
    backend: options.backend ?? 'onnxruntime',
    layers,
    async run(nhwc: Float32Array, only?: ReadonlySet<string>): Promise<Map<string, Activation>> {
      const activations = forward.activations(await forward.run(nhwc, only), only);
      learnShapes(unknown, activations);
      return activations;
    },
    dispose() {
      void session.release();
    },
  };
}

/** Node names are optional and need not differ from tensor names: fall back to the tensor, then a suffix. */
function uniqueLayerNames(tapped: TappedOutput[]): void {
  const outputsPerLayer = new Map<string, number>();
  for (const t of tapped) outputsPerLayer.set(t.layer, (outputsPerLayer.get(t.layer) ?? 0) + 1);
  const used = new Set<string>();
  for (const t of tapped) {
    // A node with several feature-map outputs (Split): one layer per output, named by tensor.
    let name = (outputsPerLayer.get(t.layer) ?? 0) > 1 || used.has(t.layer) ? t.tensor : t.layer;
    for (let n = 2; used.has(name); n++) name = `${t.tensor}#${n}`;
    used.add(name);
    t.layer = name;
  }
}

function staticShape(meta: ort.InferenceSession.ValueMetadata | undefined): number[] | undefined {
  if (!meta?.isTensor || meta.shape.length === 0) return undefined;
  return meta.shape.every((d): d is number => typeof d === 'number' && d > 0) ? [...meta.shape] : undefined;
}

/**
 * How an ONNX tensor is shown: a 4-D single-image tensor becomes H×W×C; anything
 * else loses its batch axis of 1 (if any) and is flattened to [N].
 */
function activationShape(dims: readonly number[], layout: Layout): number[] {
  if (dims.length === 4 && dims[0] === 1) {
    return layout === 'NCHW' ? [dims[2], dims[3], dims[1]] : [dims[1], dims[2], dims[3]];
  }
  // A sequence of tokens (1×N×C) keeps its two axes; anything else is a vector.
  if (dims.length === 3 && dims[0] === 1) return [dims[1], dims[2]];
  return [dims.reduce((a, b) => a * b, 1)];
}

function toActivation(tensor: ort.Tensor, layout: Layout): Activation {
  const shape = activationShape(tensor.dims, layout);
  const values = toFloat32(tensor);
  // onnxruntime-node gives each output its own buffer; a view of a larger one would be copied,
  // as the webview wants tight arrays.
  const tight = values.byteOffset === 0 && values.byteLength === values.buffer.byteLength;
  // Channels-first maps stay so: the grid reads them channel by channel (see Activation).
  return { shape, data: tight ? values : values.slice(), layout: layout === 'NCHW' ? 'chw' : 'hwc' };
}

function toFloat32(tensor: ort.Tensor): Float32Array {
  switch (tensor.type) {
    case 'float32':
      return tensor.data as Float32Array;
    case 'float16':
      return float16ToFloat32(tensor.data as Uint16Array);
    case 'float64':
      return Float32Array.from(tensor.data as Float64Array);
    default:
      throw new Error(`Unexpected ${tensor.type} output.`);
  }
}

/** An H×W×C image as C×H×W (how NCHW models and PyTorch take it). */
export function hwcToChw(hwc: Float32Array, height: number, width: number, channels: number): Float32Array {
  const chw = new Float32Array(hwc.length);
  const plane = height * width;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < channels; c++) chw[c * plane + p] = hwc[p * channels + c];
  }
  return chw;
}

// Half-precision conversion: no Float16Array in Node 20 and no float16 package installed.
const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);
const HALF_DENORMAL_MAGIC = 126 << 23; // 0.5f: adding it aligns a tiny float's bits to half subnormals.

/** IEEE 754 binary32 → binary16 bits, rounding to nearest even (F. Giesen's float_to_half_fast3_rtne). */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  const halves = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    scratch[0] = values[i];
    const bits = scratchBits[0];
    const sign = (bits >>> 16) & 0x8000;
    const abs = bits & 0x7fffffff;
    let half: number;
    if (abs >= 0x7f800000) {
      half = abs > 0x7f800000 ? 0x7e00 : 0x7c00; // NaN, ±Infinity
    } else if (abs >= 0x47800000) {
      half = 0x7c00; // ≥ 65536: beyond the largest half
    } else if (abs < 0x38800000) {
      // Below 2^-14: a half subnormal or zero; float addition does the rounding.
      scratchBits[0] = abs;
      scratch[0] += 0.5;
      half = scratchBits[0] - HALF_DENORMAL_MAGIC;
    } else {
      const mantissaOdd = (abs >>> 13) & 1;
      half = (abs - (112 << 23) + 0xfff + mantissaOdd) >>> 13; // rebias exponent, round half to even
    }
    halves[i] = sign | half;
  }
  return halves;
}

let halfToFloatTable: Float32Array | undefined;

/** IEEE 754 binary16 bits → float32, through a table of all 65 536 values. */
export function float16ToFloat32(halves: Uint16Array): Float32Array {
  const table = (halfToFloatTable ??= buildHalfTable());
  const values = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) values[i] = table[halves[i]];
  return values;
}

function buildHalfTable(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) table[h] = mantissa ? NaN : sign * Infinity;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return table;
}

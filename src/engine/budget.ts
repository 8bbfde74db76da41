import { UserFacingError } from './errors';
import type { LayerMeta } from './layers';
import type { LoadedModel } from './model';

// A forward pass allocates its memory in native code (ONNX Runtime) or in a wasm heap
// (TensorFlow.js): when that fails, the process dies with it. So before each pass the engine
// adds up what it will allocate, from the layer shapes known at load, and refuses a pass over
// the budget in words, naming its biggest layer. Memory sizes here are binary (1 GB = 2^30
// bytes), as system monitors show memory and as the MB of featureMaps.memoryBudget are.

const KB = 1024;
const MB = 1024 * KB;
const GB = 1024 * MB;

/** The budget when neither the request nor the engine sets one: sized for a 16 GB laptop. */
export const DEFAULT_MEMORY_BUDGET_BYTES = 2 * GB;

/** The setting the user changes the budget with (in MB), named in every refusal. */
export const BUDGET_SETTING = 'featureMaps.memoryBudget';

/**
 * What a pass costs besides its tensors, whatever the model: ONNX Runtime's per-run state and
 * thread scratch, the result's bookkeeping. Measured well under this for every model we have.
 */
export const PASS_OVERHEAD_BYTES = 32 * MB;

/**
 * Besides the tensors a pass keeps, the runtime works on a few more at a time: the inputs and
 * outputs of the node it runs and, with ONNX Runtime's NCHWc layout (graphOptimizationLevel
 * 'all'), blocked copies of the convolutions' maps. Measured on two 3×3 convolutions at
 * 1024×1024×64 (256 MB a map): 590 MB beyond the maps kept; at 2048×2048 (1 GB), 1.2 GB. Twice
 * the largest layer the pass computes covers both.
 */
export const WORKING_LAYERS = 2;

/**
 * The input's copies: the preprocessed image, its channels-first copy for an NCHW model, and
 * the runtime's own tensor.
 */
export const INPUT_COPIES = 3;

const FLOAT32_BYTES = 4;

/**
 * What a model's runtime allocates for a pass beyond what `LoadedModel` says. A runtime that
 * prunes runs a pass over some layers on a graph cut down to them (layersToOnnx.ts), so only the
 * layers fetched are kept; any other (an ONNX file, TensorFlow.js) keeps every layer's output
 * for the whole pass whatever is fetched, as every layer is an output of its graph.
 */
export interface PassCosts {
  readonly prunesPartialPasses?: boolean;
}

export function prunesPartialPasses(model: object): boolean {
  return (model as PassCosts).prunesPartialPasses === true;
}

/** The model as far as the estimate needs it. */
export type BudgetedModel = Pick<LoadedModel, 'inputSize' | 'layers'> & PassCosts;

/** One tensor the estimate counted. */
export interface TensorCost {
  name: string;
  /** H×W×C or [N]; for a layer whose shape is unknown until it runs, the shape it is counted as. */
  shape: number[];
  /** The shape is a stand-in: the runtime could not tell it before running (see `layerCost`). */
  guessed: boolean;
  bytes: number;
}

export interface PassEstimate {
  /** Everything the pass allocates, in bytes. */
  bytes: number;
  /** The largest layer the pass computes: what the refusal names. */
  biggest: TensorCost | undefined;
  /** The input's float32 values (height × width × channels), once. */
  inputBytes: number;
  /** Layer outputs the runtime holds until the pass ends. */
  heldBytes: number;
  /** The layers fetched, copied into JavaScript (onnxruntime-node copies every output it returns). */
  fetchedBytes: number;
  /** What the runtime works on besides: WORKING_LAYERS × the biggest layer. */
  workingBytes: number;
}

/**
 * The bytes a forward pass of `model` allocates: the input's copies, every layer output the
 * runtime holds (those fetched when it prunes, else all of them), their copies into JavaScript,
 * the runtime's working memory and a fixed overhead, all as float32 (a float16 model's own
 * tensors are half that, but become float32 when copied out). `only`: the layers of a partial
 * pass (every layer when absent).
 */
export function estimatePass(model: BudgetedModel, only?: ReadonlySet<string>): PassEstimate {
  const { height, width, channels } = model.inputSize;
  const inputBytes = height * width * channels * FLOAT32_BYTES;
  const costs = model.layers.map((layer) => layerCost(model, layer));
  const fetched = only ? costs.filter((c) => only.has(c.name)) : costs;
  // A pruned pass computes the layers up to the deepest one fetched (the nodes they need, at most).
  let deepest = costs.length - 1;
  while (only && deepest >= 0 && !only.has(costs[deepest].name)) deepest--;
  const computed = only && prunesPartialPasses(model) ? costs.slice(0, deepest + 1) : costs;
  const held = only && prunesPartialPasses(model) ? fetched : costs;
  let biggest: TensorCost | undefined;
  for (const cost of computed) if (!biggest || cost.bytes > biggest.bytes) biggest = cost;
  const heldBytes = sum(held);
  const fetchedBytes = sum(fetched);
  const workingBytes = WORKING_LAYERS * (biggest?.bytes ?? 0);
  return {
    bytes: PASS_OVERHEAD_BYTES + INPUT_COPIES * inputBytes + heldBytes + fetchedBytes + workingBytes,
    biggest,
    inputBytes,
    heldBytes,
    fetchedBytes,
    workingBytes,
  };
}

/**
 * A layer's float32 bytes. An empty shape means the runtime could not infer it before running
 * (an ONNX op whose output size depends on the data: NonZero, a Resize to computed sizes, a
 * Loop): it is counted as a map of the input's height and width with as many channels as the
 * widest known layer, the size of a CNN's largest maps. The first pass tells the real shape.
 */
function layerCost(model: BudgetedModel, layer: LayerMeta): TensorCost {
  if (layer.shape.length > 0) {
    return { name: layer.name, shape: layer.shape, guessed: false, bytes: elements(layer.shape) * FLOAT32_BYTES };
  }
  const { height, width, channels } = model.inputSize;
  let widest = channels;
  for (const other of model.layers) if (other.shape.length === 3) widest = Math.max(widest, other.shape[2]);
  const shape = [height, width, widest];
  return { name: layer.name, shape, guessed: true, bytes: elements(shape) * FLOAT32_BYTES };
}

/** The budget a pass runs under: the request's, else the engine's, else the default. Infinity: no limit. */
export function budgetBytes(...candidates: (number | undefined)[]): number {
  for (const candidate of candidates) {
    if (typeof candidate === 'number' && candidate > 0 && !Number.isNaN(candidate)) return candidate;
  }
  return DEFAULT_MEMORY_BUDGET_BYTES;
}

/**
 * Refuses a model whose input alone is over the budget, before the image is decoded into it.
 * `modelName` names the model; `sizeFromSetting` says the size came from featureMaps.inputSize.
 */
export function checkInputBudget(
  model: Pick<LoadedModel, 'inputSize'>,
  budget: number,
  modelName: string,
  sizeFromSetting: boolean,
): void {
  const { height, width, channels } = model.inputSize;
  const bytes = height * width * channels * FLOAT32_BYTES;
  if (bytes <= budget) return;
  throw new UserFacingError(
    `The input of ${modelName} alone needs ${formatMemory(bytes)} (${height}×${width}×${channels} float32)` +
      `${sizeFromSetting ? ', at the size featureMaps.inputSize sets for models whose input size is not fixed' : ''}; ` +
      `the memory budget is ${formatMemory(budget)} (${BUDGET_SETTING}).`,
  );
}

/**
 * Refuses a pass over the budget. `pass` says which, as the message's subject: "The forward pass
 * of vgg16.h5 on cat.png", "Computing every layer of …", "Layer "conv5" of vgg16.h5 on cat.png".
 * The message reads: `<pass> needs about 96 GB (layer "conv1": 4096×4096×512 float32 is 32 GB);
 * the memory budget is 2 GB (featureMaps.memoryBudget).` The detail breaks the total down.
 */
/** Throws when the pass is over the budget; else returns its estimated bytes. */
export function checkPassBudget(estimate: PassEstimate, budget: number, pass: string): number {
  if (estimate.bytes <= budget) return estimate.bytes;
  throw new UserFacingError(
    `${pass} needs about ${formatMemory(estimate.bytes)}${biggestText(estimate.biggest)}; ` +
      `the memory budget is ${formatMemory(budget)} (${BUDGET_SETTING}).`,
    breakdown(estimate),
  );
}

function biggestText(biggest: TensorCost | undefined): string {
  if (!biggest) return '';
  const dims = biggest.shape.join('×');
  return biggest.guessed
    ? ` (layer "${biggest.name}", whose size is known only once it runs, counted as ${dims} float32: ${formatMemory(biggest.bytes)})`
    : ` (layer "${biggest.name}": ${dims} float32 is ${formatMemory(biggest.bytes)})`;
}

function breakdown(estimate: PassEstimate): string {
  return [
    `input ${formatMemory(estimate.inputBytes)} × ${INPUT_COPIES} copies`,
    `layer outputs held by the runtime ${formatMemory(estimate.heldBytes)}`,
    `their copies into JavaScript ${formatMemory(estimate.fetchedBytes)}`,
    `working memory ${formatMemory(estimate.workingBytes)} (${WORKING_LAYERS} × the largest layer)`,
    `overhead ${formatMemory(PASS_OVERHEAD_BYTES)}`,
  ].join('; ');
}

/** "32 GB", "34.4 GB", "1.53 GB", "512 MB": three significant digits, binary units. */
export function formatMemory(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'unlimited';
  const units: [number, string][] = [
    [GB * 1024, 'TB'],
    [GB, 'GB'],
    [MB, 'MB'],
    [KB, 'KB'],
  ];
  for (const [size, unit] of units) {
    if (bytes >= size) return `${Number((bytes / size).toPrecision(3))} ${unit}`;
  }
  return `${bytes} bytes`;
}

function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sum(costs: TensorCost[]): number {
  return costs.reduce((total, c) => total + c.bytes, 0);
}

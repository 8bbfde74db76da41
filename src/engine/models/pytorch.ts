import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultCacheDir } from '../conversionStore';
import { PythonError, UserFacingError } from '../errors';
import type { OpenContext } from '../formats';
import type { LayerMeta } from '../layers';
import type { LoadedModel } from '../model';
import { type KeptBridge, bridgeScript, pythonCandidates, runBridge, startBridge } from '../python';
import { findLabelsBeside } from '../modelFiles';
import { hwcToChw, loadOnnxModel, onnxRuntimeAvailable, type PlannedLayer } from './onnx';

// A PyTorch checkpoint, opened with the user's own Python once and then without it: the bridge
// (python/torch_bridge.py) loads the file, exports it to ONNX with every module's output as a graph
// output, and writes the module tree beside it; the model then runs on onnxruntime like any ONNX
// model. The conversion is kept on disk, keyed by the file's identity (path, size, modification
// time), the architecture it was given and the input size, so later images, windows and restarts
// need no Python. A model torch.onnx.export cannot convert runs in a kept Python process instead,
// with forward hooks (hookModel below).

/** Bumped when the bridge's output changes: older conversions are then made again. */
export const CONVERTER_VERSION = 2;
/** How long Python may take to open and convert a model. */
const CONVERT_TIMEOUT_MS = 10 * 60_000;
/** How long one forward pass in the hook fallback may take. */
const PASS_TIMEOUT_MS = 5 * 60_000;
/** The most memory the Python process may hold (a ConvNeXt-XL conversion needs about 4 GB). */
const PYTHON_MAX_RSS = 8 * 2 ** 30;

/** What the bridge writes beside the converted model (layers.json) and answers when it serves. */
interface Conversion {
  kind: string;
  torch: string;
  python: string;
  input: { channels: number; height: number; width: number; source: string };
  layers: (PlannedLayer & { shape: number[] })[];
  seconds?: number;
}

/** The folder of this file's conversion: a hash of what decides its result. */
export function conversionDir(ctx: OpenContext, size: number): string {
  const identity = JSON.stringify({
    file: path.resolve(ctx.file.path),
    size,
    mtimeMs: ctx.file.mtimeMs,
    architecture: ctx.hints.architecture ?? '',
    inputSize: ctx.inputSize ?? null,
    converter: CONVERTER_VERSION,
  });
  const hash = createHash('sha256').update(identity).digest('hex').slice(0, 24);
  return path.join(ctx.hints.cacheDir ?? defaultCacheDir(), 'conversions', hash);
}

export async function openPytorchModel(ctx: OpenContext): Promise<LoadedModel> {
  const model = await openConvertedOrHooked(ctx);
  // A 1000-way head of a model without labels beside it is ImageNet's (torchvision's and timm's
  // class order is the one the bundled labels have): the top-5 then has names.
  const head = model.layers.at(-1);
  if (head?.shape.length === 1 && head.shape[0] === 1000 && !(await findLabelsBeside(ctx.file.path))) {
    return Object.assign(model, { labels: 'imagenet' as const });
  }
  return model;
}

async function openConvertedOrHooked(ctx: OpenContext): Promise<LoadedModel> {
  const onProgress = ctx.onProgress;
  // Without ONNX Runtime (the Intel Mac and Alpine packages) a conversion could not run: PyTorch runs it.
  if (!onnxRuntimeAvailable()) {
    try {
      return await hookModel(ctx, 'ONNX Runtime is not available on this platform', onProgress);
    } catch (error) {
      // The one kind of file the bridge cannot hook: a TorchScript program (its modules are compiled).
      if (!(error instanceof PythonError && error.problem.code === 'export-failed')) throw error;
      throw new UserFacingError(
        `${path.basename(ctx.file.path)} is a TorchScript file, which runs only converted to ONNX, and ONNX Runtime is not available on this platform. Save the model's state_dict or a torch.export .pt2 program to see its feature maps here.`,
        error.message,
      );
    }
  }
  const size = (await fs.stat(ctx.file.path)).size;
  const dir = conversionDir(ctx, size);
  let conversion = await readConversion(dir);
  let fresh = false;
  if (!conversion) {
    try {
      conversion = await convert(ctx, dir, onProgress);
      fresh = true;
    } catch (error) {
      if (error instanceof PythonError && error.problem.code === 'export-failed') {
        return hookModel(ctx, `torch.onnx.export could not convert it (${error.message})`, onProgress);
      }
      throw error;
    }
  }
  const what = fresh
    ? `Converted now with torch ${conversion.torch}`
    : `Converted with torch ${conversion.torch}, cached`;
  try {
    return await loadOnnxModel({
      modelPath: path.join(dir, 'model.onnx'),
      key: ctx.key,
      summary: {
        ...ctx.summary,
        description: `PyTorch model (${conversion.kind}): ${ctx.file.path}. ${what}; input size from ${conversion.input.source}.`,
      },
      preprocessing: 'torch',
      inputSize: { height: conversion.input.height, width: conversion.input.width },
      layerPlan: conversion.layers,
      backend: 'onnxruntime (converted from PyTorch)',
    });
  } catch (error) {
    // An export ONNX Runtime cannot run (an op it lacks): drop it, and run the model in PyTorch itself.
    if (!(error instanceof UserFacingError)) throw error;
    await fs.rm(dir, { recursive: true, force: true });
    return hookModel(ctx, `torch.onnx.export could not convert it (${error.message})`, onProgress);
  }
}

async function readConversion(dir: string): Promise<Conversion | undefined> {
  try {
    const [json] = await Promise.all([
      fs.readFile(path.join(dir, 'layers.json'), 'utf8'),
      fs.access(path.join(dir, 'model.onnx')),
    ]);
    const conversion = JSON.parse(json) as Conversion;
    return Array.isArray(conversion.layers) && conversion.input ? conversion : undefined;
  } catch {
    return undefined;
  }
}

/** Runs the bridge's `convert` into a private folder, then moves it into place (a concurrent conversion may win). */
async function convert(ctx: OpenContext, dir: string, onProgress?: (message: string) => void): Promise<Conversion> {
  await fs.mkdir(path.dirname(dir), { recursive: true });
  const partial = `${dir}.partial-${process.pid}-${Date.now()}`;
  const name = path.basename(ctx.file.path);
  const started = Date.now();
  let stage = `Starting Python to convert ${name} (once; later opens use the converted copy)`;
  const tell = () => {
    const seconds = Math.round((Date.now() - started) / 1000);
    onProgress?.(seconds >= 5 ? `${stage} (${seconds} s)` : stage);
  };
  tell();
  // A tick every 5 s: the panel shows the time, and the engine client knows the open goes on.
  const ticker = setInterval(tell, 5000);
  try {
    await runBridge({
      python: pythonCandidates(ctx.hints.python, ctx.hints.pythonSource),
      script: bridgeScript(ctx.assetsDir),
      args: ['convert', ctx.file.path, partial, ...bridgeArgs(ctx)],
      timeoutMs: CONVERT_TIMEOUT_MS,
      maxRssBytes: PYTHON_MAX_RSS,
      signal: ctx.signal,
      onProgress: (message) => {
        stage = `${message} (${name}, with PyTorch in Python)`;
        tell();
      },
    });
    try {
      await fs.rename(partial, dir);
    } catch (error) {
      // Another window converted the same file first: theirs is as good.
      if (!(await readConversion(dir))) throw error;
    }
  } finally {
    clearInterval(ticker);
    await fs.rm(partial, { recursive: true, force: true });
  }
  const conversion = await readConversion(dir);
  if (!conversion) throw new UserFacingError(`The conversion of ${path.basename(ctx.file.path)} left no model behind.`);
  return conversion;
}

function bridgeArgs(ctx: OpenContext): string[] {
  const args: string[] = [];
  if (ctx.hints.architecture) args.push('--arch', ctx.hints.architecture);
  if (ctx.hints.workspace) args.push('--workspace', ctx.hints.workspace);
  if (ctx.hints.allowPickle) args.push('--allow-pickle');
  const size = ctx.inputSize ?? { height: 224, width: 224 };
  args.push('--height', String(size.height), '--width', String(size.width));
  return args;
}

/**
 * The fallback: the model runs in a Python process kept while the model is in use, with forward
 * hooks on every module; each pass sends the image and reads every module's output back.
 */
async function hookModel(
  ctx: OpenContext,
  whyNotOnnx: string,
  onProgress?: (message: string) => void,
): Promise<LoadedModel> {
  const bridge = await startBridge({
    python: pythonCandidates(ctx.hints.python, ctx.hints.pythonSource),
    script: bridgeScript(ctx.assetsDir),
    args: ['serve', ctx.file.path, ...bridgeArgs(ctx), '--threads', String(os.availableParallelism())],
    timeoutMs: CONVERT_TIMEOUT_MS,
    maxRssBytes: PYTHON_MAX_RSS,
    signal: ctx.signal,
    onProgress,
    keep: true,
  });
  const info = bridge.reply as unknown as Conversion;
  const layers: LayerMeta[] = info.layers.map((l) => ({ name: l.name, op: l.op, shape: chwToHwc(l.shape) }));
  const { channels, height, width } = info.input;
  const passes = new HookPasses(bridge);
  return {
    key: ctx.key,
    summary: {
      ...ctx.summary,
      description: `PyTorch model (${info.kind}): ${ctx.file.path}. Runs in Python with forward hooks (torch ${info.torch}): ${whyNotOnnx}.`,
      inputShape: [height, width, channels],
    },
    inputSize: { height, width, channels },
    preprocessing: 'torch',
    backend: `PyTorch ${info.torch} in Python (forward hooks)`,
    layers,
    async run(nhwc) {
      const outputs = await passes.run(hwcToChw(nhwc, height, width, channels));
      return new Map(outputs.map((o) => [o.name, o.activation]));
    },
    dispose() {
      bridge.child.stdin?.end();
      bridge.child.kill();
    },
  };
}

/** One request at a time to the kept process: a length-prefixed float32 image in, a JSON line and the outputs' bytes out. */
class HookPasses {
  private queue: Promise<unknown> = Promise.resolve();
  private buffered: Buffer = Buffer.alloc(0);
  private waiting?: () => void;
  private ended = false;

  constructor(private readonly bridge: KeptBridge) {
    // The reply was read line by line (python.ts), which paused the stream: bytes from here on.
    bridge.child.stdout!.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
      this.waiting?.();
    });
    bridge.child.stdout!.resume();
    bridge.child.on('exit', () => {
      this.ended = true;
      this.waiting?.();
    });
  }

  run(chw: Float32Array) {
    const next = this.queue.then(() => this.pass(chw));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async pass(chw: Float32Array) {
    const child = this.bridge.child;
    const head = Buffer.alloc(4);
    head.writeUInt32LE(chw.byteLength);
    child.stdin!.write(head);
    child.stdin!.write(Buffer.from(chw.buffer, chw.byteOffset, chw.byteLength));
    const deadline = Date.now() + PASS_TIMEOUT_MS;
    const line = await this.take(() => {
      const end = this.buffered.indexOf(0x0a);
      return end < 0 ? undefined : end + 1;
    }, deadline);
    const reply = JSON.parse(line.toString('utf8')) as {
      ok: boolean;
      message?: string;
      outputs?: { name: string; shape: number[] }[];
    };
    if (!reply.ok || !reply.outputs) throw new UserFacingError(reply.message ?? 'The PyTorch forward pass failed.');
    const outputs = [];
    for (const o of reply.outputs) {
      const count = o.shape.reduce((a, b) => a * b, 1);
      const bytes = await this.take(() => (this.buffered.length >= count * 4 ? count * 4 : undefined), deadline);
      const data = new Float32Array(count);
      new Uint8Array(data.buffer).set(bytes);
      const mapShape = chwToHwc(o.shape);
      outputs.push({
        name: o.name,
        activation: { shape: mapShape, data, layout: o.shape.length === 3 ? ('chw' as const) : ('hwc' as const) },
      });
    }
    return outputs;
  }

  /** Waits for `size()` bytes to be buffered, then takes them. */
  private async take(size: () => number | undefined, deadline: number): Promise<Buffer> {
    for (;;) {
      const n = size();
      if (n !== undefined) {
        const taken = this.buffered.subarray(0, n);
        this.buffered = this.buffered.subarray(n);
        return Buffer.from(taken);
      }
      if (this.ended) {
        throw new UserFacingError(
          'The Python process running the PyTorch model ended during a forward pass.',
          this.bridge.stderrTail() || undefined,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.bridge.child.kill('SIGKILL');
        throw new UserFacingError('The PyTorch forward pass in Python took too long and was stopped.');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** PyTorch's C×H×W as the engine's H×W×C shape; other ranks as they are. */
function chwToHwc(shape: number[]): number[] {
  return shape.length === 3 ? [shape[1], shape[2], shape[0]] : shape;
}

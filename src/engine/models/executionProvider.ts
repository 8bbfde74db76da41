// Which device onnxruntime runs the forward passes on: the `featureMaps.executionProvider`
// setting (or the CLI's --execution-provider) turned into ORT session options, with a fallback to
// the CPU when the chosen provider is not in this platform's ONNX Runtime or does not start. The
// header says what ran, and why when it is not what was asked for.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { errorText } from '../errors';
import { sessionsInThread, type OrtSession, type SessionMaker } from './ortSession';

/** The setting's values: `auto`, the CPU, or one of the providers onnxruntime-node has somewhere. */
export const EXECUTION_PROVIDERS = ['auto', 'cpu', 'cuda', 'dml', 'coreml', 'webgpu'] as const;
export type ExecutionProviderSetting = (typeof EXECUTION_PROVIDERS)[number];
type Provider = Exclude<ExecutionProviderSetting, 'auto'>;

/** As people call them (with the providers a binding may list that the setting does not offer). */
const PROVIDER_NAMES: Record<Provider, string> & Record<string, string | undefined> = {
  cpu: 'CPU',
  cuda: 'CUDA',
  dml: 'DirectML',
  coreml: 'CoreML',
  webgpu: 'WebGPU',
  tensorrt: 'TensorRT',
  qnn: 'QNN',
};

/** What ran the passes, for the header: the device, and a note when it is not the one asked for. */
export interface ExecutionDevice {
  /** "CPU", "CUDA", "DirectML", "CoreML" or "WebGPU". */
  name: string;
  /** Why the passes run on the CPU although another provider was asked for (or chosen by `auto`). */
  note?: string;
}

export function isExecutionProviderSetting(value: unknown): value is ExecutionProviderSetting {
  return typeof value === 'string' && (EXECUTION_PROVIDERS as readonly string[]).includes(value);
}

/**
 * The provider asked for, and what became of it in this process. A provider that failed once is
 * not tried again (each try costs a failed session and ORT's error output): every later session
 * goes to the CPU with the same note. Sessions on the CPU get every core and every graph
 * optimisation; a GPU session leaves the nodes its provider lacks to the CPU (ORT does that).
 */
export class ExecutionProviders {
  private failed: string | undefined;

  constructor(private readonly requested: ExecutionProviderSetting = 'auto') {}

  /**
   * Makes an ORT session of `bytes`, on the provider asked for, else on the CPU with a note;
   * `make` decides where it lives (this thread unless given, or the session worker).
   */
  async create(
    runtime: typeof ort,
    bytes: Uint8Array,
    options: ort.InferenceSession.SessionOptions,
    make: SessionMaker = sessionsInThread(runtime),
  ): Promise<OrtSession> {
    const provider = this.provider(runtime);
    if (provider !== 'cpu' && this.failed === undefined) {
      try {
        const session = await make(bytes, { ...options, ...providerOptions(provider) });
        // A provider that made the session may still fail on its first pass (an op or a size its
        // device cannot run): found now, on zeros, it falls back like one that did not start.
        await trialPass(runtime, session).catch(async (error: unknown) => {
          await session.release();
          throw error;
        });
        return session;
      } catch (error) {
        this.failed = `${PROVIDER_NAMES[provider]} did not start (${startFailure(errorText(error))})`;
      }
    }
    return make(bytes, { ...options, executionProviders: ['cpu'] });
  }

  /** What the sessions made so far ran on (the provider that will be tried, before any). */
  device(runtime: typeof ort | undefined): ExecutionDevice {
    const provider = runtime ? this.provider(runtime) : 'cpu';
    if (provider !== 'cpu' && this.failed === undefined) return { name: PROVIDER_NAMES[provider] };
    const why = this.failed ?? (runtime ? this.unavailable(runtime) : undefined);
    return why ? { name: 'CPU', note: `${why}: the passes ran on the CPU.` } : { name: 'CPU' };
  }

  /** The provider to try: the one asked for where this ONNX Runtime has it, else the CPU. */
  private provider(runtime: typeof ort): Provider {
    if (this.requested === 'auto') return autoProvider(runtime);
    return supported(runtime).includes(this.requested) ? this.requested : 'cpu';
  }

  /** Why the provider asked for is not even tried here, if it is not. */
  private unavailable(runtime: typeof ort): string | undefined {
    if (this.requested === 'auto' || this.requested === 'cpu' || supported(runtime).includes(this.requested)) {
      return undefined;
    }
    return `${PROVIDER_NAMES[this.requested]} is not part of ONNX Runtime on ${process.platform}-${process.arch} (it has ${supported(
      runtime,
    )
      .map((p) => PROVIDER_NAMES[p] ?? p)
      .join(', ')})`;
  }
}

/** One pass on zeros, where every input's size is fixed and it is a float tensor (else none). */
async function trialPass(runtime: typeof ort, session: OrtSession): Promise<void> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of session.inputMetadata) {
    if (!input.isTensor || !input.shape.every((d): d is number => typeof d === 'number')) return;
    const dims = input.shape as number[];
    const size = dims.reduce((a, b) => a * b, 1);
    if (input.type === 'float32') feeds[input.name] = new runtime.Tensor('float32', new Float32Array(size), dims);
    else if (input.type === 'float16') feeds[input.name] = new runtime.Tensor('float16', new Uint16Array(size), dims);
    else return;
  }
  await session.run(feeds);
}

/** The providers this platform's onnxruntime-node binding was built with. */
function supported(runtime: typeof ort): string[] {
  return runtime.listSupportedBackends().map((backend) => backend.name);
}

/**
 * `auto`: the accelerator the platform's ONNX Runtime ships with where there is one (DirectML on
 * Windows, CoreML on macOS), CUDA on Linux only when its provider libraries have been put beside
 * the binding (the package does not ship them: they need the user's CUDA and cuDNN), else the CPU.
 * WebGPU is never chosen by itself: on Linux it needs Vulkan and is slower than the CPU for small
 * models; ask for it by name.
 */
function autoProvider(runtime: typeof ort): Provider {
  const has = supported(runtime);
  if (process.platform === 'win32' && has.includes('dml')) return 'dml';
  if (process.platform === 'darwin' && has.includes('coreml')) return 'coreml';
  if (process.platform === 'linux' && has.includes('cuda') && cudaLibrariesPresent()) return 'cuda';
  return 'cpu';
}

function cudaLibrariesPresent(): boolean {
  try {
    const binding = path.dirname(require.resolve('onnxruntime-node/package.json'));
    const dir = path.join(binding, 'bin', 'napi-v6', 'linux', process.arch);
    return fs.existsSync(path.join(dir, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

function providerOptions(provider: Provider): ort.InferenceSession.SessionOptions {
  // DirectML runs one node at a time and plans its own memory (ORT's documented requirements).
  if (provider === 'dml') return { executionProviders: ['dml'], enableMemPattern: false, executionMode: 'sequential' };
  return { executionProviders: [provider] };
}

/** ORT's reason a provider did not start, in a few words. */
function startFailure(message: string): string {
  if (/Failed to load (shared )?library/i.test(message)) return 'its libraries are not installed';
  if (/adapter/i.test(message)) return 'no GPU adapter was found';
  const line = message.split('\n')[0].trim();
  return line.length > 120 ? `${line.slice(0, 117)}…` : line;
}

import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type {
  ChannelStats,
  ChannelValues,
  ExportRequest,
  ExtractionResult,
  LayerData,
  MapChoice,
  Prediction,
} from '../shared/protocol';
import { RpcClient, isRpcMessage, tightArrays, type RpcChannel } from '../shared/rpc';
import { decodeEngineError, type EngineApi, type EngineEvents, type EngineMemory, type EngineProgress } from './api';
import type { ExtractRequest } from './engine';
import { CancelledError, EngineStoppedError, NotCachedError } from './errors';
import type { ModelSource } from './model';
import { withMallocTuning } from './mallocTuning';
import type { ExecutionProviderSetting } from './models/executionProvider';

/** What the engine process is started with (its first argument, as JSON). */
export interface EngineProcessInit {
  /** dist/ (wasm binaries and models) */
  assetsDir: string;
  /** Where converted Keras and TF.js models are kept (EngineOptions.conversionsDir). */
  conversionsDir?: string;
  /** The device onnxruntime runs on (EngineOptions.executionProvider). */
  executionProvider?: ExecutionProviderSetting;
}

export interface EngineClientOptions {
  /** dist/engine.js */
  enginePath: string;
  /** dist/ (wasm binaries and models) */
  assetsDir: string;
  /** Where converted Keras and TF.js models are kept (EngineOptions.conversionsDir); none when absent. */
  conversionsDir?: string;
  log?: (line: string) => void;
  /** The device onnxruntime runs on, at first (see useExecutionProvider). */
  executionProvider?: ExecutionProviderSetting;
  /** Extra environment for the process (tests). */
  env?: NodeJS.ProcessEnv;
  /** The process's JavaScript heap cap, in MB (default 4096). Tensors live outside it. */
  heapLimitMb?: number;
  /** An idle process whose resident memory stays above this is replaced by a fresh one (default 3 GiB). */
  recycleRssBytes?: () => number;
  /** No heartbeat (nor any other message) for this long: the process is stopped (default 30 s). */
  heartbeatTimeoutMs?: number;
  /** A call may take this long before it reports a forward pass (loading, decoding; default 120 s). */
  callTimeoutMs?: number;
  /** A forward pass fetching `bytes` may take this long (default 30 s + 1 s per 25 MB). */
  passTimeoutMs?: (bytes: number) => number;
  /** A cancelled call the engine has not dropped after this long is ended with the process (default 1 s). */
  cancelGraceMs?: number;
  /** The process stops after this long without a call (default 10 min); the next call starts it again. */
  idleStopMs?: number;
}

export interface EngineStats {
  pid: number | undefined;
  /** The running process's resident memory at its last heartbeat. */
  rssBytes: number;
  /** The largest resident memory any engine process of this client reached. */
  peakRssBytes: number;
  /** How many processes this client started. */
  starts: number;
}

const DEFAULTS = {
  heapLimitMb: 4096,
  recycleRssBytes: () => 3 * 1024 ** 3,
  heartbeatTimeoutMs: 30_000,
  callTimeoutMs: 120_000,
  passTimeoutMs: (bytes: number) => 30_000 + bytes / 25_000,
  cancelGraceMs: 1000,
  idleStopMs: 10 * 60_000,
};
const WATCH_INTERVAL_MS = 250;
/**
 * How many heartbeats in a row (a second each) over `recycleRssBytes` make an idle process be
 * replaced: long enough that the results on show are not thrown away right after a big pass.
 */
const RECYCLE_BEATS = 10;
const STDERR_TAIL = 4000;

/** One engine process and the RPC client that talks to it. */
interface EngineProcess {
  child: ChildProcess;
  rpc: RpcClient<EngineApi, EngineEvents>;
  /** When it last sent anything (a heartbeat, a reply, a log line). */
  lastSign: number;
  rssBytes: number;
  beatsOverLimit: number;
  /** What it printed on stderr last: the detail of a crash. */
  stderrTail: string;
  /** Set once the client stopped it on purpose: its exit is no crash. */
  stopping: boolean;
}

/** A call from the extension host, until the engine answers it or it is given up. */
interface Call {
  method: keyof EngineApi;
  args: unknown[];
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** The process running it (undefined between processes). */
  process?: EngineProcess;
  /** Asks that process to drop the call. */
  stop?: AbortController;
  deadline: number;
  /** How long it was given when the deadline was last set (for the message). */
  allowedMs: number;
  /** The caller's listener for its progress reports. */
  onProgress?: (progress: EngineProgress) => void;
  /** When the caller cancelled it (the caller was answered then; the engine may still be busy). */
  cancelledAt?: number;
  /** Sent again once already, after its process crashed with other calls in flight. */
  retried?: boolean;
  /** Its forward pass has started (the engine said so): only then does a cancel end the process. */
  inPass?: boolean;
}

/**
 * The extension host's handle on the engine, which runs in a child process of its own (started on
 * first use with `fork`, as language servers are). If the process crashes, stops answering (no
 * heartbeat), or a call outlives its deadline, the process is killed, the calls it was running are
 * rejected with a plain-words EngineStoppedError, and the next call starts a fresh one. A cancelled
 * call is answered at once; if the engine has not dropped it a moment later (it is inside a forward
 * pass), the process is ended and the other calls go to a fresh one.
 */
export class EngineClient {
  private process: EngineProcess | undefined;
  private readonly calls = new Set<Call>();
  /** Calls that were running when the process crashed with several at once: each runs again alone. */
  private readonly suspects: Call[] = [];
  /** The suspect running alone now. */
  private isolated: Call | undefined;
  private readonly settings: typeof DEFAULTS;
  private watch: ReturnType<typeof setInterval> | undefined;
  private idleSince = Date.now();
  private starts = 0;
  private peakRssBytes = 0;
  private disposed = false;
  private executionProvider: ExecutionProviderSetting;

  constructor(private readonly options: EngineClientOptions) {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.settings = { ...DEFAULTS, ...(given as Partial<typeof DEFAULTS>) };
    this.executionProvider = options.executionProvider ?? 'auto';
  }

  /**
   * Passes from now on run on `setting` (`featureMaps.executionProvider`). A process started with
   * another provider ends: what it was doing goes to a fresh process (its sessions and cached
   * results were made on the old device).
   */
  useExecutionProvider(setting: ExecutionProviderSetting): void {
    if (setting === this.executionProvider) return;
    this.executionProvider = setting;
    if (!this.process) return;
    this.options.log?.(
      `engine process ${this.process.child.pid} ends: featureMaps.executionProvider is now ${setting}`,
    );
    this.restartFor(this.process);
  }

  /** `onProgress` hears when the forward pass starts, and what the budget expects it to allocate. */
  extract(
    request: ExtractRequest,
    signal?: AbortSignal,
    onProgress?: (progress: EngineProgress) => void,
  ): Promise<ExtractionResult> {
    return this.request('extract', [request], signal, onProgress);
  }

  layerData(resultKey: string, layer: string, count: number, channels?: number[]): Promise<LayerData> {
    return this.request('layerData', [resultKey, layer, count, channels ?? null]);
  }

  channelStats(resultKey: string, layer: string): Promise<ChannelStats> {
    return this.request('channelStats', [resultKey, layer]);
  }

  exportFile(resultKey: string, request: ExportRequest): Promise<Uint8Array> {
    return this.request('exportFile', [resultKey, request]);
  }

  channelValues(resultKey: string, layer: string, channel: MapChoice): Promise<ChannelValues> {
    return this.request('channelValues', [resultKey, layer, channel]);
  }

  /** The top-5 of a cached result (its head computed first if the first pass left it out; see ExtractRequest.headLater). */
  async predictions(resultKey: string, labelsPath?: string, signal?: AbortSignal): Promise<Prediction[] | undefined> {
    return (await this.request('predictions', [resultKey, labelsPath ?? null], signal)) ?? undefined;
  }

  /** Computes the layers a partial pass left out, so that switching to them costs nothing. */
  async complete(resultKey: string, signal?: AbortSignal): Promise<void> {
    await this.request('complete', [resultKey], signal);
  }

  /** Starts the process if none runs, and opens `model` in it, ahead of its first image. */
  async prepare(model: ModelSource, signal?: AbortSignal): Promise<void> {
    await this.request('prepare', [model], signal);
  }

  backend(): Promise<string> {
    return this.request('backend', []);
  }

  /** The engine process's memory, asked now (it starts the process if none runs). */
  memory(): Promise<EngineMemory> {
    return this.request('memory', []);
  }

  stats(): EngineStats {
    return {
      pid: this.process?.child.pid,
      rssBytes: this.process?.rssBytes ?? 0,
      peakRssBytes: this.peakRssBytes,
      starts: this.starts,
    };
  }

  dispose(): void {
    this.disposed = true;
    this.suspects.length = 0;
    for (const call of this.calls) call.reject(new CancelledError());
    this.calls.clear();
    if (this.process) this.end(this.process);
    clearInterval(this.watch);
  }

  /** One call of the contract, typed by it; answered by whichever engine process runs it. */
  private request<K extends keyof EngineApi>(
    method: K,
    args: Parameters<EngineApi[K]>,
    signal?: AbortSignal,
    onProgress?: (progress: EngineProgress) => void,
  ): ReturnType<EngineApi[K]> {
    if (signal?.aborted || this.disposed) return Promise.reject(new CancelledError()) as ReturnType<EngineApi[K]>;
    return new Promise((resolve, reject) => {
      const call: Call = { method, args, resolve, reject, onProgress, deadline: 0, allowedMs: 0 };
      this.calls.add(call);
      signal?.addEventListener('abort', () => this.cancel(call), { once: true });
      this.dispatch(call);
    }) as ReturnType<EngineApi[K]>;
  }

  private dispatch(call: Call): void {
    const running = this.ensureProcess();
    call.process = running;
    call.inPass = false;
    call.stop = new AbortController();
    this.allow(call, this.settings.callTimeoutMs);
    this.idleSince = Infinity;
    const settle = (outcome: () => void) => {
      if (call.process !== running) return; // sent again to another process, or given up with this one
      call.process = undefined;
      this.calls.delete(call);
      if (call.cancelledAt === undefined) outcome();
      if (![...this.calls].some((c) => c.process)) this.idleSince = Date.now();
      if (call === this.isolated) this.nextSuspect();
    };
    running.rpc
      .call(call.method, call.args as never, {
        stop: call.stop.signal,
        onProgress: (data) => this.progressed(call, data as EngineProgress),
      })
      .then(
        (value) => settle(() => call.resolve(value)),
        (error: unknown) => settle(() => call.reject(error)),
      );
  }

  /** A forward pass is starting: its deadline scales with what it fetches. */
  private progressed(call: Call, progress: EngineProgress): void {
    if (call.cancelledAt === undefined) call.onProgress?.(progress);
    if (progress.step === 'pass') {
      call.inPass = true;
      this.allow(call, this.settings.passTimeoutMs(progress.bytes));
    } else {
      // Still opening the model (Python converting it, with its own 10-minute bound): a new window.
      this.allow(call, this.settings.callTimeoutMs);
    }
  }

  private allow(call: Call, ms: number): void {
    call.allowedMs = ms;
    call.deadline = Date.now() + ms;
  }

  private cancel(call: Call): void {
    if (call.cancelledAt !== undefined || !this.calls.has(call)) return;
    call.cancelledAt = Date.now();
    call.reject(new CancelledError());
    // The engine drops it at its next step (before or right after the forward pass); if it is in
    // the middle of a long pass, the watchdog ends the process after cancelGraceMs.
    call.stop?.abort();
  }

  private ensureProcess(): EngineProcess {
    if (this.process) return this.process;
    const init: EngineProcessInit = {
      assetsDir: this.options.assetsDir,
      conversionsDir: this.options.conversionsDir,
      executionProvider: this.executionProvider,
    };
    const child = fork(this.options.enginePath, [JSON.stringify(init)], {
      // In desktop VS Code process.execPath is Electron: this makes it a plain Node.
      // glibc's malloc keeps freed memory for the next passes, with one heap for the session
      // worker's thread too (mallocTuning.ts).
      env: withMallocTuning({ ...process.env, ...this.options.env, ELECTRON_RUN_AS_NODE: '1' }, process.platform, {
        oneHeap: true,
      }),
      // --expose-gc: the engine collects the activations its cache lets go at once (engineProcess.ts).
      execArgv: [`--max-old-space-size=${this.settings.heapLimitMb}`, '--expose-gc'],
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const channel: RpcChannel = {
      post(message) {
        if (child.connected) child.send(message);
      },
      onMessage(listener) {
        const onMessage = (message: unknown) => {
          if (isRpcMessage(message)) listener(tightArrays(message));
        };
        child.on('message', onMessage);
        return () => child.off('message', onMessage);
      },
    };
    const running: EngineProcess = {
      child,
      rpc: new RpcClient<EngineApi, EngineEvents>(channel, {
        decodeError: decodeEngineError,
        cancelledError: () => new CancelledError(),
        onEvent: (event, data) => this.onEvent(running, event, data),
      }),
      lastSign: Date.now(),
      rssBytes: 0,
      beatsOverLimit: 0,
      stderrTail: '',
      stopping: false,
    };
    child.on('message', () => (running.lastSign = Date.now()));
    child.stdout?.setEncoding('utf8').on('data', (text: string) => this.logLines(text));
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      running.stderrTail = (running.stderrTail + text).slice(-STDERR_TAIL);
      this.logLines(text);
    });
    child.on('error', (error) => {
      this.options.log?.(`engine process error: ${error.message}`);
      // A message sent just as it died fails too; its 'exit' says how it died.
      if (!running.stopping && child.pid === undefined) {
        this.stopped(running, 'crashed', `could not start (${error.message})`);
      }
    });
    child.on('exit', (code, signal) => {
      if (running.stopping) return;
      this.options.log?.(`engine process ${child.pid} exited (${signal ?? `code ${code}`})`);
      this.stopped(running, 'crashed', exitText(code, signal));
    });
    this.process = running;
    this.starts++;
    this.options.log?.(`engine process ${child.pid} started`);
    this.watch ??= setInterval(() => this.check(), WATCH_INTERVAL_MS);
    return running;
  }

  private onEvent(running: EngineProcess, event: string, data: unknown): void {
    if (event === 'log') {
      this.options.log?.(data as EngineEvents['log']);
    } else if (event === 'heartbeat') {
      const beat = data as EngineEvents['heartbeat'];
      running.rssBytes = beat.rssBytes;
      this.peakRssBytes = Math.max(this.peakRssBytes, beat.peakRssBytes, beat.rssBytes);
      running.beatsOverLimit = beat.rssBytes > this.settings.recycleRssBytes() ? running.beatsOverLimit + 1 : 0;
    }
  }

  /** The watchdog: every WATCH_INTERVAL_MS while a process runs. */
  private check(): void {
    const running = this.process;
    if (!running) {
      clearInterval(this.watch);
      this.watch = undefined;
      return;
    }
    const now = Date.now();
    const calls = [...this.calls].filter((c) => c.process === running);
    const silentMs = now - running.lastSign;
    // A TensorFlow.js pass runs on the engine's only thread, so no heartbeat comes while it runs:
    // then its own deadline is the bound.
    const passing = calls.some((c) => c.inPass && c.cancelledAt === undefined);
    if (silentMs > this.settings.heartbeatTimeoutMs && !passing) {
      return this.stopped(running, 'unresponsive', `sent no sign of life for ${seconds(silentMs)}`);
    }
    const late = calls.find((c) => c.cancelledAt === undefined && now > c.deadline);
    if (late) return this.stopped(running, 'timeout', undefined, late);
    if (
      calls.some((c) => c.inPass && c.cancelledAt !== undefined && now - c.cancelledAt > this.settings.cancelGraceMs)
    ) {
      // A cancelled forward pass still running: end it with the process; the rest go to a fresh one.
      this.options.log?.('engine process ended to stop a cancelled forward pass');
      return this.restartFor(running);
    }
    if (calls.length > 0) return;
    if (running.beatsOverLimit >= RECYCLE_BEATS) {
      this.options.log?.(
        `engine process ${running.child.pid} recycled: ${megabytes(running.rssBytes)} MB resident, over ${megabytes(this.settings.recycleRssBytes())} MB`,
      );
      this.end(running);
    } else if (now - this.idleSince > this.settings.idleStopMs) {
      this.options.log?.(`engine process ${running.child.pid} stopped after ${seconds(now - this.idleSince)} idle`);
      this.end(running);
    }
  }

  /**
   * Ends `running` on purpose (to stop a cancelled pass): its other calls are not to blame, so
   * those that can run again go to a fresh process; the others (a layer of a result that went
   * with the process) fail with NotCachedError, which the panel answers by computing it again.
   */
  private restartFor(running: EngineProcess): void {
    const calls = [...this.calls].filter((c) => c.process === running);
    this.end(running);
    for (const call of calls) {
      call.process = undefined;
      if (call.cancelledAt !== undefined) {
        this.calls.delete(call);
      } else if (isRepeatable(call)) {
        this.dispatch(call);
      } else {
        this.calls.delete(call);
        call.reject(new NotCachedError());
      }
    }
    if (this.isolated && !this.calls.has(this.isolated)) this.nextSuspect();
  }

  /**
   * The process crashed or the watchdog gave up on it. A call that outlived its deadline is the one
   * to blame; the others run again in a fresh process. When it crashed or hung with several calls
   * in flight, which one did it is not known: each that can runs once more, one at a time, so that
   * the one to blame does it again alone and is named.
   */
  private stopped(
    running: EngineProcess,
    reason: 'crashed' | 'unresponsive' | 'timeout',
    what?: string,
    late?: Call,
  ): void {
    if (running.stopping) return;
    const calls = [...this.calls].filter((c) => c.process === running);
    this.end(running);
    for (const call of calls) call.process = undefined;
    const waiting = calls.filter((c) => c.cancelledAt === undefined);
    let innocent: Call[] = [];
    let suspects: Call[] = [];
    if (late) innocent = waiting.filter((c) => c !== late);
    else if (calls.length > 1) suspects = waiting.filter((c) => !c.retried && isRepeatable(c));
    const blamed = waiting.filter((c) => !innocent.includes(c) && !suspects.includes(c));
    const culprit = late ?? blamed.find((c) => c.method === 'extract') ?? blamed[0];
    const doing = culprit ? describe(culprit) : 'idle';
    const detail = running.stderrTail.trim() || undefined;
    const message =
      reason === 'crashed'
        ? `The feature-map engine crashed (${what}) while ${doing}.`
        : reason === 'unresponsive'
          ? `The feature-map engine stopped responding (it ${what}) while ${doing}, so it was stopped.`
          : `The feature-map engine was stopped: ${doing} took longer than ${seconds(late?.allowedMs ?? 0)}.`;
    for (const call of calls) {
      if (suspects.includes(call)) continue;
      if (innocent.includes(call) && isRepeatable(call)) {
        this.dispatch(call);
        continue;
      }
      this.calls.delete(call);
      if (call.cancelledAt !== undefined) continue;
      call.reject(innocent.includes(call) ? new NotCachedError() : new EngineStoppedError(message, detail));
    }
    for (const call of suspects) call.retried = true;
    this.suspects.push(...suspects);
    if (this.isolated && !this.calls.has(this.isolated)) this.isolated = undefined;
    if (!this.isolated) this.nextSuspect();
  }

  /** Runs the next suspect of a crash alone (the calls that came since go on beside it). */
  private nextSuspect(): void {
    this.isolated = undefined;
    for (let call = this.suspects.shift(); call; call = this.suspects.shift()) {
      if (call.cancelledAt !== undefined) {
        this.calls.delete(call);
        continue;
      }
      this.isolated = call;
      this.dispatch(call);
      return;
    }
  }

  private end(running: EngineProcess): void {
    running.stopping = true;
    if (this.process === running) this.process = undefined;
    running.rpc.dispose(new CancelledError());
    // SIGKILL: a process inside a native call (onnxruntime, a blocking read) ignores anything gentler.
    running.child.kill('SIGKILL');
  }

  private logLines(text: string): void {
    for (const line of text.split('\n')) if (line.trim()) this.options.log?.(`engine: ${line}`);
  }
}

/** A call that gives the same answer in a fresh process (the others need the activations it lost). */
function isRepeatable(call: Call): boolean {
  return call.method === 'extract' || call.method === 'backend' || call.method === 'memory';
}

/** What a call was doing, for the user: "computing the feature maps of chelsea.png with squeezenet.onnx". */
function describe(call: Call): string {
  if (call.method !== 'extract') return 'drawing a layer';
  const request = call.args[0] as ExtractRequest;
  return `computing the feature maps of ${path.basename(request.imagePath)} with ${modelName(request.model)}`;
}

export function modelName(model: ModelSource): string {
  switch (model.kind) {
    case 'bundled':
      return 'the bundled MobileNetV2';
    case 'catalog':
      return `catalog:${model.id}`;
    case 'file':
      return path.basename(model.path);
  }
}

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal === 'SIGKILL') return 'killed by the system, usually for running out of memory';
  if (signal) return `signal ${signal}`;
  return `exit code ${code}`;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

function megabytes(bytes: number): string {
  return (bytes / 1024 ** 2).toFixed(0);
}

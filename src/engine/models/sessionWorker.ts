// ONNX Runtime sessions held by a worker thread of the engine process. onnxruntime-node makes a
// session and runs a pass synchronously on the thread that asks (its backend only defers the call
// with setImmediate), so a session on the engine's own thread stops it for as long as that takes:
// VGG16's whole graph, made after the first grid for the other layers, held a new image's first
// pass back by 0.7 s. The sessions made here leave the engine's thread free meanwhile; a pass's
// outputs come back moved, not copied. The worker (sessionWorkerMain.ts, dist/session-worker.js)
// starts at the first session asked of it and answers the SessionWorkerApi contract (shared/rpc.ts).
import { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import { RpcClient, portChannel } from '../../shared/rpc';
import type { OrtSession, SessionMaker } from './ortSession';

/** A tensor as it crosses to or from the worker. */
export interface TensorData {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ort.Tensor.DataType;
}

/** A session made by the worker: its number there, and its inputs and outputs. */
export interface WorkerSessionInfo {
  id: number;
  inputMetadata: ort.InferenceSession.ValueMetadata[];
  outputMetadata: ort.InferenceSession.ValueMetadata[];
}

/** What the worker answers. */
export interface SessionWorkerApi {
  create(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<WorkerSessionInfo>;
  run(
    id: number,
    feeds: Record<string, TensorData>,
    fetches: string[] | undefined,
  ): Promise<Record<string, TensorData>>;
  release(id: number): Promise<void>;
}

/** The worker stopped (it threw outside a call, or was disposed): its sessions are gone. */
export class SessionWorkerStoppedError extends Error {
  constructor(reason: string) {
    super(`The ONNX Runtime worker stopped (${reason}).`);
    this.name = 'SessionWorkerStoppedError';
  }
}

/** A worker thread started, and why it stopped once it has. */
interface Running {
  worker: Worker;
  client: RpcClient<SessionWorkerApi>;
  stopped?: Error;
}

/** One worker thread, started at the first session (again after it stopped), and the sessions it holds. */
export class SessionWorker {
  private running: Running | undefined;

  /** `script`: the worker's bundle (dist/session-worker.js); `runtime` makes the returned tensors. */
  constructor(
    private readonly script: string,
    private readonly runtime: () => typeof ort,
  ) {}

  /** Makes sessions in the worker (for ExecutionProviders.create). */
  readonly maker: SessionMaker = async (bytes, options) => {
    const running = this.start();
    // A copy crosses (moved, not cloned): the caller's bytes stay its own, to keep or to make
    // another session of. (Not bytes.slice(): on a Buffer that is a view on the same memory.)
    const info = await running.client.call('create', [new Uint8Array(bytes), options]);
    return new WorkerSession(running.client, info, this.runtime(), () => running.stopped);
  };

  /**
   * Ends the worker and every session in it. Only between passes: a worker ended in the middle of
   * one may take the process down with it (onnxruntime-node torn down mid-call).
   */
  dispose(): void {
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    this.stop(running, 'disposed');
    void running.worker.terminate();
  }

  private start(): Running {
    if (this.running) return this.running;
    const worker = new Worker(this.script);
    // The engine process ends when its host goes; a worker waiting for work does not keep it.
    worker.unref();
    const running: Running = { worker, client: new RpcClient<SessionWorkerApi>(portChannel(worker)) };
    worker.on('error', (error) => this.stop(running, error.message));
    worker.on('exit', (code) => this.stop(running, `exit code ${code}`));
    this.running = running;
    return running;
  }

  /** Its calls fail, and so will those of its sessions: with the first reason given. */
  private stop(running: Running, reason: string): void {
    if (this.running === running) this.running = undefined;
    running.stopped ??= new SessionWorkerStoppedError(reason);
    running.client.dispose(running.stopped);
  }
}

class WorkerSession implements OrtSession {
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];

  constructor(
    private readonly client: RpcClient<SessionWorkerApi>,
    private readonly info: WorkerSessionInfo,
    private readonly runtime: typeof ort,
    private readonly stopped: () => Error | undefined,
  ) {
    this.inputMetadata = info.inputMetadata;
    this.outputMetadata = info.outputMetadata;
  }

  async run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    const gone = this.stopped();
    if (gone) throw gone;
    const sent: Record<string, TensorData> = {};
    // Copies cross: the caller's arrays stay its own (an image's input is kept for later passes).
    for (const [name, tensor] of Object.entries(feeds)) {
      const data = tensor.data as Float32Array;
      sent[name] = {
        type: tensor.type,
        dims: tensor.dims,
        data: new (data.constructor as Float32ArrayConstructor)(data),
      };
    }
    const results = await this.client.call('run', [this.info.id, sent, fetches && [...fetches]]);
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(results)) {
      tensors[name] = new this.runtime.Tensor(t.type, t.data as Float32Array, t.dims);
    }
    return tensors;
  }

  async release(): Promise<void> {
    if (this.stopped()) return;
    await this.client.call('release', [this.info.id]).catch(() => undefined);
  }
}

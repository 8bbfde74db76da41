import { Worker } from 'node:worker_threads';
import type { ExtractionResult, LayerData } from '../shared/protocol';
import type { ExtractRequest } from './engine';
import { CancelledError, NotCachedError, UserFacingError } from './errors';
import type { WorkerInit, WorkerLog, WorkerRequest, WorkerResponse } from './workerProtocol';

type Distribute<T> = T extends unknown ? Omit<T, 'id'> : never;
type RequestBody = Distribute<WorkerRequest>;

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export interface EngineClientOptions {
  /** dist/worker.js */
  workerPath: string;
  /** dist/ (wasm binaries and models) */
  assetsDir: string;
  log?: (line: string) => void;
}

/**
 * The extension host's handle on the engine worker thread. Requests are
 * answered asynchronously; a cancelled request is answered at once with a
 * CancelledError and the worker drops that work at its next checkpoint.
 */
export class EngineClient {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly options: EngineClientOptions) {}

  extract(request: ExtractRequest, signal?: AbortSignal): Promise<ExtractionResult> {
    return this.call({ op: 'extract', request }, signal) as Promise<ExtractionResult>;
  }

  layerData(resultKey: string, layer: string, count: number): Promise<LayerData> {
    return this.call({ op: 'layerData', resultKey, layer, count }) as Promise<LayerData>;
  }

  /** Computes the layers a partial pass left out, so that switching to them costs nothing. */
  async complete(resultKey: string, signal?: AbortSignal): Promise<void> {
    await this.call({ op: 'complete', resultKey }, signal);
  }

  backend(): Promise<string> {
    return this.call({ op: 'backend' }) as Promise<string>;
  }

  dispose(): void {
    this.stopWorker(new CancelledError());
  }

  private call(body: RequestBody, signal?: AbortSignal): Promise<unknown> {
    if (signal?.aborted) return Promise.reject(new CancelledError());
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        reject(new CancelledError());
        // The worker stops that work at its next checkpoint (before the forward pass, or
        // right after it). Terminating the thread instead would be quicker, but a native
        // addon (onnxruntime-node) torn down mid-call aborts the whole extension host.
        if (this.worker === worker)
          worker.postMessage({ id: this.nextId++, op: 'cancel', target: id } as WorkerRequest);
      };
      this.pending.set(id, {
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(value);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ ...body, id } as WorkerRequest);
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const init: WorkerInit = { assetsDir: this.options.assetsDir };
    const worker = new Worker(this.options.workerPath, { workerData: init });
    worker.on('message', (message: WorkerResponse | WorkerLog) => {
      if ('ok' in message) this.settle(message);
      else this.options.log?.(message.line);
    });
    worker.on('error', (error) => {
      this.options.log?.(`engine worker error: ${error.stack ?? error.message}`);
      if (this.worker === worker)
        this.stopWorker(new UserFacingError('The feature-map engine stopped unexpectedly.', error.message));
    });
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.options.log?.(`engine worker exited with code ${code}`);
      this.worker = undefined;
      this.rejectAll(new UserFacingError(`The feature-map engine stopped unexpectedly (exit code ${code}).`));
    });
    this.worker = worker;
    return worker;
  }

  private settle(response: WorkerResponse): void {
    const pending = this.pending.get(response.id);
    if (!pending) return; // cancelled meanwhile
    this.pending.delete(response.id);
    if (response.ok) {
      pending.resolve(response.value);
    } else if (response.error.notCached) {
      pending.reject(new NotCachedError());
    } else if (response.error.userFacing) {
      pending.reject(new UserFacingError(response.error.message, response.error.detail));
    } else {
      this.options.log?.(`engine error: ${response.error.detail ?? response.error.message}`);
      pending.reject(new Error(response.error.message));
    }
  }

  private stopWorker(reason: Error): void {
    const worker = this.worker;
    this.worker = undefined;
    this.rejectAll(reason);
    void worker?.terminate();
  }

  private rejectAll(reason: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(reason);
  }
}

// Entry point of the engine's worker thread: all decoding and inference runs
// here so the extension host's main thread never blocks.
import { parentPort, workerData } from 'node:worker_threads';
import { FeatureMapEngine } from './engine';
import { NotCachedError, UserFacingError, errorText } from './errors';
import type { WorkerInit, WorkerLog, WorkerRequest, WorkerResponse } from './workerProtocol';

const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');
const engine = new FeatureMapEngine({
  ...(workerData as WorkerInit),
  log: (line) => port.postMessage({ op: 'log', line } satisfies WorkerLog),
});
/** Extractions and completions in progress, so a `cancel` can stop them at their next checkpoint. */
const running = new Map<number, AbortController>();

port.on('message', (request: WorkerRequest) => {
  if (request.op === 'cancel') {
    running.get(request.target)?.abort();
    return;
  }
  void handle(request).then(
    ([response, transfer]) => port.postMessage(response, transfer),
    (error: unknown) => {
      const response: WorkerResponse = {
        id: request.id,
        ok: false,
        error: {
          message: errorText(error),
          detail: error instanceof UserFacingError ? error.detail : (error as Error)?.stack,
          userFacing: error instanceof UserFacingError,
          notCached: error instanceof NotCachedError,
        },
      };
      port.postMessage(response);
    },
  );
});

async function handle(request: Exclude<WorkerRequest, { op: 'cancel' }>): Promise<[WorkerResponse, ArrayBuffer[]]> {
  switch (request.op) {
    case 'extract': {
      const job = new AbortController();
      running.set(request.id, job);
      const value = await engine.extract(request.request, job.signal).finally(() => running.delete(request.id));
      return [{ id: request.id, ok: true, op: 'extract', value }, [value.input.rgba.buffer as ArrayBuffer]];
    }
    case 'complete': {
      const job = new AbortController();
      running.set(request.id, job);
      await engine.complete(request.resultKey, job.signal).finally(() => running.delete(request.id));
      return [{ id: request.id, ok: true, op: 'complete', value: null }, []];
    }
    case 'layerData': {
      await engine.ensureLayer(request.resultKey, request.layer);
      const value = engine.layerData(request.resultKey, request.layer, request.count);
      return [
        { id: request.id, ok: true, op: 'layerData', value },
        [value.values.buffer, value.min.buffer, value.max.buffer] as ArrayBuffer[],
      ];
    }
    case 'backend':
      return [{ id: request.id, ok: true, op: 'backend', value: await engine.backend() }, []];
  }
}

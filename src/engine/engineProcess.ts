// Entry point of the engine process (dist/engine.js): model loading, decoding and inference run
// here, in an OS process of their own, so that no model, image or setting can take the extension
// host (and every other extension in it) down. Started by client.ts with an IPC channel; answers
// the EngineApi contract and sends a heartbeat every second.
import * as path from 'node:path';
import { serve, isRpcMessage, type RpcChannel } from '../shared/rpc';
import {
  CRASH_IMAGE_MARK,
  HANG_IMAGE_MARK,
  TEST_FAULTS_ENV,
  encodeEngineError,
  type EngineApi,
  type EngineEvents,
  type EngineMemory,
} from './api';
import { FeatureMapEngine } from './engine';
import { CancelledError } from './errors';
import { useSessionWorker } from './models/onnx';
import type { EngineProcessInit } from './client';

if (!process.send)
  throw new Error('engineProcess.ts runs as a child process with an IPC channel (client.ts starts it)');

const init = JSON.parse(process.argv[2] ?? '{}') as EngineProcessInit;

const channel: RpcChannel = {
  // Settles once the message is written to the pipe: node queues what it cannot write at once,
  // and a synchronous forward pass would hold it back until the pass ends.
  post(message) {
    if (!process.connected) return;
    return new Promise<void>((resolve) => process.send?.(message, undefined, undefined, () => resolve()));
  },
  onMessage(listener) {
    const onMessage = (message: unknown) => {
      if (isRpcMessage(message)) listener(message);
    };
    process.on('message', onMessage);
    return () => process.off('message', onMessage);
  },
};

// The session on a model's every layer (made after the first grid, for the other layers) lives in
// a worker thread beside this one (dist/session-worker.js, sessionWorker.ts): a new image's first
// pass, a layer's grid or a cancellation is answered while it is made or runs.
useSessionWorker(path.join(__dirname, 'session-worker.js'));

const engine = new FeatureMapEngine({
  assetsDir: init.assetsDir,
  conversionsDir: init.conversionsDir,
  executionProvider: init.executionProvider,
  log: (line) => server.emit('log', line),
  releaseMemory: collectGarbageSoon(),
});

const testFaults = process.env[TEST_FAULTS_ENV] === '1';

/**
 * A full garbage collection once the reply in hand is on its way (client.ts starts this process
 * with --expose-gc): the activations the cache let go are freed then, and the next pass's
 * outputs reuse their memory. Nothing when gc is not exposed (the process was started otherwise).
 */
function collectGarbageSoon(): (() => void) | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setImmediate(() => {
      pending = false;
      gc();
    });
  };
}

const server = serve<EngineApi, EngineEvents>(
  channel,
  {
    async extract({ signal, progress }, request) {
      if (testFaults && request.imagePath.includes(CRASH_IMAGE_MARK)) process.abort();
      if (testFaults && request.imagePath.includes(HANG_IMAGE_MARK)) for (;;);
      return engine.extract(request, signal, progress);
    },
    async layerData({ progress }, resultKey, layer, count, channels) {
      await engine.ensureLayer(resultKey, layer, progress);
      return engine.layerData(resultKey, layer, count, channels ?? undefined);
    },
    async channelStats({ progress }, resultKey, layer) {
      await engine.ensureLayer(resultKey, layer, progress);
      return engine.channelStats(resultKey, layer);
    },
    async exportFile({ progress }, resultKey, request) {
      await engine.ensureLayer(resultKey, request.layer, progress);
      return engine.exportFile(resultKey, request);
    },
    async channelValues({ progress }, resultKey, layer, channel) {
      await engine.ensureLayer(resultKey, layer, progress);
      return engine.channelValues(resultKey, layer, channel);
    },
    async predictions({ progress }, resultKey, labelsPath) {
      return (await engine.predictions(resultKey, labelsPath ?? undefined, progress)) ?? null;
    },
    async complete({ signal, progress }, resultKey) {
      // A cancelled background pass is answered at once; the pass itself goes on (it is shared, and
      // its layers are cached for when they are shown), so cancelling never ends the process.
      await unlessCancelled(engine.complete(resultKey, signal, progress), signal);
      return null;
    },
    async prepare({ signal, progress }, model) {
      await engine.loadModel(model, signal, progress);
      return null;
    },
    backend: () => engine.backend(),
    memory: async () => memory(),
  },
  { encodeError: encodeEngineError },
);

/** `work`, or a CancelledError as soon as `signal` aborts (the work goes on regardless). */
function unlessCancelled<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new CancelledError());
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function memory(): EngineMemory {
  return { rssBytes: process.memoryUsage.rss(), peakRssBytes: process.resourceUsage().maxRSS * 1024 };
}

const heartbeat = () => server.emit('heartbeat', memory());
heartbeat();
setInterval(heartbeat, 1000);

// The extension host went away (closed window, crash): nothing is left to answer.
process.on('disconnect', () => process.exit(0));

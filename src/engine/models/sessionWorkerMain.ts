// Entry point of the session worker (dist/session-worker.js), a thread of the engine process
// started by sessionWorker.ts: it holds ONNX Runtime sessions and runs their passes, answering
// the SessionWorkerApi contract. Outputs are moved to the engine's thread, not copied.
import { parentPort } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import { portChannel, serve } from '../../shared/rpc';
import type { SessionWorkerApi, TensorData } from './sessionWorker';

if (!parentPort) throw new Error('sessionWorkerMain.ts runs as a worker thread (sessionWorker.ts starts it)');
const port = parentPort;

// eslint-disable-next-line @typescript-eslint/no-require-imports
const runtime = require('onnxruntime-node') as typeof ort;
const sessions = new Map<number, ort.InferenceSession>();
let nextId = 1;

function session(id: number): ort.InferenceSession {
  const found = sessions.get(id);
  if (!found) throw new Error(`No session ${id} in the ONNX Runtime worker.`);
  return found;
}

serve<SessionWorkerApi>(portChannel(port), {
  async create(_context, bytes, options) {
    const created = await runtime.InferenceSession.create(bytes, options);
    const id = nextId++;
    sessions.set(id, created);
    return { id, inputMetadata: [...created.inputMetadata], outputMetadata: [...created.outputMetadata] };
  },
  async run(_context, id, feeds, fetches) {
    const inputs: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      inputs[name] = new runtime.Tensor(t.type, t.data as Float32Array, t.dims);
    }
    const target = session(id);
    const outputs = fetches ? await target.run(inputs, fetches) : await target.run(inputs);
    const reply: Record<string, TensorData> = {};
    for (const [name, value] of Object.entries(outputs)) {
      const tensor = value as ort.Tensor;
      reply[name] = { type: tensor.type, dims: tensor.dims, data: tensor.data };
    }
    return reply;
  },
  async release(_context, id) {
    const found = sessions.get(id);
    sessions.delete(id);
    await found?.release();
  },
});

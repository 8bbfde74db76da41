import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { decodeImage } from '../../src/engine/image';
import { sessionsInThread, type OrtSession } from '../../src/engine/models/ortSession';
import { SessionWorker, SessionWorkerStoppedError } from '../../src/engine/models/sessionWorker';
import { preprocess } from '../../src/engine/preprocess';
import { DIST, image } from './fixtures';
import { relErr } from './npy';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const runtime = require('onnxruntime-node') as typeof ort;
const BUNDLED_ONNX = () => path.join(DIST, 'models', 'mobilenet_v2-onnx', 'model.onnx');
const WORKER = () => path.join(DIST, 'session-worker.js');
const OPTIONS: ort.InferenceSession.SessionOptions = { logSeverityLevel: 3, graphOptimizationLevel: 'all' };

/** chelsea.png as the bundled model takes it, as the feeds of `session`. */
async function chelsea(session: OrtSession): Promise<Record<string, ort.Tensor>> {
  const decoded = await decodeImage(image('chelsea.png'), { width: 224, height: 224 });
  const input = session.inputMetadata[0] as ort.InferenceSession.TensorValueMetadata;
  return { [input.name]: new runtime.Tensor('float32', preprocess(decoded.rgb, 'raw01'), [1, 224, 224, 3]) };
}

/** How many times a 5 ms timer of this thread fired while `work` ran. */
async function ticksDuring<T>(work: () => Promise<T>): Promise<{ value: T; ticks: number }> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  try {
    return { value: await work(), ticks };
  } finally {
    clearInterval(timer);
  }
}

describe('the session worker (ONNX Runtime sessions in a thread of their own)', function () {
  this.timeout(120_000);
  let worker: SessionWorker;
  beforeEach(() => {
    worker = new SessionWorker(WORKER(), () => runtime);
  });
  afterEach(() => worker.dispose());

  it('gives every output of the bundled model as a session on this thread does, and this thread runs meanwhile', async () => {
    const bytes = fs.readFileSync(BUNDLED_ONNX());
    const here = await sessionsInThread(runtime)(bytes, OPTIONS);
    const made = await ticksDuring(() => worker.maker(bytes, OPTIONS));
    const there = made.value;
    assert.ok(made.ticks >= 3, `this thread's timers fired while the worker made the session (${made.ticks} times)`);
    assert.deepEqual(there.inputMetadata, here.inputMetadata);
    assert.deepEqual(there.outputMetadata, here.outputMetadata);

    const feeds = await chelsea(here);
    const expected = await here.run(feeds);
    const { value: got, ticks } = await ticksDuring(() => there.run(feeds));
    assert.ok(ticks >= 1, `this thread's timers fired during the worker's pass (${ticks} times)`);
    assert.equal(Object.keys(got).length, here.outputMetadata.length);
    assert.deepEqual(Object.keys(got).sort(), Object.keys(expected).sort());
    for (const [name, tensor] of Object.entries(expected)) {
      assert.deepEqual(got[name].dims, tensor.dims, name);
      assert.equal(got[name].type, tensor.type, name);
      assert.ok(relErr(got[name].data as Float32Array, tensor.data as Float32Array) <= 1e-6, name);
    }
    // The feeds stay the caller's (an image's input is kept for later passes), and a pass can fetch a few.
    assert.equal((feeds[here.inputMetadata[0].name].data as Float32Array).length, 224 * 224 * 3);
    const few = [here.outputMetadata[3].name, here.outputMetadata[40].name];
    assert.deepEqual(Object.keys(await there.run(feeds, few)).sort(), [...few].sort());
    await there.release();
    await here.release();
  });

  it('a session of a stopped worker fails its passes in words; the next session starts a new worker', async () => {
    const bytes = fs.readFileSync(BUNDLED_ONNX());
    const session = await worker.maker(bytes, OPTIONS);
    const feeds = await chelsea(session);
    assert.equal(Object.keys(await session.run(feeds)).length, session.outputMetadata.length);
    // Between passes: ended in the middle of one, onnxruntime-node may take the process down.
    worker.dispose();
    await assert.rejects(session.run(feeds), (error: unknown) => error instanceof SessionWorkerStoppedError);
    await assert.rejects(session.run(feeds), { message: 'The ONNX Runtime worker stopped (disposed).' });
    // The bytes given stay whole (a copy crossed), and make a session in a new worker.
    assert.equal(bytes.length, fs.statSync(BUNDLED_ONNX()).size);
    const again = await worker.maker(bytes, OPTIONS);
    assert.equal(Object.keys(await again.run(feeds)).length, again.outputMetadata.length);
  });

  it('a model ONNX Runtime refuses is an error of that session, and the worker goes on', async () => {
    await assert.rejects(worker.maker(new TextEncoder().encode('not a model'), OPTIONS), /protobuf|parse|model/i);
    const session = await worker.maker(fs.readFileSync(BUNDLED_ONNX()), OPTIONS);
    assert.ok(session.outputMetadata.length > 100);
  });
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { CRASH_IMAGE_MARK, HANG_IMAGE_MARK, TEST_FAULTS_ENV } from '../../src/engine/api';
import { EngineClient, type EngineClientOptions } from '../../src/engine/client';
import { CancelledError, EngineStoppedError, UserFacingError } from '../../src/engine/errors';
import { DIST, image, tempDir } from './fixtures';

const BUNDLED = { kind: 'bundled' } as const;

function engineClient(options: Partial<EngineClientOptions> = {}): EngineClient {
  return new EngineClient({ enginePath: path.join(DIST, 'engine.js'), assetsDir: DIST, ...options });
}

/** The process is alive: `pid` answers signal 0. */
function isRunning(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A 1 KB ONNX model that never finishes: a Loop over its 8×8 image input with 10^11 iterations.
 * ONNX Runtime runs it on its own threads, so the engine process keeps sending heartbeats: only
 * the call's deadline can stop it.
 */
function endlessLoopModel(dir: string): string {
  const tensor = (name: string, elemType: number, dims: number[]) => ({
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  });
  const body: onnx.IGraphProto = {
    name: 'body',
    input: [
      tensor('i', onnx.TensorProto.DataType.INT64, []),
      tensor('c', onnx.TensorProto.DataType.BOOL, []),
      tensor('v', 1, [1, 3, 8, 8]),
    ],
    node: [
      { opType: 'Identity', input: ['c'], output: ['c_out'], name: 'keep_going' },
      { opType: 'Neg', input: ['v'], output: ['v_out'], name: 'flip' },
    ],
    output: [tensor('c_out', onnx.TensorProto.DataType.BOOL, []), tensor('v_out', 1, [1, 3, 8, 8])],
  };
  const model: onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'endless',
      input: [tensor('image', 1, [1, 3, 8, 8])],
      initializer: [
        { name: 'trips', dataType: onnx.TensorProto.DataType.INT64, dims: [], int64Data: [100_000_000_000] },
        { name: 'yes', dataType: onnx.TensorProto.DataType.BOOL, dims: [], int32Data: [1] },
      ],
      node: [
        { opType: 'Relu', input: ['image'], output: ['relu'], name: 'relu' },
        {
          opType: 'Loop',
          input: ['trips', 'yes', 'relu'],
          output: ['looped'],
          name: 'loop',
          attribute: [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: body }],
        },
      ],
      output: [tensor('looped', 1, [1, 3, 8, 8])],
    },
  };
  const file = path.join(dir, 'endless-loop.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  return file;
}

/** A copy of chelsea.png whose name makes a test-faults engine crash or hang on it. */
function markedImage(mark: string): string {
  const file = path.join(tempDir(), `${mark}.png`);
  fs.copyFileSync(image('chelsea.png'), file);
  return file;
}

describe('the engine in its own process', () => {
  let client: EngineClient;
  beforeEach(() => {
    client = engineClient();
  });
  afterEach(() => client.dispose());

  it('extracts in the engine process and sends typed arrays back', async () => {
    const result = await client.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    assert.ok(result.input.rgba instanceof Uint8ClampedArray);
    const data = await client.layerData(result.resultKey, 'Conv1_relu', 16);
    assert.ok(data.values instanceof Uint8Array);
    assert.equal(data.values.byteOffset, 0);
    assert.equal(data.values.byteLength, data.values.buffer.byteLength, 'tight array: VS Code sends the whole buffer');
    assert.equal(data.count, 16);
  });

  it('sends a layer the partial pass skipped, computing the rest on the way', async () => {
    const result = await client.extract({
      imagePath: image('chelsea.png'),
      model: BUNDLED,
      layerPatterns: ['Conv1'],
      onlyListedLayers: true,
    });
    const data = await client.layerData(result.resultKey, 'block_16_project', 8);
    assert.deepEqual([data.height, data.width, data.count, data.totalChannels], [7, 7, 8, 320]);
  });

  it('completes the other layers in the background, unless a newer image cancels it first', async () => {
    const request = { model: BUNDLED, layerPatterns: [], onlyListedLayers: true, firstLayer: 'Conv1' };
    const first = await client.extract({ ...request, imagePath: image('chelsea.png') });
    assert.equal(first.partial, true);
    await client.complete(first.resultKey);
    assert.equal((await client.extract({ ...request, imagePath: image('chelsea.png') })).partial, false);

    const second = await client.extract({ ...request, imagePath: image('coffee.png') });
    const abort = new AbortController();
    abort.abort();
    await assert.rejects(client.complete(second.resultKey, abort.signal), CancelledError);
    assert.equal((await client.extract({ ...request, imagePath: image('coffee.png') })).partial, true);
    // A layer asked for later is computed then.
    const data = await client.layerData(second.resultKey, 'block_16_project', 8);
    assert.equal(data.count, 8);
  });

  it('answers a new image while the session on every layer of the one before is made and run (in its worker thread)', async () => {
    const request = { model: BUNDLED, layerPatterns: [], onlyListedLayers: true, firstLayer: 'Conv1', headLater: true };
    const first = await client.extract({ ...request, imagePath: image('chelsea.png') });
    assert.equal(first.partial, true);
    const order: string[] = [];
    const completing = client.complete(first.resultKey).then(() => order.push('every layer of chelsea.png'));
    const next = client.extract({ ...request, imagePath: image('coffee.png') }).then((result) => {
      order.push('coffee.png');
      return result;
    });
    const [, second] = await Promise.all([completing, next]);
    // On the engine's own thread, making that session (about 0.25 s) held the next image back.
    assert.deepEqual(order, ['coffee.png', 'every layer of chelsea.png']);
    assert.equal(second.partial, true);
    // Both are whole: chelsea's every layer, and coffee's layer on screen.
    const deep = await client.layerData(first.resultKey, 'block_16_project', 8);
    assert.deepEqual([deep.height, deep.width, deep.count], [7, 7, 8]);
    assert.equal((await client.layerData(second.resultKey, 'Conv1', 4)).count, 4);
  });

  it('keeps the extension host thread free while the engine computes', async () => {
    let ticks = 0;
    let worst = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
      ticks++;
    }, 5);
    try {
      await client.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks > 5, `the main thread kept running timers (${ticks} ticks)`);
    assert.ok(worst < 250, `no long stall on the main thread (worst gap ${worst.toFixed(0)} ms)`);
  });

  it('stops the work when cancelled and answers the next request', async () => {
    const abort = new AbortController();
    const cancelled = client.extract(
      { imagePath: image('astronaut.png'), model: BUNDLED, layerPatterns: [] },
      abort.signal,
    );
    setTimeout(() => abort.abort(), 20);
    await assert.rejects(cancelled, CancelledError);
    const next = await client.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    assert.equal(next.input.fileName, 'chelsea.png');
  });

  it('skips the forward pass of a request cancelled before it starts', async () => {
    await client.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    const abort = new AbortController();
    const cancelled = client.extract(
      { imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] },
      abort.signal,
    );
    abort.abort();
    await assert.rejects(cancelled, CancelledError);
    const fresh = await client.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
    assert.ok(fresh.elapsedMs > 0, 'coffee.png was not computed (or cached) by the cancelled request');
  });

  it('shows the last of ten images picked in a row, each cancelling the one before', async () => {
    const names = ['chelsea.png', 'coffee.png', 'astronaut.png', 'camera.png', 'horse.png'];
    const picks = [...names, ...names].map((name) => image(name));
    picks[picks.length - 1] = image('hubble_deep_field.jpg');
    let previous: AbortController | undefined;
    const outcomes = picks.map((imagePath) => {
      previous?.abort();
      const job = new AbortController();
      previous = job;
      return client.extract({ imagePath, model: BUNDLED, layerPatterns: [] }, job.signal).then(
        (r) => r.input.fileName,
        (e: unknown) => (e instanceof CancelledError ? 'cancelled' : `error: ${String(e)}`),
      );
    });
    const settled = await Promise.all(outcomes);
    assert.deepEqual(settled.slice(0, -1), Array(9).fill('cancelled'));
    assert.equal(settled.at(-1), 'hubble_deep_field.jpg');
  });

  it('reports a broken image as a message, and keeps working', async () => {
    await assert.rejects(
      client.extract({ imagePath: image('truncated.jpg'), model: BUNDLED, layerPatterns: [] }),
      (e: unknown) => e instanceof UserFacingError && /truncated\.jpg/.test(e.message),
    );
    const result = await client.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
    assert.equal(result.input.fileName, 'coffee.png');
  });
});

describe('when the engine process crashes, hangs or runs forever', () => {
  let client: EngineClient | undefined;
  afterEach(() => client?.dispose());

  /** Fails unless `work` rejects with an EngineStoppedError matching `message` within `boundMs`. */
  async function assertStopped(work: Promise<unknown>, message: RegExp, boundMs: number): Promise<number> {
    const started = performance.now();
    await assert.rejects(work, (error: unknown) => {
      assert.ok(error instanceof EngineStoppedError, `an EngineStoppedError, not ${String(error)}`);
      assert.match(error.message, message);
      assert.match(error.message, /VS Code and your other extensions are not affected/);
      return true;
    });
    const ms = performance.now() - started;
    assert.ok(ms < boundMs, `answered within ${boundMs} ms (took ${ms.toFixed(0)} ms)`);
    return ms;
  }

  /** The next request after a failure starts a fresh process and works. */
  async function assertNextRequestWorks(engine: EngineClient, oldPid: number | undefined): Promise<void> {
    const next = await engine.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
    assert.equal(next.input.fileName, 'coffee.png');
    assert.notEqual(engine.stats().pid, oldPid, 'a new engine process');
    assert.equal(isRunning(oldPid), false, 'the old engine process is gone');
  }

  it('says the engine crashed, and the next request starts a fresh one', async () => {
    client = engineClient({ env: { [TEST_FAULTS_ENV]: '1' } });
    const pid = await client.backend().then(() => client?.stats().pid);
    const ms = await assertStopped(
      client.extract({ imagePath: markedImage(CRASH_IMAGE_MARK), model: BUNDLED, layerPatterns: [] }),
      /^The feature-map engine crashed \(signal SIGABRT\) while computing the feature maps of crash-the-engine\.png with the bundled MobileNetV2\./,
      10_000,
    );
    console.log(`      crash reported in ${ms.toFixed(0)} ms`);
    await assertNextRequestWorks(client, pid);
    assert.equal(client.stats().starts, 2);
  });

  it('blames the image that crashes the engine, not another being computed beside it', async () => {
    client = engineClient({ env: { [TEST_FAULTS_ENV]: '1' } });
    await client.backend();
    const beside = client.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
    const crashing = client.extract({
      imagePath: markedImage(CRASH_IMAGE_MARK),
      model: BUNDLED,
      layerPatterns: [],
    });
    await assert.rejects(
      crashing,
      (error: unknown) =>
        error instanceof EngineStoppedError &&
        /^The feature-map engine crashed \(signal SIGABRT\) while computing the feature maps of crash-the-engine\.png/.test(
          error.message,
        ),
    );
    assert.equal((await beside).input.fileName, 'coffee.png');
  });

  it('stops an engine that sends no heartbeat, and the next request works', async () => {
    client = engineClient({ env: { [TEST_FAULTS_ENV]: '1' }, heartbeatTimeoutMs: 3000 });
    const pid = await client.backend().then(() => client?.stats().pid);
    const ms = await assertStopped(
      client.extract({ imagePath: markedImage(HANG_IMAGE_MARK), model: BUNDLED, layerPatterns: [] }),
      /^The feature-map engine stopped responding \(it sent no sign of life for 3 s\) while computing the feature maps of hang-the-engine\.png/,
      8000,
    );
    console.log(`      hang detected in ${ms.toFixed(0)} ms`);
    await assertNextRequestWorks(client, pid);
  });

  it('blames the image that hangs the engine, not another being computed beside it', async () => {
    client = engineClient({ env: { [TEST_FAULTS_ENV]: '1' }, heartbeatTimeoutMs: 3000 });
    await client.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    const beside = client.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
    const hanging = client.extract({ imagePath: markedImage(HANG_IMAGE_MARK), model: BUNDLED, layerPatterns: [] });
    await assert.rejects(
      hanging,
      (error: unknown) =>
        error instanceof EngineStoppedError &&
        /^The feature-map engine stopped responding \(it sent no sign of life for 3 s\) while computing the feature maps of hang-the-engine\.png/.test(
          error.message,
        ),
    );
    assert.equal((await beside).input.fileName, 'coffee.png');
  });

  it('does not end the process for a request cancelled before its forward pass', async () => {
    client = engineClient();
    const abort = new AbortController();
    // Cancelled while the process starts and loads the model: the engine drops it after loading.
    const cancelled = client.extract(
      { imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] },
      abort.signal,
    );
    setTimeout(() => abort.abort(), 100);
    await assert.rejects(cancelled, CancelledError);
    const pid = client.stats().pid;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(client.stats().pid, pid, 'the same engine process');
    assert.equal(client.stats().starts, 1);
    assert.equal(
      (await client.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] })).input.fileName,
      'coffee.png',
    );
  });

  it('stops a model that computes forever (an ONNX Loop of 10^11 steps) at its deadline', async () => {
    client = engineClient({ callTimeoutMs: 4000, passTimeoutMs: () => 4000 });
    const model = endlessLoopModel(tempDir());
    const pid = await client.backend().then(() => client?.stats().pid);
    const ms = await assertStopped(
      client.extract({ imagePath: image('chelsea.png'), model: { kind: 'file', path: model }, layerPatterns: [] }),
      /^The feature-map engine was stopped: computing the feature maps of chelsea\.png with endless-loop\.onnx took longer than 4 s\./,
      10_000,
    );
    console.log(`      endless model stopped after ${ms.toFixed(0)} ms`);
    await assertNextRequestWorks(client, pid);
  });

  it('ends a cancelled pass that does not stop by itself with its process, at once for the caller', async () => {
    client = engineClient({ cancelGraceMs: 500 });
    const model = endlessLoopModel(tempDir());
    const pid = await client.backend().then(() => client?.stats().pid);
    const abort = new AbortController();
    let passStarted: () => void = () => undefined;
    const inPass = new Promise<void>((resolve) => (passStarted = resolve));
    const endless = client.extract(
      { imagePath: image('chelsea.png'), model: { kind: 'file', path: model }, layerPatterns: [] },
      abort.signal,
      () => passStarted(),
    );
    // Asked while the endless pass runs: it goes on in a fresh process when that one is ended.
    const waiting = client.extract({ imagePath: image('coffee.png'), model: BUNDLED, layerPatterns: [] });
    // Settled whatever happens below, so that a failed assertion cannot leave it unhandled.
    const waited = waiting.then(
      (result) => result.input.fileName,
      (error: unknown) => error,
    );
    await inPass;
    const started = performance.now();
    abort.abort();
    await assert.rejects(endless, CancelledError);
    // At once: before the grace period after which the process running the pass is ended.
    assert.ok(performance.now() - started < 500, 'the caller hears of the cancel before the process is ended');
    assert.equal(await waited, 'coffee.png');
    // The waiting request may have been answered beside the endless pass, before the grace period
    // ran out: the process is ended then, within a watchdog tick of it.
    const bound = performance.now() + 5000;
    while (isRunning(pid) && performance.now() < bound) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(isRunning(pid), false, 'the process running the endless pass was ended');
    assert.notEqual(client.stats().pid, pid);
  });

  it('reports its memory: the engine process, not the caller, holds the model', async () => {
    client = engineClient();
    await client.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    await new Promise((resolve) => setTimeout(resolve, 1200)); // a heartbeat after the pass
    const stats = client.stats();
    console.log(
      `      engine process ${stats.pid}: ${(stats.rssBytes / 2 ** 20).toFixed(0)} MB resident, peak ${(stats.peakRssBytes / 2 ** 20).toFixed(0)} MB`,
    );
    assert.ok(stats.rssBytes > 50 * 2 ** 20, 'the engine process holds the model and activations');
    assert.ok(stats.peakRssBytes >= stats.rssBytes);
  });

  it('replaces an idle process whose memory stays over the limit', async () => {
    const lines: string[] = [];
    client = engineClient({ recycleRssBytes: () => 1, log: (line) => lines.push(line) });
    await client.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    const pid = client.stats().pid;
    // Ten heartbeats over the limit in a row, while idle.
    const deadline = Date.now() + 20_000;
    while (isRunning(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(isRunning(pid), false, 'the process over the limit was ended');
    assert.ok(
      lines.some((l) => /recycled: \d+ MB resident/.test(l)),
      lines.join('\n'),
    );
    const next = await client.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
    assert.ok(next.elapsedMs > 0, 'computed again in a fresh process');
  });
});

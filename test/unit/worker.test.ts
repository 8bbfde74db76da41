import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { EngineClient } from '../../src/engine/client';
import { CancelledError, UserFacingError } from '../../src/engine/errors';
import { DIST, image } from './fixtures';

const BUNDLED = { kind: 'bundled' } as const;

describe('the engine in its worker thread', () => {
  let client: EngineClient;
  beforeEach(() => {
    client = new EngineClient({ workerPath: path.join(DIST, 'worker.js'), assetsDir: DIST });
  });
  afterEach(() => client.dispose());

  it('extracts in the worker and sends typed arrays back', async () => {
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

  it('keeps the extension host thread free while the worker computes', async () => {
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

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { EngineClient } from '../../src/engine/client';
import { EngineStoppedError, UserFacingError } from '../../src/engine/errors';
import type { ModelSource } from '../../src/engine/model';
import { DIST, image, tempDir } from './fixtures';
import { HOSTILE_CASES, type HostileCase } from './hostileInputs';

// The hostile inputs of hostileInputs.ts, each sent to the real engine process, as the extension
// host sends them: each ends with a message in plain words within its bound, the engine process's
// memory stays bounded (its peak is printed), and the same process then computes chelsea.png with
// the bundled model. One fresh engine process per case, so that its peak is the case's own; it
// has shown chelsea.png with the bundled model before, as a panel would have.

const BUNDLED = { kind: 'bundled' } as const;
/** What a refused file may add to the engine process's peak memory (before the fix: 2 to 6 GB). */
const MAX_PEAK_GROWTH_MB = 300;
const MB = 2 ** 20;

/**
 * A 400-byte ONNX file whose fixed 1×3×4096×4096 input goes through a convolution to 512
 * channels: 32 GB for that one layer. The memory budget must refuse it before anything runs.
 */
function overBudgetModel(dir: string): ModelSource {
  const tensor = (name: string, dims: number[]) => ({
    name,
    type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  });
  const model: onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'huge',
      input: [tensor('image', [1, 3, 4096, 4096])],
      initializer: [{ name: 'w', dataType: 1, dims: [512, 3, 1, 1], rawData: new Uint8Array(512 * 3 * 4) }],
      node: [{ opType: 'Conv', input: ['image', 'w'], output: ['conv1'], name: 'conv1' }],
      output: [tensor('conv1', [1, 512, 4096, 4096])],
    },
  };
  const file = path.join(dir, 'huge-input.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  return { kind: 'file', path: file };
}

const CASES: HostileCase[] = [
  ...HOSTILE_CASES,
  {
    name: 'a 1 KB ONNX file with a fixed 4096×4096 input whose first layer needs 32 GB',
    make: async (dir) => ({ model: overBudgetModel(dir) }),
    expect:
      /^The forward pass of huge-input\.onnx on chelsea\.png needs about \d+ GB \(layer "conv1": 4096×4096×512 float32 is 32 GB\); the memory budget is 2 GB \(featureMaps\.memoryBudget\)\.$/,
    boundMs: 10_000,
  },
];

describe('hostile files through the engine process: a message, bounded time and memory, then the next image works', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = tempDir();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const hostile of CASES) {
    it(`${hostile.name}: says why within ${hostile.boundMs / 1000} s`, async () => {
      const client = new EngineClient({ enginePath: path.join(DIST, 'engine.js'), assetsDir: DIST });
      try {
        const show = () => client.extract({ imagePath: image('chelsea.png'), model: BUNDLED, layerPatterns: [] });
        await show();
        const start = await client.memory();
        const input = await hostile.make(fs.mkdtempSync(path.join(dir, 'case-')));
        const started = performance.now();
        let message = '';
        await assert.rejects(
          client.extract({
            imagePath: input.imagePath ?? image('chelsea.png'),
            model: input.model ?? BUNDLED,
            layerPatterns: [],
            labelsPath: input.labelsPath,
          }),
          (error: unknown) => {
            assert.ok(error instanceof UserFacingError, `a message for the user, not ${String(error)}`);
            assert.ok(!(error instanceof EngineStoppedError), `refused, not a dead engine: ${error.message}`);
            message = error.message;
            return hostile.expect.test(error.message);
          },
        );
        const elapsedMs = performance.now() - started;
        const after = await client.memory();
        const growthMb = (after.peakRssBytes - start.peakRssBytes) / MB;
        console.log(
          `      ${elapsedMs.toFixed(0)} ms; engine process peak RSS ${(after.peakRssBytes / MB).toFixed(0)} MB (+${growthMb.toFixed(0)} MB): "${message}"`,
        );
        assert.ok(elapsedMs < hostile.boundMs, `took ${elapsedMs.toFixed(0)} ms`);
        assert.ok(growthMb < MAX_PEAK_GROWTH_MB, `the engine process's peak grew by ${growthMb.toFixed(0)} MB`);
        assert.equal(client.stats().starts, 1, 'the same engine process answered');

        const next = await show();
        assert.deepEqual(next.layers.find((l) => l.name === 'Conv1')?.shape, [112, 112, 32]);
      } finally {
        client.dispose();
      }
    });
  }
});

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { ExtractionResult } from '../../src/shared/protocol';
import { FeatureMapEngine } from '../../src/engine/engine';
import type { ExecutionProviderSetting } from '../../src/engine/models/executionProvider';
import { DIST, image, shared, tempDir } from './fixtures';

const BUNDLED = { kind: 'bundled' } as const;

/** The bundled model on `chelsea.png` with `executionProvider`, and its first convolution's maps. */
async function showWith(executionProvider: ExecutionProviderSetting) {
  const engine = new FeatureMapEngine({ assetsDir: DIST, executionProvider });
  try {
    const result: ExtractionResult = await engine.extract({
      imagePath: image('chelsea.png'),
      model: BUNDLED,
      layerPatterns: [],
    });
    return { result, maps: engine.layerData(result.resultKey, 'Conv1', 32) };
  } finally {
    engine.dispose();
  }
}

// This machine has no GPU and none of CUDA's libraries, and its ONNX Runtime (linux-x64) has
// no DirectML: every provider but the CPU is unavailable here, in a different way each.
describe('featureMaps.executionProvider', () => {
  it('names the CPU in the header when the CPU is asked for, with no note', async () => {
    const { result } = await showWith('cpu');
    assert.equal(result.model.backend, 'onnxruntime');
    assert.deepEqual(result.model.device, { name: 'CPU' });
  });

  it('falls back to the CPU when CUDA does not start, says why, and draws the same maps', async () => {
    const cpu = await showWith('cpu');
    const cuda = await showWith('cuda');
    assert.equal(cuda.result.model.device?.name, 'CPU');
    assert.equal(
      cuda.result.model.device?.note,
      'CUDA did not start (its libraries are not installed): the passes ran on the CPU.',
    );
    assert.deepEqual(cuda.maps.values, cpu.maps.values);
    assert.deepEqual(cuda.maps.min, cpu.maps.min);
  });

  it('falls back to the CPU when WebGPU finds no GPU', async () => {
    const { result } = await showWith('webgpu');
    assert.deepEqual(result.model.device, {
      name: 'CPU',
      note: 'WebGPU did not start (no GPU adapter was found): the passes ran on the CPU.',
    });
  });

  it('says when the platform’s ONNX Runtime does not have the provider at all', async () => {
    const { result } = await showWith('dml');
    assert.equal(result.model.device?.name, 'CPU');
    assert.match(
      result.model.device?.note ?? '',
      new RegExp(
        `^DirectML is not part of ONNX Runtime on ${process.platform}-${process.arch} \\(it has CPU, .*\\): the passes ran on the CPU\\.$`,
      ),
    );
  });

  it('auto runs on the CPU where there is no accelerator, and says nothing more', async () => {
    const { result } = await showWith('auto');
    assert.deepEqual(result.model.device, { name: 'CPU' });
  });
});

// The darwin-x64 and alpine-x64 packages carry no ONNX Runtime (it has no Intel-Mac build, and
// its Linux build needs glibc): FEATURE_MAPS_WITHOUT_ONNXRUNTIME=1 takes that path here.
describe('a platform without ONNX Runtime (the Intel Mac and Alpine packages)', () => {
  const withoutOrt = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(DIST, 'cli.js'), image('chelsea.png'), ...args], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, FEATURE_MAPS_WITHOUT_ONNXRUNTIME: '1', XDG_CACHE_HOME: tempDir() },
    });

  it('still draws the bundled model and a Keras model, on TensorFlow.js', () => {
    for (const model of [[], ['--model', shared('fixtures', 'models', 'fer2013_mini_XCEPTION.102-0.66.hdf5')]]) {
      const out = path.join(tempDir(), 'sheet.png');
      const run = withoutOrt(...model, '--out', out);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /\(9 of \d+\)/);
      assert.match(
        run.stderr,
        /^note: ONNX Runtime is not available on .*: TensorFlow\.js ran the passes, on one core\.$/m,
      );
    }
  });

  it('refuses an ONNX model in words that say why and what does run', () => {
    const run = withoutOrt('--model', shared('fixtures', 'models', 'squeezenet-imagenet.onnx', 'SqueezeNet_fp16.onnx'));
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /^feature-maps: ONNX Runtime is not available on .*, so ONNX models cannot run here; PyTorch models run in your Python \(forward hooks\), Keras and TensorFlow\.js models \(and the bundled model\) on TensorFlow\.js\./,
    );
  });
});

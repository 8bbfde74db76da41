// Every keras.applications architecture (and a U-Net, an autoencoder and a model with every
// layer kind users have), saved by Keras 3 as .h5 and .keras with random weights, opened as a
// user opens a file: each must run on onnxruntime and match Keras within 1e-4 of each layer's
// max |value| on every layer Keras gives a 4-D (and 2-D, 3-D) output. The oracle
// (tools/make-keras-apps-oracle.sh) makes the files and Keras' activations; CI makes the small
// members of every family (`--set ci`), `npm run test:applications` the large ones, one at a time.
// Each result is kept for the README's table (applicationsTable.ts).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { channelsLast, type LoadedModel } from '../../src/engine/model';
import { guessPreprocessing } from '../../src/engine/modelFiles';
import { loadKerasModel } from '../../src/engine/models/keras';
import type { PreprocessMode } from '../../src/engine/preprocess';
import { type Tf, getTf } from '../../src/engine/tf';
import { type ApplicationResult, recordResults } from './applicationsTable';
import { DIST, ORACLE_TOLERANCE, REPO } from './fixtures';
import { readNpy, relErr } from './npy';

/** What tools/make-keras-apps-oracle.sh writes per model (keras-apps/<id>/manifest.json). */
interface AppManifest {
  id: string;
  label: string;
  builder: string;
  input_shape: [number, number, number];
  /** The keras.applications module whose preprocess_input made the input ("none": the script's own models). */
  preprocess: string;
  files: Record<'h5' | 'keras', { name: string; bytes: number }>;
  layers: {
    index: number;
    name: string;
    class_name: string;
    output_shape: number[] | null;
    file: string | null;
    max_abs: number;
    /** Keras' own float32 against float64 on this layer (made with --f64; null otherwise). */
    keras_f32_vs_f64?: number | null;
  }[];
  keras_f32_vs_f64_worst?: number | null;
  /** The classifier's best five classes (null for a model without one). */
  top5: number[] | null;
  top5_margin?: number | null;
}

/** The preprocessing each keras.applications module's preprocess_input does, in our modes. */
const PREPROCESSING: Record<string, PreprocessMode> = {
  vgg16: 'caffe',
  vgg19: 'caffe',
  resnet: 'caffe',
  resnet50: 'caffe',
  densenet: 'torch',
  // These scale pixels in their own first layers (Rescaling, Normalization): preprocess_input passes them on.
  efficientnet: 'none',
  efficientnet_v2: 'none',
  convnext: 'none',
  mobilenet_v3: 'none',
};

/** Keras 3 ops a functional model may apply between layers: listed in the tree, not in `model.layers`. */
const KERAS_OPS = new Set(['Add', 'Subtract', 'Multiply', 'Divide', 'TrueDivide']);

const cacheDir = process.env.ORACLE_CACHE ?? path.resolve(REPO, '..', '.oracle-cache');
const appsDir = path.join(cacheDir, 'keras-apps');

/** The models the oracle made (all of them, or those KERAS_APPS names). */
function presentModels(): string[] {
  const wanted = process.env.KERAS_APPS?.split(',').filter(Boolean);
  const present = fs.existsSync(appsDir)
    ? fs.readdirSync(appsDir).filter((id) => fs.existsSync(path.join(appsDir, id, 'manifest.json')))
    : [];
  if (wanted) {
    const missing = wanted.filter((id) => !present.includes(id));
    if (missing.length > 0) throw new Error(`KERAS_APPS names models the oracle has not made: ${missing.join(', ')}`);
    return wanted;
  }
  return present.sort();
}

/** The models CI makes (`make-keras-apps-oracle.sh --set ci`): every layer family through its smallest member. */
function ciModels(): string[] {
  const list = spawnSync('python3', [path.join(REPO, 'test', 'oracle', 'keras_apps.py'), '--list', 'ci'], {
    encoding: 'utf8',
  });
  if (list.status !== 0) throw new Error(`keras_apps.py --list ci failed: ${list.stderr}`);
  return list.stdout.split('\n').filter(Boolean);
}

describe('Keras models of every architecture, on onnxruntime, against Keras', function () {
  this.timeout(900_000);
  const models = presentModels();
  const results: ApplicationResult[] = [];
  let tf: Tf;
  before(async () => {
    tf = (await getTf(DIST)).tf;
  });
  after(() => recordResults(results));

  it('the oracle made every model CI covers', function () {
    if (!process.env.ORACLE_CACHE || process.env.KERAS_APPS) this.skip();
    const missing = ciModels().filter((id) => !models.includes(id));
    assert.deepEqual(missing, [], `run tools/make-keras-apps-oracle.sh ${cacheDir} --set ci`);
  });

  for (const id of models) {
    const dir = path.join(appsDir, id);
    const app = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as AppManifest;
    for (const kind of ['h5', 'keras'] as const) {
      const file = path.join(dir, app.files[kind].name);
      it(`${app.label} from .${kind}: runs on onnxruntime, every layer as Keras lists it, every map within ${ORACLE_TOLERANCE} (or Keras' own float32 error, where larger)`, async () => {
        const started = performance.now();
        const model = await loadKerasModel(tf, {
          key: `test:${file}`,
          summary: { name: path.basename(file), description: 'test' },
          preprocessing: 'none',
          modelPath: file,
        });
        const loadMs = performance.now() - started;
        try {
          assert.equal(model.backend, 'onnxruntime', model.nativeRefusal);
          assert.deepEqual(model.inputSize, {
            height: app.input_shape[0],
            width: app.input_shape[1],
            channels: app.input_shape[2],
          });
          // The tree lists Keras' layers in Keras' order, a nested model's own layers beside them
          // (outer/inner), and Keras 3 ops applied in the functional model (MobileNetV3's `x + 3`).
          const kerasLayers = app.layers.filter((l) => l.class_name !== 'InputLayer');
          const listed = new Set(kerasLayers.map((l) => l.name));
          const topLevel = model.layers.filter((l) => !l.name.includes('/'));
          assert.deepEqual(
            topLevel.filter((l) => listed.has(l.name)).map((l) => l.name),
            kerasLayers.map((l) => l.name),
          );
          const extra = topLevel.filter((l) => !listed.has(l.name));
          assert.deepEqual(
            extra.filter((l) => !KERAS_OPS.has(l.op)).map((l) => `${l.name} (${l.op})`),
            [],
            'layers Keras does not list',
          );
          for (const layer of kerasLayers) {
            assert.equal(
              model.layers.find((l) => l.name === layer.name)?.op,
              layer.class_name,
              `${layer.name}'s class`,
            );
          }
          // What the panel would feed it, guessed as for any Keras file, is what preprocess_input does.
          if (app.preprocess !== 'none') {
            assert.equal(guessPreprocessing('keras', model.layers).mode, PREPROCESSING[app.preprocess] ?? 'tf');
          }
          const { worst, passMs, relaxed } = await matchesKeras(model, dir, app);
          results.push({
            id,
            label: app.label,
            kind,
            runtime: model.backend ?? 'unknown',
            worst: worst.error,
            worstLayer: worst.layer,
            kerasOwn: relaxed > 0 ? (app.keras_f32_vs_f64_worst ?? undefined) : undefined,
            layers: kerasLayers.length,
            suite: process.env.FEATURE_MAPS_SUITE ?? 'npm test',
            date: new Date().toISOString().slice(0, 10),
            loadMs: Math.round(loadMs),
            passMs: Math.round(passMs),
          });
        } finally {
          model.dispose();
        }
      });
    }
  }
});

/** Runs `model` on Keras' own input and checks every layer the oracle saved; the top-5 when it means something. */
async function matchesKeras(model: LoadedModel, dir: string, app: AppManifest) {
  const input = readNpy(path.join(dir, 'input.npy'));
  assert.deepEqual(input.shape, [1, ...app.input_shape]);
  const started = performance.now();
  const outputs = await model.run(input.data);
  const passMs = performance.now() - started;
  let worst = { layer: '', error: 0 };
  const failed: string[] = [];
  let compared = 0;
  let relaxed = 0;
  for (const layer of app.layers) {
    if (!layer.file || layer.class_name === 'InputLayer') continue;
    const ref = readNpy(path.join(dir, layer.file));
    const ours = outputs.get(layer.name);
    assert.ok(ours, `no activations for ${layer.name}`);
    assert.deepEqual([1, ...ours.shape], ref.shape, `${layer.name} shape`);
    const error = relErr(channelsLast(ours), ref.data);
    compared++;
    // Deep in a deep net (ResNet152) Keras' own float32 is further than 1e-4 from the exact
    // result (its float64): no float32 runtime can then be nearer Keras than that. Where the
    // oracle measured it, the limit is three times Keras' own error: ours no worse than Keras'.
    const kerasOwn = layer.keras_f32_vs_f64 ?? 0;
    const limit = Math.max(ORACLE_TOLERANCE, 3 * kerasOwn);
    if (error > ORACLE_TOLERANCE && error <= limit) relaxed++;
    if (!(error <= limit)) {
      failed.push(
        `${layer.name} (${layer.class_name}) ${error.toExponential(2)}${kerasOwn ? `, Keras' own float32 error ${kerasOwn.toExponential(2)}` : ''}`,
      );
    }
    if (error > worst.error || Number.isNaN(error)) worst = { layer: layer.name, error };
  }
  console.log(
    `      ${app.label}: ${compared} layers compared, worst ${worst.layer} ${worst.error.toExponential(1)}` +
      `${relaxed > 0 ? ` (${relaxed} beyond 1e-4, each within 3× Keras' own float32 error, worst ${app.keras_f32_vs_f64_worst?.toExponential(1)})` : ''}; pass ${passMs.toFixed(0)} ms`,
  );
  // Where the error starts says more than the first failure: all of them, in model order.
  assert.deepEqual(
    failed.slice(0, 10),
    [],
    `${failed.length} layers differ from Keras by more than ${ORACLE_TOLERANCE}`,
  );
  assert.ok(compared > 0, 'the oracle saved no layer to compare');
  const last = app.layers[app.layers.length - 1];
  if (app.top5?.length === 5 && (app.top5_margin ?? 0) > 1e-4) {
    const probabilities = outputs.get(last.name)!.data;
    const top5 = [...probabilities.keys()].sort((a, b) => probabilities[b] - probabilities[a]).slice(0, 5);
    assert.deepEqual(top5, app.top5, 'top-5 classes');
  }
  return { worst, passMs, relaxed };
}

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Tf } from '../../src/engine/tf';

/** The repository root (tests run from dist/test/unit after the build). */
export const REPO = path.resolve(__dirname, '..', '..', '..');
/** Built assets: wasm binaries and the decoded bundled model. */
export const DIST = path.join(REPO, 'dist');
const SHARED = path.resolve(REPO, '..', 'shared');

/** A file under ../shared, failing loudly when that folder is missing. */
export function shared(...parts: string[]): string {
  const file = path.join(SHARED, ...parts);
  if (!fs.existsSync(file)) {
    throw new Error(`Test fixture missing: ${file}. The tests need the ../shared folder beside the repository.`);
  }
  return file;
}

export function image(name: string): string {
  return shared('fixtures', 'images', name);
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'feature-maps-test-'));
}

/** The oracle's rule per layer against its float32 files: max|ours − ref| / max|ref|. */
export const ORACLE_TOLERANCE = 1e-4;

/** A committed file of the Keras oracle (../shared/oracle/fixtures). */
export function oracle(...parts: string[]): string {
  return shared('oracle', 'fixtures', ...parts);
}

/**
 * One of the oracle's big generated files (not committed): the test skips when it is absent,
 * and fails when ORACLE_CACHE promised it (CI sets it after running make-oracle.sh).
 */
export function oracleCacheFile(file: string, context: Mocha.Context): string {
  const cache = process.env.ORACLE_CACHE ?? path.resolve(REPO, '..', '.oracle-cache');
  const full = path.join(cache, file);
  if (!fs.existsSync(full)) {
    if (process.env.ORACLE_CACHE) throw new Error(`${file} is missing from ORACLE_CACHE=${cache}`);
    context.skip();
  }
  return full;
}

export type H5File = InstanceType<typeof import('h5wasm').File>;

/** An HDF5 file made with h5wasm, written to a temp folder. */
export async function writeH5(name: string, fill: (root: H5File) => void): Promise<string> {
  const h5 = await import('h5wasm');
  const module = await h5.ready;
  const memPath = `/test-${name}`;
  const file = new h5.File(memPath, 'w');
  fill(file);
  file.close();
  const out = path.join(tempDir(), name);
  fs.writeFileSync(out, module.FS.readFile(memPath));
  module.FS.unlink(memPath);
  return out;
}

/** Saves a tfjs-layers model as a TF.js model folder (`model.json` + `weights.bin`) in `dir`; the model.json path. */
export async function saveLayersModel(tf: Tf, model: tfl.LayersModel, dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(artifacts.weightData as ArrayBuffer));
      fs.writeFileSync(
        path.join(dir, 'model.json'),
        JSON.stringify({
          format: 'layers-model',
          modelTopology: artifacts.modelTopology,
          weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
        }),
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return path.join(dir, 'model.json');
}

/**
 * The PyTorch oracle of tools/make-torch-oracle.sh and the Python that made it: TORCH_ORACLE and
 * FEATURE_MAPS_TEST_PYTHON (.ci/run sets both), else ../.oracle-cache/torch and the venv beside
 * it (or ../.torch-venv). Undefined when they are absent (the test skips); an error when an
 * environment variable names a path that is missing.
 */
export function torchOracle(): { dir: string; python: string } | undefined {
  const fromEnv = (name: string, file: (value: string) => string): string | undefined => {
    const value = process.env[name];
    if (!value) return undefined;
    if (!fs.existsSync(file(value))) throw new Error(`${name}=${value}: ${file(value)} is missing`);
    return value;
  };
  const dir =
    fromEnv('TORCH_ORACLE', (d) => path.join(d, 'manifest.json')) ?? path.resolve(REPO, '..', '.oracle-cache', 'torch');
  const python =
    fromEnv('FEATURE_MAPS_TEST_PYTHON', (p) => p) ??
    [
      path.resolve(REPO, '..', '.oracle-cache', '.torch-venv', 'bin', 'python'),
      path.resolve(REPO, '..', '.torch-venv', 'bin', 'python'),
    ].find((p) => fs.existsSync(p));
  if (!python || !fs.existsSync(path.join(dir, 'manifest.json'))) return undefined;
  return { dir, python };
}

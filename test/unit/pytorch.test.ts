import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FileModelHints, LoadedModel } from '../../src/engine/model';
import { locateModel } from '../../src/engine/modelSources';
import { DIST, ORACLE_TOLERANCE, tempDir, torchOracle } from './fixtures';
import { readNpy, relErr } from './npy';

// PyTorch files of five architectures, each saved five ways, opened as a user opens them (the
// engine converts them once with the test venv's Python, then runs them on onnxruntime); every
// module call PyTorch's forward hooks saw with a 4-D output must match ours within 1e-4 of that
// call's max |value|. The models and hook outputs come from tools/make-torch-oracle.sh.

interface TorchManifest {
  architecture: string;
  files: Record<FileKind, string>;
  modules: { name: string; class: string; shape: number[]; file: string }[];
}

type FileKind = 'torchscript' | 'exported' | 'pickled' | 'state_dict' | 'safetensors';
const KINDS: FileKind[] = ['torchscript', 'exported', 'pickled', 'state_dict', 'safetensors'];
const ARCHITECTURES = ['resnet18', 'mobilenet_v3_small', 'efficientnet_b0', 'convnext_tiny', 'custom'];

/** Modules that return their input unchanged at inference: a `.pt2` program has no trace of them. */
const PASS_THROUGH = new Set(['Identity', 'Dropout', 'Dropout2d', 'StochasticDepth', 'DropPath']);

const torch = torchOracle();
const only = process.env.PYTORCH_TEST_ARCHS?.split(',');

(torch ? describe : describe.skip)(
  'PyTorch files, converted once and run on onnxruntime, against forward hooks',
  function () {
    this.timeout(600_000);
    const cacheDir = tempDir();
    // NCHW in the oracle's file, H×W×C as the engine feeds a model.
    let nhwc: Float32Array;

    before(() => {
      const input = readNpy(path.join(torch!.dir, 'input.npy'));
      const [, c, h, w] = input.shape;
      nhwc = new Float32Array(input.data.length);
      for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) nhwc[p * c + ch] = input.data[ch * h * w + p];
    });
    after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

    for (const arch of ARCHITECTURES.filter((a) => !only || only.includes(a))) {
      describe(arch, () => {
        const dir = path.join(torch?.dir ?? '', arch);
        const manifest = (): TorchManifest =>
          JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as TorchManifest;

        for (const kind of KINDS) {
          it(`${kind}: every module with maps matches PyTorch's hooks`, async () => {
            const m = manifest();
            const hints: FileModelHints = {
              python: torch!.python,
              cacheDir,
              allowPickle: kind === 'pickled',
              workspace: arch === 'custom' ? path.join(torch!.dir, 'custom') : undefined,
              architecture: kind === 'state_dict' || kind === 'safetensors' ? m.architecture : undefined,
            };
            const located = await locateModel({ kind: 'file', path: path.join(dir, m.files[kind]), hints }, DIST);
            const model = await located.open();
            try {
              assert.match(model.backend ?? '', /converted from PyTorch/);
              assert.equal(model.preprocessing, 'torch');
              await compareWithHooks(model, m, kind, dir);
            } finally {
              model.dispose();
            }
          });
        }

        it('a second open comes from the conversion cache, without Python', async () => {
          const m = manifest();
          const file = path.join(dir, m.files.exported);
          const first = await (
            await locateModel({ kind: 'file', path: file, hints: { python: torch!.python, cacheDir } }, DIST)
          ).open();
          first.dispose();
          // An interpreter that does not exist: the cached conversion needs none.
          const hints = { python: '/nonexistent/python', cacheDir };
          const again = await (await locateModel({ kind: 'file', path: file, hints }, DIST)).open();
          try {
            assert.match(again.summary.description ?? '', /cached/);
            // A 1000-way head is named with the bundled ImageNet labels; the custom model's 10 classes are not.
            assert.equal(again.labels, arch === 'custom' ? undefined : 'imagenet');
            assert.deepEqual(
              again.layers.map((l) => l.name),
              first.layers.map((l) => l.name),
            );
          } finally {
            again.dispose();
          }
        });
      });
    }

    async function compareWithHooks(model: LoadedModel, m: TorchManifest, kind: FileKind, dir: string): Promise<void> {
      const ours = await model.run(nhwc);
      const layerNames = new Set(model.layers.map((l) => l.name));
      const maps = m.modules.filter((mod) => mod.shape.length === 3);
      const compared: string[] = [];
      const failures: string[] = [];
      for (const mod of maps) {
        const activation = ours.get(mod.name);
        if (!activation) {
          // A traced TorchScript file keeps no scope for a module's second call; torch.export erases
          // modules that only pass their input on at inference (Identity, Dropout, DropPath…).
          if (kind === 'torchscript') continue;
          if (kind === 'exported' && PASS_THROUGH.has(mod.class)) continue;
          failures.push(`${mod.name}: missing (layers: ${[...layerNames].slice(0, 5).join(', ')}…)`);
          continue;
        }
        const oracleFile = readNpy(path.join(dir, mod.file));
        const err = relErr(activation.data, oracleFile.data);
        compared.push(mod.name);
        if (!(err <= ORACLE_TOLERANCE)) failures.push(`${mod.name} (${mod.class}): ${err}`);
        const layer = model.layers.find((l) => l.name === mod.name);
        if (layer && layer.op !== mod.class) failures.push(`${mod.name}: op ${layer.op}, PyTorch says ${mod.class}`);
      }
      assert.deepEqual(failures, [], `${failures.length} of ${maps.length} module outputs differ`);
      // Nothing vacuous: every module with maps was compared, but those a file kind cannot keep.
      const required =
        kind === 'torchscript'
          ? maps.length / 2
          : kind === 'exported'
            ? maps.filter((mod) => !PASS_THROUGH.has(mod.class)).length
            : maps.length;
      assert.ok(compared.length >= required, `compared ${compared.length} of ${maps.length}`);
    }
  },
);

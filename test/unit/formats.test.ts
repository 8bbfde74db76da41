import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FeatureMapEngine } from '../../src/engine/engine';
import {
  MODEL_FORMATS,
  SNIFF_BYTES,
  chooseFormat,
  formatById,
  modelFileExtensions,
  modelFileGlob,
  modelOpenDialogFilters,
  whenClauseForModelFiles,
} from '../../src/engine/formats';
import { resolveModelFile } from '../../src/engine/modelFiles';
import { rejectsWith } from './assertions';
import { DIST, REPO, image, shared, tempDir, torchOracle } from './fixtures';

// The model-format registry (src/engine/formats.ts) against what the user meets: the files it
// picks and refuses, the Explorer menu (package.json), the file dialog, the CLI's help.

/** One real file of each registered format. A new format adds its row here (and its fixture to ../shared). */
const SAMPLES: Record<string, () => string> = {
  tfjs: () => shared('fixtures', 'models', 'darknet-tiny-imagenet.tfjs', 'model.json'),
  keras: () => shared('fixtures', 'models', 'fer2013_mini_XCEPTION.102-0.66.hdf5'),
  onnx: () => shared('fixtures', 'models', 'squeezenet-imagenet.onnx', 'SqueezeNet_fp16.onnx'),
  // ../shared has no PyTorch file: the PyTorch oracle's (tools/make-torch-oracle.sh; CI makes it).
  pytorch: () => torchSample('exported.pt2'),
};

/** A real file of `format` for a file called `name`: a safetensors file for `.safetensors`, a zip otherwise. */
function sampleFor(format: string, name: string): string {
  return format === 'pytorch' && name.endsWith('.safetensors') ? torchSample('weights.safetensors') : SAMPLES[format]();
}

function torchSample(file: string): string {
  const torch = torchOracle();
  if (!torch) throw new Error('No PyTorch sample: run tools/make-torch-oracle.sh ../.oracle-cache (CI does).');
  return path.join(torch.dir, 'resnet18', file);
}

interface Manifest {
  contributes: {
    menus: Record<string, { command: string; when?: string }[]>;
    configuration: { properties: Record<string, { markdownDescription?: string }> };
  };
}

const manifest = () => JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as Manifest;

/** `file`'s bytes under another name in a fresh folder (a symlink: resolveModelFile follows it). */
function named(file: string, name: string, dir = tempDir()): string {
  const link = path.join(dir, name);
  fs.symlinkSync(file, link);
  return link;
}

async function head(file: string): Promise<Buffer> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SNIFF_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

describe('model formats: one registry decides which files are models', () => {
  it("package.json's Explorer menu offers “Use as Feature Map Model” on exactly the registered model files", () => {
    const menu = manifest().contributes.menus['explorer/context'].find((m) => m.command === 'featureMaps.useAsModel');
    const expected = whenClauseForModelFiles();
    assert.equal(
      menu?.when,
      expected,
      `package.json's explorer/context "when" of featureMaps.useAsModel is\n  ${menu?.when}\nbut src/engine/formats.ts ` +
        `derives this from the registered formats; copy it into package.json:\n  ${expected}`,
    );
  });

  it("the featureMaps.model setting's description names every registered file name and extension", () => {
    const description = manifest().contributes.configuration.properties['featureMaps.model'].markdownDescription ?? '';
    for (const format of MODEL_FORMATS) {
      for (const name of [...format.fileNames, ...format.extensions]) {
        assert.ok(description.includes(`\`${name}\``), `featureMaps.model's description does not mention \`${name}\``);
      }
    }
  });

  it('every registered format has a sample file here, and it resolves to that format', async () => {
    for (const format of MODEL_FORMATS) {
      const sample = SAMPLES[format.id];
      assert.ok(sample, `format "${format.id}" has no row in SAMPLES (test/unit/formats.test.ts)`);
      const file = await resolveModelFile(sample());
      assert.equal(file.format, format.id, path.basename(sample()));
    }
  });

  it('a TF.js model folder resolves to its model.json', async () => {
    const folder = shared('fixtures', 'models', 'darknet-tiny-imagenet.tfjs');
    const file = await resolveModelFile(folder);
    assert.deepEqual([file.format, file.path], ['tfjs', path.join(folder, 'model.json')]);
  });

  it('every file name and extension a format claims is reachable: offered, in the dialog, resolved to it', async () => {
    const glob = modelFileGlob();
    const when = whenClauseForModelFiles();
    const extnameTest = /resourceExtname =~ \/(.*)\/i\)$/.exec(when)?.[1];
    const dialog = modelOpenDialogFilters().Models;
    for (const format of MODEL_FORMATS) {
      const offered = [...format.fileNames, ...format.extensions.map((ext) => `sample${ext}`)];
      const all = [...offered, ...(format.alsoReads ?? []).map((ext) => `renamed${ext}`)];
      for (const name of all) {
        const ext = path.extname(name).toLowerCase();
        assert.ok(modelFileExtensions().includes(ext), `${name}: ${ext} is not in modelFileExtensions()`);
        assert.ok(dialog.includes(ext.slice(1)), `${name}: the file dialog does not offer ${ext}`);
        const file = await resolveModelFile(named(sampleFor(format.id, name), name));
        assert.equal(file.format, format.id, name);
      }
      for (const name of offered) {
        const byName = format.fileNames.includes(name);
        assert.ok(glob.includes(byName ? name : `*${path.extname(name)}`), `${name} is not in ${glob}`);
        const inMenu = byName
          ? when.includes(`resourceFilename == ${name}`)
          : extnameTest !== undefined && new RegExp(extnameTest, 'i').test(path.extname(name));
        assert.ok(inMenu, `the Explorer menu's when clause does not offer ${name}: ${when}`);
      }
    }
  });

  it('refuses a file whose extension lies, naming what its bytes are', async () => {
    const hdf5 = SAMPLES.keras();
    const dir = tempDir();
    const lying = path.join(dir, 'x.onnx');
    fs.copyFileSync(hdf5, lying);
    const error = await rejectsWith(resolveModelFile(lying));
    assert.equal(error.message, 'x.onnx is not an ONNX file: its bytes are an HDF5 (Keras) file.');
    assert.match(error.detail ?? '', /^It begins with the bytes 894844460d0a1a0a/);

    const cases: [string, string, string][] = [
      [
        SAMPLES.onnx(),
        'model.keras',
        'model.keras is not a Keras model file (HDF5 or .keras zip): its bytes are an ONNX (protobuf) file.',
      ],
      [
        SAMPLES.tfjs(),
        'weights.h5',
        'weights.h5 is not a Keras model file (HDF5 or .keras zip): its bytes are JSON text, like a TF.js model.json.',
      ],
      [SAMPLES.keras(), 'model.json', 'model.json is not a TF.js model.json: its bytes are an HDF5 (Keras) file.'],
    ];
    for (const [sample, name, message] of cases) {
      await rejectsWith(
        resolveModelFile(named(sample, name)),
        new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
      );
    }
  });

  it('refuses a file that no format recognises as not valid for the format its name claims', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'notes.onnx'), 'hello, this is not a model');
    await rejectsWith(resolveModelFile(path.join(dir, 'notes.onnx')), /^notes\.onnx is not a valid ONNX model file\.$/);
    fs.writeFileSync(path.join(dir, 'empty.h5'), '');
    const empty = await rejectsWith(
      resolveModelFile(path.join(dir, 'empty.h5')),
      /^empty\.h5 is not a valid Keras model file\.$/,
    );
    assert.equal(empty.detail, 'The file is empty.');
  });

  it('the engine shows the refusal of a lying file before loading anything', async () => {
    const engine = new FeatureMapEngine({ assetsDir: DIST });
    try {
      const lying = named(SAMPLES.keras(), 'emotions.onnx');
      await rejectsWith(
        engine.extract({ imagePath: image('chelsea.png'), model: { kind: 'file', path: lying }, layerPatterns: [] }),
        /^emotions\.onnx is not an ONNX file: its bytes are an HDF5 \(Keras\) file\.$/,
      );
    } finally {
      engine.dispose();
    }
  });

  it('where formats share a name, the bytes decide', async () => {
    const candidates = [formatById('keras'), formatById('onnx')];
    assert.equal(chooseFormat('weights.bin', await head(SAMPLES.onnx()), candidates).id, 'onnx');
    assert.equal(chooseFormat('weights.bin', await head(SAMPLES.keras()), candidates).id, 'keras');
    assert.throws(
      () => chooseFormat('weights.bin', Buffer.from('plain text'), candidates),
      /^UserFacingError: weights\.bin is not a valid Keras model or ONNX model file\.$/,
    );
    assert.throws(
      () => chooseFormat('weights.bin', fs.readFileSync(SAMPLES.tfjs()), candidates),
      /^UserFacingError: weights\.bin is not a Keras model file \(HDF5 or \.keras zip\) or an ONNX file: its bytes are JSON text, like a TF\.js model\.json\.$/,
    );
  });

  it('a file no format reads is refused with a message listing every registered format', async () => {
    // An image named as the model: no format will ever claim .png.
    const error = await rejectsWith(
      resolveModelFile(image('chelsea.png')),
      /^chelsea\.png is not a model file this extension reads \(/,
    );
    for (const format of MODEL_FORMATS)
      assert.ok(error.message.includes(format.files), `"${format.files}" missing: ${error.message}`);
  });

  it("the CLI's help lists every registered format under --model", () => {
    const run = spawnSync(process.execPath, [path.join(DIST, 'cli.js'), '--help'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const help = run.stdout.replace(/\s+/g, ' ');
    for (const format of MODEL_FORMATS) assert.ok(help.includes(format.files), `"${format.files}" missing from --help`);
  });
});

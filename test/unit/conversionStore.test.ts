import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConversionStore, KEPT_CONVERSIONS } from '../../src/engine/conversionStore';
import { FeatureMapEngine } from '../../src/engine/engine';
import type { ModelSource } from '../../src/engine/model';
import { DIST, image, shared, tempDir } from './fixtures';

// A Keras or TF.js model runs on onnxruntime converted to ONNX. The bundled model's ONNX form is
// made at build time; a user's model is converted at its first open and kept, so the next open
// (a new window, the CLI again) reads the ONNX form instead of converting.

const FER2013 = 'fer2013_mini_XCEPTION.102-0.66.hdf5';
const DARKNET = 'darknet-tiny-imagenet.tfjs';

/** A user's copy of a fixture model (a file, or a TF.js folder's model.json), which a test may touch. */
function userCopy(name: string): string {
  const dir = tempDir();
  const from = shared('fixtures', 'models', name);
  const to = path.join(dir, name);
  fs.cpSync(from, to, { recursive: true });
  // Copies of read-only fixtures: writable, as a user's own files are.
  for (const file of fs.statSync(to).isDirectory() ? fs.readdirSync(to).map((f) => path.join(to, f)) : [to]) {
    fs.chmodSync(file, 0o644);
  }
  return fs.statSync(to).isDirectory() ? path.join(to, 'model.json') : to;
}

/** One open of `model` in a fresh engine (a new window, a new CLI run): its log and every layer's values. */
async function openOnce(
  model: ModelSource,
  options: { conversionsDir?: string; assetsDir?: string } = {},
): Promise<{ log: string; maps: Map<string, Float32Array> }> {
  const lines: string[] = [];
  const engine = new FeatureMapEngine({ assetsDir: DIST, ...options, log: (line) => lines.push(line) });
  try {
    const result = await engine.extract({ imagePath: image('chelsea.png'), model, layerPatterns: [] });
    await engine.complete(result.resultKey);
    const maps = new Map<string, Float32Array>();
    for (const layer of result.layers) {
      const activation = engine.activation(result.resultKey, layer.name);
      if (activation) maps.set(layer.name, activation.data);
    }
    // As the CLI does before it exits: the conversion made is on disk.
    await engine.keptConversions();
    return { log: lines.join('\n'), maps };
  } finally {
    engine.dispose();
  }
}

/** Every layer of `actual` equals `expected`'s, value for value (both are the same ONNX graph on onnxruntime). */
function assertSameMaps(actual: Map<string, Float32Array>, expected: Map<string, Float32Array>): void {
  assert.ok(expected.size > 5, `maps of ${expected.size} layers`);
  assert.deepEqual([...actual.keys()], [...expected.keys()]);
  for (const [layer, values] of expected) {
    const other = actual.get(layer)!;
    assert.equal(other.length, values.length, layer);
    let worst = 0;
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(other[i]! - values[i]!));
    assert.equal(worst, 0, `${layer}: the kept conversion gives other values (max |Δ| ${worst})`);
  }
}

/** The conversions the store keeps under the conversions folder `dir` (or in `dir` itself, `inside`). */
function keptConversions(dir: string, inside = false): string[] {
  const store = inside ? dir : path.join(dir, KEPT_CONVERSIONS);
  return fs.existsSync(store) ? fs.readdirSync(store).sort() : [];
}

const CONVERTED = /runs on onnxruntime \(converted in \d+ ms\)/;
const KEPT = /runs on onnxruntime \(its ONNX form kept from an earlier open, opened in \d+ ms\)/;

describe('conversions kept on disk', () => {
  it('the bundled model opens from the ONNX form the build ships, with the maps converting it gives', async () => {
    const shipped = await openOnce({ kind: 'bundled' });
    assert.match(shipped.log, /runs on onnxruntime \(its ONNX form shipped with the extension, opened in \d+ ms\)/);
    assert.doesNotMatch(shipped.log, CONVERTED);
    // The same assets without the shipped ONNX form: the TF.js model is converted at open.
    const assets = tempDir();
    for (const entry of fs.readdirSync(DIST)) {
      if (entry !== 'models') fs.symlinkSync(path.join(DIST, entry), path.join(assets, entry));
    }
    fs.mkdirSync(path.join(assets, 'models'));
    fs.symlinkSync(path.join(DIST, 'models', 'mobilenet_v2'), path.join(assets, 'models', 'mobilenet_v2'));
    const converted = await openOnce({ kind: 'bundled' }, { assetsDir: assets });
    assert.match(converted.log, CONVERTED);
    assertSameMaps(shipped.maps, converted.maps);
  });

  for (const [kind, name] of [
    ['Keras .hdf5 file', FER2013],
    ['TF.js model folder', DARKNET],
  ] as const) {
    it(`a ${kind} is converted at its first open, and opened from its kept conversion after, with the same maps`, async () => {
      const store = tempDir();
      const model = { kind: 'file', path: userCopy(name) } as const;
      const first = await openOnce(model, { conversionsDir: store });
      assert.match(first.log, CONVERTED);
      assert.equal(keptConversions(store).length, 1, 'one conversion kept');
      const second = await openOnce(model, { conversionsDir: store });
      assert.match(second.log, KEPT);
      assert.doesNotMatch(second.log, CONVERTED);
      assertSameMaps(second.maps, first.maps);
    });
  }

  it('converts a file that changed since (a checkpoint rewritten) again, in place of its old conversion', async () => {
    const store = tempDir();
    const file = userCopy(FER2013);
    const model = { kind: 'file', path: file } as const;
    await openOnce(model, { conversionsDir: store });
    const [folder] = keptConversions(store);
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(file, later, later);
    const changed = await openOnce(model, { conversionsDir: store });
    assert.match(changed.log, /changed since it was converted/);
    assert.match(changed.log, CONVERTED);
    assert.deepEqual(keptConversions(store), [folder], 'the new conversion replaced the old one');
    assert.match((await openOnce(model, { conversionsDir: store })).log, KEPT);
  });

  for (const [damage, harm, says] of [
    ['a cut-short model.onnx', (dir: string) => fs.truncateSync(path.join(dir, 'model.onnx'), 1000), /cannot be read/],
    [
      'a model.onnx with zeros over its middle',
      (dir: string) => {
        const file = path.join(dir, 'model.onnx');
        const bytes = fs.readFileSync(file);
        const middle = Math.floor(bytes.length / 2);
        bytes.fill(0, middle, middle + 4096);
        fs.writeFileSync(file, bytes);
      },
      /cannot be read/,
    ],
    [
      'a model.json that is not JSON',
      (dir: string) => fs.writeFileSync(path.join(dir, 'model.json'), '{"format'),
      /cannot be read/,
    ],
    [
      'a model.json of another shape',
      (dir: string) =>
        fs.writeFileSync(
          path.join(dir, 'model.json'),
          JSON.stringify({ format: 'feature-maps-conversion-1', layers: 7 }),
        ),
      /cannot be read/,
    ],
  ] as const) {
    it(`converts again over ${damage}, and the user sees the model's maps`, async () => {
      const store = tempDir();
      const model = { kind: 'file', path: userCopy(FER2013) } as const;
      const first = await openOnce(model, { conversionsDir: store });
      const [folder] = keptConversions(store);
      harm(path.join(store, KEPT_CONVERSIONS, folder!));
      const again = await openOnce(model, { conversionsDir: store });
      assert.match(again.log, says);
      assert.match(again.log, CONVERTED);
      assertSameMaps(again.maps, first.maps);
      assert.match((await openOnce(model, { conversionsDir: store })).log, KEPT, 'the damaged conversion was replaced');
    });
  }

  it('keeps the kept conversions under their size limit, removing the least recently opened', async () => {
    const dir = tempDir();
    const engine = new FeatureMapEngine({ assetsDir: DIST });
    try {
      const files = [userCopy(FER2013), userCopy(FER2013), userCopy(FER2013)];
      const models = await Promise.all(files.map((file) => engine.loadModel({ kind: 'file', path: file })));
      const bytes = models[0]!.onnxForm!.bytes.byteLength;
      // Room for two conversions, not three.
      const store = new ConversionStore(dir, undefined, bytes * 2 + 200_000);
      const which = (file: string) => ({ format: 'keras', file });
      const identity = { files: [] };
      await store.write(which(files[0]!), identity, models[0]!);
      await store.write(which(files[1]!), identity, models[1]!);
      // The first is opened again, so the second is the least recently opened.
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(await store.read(which(files[0]!), identity));
      await store.write(which(files[2]!), identity, models[2]!);
      assert.ok(await store.read(which(files[0]!), identity), 'the one opened last is kept');
      assert.equal(await store.read(which(files[1]!), identity), undefined, 'the least recently opened is removed');
      assert.ok(await store.read(which(files[2]!), identity), 'the new one is kept');
      assert.equal(keptConversions(dir, true).length, 2);
    } finally {
      engine.dispose();
    }
  });
});

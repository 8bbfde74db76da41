// What a user sees when a Keras file has a layer the ONNX converter does not know: tfjs runs it
// when tfjs can, and the log says which layer kept it off onnxruntime; when neither can, the
// message names the layer, its class and the file. The files are written here, as Keras 3 lays
// out a .keras zip (the architectures every Keras user has are in kerasApps.test.ts).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { zipSync } from 'fflate';
import { FeatureMapEngine } from '../../src/engine/engine';
import { rejectsWith } from './assertions';
import { DIST, image, tempDir, writeH5 } from './fixtures';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const layer = (className: string, config: Record<string, Json>, inbound: string): Json => ({
  module: 'keras.layers',
  class_name: className,
  config: { trainable: true, dtype: 'float32', ...config },
  name: config.name as string,
  inbound_nodes: [
    {
      args: [
        {
          class_name: '__keras_tensor__',
          config: { shape: [null, 8, 8, 3], dtype: 'float32', keras_history: [inbound, 0, 0] },
        },
      ],
      kwargs: {},
    },
  ],
});

/** A Keras 3 `.keras` file: input 8×8×3 → `layers` in a chain; `vars` per weights group. */
async function kerasFile(
  name: string,
  layers: Json[],
  vars: Record<string, [number[], Float32Array][]>,
): Promise<string> {
  const config = {
    module: 'keras',
    class_name: 'Functional',
    config: {
      name,
      layers: [
        {
          module: 'keras.layers',
          class_name: 'InputLayer',
          config: { batch_shape: [null, 8, 8, 3], dtype: 'float32', name: 'input' },
          name: 'input',
          inbound_nodes: [],
        },
        ...layers,
      ],
      input_layers: ['input', 0, 0],
      output_layers: [String((layers[layers.length - 1] as { name: string }).name), 0, 0],
    },
  };
  const weights = await writeH5(`${name}.weights.h5`, (file) => {
    const root = file.create_group('layers');
    for (const [group, arrays] of Object.entries(vars)) {
      const g = root.create_group(group).create_group('vars');
      arrays.forEach(([shape, data], i) => g.create_dataset({ name: String(i), data, shape }));
    }
  });
  const file = path.join(tempDir(), `${name}.keras`);
  fs.writeFileSync(
    file,
    zipSync({
      'config.json': new TextEncoder().encode(JSON.stringify(config)),
      'metadata.json': new TextEncoder().encode(JSON.stringify({ keras_version: '3.15.1' })),
      'model.weights.h5': new Uint8Array(fs.readFileSync(weights)),
    }),
  );
  return file;
}

const conv = layer(
  'Conv2D',
  {
    name: 'conv',
    filters: 3,
    kernel_size: [3, 3],
    strides: [1, 1],
    padding: 'same',
    activation: 'relu',
    use_bias: true,
  },
  'input',
);
const convVars: [number[], Float32Array][] = [
  [[3, 3, 3, 3], Float32Array.from({ length: 81 }, (_, i) => Math.sin(i))],
  [[3], Float32Array.of(0.1, -0.2, 0.3)],
];

describe('Keras layers the ONNX converter does not know', function () {
  this.timeout(120_000);
  const engines: FeatureMapEngine[] = [];
  after(() => engines.forEach((e) => e.dispose()));
  const engine = (log?: (line: string) => void) => {
    const e = new FeatureMapEngine({ assetsDir: DIST, log });
    engines.push(e);
    return e;
  };

  it('a layer only TensorFlow.js has runs there, and the log names it', async () => {
    // LayerNormalization over H, W and C: the converter normalises the channels only.
    const norm = layer('LayerNormalization', { name: 'norm_all', axis: [1, 2, 3], epsilon: 0.001 }, 'conv');
    const file = await kerasFile('tfjs_only', [conv, norm], {
      conv2d: convVars,
      layer_normalization: [
        [[8, 8, 3], new Float32Array(192).fill(1)],
        [[8, 8, 3], new Float32Array(192)],
      ],
    });
    const lines: string[] = [];
    const result = await engine((line) => lines.push(line)).extract({
      imagePath: image('chelsea.png'),
      model: { kind: 'file', path: file },
      layerPatterns: [],
    });
    assert.equal(result.model.backend, 'tfjs-wasm');
    assert.deepEqual(
      result.layers.map((l) => l.name),
      ['conv', 'norm_all'],
    );
    assert.match(
      lines.join('\n'),
      /tfjs_only\.keras runs on tfjs-wasm, not onnxruntime: layer "norm_all" \(LayerNormalization\) normalises axes \[1,2,3\], not the channels/,
    );
  });

  it('a layer neither runtime has is named in the message, with the file', async () => {
    const contrast = layer('AutoContrast', { name: 'contrast', value_range: [0, 255] }, 'conv');
    const file = await kerasFile('neither', [conv, contrast], { conv2d: convVars });
    const error = await rejectsWith(
      engine().extract({ imagePath: image('chelsea.png'), model: { kind: 'file', path: file }, layerPatterns: [] }),
      /^neither\.keras: Feature Maps cannot run this model: layer "contrast" \(AutoContrast\) has no ONNX conversion\.$/,
    );
    assert.match(error.detail ?? '', /TensorFlow\.js could not rebuild it either/);
  });
});

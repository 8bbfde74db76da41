import * as fs from 'node:fs';
import { buildKerasApplication } from '../../src/engine/models/kerasApplications';
import { getTf } from '../../src/engine/tf';
import { DIST, writeH5 } from './fixtures';

/**
 * A Keras legacy weights-only HDF5 file for the catalogue's MobileNetV2 (with top), as Keras 2
 * wrote it (root `layer_names`, each layer's `weight_names` as `layer/kernel:0`), with small
 * positive values from a fixed seed: a file the loader accepts and that no other file equals,
 * so a download mixed from two transfers shows. About 14 MB, like Keras' own.
 */
export async function mobileNetV2Weights(): Promise<Buffer> {
  const { tf } = await getTf(DIST);
  const built = await buildKerasApplication(tf, 'mobilenet_v2');
  const layers = built.kerasOrder
    .map((name) => built.model.getLayer(name))
    .filter((layer) => layer.weights.length > 0)
    .map((layer) => ({
      name: layer.name,
      weights: layer.weights.map((w) => ({
        name: `${layer.name}/${w.originalName.split('/').pop()}:0`,
        shape: w.shape as number[],
      })),
    }));
  built.model.dispose();
  let x = 0x2468ace1;
  const file = await writeH5('mobilenet_v2_weights.h5', (root) => {
    root.create_attribute(
      'layer_names',
      layers.map((l) => l.name),
    );
    for (const layer of layers) {
      const group = root.create_group(layer.name);
      group.create_attribute(
        'weight_names',
        layer.weights.map((w) => w.name),
      );
      const inner = group.create_group(layer.name);
      for (const weight of layer.weights) {
        const data = new Float32Array(weight.shape.reduce((a, b) => a * b, 1));
        for (let i = 0; i < data.length; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          data[i] = ((x >>> 0) / 2 ** 32) * 0.02;
        }
        inner.create_dataset({ name: weight.name.split('/')[1], data, shape: weight.shape });
      }
    }
  });
  const bytes = fs.readFileSync(file);
  fs.rmSync(file);
  return bytes;
}

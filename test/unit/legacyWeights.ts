import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoadedModel } from '../../src/engine/model';
import {
  type ApplicationId,
  buildKerasApplication,
  openKerasApplicationOnOnnx,
} from '../../src/engine/models/kerasApplications';
import type { BuiltModel } from '../../src/engine/models/kerasGraph';
import { getTf } from '../../src/engine/tf';
import { DIST, writeH5, type H5File } from './fixtures';

/** A layer of a legacy weights-only file: its name and its arrays' names (relative to its group) and shapes. */
export interface LegacyLayer {
  name: string;
  weights: { name: string; shape: number[]; data?: Float32Array }[];
}

/** A legacy weights-only layout: root `layer_names`, each layer's `weight_names` as paths inside its group. */
export function fillLegacy(root: H5File, layers: readonly LegacyLayer[]): void {
  root.create_attribute(
    'layer_names',
    layers.map((l) => l.name),
  );
  for (const layer of layers) {
    const group = root.create_group(layer.name);
    if (layer.weights.length === 0) continue;
    group.create_attribute(
      'weight_names',
      layer.weights.map((w) => w.name),
    );
    for (const weight of layer.weights) {
      const parts = weight.name.split('/');
      let target = group;
      for (const dir of parts.slice(0, -1)) target = (target.get(dir) ?? target.create_group(dir)) as typeof group;
      const size = weight.shape.reduce((a, b) => a * b, 1);
      target.create_dataset({ name: parts.at(-1)!, data: weight.data ?? new Float32Array(size), shape: weight.shape });
    }
  }
}

/** Our model's layers with weights, in Keras order, spelt the tf.keras 2 way (`name/kernel:0`). */
export function legacyLayersOf(built: BuiltModel): LegacyLayer[] {
  return built.kerasOrder
    .map((name) => built.model.getLayer(name))
    .filter((layer) => layer.weights.length > 0)
    .map((layer) => ({
      name: layer.name,
      weights: layer.weights.map((w) => ({
        name: `${layer.name}/${w.originalName.split('/').pop()}:0`,
        shape: w.shape as number[],
      })),
    }));
}

/**
 * A Keras legacy weights-only HDF5 file for the catalogue's MobileNetV2 (with top), as Keras 2
 * wrote it (root `layer_names`, each layer's `weight_names` as `layer/kernel:0`), with small
 * positive values from a fixed seed: a file the loader accepts and that no other file equals,
 * so a download mixed from two transfers shows. About 14 MB, like Keras' own.
 */
export async function mobileNetV2Weights(): Promise<Buffer> {
  const { tf } = await getTf(DIST);
  const built = await buildKerasApplication(tf, 'mobilenet_v2');
  const layers = legacyLayersOf(built);
  built.model.dispose();
  let x = 0x2468ace1;
  for (const weight of layers.flatMap((l) => l.weights)) {
    const data = new Float32Array(weight.shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      data[i] = ((x >>> 0) / 2 ** 32) * 0.02;
    }
    weight.data = data;
  }
  const file = await writeH5('mobilenet_v2_weights.h5', (root) => fillLegacy(root, layers));
  const bytes = fs.readFileSync(file);
  fs.rmSync(file);
  return bytes;
}

/**
 * `id` with `file`'s weights on onnxruntime, converted without TensorFlow.js as the catalogue
 * opens it; a graph ONNX Runtime refuses fails the test.
 */
export async function loadApplicationOnOnnx(id: ApplicationId, file: string): Promise<LoadedModel> {
  const opened = await openKerasApplicationOnOnnx(id, file, {
    key: `test:onnx:${id}:${file}`,
    summary: { name: path.basename(file), description: 'test' },
  });
  if ('unsupported' in opened) throw new Error(`${id} did not convert: ${opened.unsupported}`);
  return opened;
}

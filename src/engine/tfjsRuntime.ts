// TensorFlow.js itself (core, Layers, the GraphModel converter, the wasm backend): about 7 MB of
// the engine's code, needed only by a model that does not run on onnxruntime, or the first time a
// TF.js or Keras model is converted. The production bundles load it from its own file (dist/tfjs.js,
// see esbuild.js) when tf.ts first asks for it, so a process that never needs it never reads it.
import * as path from 'node:path';
import * as tfCore from '@tensorflow/tfjs-core';
import * as tfLayers from '@tensorflow/tfjs-layers';
import * as tfConverter from '@tensorflow/tfjs-converter';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { Tf } from './tf';

/** TensorFlow.js on its wasm backend, whose .wasm files sit in `assetsDir`. */
export async function startWasm(assetsDir: string): Promise<Tf> {
  setWasmPaths(assetsDir.endsWith(path.sep) ? assetsDir : assetsDir + path.sep);
  const tf: Tf = {
    ...tfCore,
    loadLayersModel: tfLayers.loadLayersModel,
    model: tfLayers.model,
    models: tfLayers.models,
    loadGraphModel: tfConverter.loadGraphModel,
  };
  if (!(await tf.setBackend('wasm'))) throw new Error('The TensorFlow.js wasm backend could not start.');
  await tf.ready();
  return tf;
}

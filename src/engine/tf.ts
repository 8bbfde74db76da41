import type * as tfCore from '@tensorflow/tfjs-core';
import type * as tfLayers from '@tensorflow/tfjs-layers';
import type * as tfConverter from '@tensorflow/tfjs-converter';

/** The parts of the TensorFlow.js API the engine uses: core ops, Layers and GraphModel loading. */
export type Tf = typeof tfCore &
  Pick<typeof tfLayers, 'loadLayersModel' | 'model' | 'models'> &
  Pick<typeof tfConverter, 'loadGraphModel'>;

export interface TfRuntime {
  tf: Tf;
  /** 'tensorflow' (native, from @tensorflow/tfjs-node) or 'wasm'. */
  backend: string;
}

let runtime: Promise<TfRuntime> | undefined;

/**
 * Starts TensorFlow.js once per thread. Uses @tensorflow/tfjs-node when the user
 * has it installed (native and faster; it brings its own copy of the API), else
 * the bundled wasm backend, whose .wasm files sit in `assetsDir`.
 */
export function getTf(assetsDir: string): Promise<TfRuntime> {
  runtime ??= start(assetsDir);
  return runtime;
}

async function start(assetsDir: string): Promise<TfRuntime> {
  const native = tryRequireTfjsNode();
  if (native) {
    await native.ready();
    return { tf: native, backend: native.getBackend() };
  }
  // Read only now: a separate file in the production bundles (esbuild.js), so the CLI, the engine
  // process and a model on onnxruntime start without parsing TensorFlow.js.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startWasm } = require('./tfjsRuntime') as typeof import('./tfjsRuntime');
  const tf = await startWasm(assetsDir);
  return { tf, backend: tf.getBackend() };
}

function tryRequireTfjsNode(): Tf | undefined {
  if (process.env.FEATURE_MAPS_NO_TFJS_NODE) return undefined;
  try {
    // Optional accelerator: not a dependency, picked up only when installed.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@tensorflow/tfjs-node') as Tf;
  } catch {
    return undefined;
  }
}

/** How the user is told what runs a TensorFlow.js model: 'tfjs-wasm', or 'tfjs-node' for @tensorflow/tfjs-node. */
export function tfjsBackendLabel(tf: Tf): string {
  const name = tf.getBackend();
  return name === 'tensorflow' ? 'tfjs-node' : `tfjs-${name}`;
}

import type { ModelSummary } from '../shared/protocol';
import type { LayerMeta } from './layers';
import type { PreprocessMode } from './preprocess';

/** One layer's output for one image: NHWC without the batch axis, C-order. */
export interface Activation {
  shape: number[];
  data: Float32Array;
}

/** A model ready to run: what it expects, what it has, and one forward pass. */
export interface LoadedModel {
  /** Stable identity for caches: the model file and its modification time. */
  readonly key: string;
  readonly summary: ModelSummary;
  /** Input height, width, channels. */
  readonly inputSize: { height: number; width: number; channels: number };
  readonly preprocessing: PreprocessMode;
  /** Every layer in model order (topological), except the input. */
  readonly layers: LayerMeta[];
  /** One forward pass that returns every layer's activations. */
  run(input: Float32Array): Promise<Map<string, Activation>>;
  dispose(): void;
}

/** Where a model comes from. Only the bundled model exists so far; user files come next. */
export type ModelSource = { kind: 'bundled' } | { kind: 'file'; path: string };

export function modelSourceKey(source: ModelSource): string {
  return source.kind === 'bundled' ? 'bundled' : `file:${source.path}`;
}

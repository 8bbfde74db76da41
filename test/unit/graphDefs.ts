// Pieces for writing TF.js GraphModels in tests (tfjsGraph.test.ts, tfjsGraphToOnnx.test.ts):
// nodes and weights as the TF.js converter writes them, and fixed-seed numbers.

/** A GraphDef node as the TF.js converter writes it. */
export interface NodeDef {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, unknown>;
}

export interface Weight {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  values: Float32Array | Int32Array;
}

/** mulberry32: fixed-seed weights, the same on every run. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

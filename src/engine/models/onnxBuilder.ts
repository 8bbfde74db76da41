// Writing an ONNX graph in memory with onnx-proto: nodes, weights, unique tensor names, and
// the one layout question every Keras/TF.js converter meets (maps are channels last there,
// channels first in ONNX). Used by kerasToOnnx.ts and tfjsGraphToOnnx.ts.
import { onnx } from 'onnx-proto';

export const OPSET = 17;
const IR_VERSION = 8; // the IR version of opset 17 (ONNX 1.12)
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const ATTR = onnx.AttributeProto.AttributeType;

/** What a converter cannot write as ONNX, and why: the model then stays on TensorFlow.js. */
export class Unsupported extends Error {}

export function unsupported(why: string): never {
  throw new Unsupported(why);
}

export type Attribute = onnx.IAttributeProto;
export const int = (name: string, i: number): Attribute => ({ name, type: ATTR.INT, i });
export const ints = (name: string, values: number[]): Attribute => ({ name, type: ATTR.INTS, ints: values });
export const float = (name: string, f: number): Attribute => ({ name, type: ATTR.FLOAT, f });
export const str = (name: string, s: string): Attribute => ({
  name,
  type: ATTR.STRING,
  s: new TextEncoder().encode(s),
});

/**
 * A tensor in the graph being written: its name, whether a map is held channels first, and its
 * shape as the source framework has it (without batch; H×W×C for a map).
 */
export interface Value {
  name: string;
  nchw: boolean;
  shape: number[];
}

/** Nodes and weights in the making, with unique tensor names (reserved names are kept for outputs). */
export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly names: Set<string>;
  /** A tensor's other layout, made once however many consumers need it. */
  private readonly transposed = new Map<string, string>();

  constructor(reserved: Iterable<string> = []) {
    this.names = new Set(reserved);
  }

  /** A new tensor name starting with `base`. */
  fresh(base: string): string {
    let name = base;
    for (let n = 2; this.names.has(name); n++) name = `${base}_${n}`;
    this.names.add(name);
    return name;
  }

  node(op: string, inputs: string[], output: string, attribute: Attribute[] = []): string {
    this.nodes.push({ opType: op, name: output, input: inputs, output: [output], attribute });
    return output;
  }

  /** A node with several outputs (TopK's values and indices). */
  nodeOutputs(op: string, inputs: string[], outputs: string[], attribute: Attribute[] = []): string[] {
    this.nodes.push({ opType: op, name: outputs[0], input: inputs, output: outputs, attribute });
    return outputs;
  }

  /** A float32 weight; `data` is read when the model is encoded, not copied. */
  floats(base: string, dims: number[], data: Float32Array | number[]): string {
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    const name = this.fresh(base);
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: bytesOf(values) });
    return name;
  }

  scalar(base: string, value: number): string {
    return this.floats(base, [], [value]);
  }

  /** A 1-D int64 constant (pads, shapes, axes). */
  int64s(base: string, values: number[]): string {
    const name = this.fresh(base);
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    this.initializers.push({ name, dims: [values.length], dataType: INT64, rawData: bytesOf(data) });
    return name;
  }

  /** An int64 scalar (CumSum's axis). */
  int64Scalar(base: string, value: number): string {
    const name = this.fresh(base);
    this.initializers.push({ name, dims: [], dataType: INT64, rawData: bytesOf(BigInt64Array.of(BigInt(value))) });
    return name;
  }

  /** `v` channels first (4-D only). */
  nchw(v: Value): string {
    return v.nchw ? v.name : this.transpose(v.name, [0, 3, 1, 2], 'nchw');
  }

  /** `v` in the source framework's own layout (channels last). */
  nhwc(v: Value): string {
    return v.nchw ? this.transpose(v.name, [0, 2, 3, 1], 'nhwc') : v.name;
  }

  private transpose(name: string, perm: number[], suffix: string): string {
    const key = `${name}\0${suffix}`;
    let out = this.transposed.get(key);
    if (!out) {
      out = this.node('Transpose', [name], this.fresh(`${name}/${suffix}`), [ints('perm', perm)]);
      this.transposed.set(key, out);
    }
    return out;
  }

  /** The ModelProto: one float32 input of shape 1×`input.shape`, the given outputs (ORT infers their shapes). */
  encode(name: string, producer: string, input: Value, outputs: readonly { tensor: string }[]): Uint8Array {
    const tensorType = (dims?: number[]): onnx.ITypeProto => ({
      tensorType: { elemType: FLOAT, ...(dims ? { shape: { dim: dims.map((d) => ({ dimValue: d })) } } : {}) },
    });
    return onnx.ModelProto.encode({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: producer,
      graph: {
        name,
        node: this.nodes,
        initializer: this.initializers,
        input: [{ name: input.name, type: tensorType([1, ...input.shape]) }],
        output: outputs.map((o) => ({ name: o.tensor, type: tensorType() })),
      },
    }).finish();
  }
}

function bytesOf(array: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

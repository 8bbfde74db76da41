import { MAX_MODEL_FILE_BYTES } from '../files';
import type { ModelFormatEntry } from '../formats';

/** ModelProto's fields (onnx.proto) and their protobuf wire types: 0 a varint, 2 a length-delimited field. */
const MODEL_PROTO_FIELDS = new Map([
  [1, 0], // ir_version
  [2, 2], // producer_name
  [3, 2], // producer_version
  [4, 2], // domain
  [5, 0], // model_version
  [6, 2], // doc_string
  [7, 2], // graph
  [8, 2], // opset_import
  [14, 2], // metadata_props
  [20, 2], // training_info
  [25, 2], // functions
  [26, 2], // configuration
]);

/** The protobuf varint at `offset` and where the next field starts; undefined when it does not end within 10 bytes. */
function readVarint(bytes: Buffer, offset: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0; i < 10 && offset + i < bytes.length; i++) {
    const byte = bytes[offset + i];
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return { value, next: offset + i + 1 };
  }
  return undefined;
}

/**
 * ONNX: a protobuf ModelProto (`torch.onnx.export`, tf2onnx, the ONNX model zoo), run by
 * onnxruntime. Opened by models/onnx.ts.
 */
export const onnxFormat: ModelFormatEntry<'onnx'> = {
  id: 'onnx',
  label: 'ONNX model',
  files: 'ONNX .onnx',
  fileNames: [],
  extensions: ['.onnx'],
  maxBytes: MAX_MODEL_FILE_BYTES,
  noun: 'an ONNX file',
  bytesAre: 'an ONNX (protobuf) file',
  // Protobuf writers emit fields in number order, so an ONNX file begins with ir_version (field 1,
  // a varint: tag byte 0x08). A file that begins with another ModelProto field may still be one
  // (cannot tell); one that begins with no ModelProto field at all, or with no valid protobuf tag
  // (an HDF5 signature reads as field 1153, a zip as field 10, JSON's "{" as wire type 3), is not.
  sniff(head) {
    const tag = readVarint(head, 0);
    if (!tag) return false;
    const field = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    if (MODEL_PROTO_FIELDS.get(field) !== wireType) return false;
    if (field !== 1) return undefined;
    const irVersion = readVarint(head, tag.next);
    if (!irVersion) return false;
    return irVersion.value >= 1 && irVersion.value <= 255 ? true : undefined;
  },
  defaultPreprocessing(layers, inputName) {
    const names = new Set(layers.map((l) => l.name));
    if (names.has('Conv1') && names.has('expanded_conv_project'))
      return { mode: 'tf', why: 'Keras MobileNetV2 layer names' };
    return inputName === 'data_0'
      ? { mode: 'caffe', why: 'an ONNX model converted from Caffe2 (input data_0)' }
      : { mode: 'torch', why: 'the usual normalisation of PyTorch exports' };
  },
};

import * as path from 'node:path';
import { MAX_MODEL_FILE_BYTES } from '../files';
import type { ModelFormatEntry } from '../formats';

const ZIP_SIGNATURE = Buffer.from([0x50, 0x4b, 0x03, 0x04]);

/**
 * Whether the bytes are a safetensors file: an 8-byte little-endian header length, then that many
 * bytes of JSON (`{`), within the file size limit.
 */
function isSafetensors(head: Buffer): boolean {
  if (head.length < 10) return false;
  const headerBytes = head.readBigUInt64LE(0);
  return headerBytes > 1n && headerBytes < 100_000_000n && head[8] === 0x7b;
}

/**
 * PyTorch: TorchScript (`torch.jit.save`), a `torch.export` program (`.pt2`), a whole pickled
 * `nn.Module` (`torch.save(model)`), or a state_dict (`.pth`, `.pt`, `.bin`, `.safetensors`) with
 * the name of its architecture. All but safetensors are zips (torch ≥ 1.6) or, from older torch, a
 * bare pickle. Opened with the user's own Python by models/pytorch.ts, converted once to ONNX.
 */
export const pytorchFormat: ModelFormatEntry<'pytorch'> = {
  id: 'pytorch',
  label: 'PyTorch model',
  files: 'PyTorch .pt/.pth/.ptl/.pt2/.bin/.safetensors',
  fileNames: [],
  extensions: ['.pt', '.pth', '.ptl', '.pt2', '.safetensors'],
  // `.bin` is read when named, not offered: TF.js weight shards are `.bin` files too.
  alsoReads: ['.bin'],
  maxBytes: MAX_MODEL_FILE_BYTES,
  noun: 'a PyTorch file',
  bytesAre: 'a PyTorch file',
  sniff(head, file) {
    if (path.extname(file).toLowerCase() === '.safetensors') return isSafetensors(head);
    if (head.subarray(0, ZIP_SIGNATURE.length).equals(ZIP_SIGNATURE)) return true;
    // A pickle from torch < 1.6: protocol 2–5 opcode.
    if (head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return true;
    return isSafetensors(head) ? true : false;
  },
  defaultPreprocessing() {
    return { mode: 'torch', why: "torchvision's ImageNet normalisation, as PyTorch models expect" };
  },
};

import { MAX_JSON_BYTES } from '../files';
import type { ModelFormatEntry } from '../formats';

/**
 * TensorFlow.js: a model.json (a Layers model from tfjs' `model.save` or the converter's
 * `--output_format tfjs_layers_model`, or a GraphModel from the TF converter) with its weight
 * shards beside it. Any `.json` the user names is read too (a renamed model.json), but only
 * model.json is offered. modelSources.ts opens it and decides Layers or Graph.
 */
export const tfjsFormat: ModelFormatEntry<'tfjs'> = {
  id: 'tfjs',
  label: 'TF.js model',
  files: 'TF.js model.json',
  fileNames: ['model.json'],
  extensions: [],
  alsoReads: ['.json'],
  maxBytes: MAX_JSON_BYTES,
  noun: 'a TF.js model.json',
  bytesAre: 'JSON text, like a TF.js model.json',
  invalid: 'a readable TF.js model.json: it does not begin with "{"',
  // A model.json is a JSON object: its first byte after any white space is "{".
  sniff(head) {
    const first = head.findIndex((byte) => byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d);
    return first >= 0 && head[first] === 0x7b;
  },
  defaultPreprocessing(layers) {
    const names = new Set(layers.map((l) => l.name));
    if (names.has('Conv1') && names.has('expanded_conv_project')) return { mode: 'raw01', why: 'TF.js MobileNet' };
    return { mode: 'raw01', why: 'the usual scaling of TF.js image models' };
  },
};

// Decodes the MobileNetV2 that ships inside nsfwjs@4.4.0 (MIT) into a plain TF.js
// LayersModel (model.json + one .bin shard). nsfwjs wraps both files in small JS
// modules (a JSON object and a base64 string); only the decoded files are shipped.
const fs = require('node:fs');
const path = require('node:path');

// nsfwjs' "exports" hides its files: find the package folder from its main entry.
function packageRoot(name) {
  let dir = path.dirname(require.resolve(name));
  while (path.basename(dir) !== name) dir = path.dirname(dir);
  return dir;
}
const NSFWJS_MODEL_DIR = path.join(packageRoot('nsfwjs'), 'dist', 'models', 'mobilenet_v2');
const SHARD = 'group1-shard1of1';

function buildBundledModel(outRoot) {
  const outDir = path.join(outRoot, 'mobilenet_v2');
  const modelJson = path.join(outDir, 'model.json');
  if (fs.existsSync(modelJson)) return outDir;
  fs.mkdirSync(outDir, { recursive: true });

  const topology = require(path.join(NSFWJS_MODEL_DIR, 'model.min.js'));
  const shardBase64 = require(path.join(NSFWJS_MODEL_DIR, `${SHARD}.min.js`));
  if (typeof shardBase64 !== 'string' || !topology.modelTopology) {
    throw new Error('nsfwjs model modules are not in the expected form; is nsfwjs@4.4.0 installed?');
  }
  const manifest = topology.weightsManifest.map((group) => ({
    ...group,
    paths: group.paths.map((p) => (p === SHARD ? `${SHARD}.bin` : p)),
  }));
  fs.writeFileSync(path.join(outDir, `${SHARD}.bin`), Buffer.from(shardBase64, 'base64'));
  fs.writeFileSync(
    modelJson,
    JSON.stringify({
      format: 'layers-model',
      generatedBy: 'keras 2.2.4 (MobileNetV2 from nsfwjs@4.4.0, MIT)',
      modelTopology: topology.modelTopology,
      weightsManifest: manifest,
    }),
  );
  return outDir;
}

/**
 * ImageNet's 1000 class names in Keras' class order, one per line, for the catalogue models
 * that keep their classifier. From @tensorflow-models/mobilenet (Apache-2.0), at build time.
 */
function buildImagenetLabels(outRoot) {
  const out = path.join(outRoot, IMAGENET_LABELS);
  if (fs.existsSync(out)) return out;
  const { IMAGENET_CLASSES } = require('@tensorflow-models/mobilenet/dist/imagenet_classes.js');
  const names = Array.from({ length: 1000 }, (_, i) => IMAGENET_CLASSES[i]);
  if (names.some((name) => typeof name !== 'string')) {
    throw new Error('@tensorflow-models/mobilenet has no 1000 ImageNet class names; is 2.1.1 installed?');
  }
  fs.mkdirSync(outRoot, { recursive: true });
  fs.writeFileSync(out, names.join('\n') + '\n');
  return out;
}

const IMAGENET_LABELS = 'imagenet_labels.txt';

module.exports = { buildBundledModel, buildImagenetLabels, IMAGENET_LABELS };

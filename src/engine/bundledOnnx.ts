// Run by the build (esbuild.js) once the bundles are built, as dist/bundled-onnx.js: converts the
// bundled MobileNetV2 (a TF.js Layers model in dist/models/mobilenet_v2) to ONNX and writes its
// ONNX form to dist/models/mobilenet_v2-onnx, so that the extension and the CLI open it on
// onnxruntime without loading TensorFlow.js or converting anything (ModelCache).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { writeConversion } from './conversionStore';
import { ModelCache } from './modelCache';
import { BUNDLED_ONNX_DIR } from './modelSources';

async function main(assetsDir: string): Promise<void> {
  const dir = path.join(assetsDir, BUNDLED_ONNX_DIR);
  // Made afresh from the TF.js model, never from an earlier build's ONNX form.
  await fs.rm(dir, { recursive: true, force: true });
  const models = new ModelCache({ assetsDir, nativeLayers: true, memoryBudget: 2 ** 31 });
  try {
    const model = await models.load({ kind: 'bundled' });
    if (!model.onnxForm) throw new Error(`${model.summary.name} did not convert to ONNX`);
    await writeConversion(dir, model);
    console.log(`bundled model: ONNX form written to ${dir}`);
  } finally {
    models.dispose();
  }
}

main(process.argv[2] ?? __dirname).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

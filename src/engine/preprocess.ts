/**
 * How pixel values are turned into the numbers a model was trained on.
 * - `raw01`: x / 255 (MobileNet in TF.js, nsfwjs, Darknet)
 * - `tf`: x / 127.5 − 1 (Keras MobileNet, Inception)
 * - `caffe`: RGB → BGR, minus the ImageNet mean, no scaling (Keras VGG, ResNet)
 * - `torch`: x / 255, minus mean, divided by std, per RGB channel (torchvision)
 * - `none`: 0–255 as they are (models with a Rescaling layer inside)
 */
export type PreprocessMode = 'raw01' | 'tf' | 'caffe' | 'torch' | 'none';

const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68].map(Math.fround);
const TORCH_MEAN = [0.485, 0.456, 0.406];
const TORCH_STD = [0.229, 0.224, 0.225];

/** 8-bit RGB (H×W×3, row-major) → float32 NHWC model input, in float32 arithmetic like Keras. */
export function preprocess(rgb: Uint8Array, mode: PreprocessMode): Float32Array {
  const out = new Float32Array(rgb.length);
  const f = Math.fround;
  switch (mode) {
    case 'raw01':
      for (let i = 0; i < rgb.length; i++) out[i] = rgb[i] / 255;
      break;
    case 'tf':
      for (let i = 0; i < rgb.length; i++) out[i] = f(f(rgb[i] / f(127.5)) - 1);
      break;
    case 'caffe':
      for (let i = 0; i < rgb.length; i += 3) {
        out[i] = f(rgb[i + 2] - CAFFE_MEAN_BGR[0]);
        out[i + 1] = f(rgb[i + 1] - CAFFE_MEAN_BGR[1]);
        out[i + 2] = f(rgb[i] - CAFFE_MEAN_BGR[2]);
      }
      break;
    case 'torch':
      for (let i = 0; i < rgb.length; i++) {
        const c = i % 3;
        out[i] = f(f(f(rgb[i] / 255) - f(TORCH_MEAN[c])) / f(TORCH_STD[c]));
      }
      break;
    case 'none':
      out.set(rgb);
      break;
  }
  return out;
}

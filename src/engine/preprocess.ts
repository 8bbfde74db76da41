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

export const PREPROCESS_DESCRIPTIONS: Record<PreprocessMode, string> = {
  raw01: 'x / 255',
  tf: 'x / 127.5 − 1',
  caffe: 'BGR minus the ImageNet mean',
  torch: 'x / 255, ImageNet mean/std',
  none: '0–255 as they are',
};

/** 8-bit RGB (H×W×3) → luma (H×W×1), as PIL's convert('L') does: the input of grayscale models. */
export function toGray(rgb: Uint8Array): Uint8Array {
  const gray = new Uint8Array(rgb.length / 3);
  for (let i = 0, j = 0; j < gray.length; i += 3, j++) {
    gray[j] = Math.round((rgb[i] * 299 + rgb[i + 1] * 587 + rgb[i + 2] * 114) / 1000);
  }
  return gray;
}

/**
 * 8-bit pixels (H×W×3 RGB, or H×W×1 gray) → float32 NHWC model input, in float32
 * arithmetic like Keras. For one channel, `caffe` and `torch` use the green channel's statistics.
 */
export function preprocess(rgb: Uint8Array, mode: PreprocessMode, channels: 1 | 3 = 3): Float32Array {
  if (channels === 1) return preprocessGray(rgb, mode);
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

function preprocessGray(gray: Uint8Array, mode: PreprocessMode): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(gray.length);
  for (let i = 0; i < gray.length; i++) {
    const v = gray[i];
    switch (mode) {
      case 'raw01':
        out[i] = v / 255;
        break;
      case 'tf':
        out[i] = f(f(v / f(127.5)) - 1);
        break;
      case 'caffe':
        out[i] = f(v - CAFFE_MEAN_BGR[1]);
        break;
      case 'torch':
        out[i] = f(f(f(v / 255) - f(TORCH_MEAN[1])) / f(TORCH_STD[1]));
        break;
      case 'none':
        out[i] = v;
        break;
    }
  }
  return out;
}

/** The user's own normalisation, on the 0–255 scale per RGB channel: (x − mean) / std. */
export interface CustomNormalization {
  mean: [number, number, number];
  std: [number, number, number];
}

/** `preprocess` with the user's mean and std instead of a preset (gray input uses the first channel's). */
export function preprocessCustom(
  pixels: Uint8Array,
  { mean, std }: CustomNormalization,
  channels: 1 | 3 = 3,
): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const c = channels === 1 ? 0 : i % 3;
    out[i] = f(f(pixels[i] - f(mean[c])) / f(std[c]));
  }
  return out;
}

import picomatch from 'picomatch';

/** A layer as the engine knows it, in model order. */
export interface LayerMeta {
  name: string;
  op: string;
  /** Output shape without the batch axis; [] while unknown (learnt from the first pass, see learnShapes). */
  shape: number[];
}

/**
 * Fills in the shapes a loader could not work out without running the model, from a pass's
 * activations: each layer of `layers` whose shape is still [] takes its activation's.
 */
export function learnShapes(layers: readonly LayerMeta[], activations: ReadonlyMap<string, { shape: number[] }>): void {
  for (const layer of layers) {
    if (layer.shape.length === 0) layer.shape = activations.get(layer.name)?.shape ?? [];
  }
}

/** H×W×C with more than one pixel: something to draw as maps. */
export function isSpatial(shape: readonly number[]): boolean {
  return shape.length === 3 && shape[0] * shape[1] > 1 && shape[2] > 0;
}

// "block1_conv1" → "block1", "block_3_expand_BN" → "block_3", "expanded_conv_project" → "expanded_conv",
// "conv2_block1_1_conv" → "conv2_block1", "mixed_5b_…" → "mixed_5b", EfficientNet's "block2b_expand_conv" → "block2b",
// ConvNeXt's "convnext_tiny_stage_1_block_0_depthwise_conv" → "convnext_tiny_stage_1_block_0".
const BLOCK_PREFIX =
  /^((?:.*?[_/.-])?(?:block|stage|layer)[_-]?\d+[a-z]?(?:[_-](?:block|stage|layer)[_-]?\d+[a-z]?)*|mixed[_-]?\d+[a-z]?|expanded_conv)(?=[_/.-]|$)/i;
const OPENS_UNIT = /conv|dense|^input/i;
// PyTorch module paths: "layer1.0.conv1", "features.3.block.0.0", "stages.0.blocks.1.conv_dw",
// with "#2" for a module's second call.
const MODULE_PATH = /^[A-Za-z_]\w*(?:\.\w+)+(?:#\d+)?$/;

/**
 * Display groups for the layer tree, one per layer. Scoped names group by their
 * scope; layers whose names carry a block prefix (Keras' block1_…, block_3_…) are grouped by it; the rest form
 * units that start at each convolution and hold the layers that follow it
 * (BatchNorm, activation, pooling), named after that convolution.
 */
export function groupLayers(layers: readonly LayerMeta[]): string[] {
  const groups: string[] = [];
  let unit = '';
  for (const layer of layers) {
    // Scoped names (ONNX, TF graphs): "fire2/squeeze1x1_1" → "fire2",
    // "MobilenetV2/expanded_conv_1/depthwise/Relu6" → "MobilenetV2/expanded_conv_1".
    const scopes = layer.name.split('/');
    if (scopes.length > 1) {
      groups.push(scopes.slice(0, Math.min(2, scopes.length - 1)).join('/'));
      unit = '';
      continue;
    }
    // A PyTorch module path groups by the module tree, down to its first numbered child: the
    // block in a Sequential (ResNet's "layer1.0", MobileNet's "features.3", ConvNeXt's "stages.0").
    const modulePath = MODULE_PATH.test(layer.name) ? pytorchGroup(layer.name) : undefined;
    if (modulePath) {
      groups.push(modulePath);
      unit = '';
      continue;
    }
    const prefix = BLOCK_PREFIX.exec(layer.name)?.[1];
    if (prefix && prefix !== layer.name) {
      groups.push(prefix);
      unit = '';
      continue;
    }
    if (!unit || OPENS_UNIT.test(layer.op)) unit = layer.name;
    groups.push(unit);
  }
  return groups;
}

/** "layer1.0.conv1" → "layer1.0", "features.3.block.0" → "features.3"; undefined without a numbered module. */
function pytorchGroup(name: string): string | undefined {
  const parts = name.replace(/#\d+$/, '').split('.');
  const numbered = parts.findIndex((part, i) => i > 0 && /^\d+$/.test(part));
  return numbered > 0 ? parts.slice(0, numbered + 1).join('.') : undefined;
}

/**
 * Which layers the `featureMaps.layers` setting selects: exact names or glob
 * patterns (`block*_conv1`, `*relu*`). An empty list selects every spatial layer;
 * non-spatial layers are never matched.
 */
export function matchLayers(layers: readonly LayerMeta[], patterns: readonly string[]): boolean[] {
  if (!listsLayers(patterns)) return layers.map((l) => isSpatial(l.shape));
  const cleaned = patterns.map((p) => p.trim()).filter(Boolean);
  const matchers = cleaned.map((p) => picomatch(p, { nocase: true, dot: true }));
  return layers.map((l) => isSpatial(l.shape) && matchers.some((m) => m(l.name)));
}

/** Whether the `featureMaps.layers` setting names any layer (blank entries do not count). */
export function listsLayers(patterns: readonly string[]): boolean {
  return patterns.some((p) => p.trim() !== '');
}

import * as assert from 'node:assert/strict';
import { onnx } from 'onnx-proto';
import { planDerivations } from '../../src/engine/models/derivedLayers';
import type { TappedOutput } from '../../src/engine/models/onnx';

// Which 1×1 convolutions a pass leaves to be computed when read (derivedLayers.ts), on graphs as
// the converters write them. The values themselves are checked against tfjs and Keras in
// layersToOnnx.test.ts and applications.test.ts.

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const FLOAT16 = onnx.TensorProto.DataType.FLOAT16;

function floats(name: string, dims: number[], values: number[]): onnx.ITensorProto {
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) };
}

/** x (4 channels) → Conv `W` (and `B`) → y, both tapped channels first; `W` a node's output or an initializer. */
function graph(
  weight: onnx.ITensorProto,
  options: { transpose?: number[]; attributes?: onnx.IAttributeProto[]; bias?: onnx.ITensorProto } = {},
): onnx.IModelProto {
  const nodes: onnx.INodeProto[] = [];
  if (options.transpose) {
    nodes.push({
      opType: 'Transpose',
      input: [weight.name ?? ''],
      output: ['W'],
      attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: options.transpose }],
    });
  }
  const inputs = ['x', options.transpose ? 'W' : (weight.name ?? '')];
  if (options.bias) inputs.push(options.bias.name ?? '');
  nodes.push({ opType: 'Conv', input: inputs, output: ['y'], attribute: options.attributes ?? [] });
  return { graph: { node: nodes, initializer: [weight, ...(options.bias ? [options.bias] : [])] } };
}

const TAPPED: TappedOutput[] = [
  { tensor: 'x', layer: 'x', op: 'Input', layout: 'NCHW' },
  { tensor: 'y', layer: 'y', op: 'Conv2D', layout: 'NCHW' },
];

describe('1×1 convolutions computed when read', () => {
  const widening = Array.from({ length: 8 * 4 }, (_, k) => k / 10 - 1);

  it('one that widens 4 → 8 channels is, with its weights and bias as the model has them', () => {
    const bias = floats('B', [8], [1, 2, 3, 4, 5, 6, 7, 8]);
    const recipe = planDerivations(graph(floats('W', [8, 4, 1, 1], widening), { bias }), TAPPED).get('y');
    assert.equal(recipe?.kind, 'pointwise');
    if (recipe?.kind !== 'pointwise') return;
    assert.deepEqual([recipe.source, recipe.inputs, recipe.outputs], ['x', 4, 8]);
    assert.deepEqual([...recipe.matrix().weights], [...Float32Array.from(widening)]);
    assert.deepEqual([...recipe.matrix().bias], [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('a Keras kernel (1×1×in×out) read through its Transpose gives the same weights', () => {
    // Keras' HWIO: the value for output o, input i at [0, 0, i, o].
    const hwio = Array.from({ length: 32 }, (_, k) => widening[(k % 8) * 4 + Math.floor(k / 8)]);
    const recipe = planDerivations(graph(floats('K', [1, 1, 4, 8], hwio), { transpose: [3, 2, 0, 1] }), TAPPED).get(
      'y',
    );
    assert.equal(recipe?.kind, 'pointwise');
    if (recipe?.kind !== 'pointwise') return;
    assert.deepEqual([...recipe.matrix().weights], [...Float32Array.from(widening)]);
    assert.deepEqual([...recipe.matrix().bias], new Array(8).fill(0));
  });

  it('one that does not widen twice, strides, pads, is grouped, or holds no float32 weights of its size is fetched', () => {
    const ints = (name: string, values: number[]): onnx.IAttributeProto => ({
      name,
      type: onnx.AttributeProto.AttributeType.INTS,
      ints: values,
    });
    const cases: [string, onnx.IModelProto][] = [
      ['4 → 6 channels', graph(floats('W', [6, 4, 1, 1], widening.slice(0, 24)))],
      ['stride 2', graph(floats('W', [8, 4, 1, 1], widening), { attributes: [ints('strides', [2, 2])] })],
      ['padded', graph(floats('W', [8, 4, 1, 1], widening), { attributes: [ints('pads', [1, 1, 1, 1])] })],
      [
        'two groups',
        graph(floats('W', [8, 2, 1, 1], widening.slice(0, 16)), {
          attributes: [{ name: 'group', type: onnx.AttributeProto.AttributeType.INT, i: 2 }],
        }),
      ],
      ['3×3', graph(floats('W', [8, 4, 3, 3], new Array(288).fill(0.5)))],
      ['float16 weights', graph({ ...floats('W', [8, 4, 1, 1], []), dataType: FLOAT16, rawData: new Uint8Array(64) })],
      ['fewer weights than its dims say', graph(floats('W', [8, 4, 1, 1], widening.slice(0, 20)))],
    ];
    for (const [title, model] of cases) assert.equal(planDerivations(model, TAPPED).has('y'), false, title);
  });
});

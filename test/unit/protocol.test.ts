import * as assert from 'node:assert/strict';
import { isFromWebview, isLayerDataRequest } from '../../src/shared/protocol';

describe('messages from the webview', () => {
  it('accepts the messages the webview sends', () => {
    assert.ok(isFromWebview({ type: 'ready' }));
    assert.ok(isLayerDataRequest(['k', 'Conv1', 16]));
    assert.ok(isFromWebview({ type: 'layerSelected', layer: 'Conv1' }));
  });

  it('rejects anything malformed before the host acts on it', () => {
    for (const bad of [null, 'ready', {}, { type: 'eval' }, { type: 'layerSelected' }]) {
      assert.equal(isFromWebview(bad), false, JSON.stringify(bad));
    }
    for (const bad of [
      ['k', 'x', 0],
      ['k', 'x', 1.5],
      [1, 'x', 4],
      ['k', 'x'],
      ['k', 'x', 4, 'extra'],
    ]) {
      assert.equal(isLayerDataRequest(bad), false, JSON.stringify(bad));
    }
  });
});

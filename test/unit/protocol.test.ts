import * as assert from 'node:assert/strict';
import { isFromWebview } from '../../src/shared/protocol';

describe('messages from the webview', () => {
  it('accepts the messages the webview sends', () => {
    assert.ok(isFromWebview({ type: 'ready' }));
    assert.ok(isFromWebview({ type: 'requestLayer', requestId: 3, resultKey: 'k', layer: 'Conv1', count: 16 }));
    assert.ok(isFromWebview({ type: 'layerSelected', layer: 'Conv1' }));
  });

  it('rejects anything malformed before the host acts on it', () => {
    for (const bad of [
      null,
      'ready',
      {},
      { type: 'eval' },
      { type: 'requestLayer', requestId: 1, resultKey: 'k', layer: 'x', count: 0 },
      { type: 'requestLayer', requestId: '1', resultKey: 'k', layer: 'x', count: 4 },
      { type: 'layerSelected' },
    ]) {
      assert.equal(isFromWebview(bad), false, JSON.stringify(bad));
    }
  });
});

// Example in-host test: runs inside a real VS Code extension host (see index.ts).
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

const EXTENSION_ID = 'feature-maps.feature-maps';

describe('Feature Maps commands', () => {
  before(async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, `${EXTENSION_ID} is not loaded`);
    await extension.activate();
  });

  it('registers "Feature Maps: Show Feature Maps"', async () => {
    const commands = await vscode.commands.getCommands(true);
    assert.ok(commands.includes('featureMaps.show'), 'featureMaps.show is not registered');
  });
});

// In-host tests: the real extension in a real VS Code, driven through its command.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { FeatureMapsApi } from '../../src/extension';

const EXTENSION_ID = 'feature-maps.feature-maps';

function workspaceFile(name: string): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the test workspace is open');
  return vscode.Uri.joinPath(folder.uri, name);
}

async function until<T>(read: () => T, ok: (value: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = read();
  while (!ok(value)) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last seen ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = read();
  }
  return value;
}

describe('the Feature Maps panel', () => {
  let api: FeatureMapsApi;
  const config = () => vscode.workspace.getConfiguration('featureMaps');

  before(async () => {
    const extension = vscode.extensions.getExtension<FeatureMapsApi>(EXTENSION_ID);
    assert.ok(extension, `${EXTENSION_ID} is not loaded`);
    api = await extension.activate();
  });

  after(async () => {
    for (const key of ['channels', 'layers', 'colormap'])
      await config().update(key, undefined, vscode.ConfigurationTarget.Global);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('declares every setting with a default', () => {
    assert.equal(config().get('channels'), 16);
    assert.deepEqual(config().get('layers'), []);
    assert.equal(config().get('colormap'), 'viridis');
    assert.equal(config().get('normalization'), 'channel');
  });

  it('opens for chelsea.png with the bundled model, titled with the image name', async () => {
    await vscode.commands.executeCommand('featureMaps.show', workspaceFile('chelsea.png'));
    const panel = api.panel();
    assert.equal(panel?.state, 'result', JSON.stringify(panel));
    assert.equal(panel?.title, 'Feature Maps: chelsea.png');
    assert.ok((panel?.layersShown ?? 0) > 100, 'every layer with maps is listed by default');
    assert.equal(await api.engineBackend(), 'wasm');
  });

  it('follows the next image in the same panel', async () => {
    await vscode.commands.executeCommand('featureMaps.show', workspaceFile('coffee.png'));
    assert.equal(api.panel()?.title, 'Feature Maps: coffee.png');
    assert.equal(api.panel()?.state, 'result');
  });

  it('computes the layer on screen first, and the other layers once the image stays on screen', async () => {
    await vscode.commands.executeCommand('featureMaps.show', workspaceFile('horse.png'));
    assert.equal(api.panel()?.layersComputed, 'shown', 'the grid came from a pass over its own layer');
    await until(
      () => api.panel()?.layersComputed,
      (computed) => computed === 'all',
      'the other layers to be computed in the background',
    );
  });

  it('shows the last of ten images picked quickly, and every command finishes (no stuck progress)', async () => {
    const names = ['chelsea.png', 'coffee.png', 'astronaut.png', 'horse.png', 'camera.png'];
    const picks = [...names, ...names.slice(0, 4), 'palette_color.png'];
    const commands = picks.map((name) => vscode.commands.executeCommand('featureMaps.show', workspaceFile(name)));
    const finished = await Promise.race([
      Promise.all(commands).then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 30_000)),
    ]);
    assert.ok(finished, 'all ten commands (and their progress notifications) finished');
    assert.equal(api.panel()?.title, 'Feature Maps: palette_color.png');
    assert.equal(api.panel()?.state, 'result');
  });

  it('passes a settings change to the open panel', async () => {
    await config().update('channels', 9, vscode.ConfigurationTarget.Global);
    await until(
      () => api.panel()?.settings.channels,
      (n) => n === 9,
      'channels = 9 in the panel',
    );
    await config().update('layers', ['block_1_*', 'Conv1'], vscode.ConfigurationTarget.Global);
    const shown = await until(
      () => api.panel()?.layersShown,
      (n) => n === 10,
      'the layers setting to narrow the tree',
    );
    assert.equal(shown, 10, 'Conv1 and the nine block_1 layers with maps');
  });

  it('runs the model the user picks with "Use as Feature Map Model", then goes back to the bundled one', async () => {
    await vscode.commands.executeCommand('featureMaps.show', workspaceFile('coffee.png'));
    await vscode.commands.executeCommand(
      'featureMaps.useAsModel',
      workspaceFile('models/darknet-tiny-imagenet.tfjs/model.json'),
    );
    assert.equal(config().get('model'), 'models/darknet-tiny-imagenet.tfjs/model.json');
    await until(
      () => api.panel()?.model,
      (m) => m === 'darknet-tiny-imagenet.tfjs',
      'the panel to run Darknet',
    );
    assert.equal(api.panel()?.state, 'result');

    await config().update('model', 'models/missing.onnx', vscode.ConfigurationTarget.Workspace);
    const failed = await until(
      () => api.panel(),
      (p) => p?.state === 'error',
      'a message about the missing model',
    );
    assert.match(failed?.error ?? '', /missing\.onnx does not exist/);
    assert.equal(failed?.model, 'darknet-tiny-imagenet.tfjs', 'the last good result is kept');

    await config().update('model', undefined, vscode.ConfigurationTarget.Workspace);
    await until(
      () => api.panel()?.model,
      (m) => m === 'MobileNetV2 (bundled)',
      'the bundled model again',
    );
  });

  it('shows a clear message for a damaged image, never a blank panel', async () => {
    await vscode.commands.executeCommand('featureMaps.show', workspaceFile('truncated.jpg'));
    const panel = api.panel();
    assert.equal(panel?.state, 'error');
    assert.match(panel?.error ?? '', /truncated\.jpg could not be decoded: the file looks damaged or incomplete/);
  });

  it('leaves the panel alone when asked for a file that is not an image', async () => {
    const before = api.panel();
    await vscode.commands.executeCommand('featureMaps.show', workspaceFile('notes.txt'));
    assert.deepEqual(api.panel(), before);
  });
});

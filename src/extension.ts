import * as vscode from 'vscode';
import { registerSelectModel } from './commands/selectModel';
import { registerShowFeatureMaps } from './commands/showFeatureMaps';
import { onDidChangeSettings } from './config';
import { EngineClient } from './engine/client';
import { ModelStore } from './modelStore';
import { PanelManager } from './panel/panelManager';
import type { PanelSnapshot } from './panel/featureMapsPanel';

/** What `activate` returns: read-only views used by the integration tests. */
export interface FeatureMapsApi {
  panel(): PanelSnapshot | undefined;
  engineBackend(): Promise<string>;
  /** Where catalogue models are downloaded. */
  modelCacheDir(): string;
}

export function activate(context: vscode.ExtensionContext): FeatureMapsApi {
  const log = vscode.window.createOutputChannel('Feature Maps', { log: true });
  const dist = vscode.Uri.joinPath(context.extensionUri, 'dist').fsPath;
  // The worker starts on first use, not at activation.
  const engine = new EngineClient({
    workerPath: vscode.Uri.joinPath(context.extensionUri, 'dist', 'worker.js').fsPath,
    assetsDir: dist,
    log: (line) => log.info(line),
  });
  const models = new ModelStore(context.globalStorageUri, log);
  const panels = new PanelManager(context.extensionUri, { engine, models, log });

  context.subscriptions.push(
    log,
    { dispose: () => engine.dispose() },
    models,
    panels,
    registerShowFeatureMaps(panels),
    registerSelectModel(models),
    onDidChangeSettings(() => panels.settingsChanged()),
  );

  return {
    panel: () => panels.snapshot(),
    engineBackend: () => engine.backend(),
    modelCacheDir: () => models.cacheDir,
  };
}

export function deactivate(): void {}

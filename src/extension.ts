import { monitorEventLoopDelay } from 'node:perf_hooks';
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

  // `npm run bench` sets this to read how long the extension host's thread was ever blocked.
  if (process.env.FEATURE_MAPS_MONITOR_MAIN_THREAD === '1') context.subscriptions.push(monitorMainThread(log));

  return {
    panel: () => panels.snapshot(),
    engineBackend: () => engine.backend(),
    modelCacheDir: () => models.cacheDir,
  };
}

export function deactivate(): void {}

/** Logs the longest event-loop delay of this thread each time it grows. */
function monitorMainThread(log: vscode.LogOutputChannel): vscode.Disposable {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let logged = 0;
  const timer = setInterval(() => {
    const worst = Math.round(histogram.max / 1e6);
    if (worst > logged) log.info(`main thread: longest block so far ${(logged = worst)} ms`);
  }, 500);
  return { dispose: () => (clearInterval(timer), histogram.disable()) };
}

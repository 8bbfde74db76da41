import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as vscode from 'vscode';
import { registerExportLayer } from './commands/exportLayer';
import { registerSelectModel } from './commands/selectModel';
import { registerSetArchitecture } from './commands/setArchitecture';
import { registerShowFeatureMaps } from './commands/showFeatureMaps';
import { SECTION, onDidChangeSettings, readExecutionProvider, readModelSettings } from './config';
import { EngineClient, type EngineStats } from './engine/client';
import { EngineWarmUp } from './engineWarmUp';
import { ModelStore } from './modelStore';
import { CrashMemory } from './panel/crashMemory';
import { PanelManager } from './panel/panelManager';
import type { PanelSnapshot } from './panel/featureMapsPanel';
import { PytorchAnswers } from './python/answers';
import { PythonInterpreter } from './python/interpreter';
import { PytorchSupport } from './python/pytorchSupport';

/** What `activate` returns: read-only views used by the integration tests. */
export interface FeatureMapsApi {
  panel(): PanelSnapshot | undefined;
  engineBackend(): Promise<string>;
  /** The engine process: its pid, memory and how many times it was started. */
  engineStats(): EngineStats;
  /** Where catalogue models are downloaded. */
  modelCacheDir(): string;
}

export function activate(context: vscode.ExtensionContext): FeatureMapsApi {
  const log = vscode.window.createOutputChannel('Feature Maps', { log: true });
  const dist = vscode.Uri.joinPath(context.extensionUri, 'dist').fsPath;
  // The engine process starts on first use, or a little after the window starts in a folder
  // that showed feature maps before (EngineWarmUp).
  const engine = new EngineClient({
    enginePath: vscode.Uri.joinPath(context.extensionUri, 'dist', 'engine.js').fsPath,
    assetsDir: dist,
    // Converted Keras and TF.js models, beside the PyTorch conversions (hints.cacheDir).
    conversionsDir: vscode.Uri.joinPath(context.globalStorageUri, 'conversions').fsPath,
    log: (line) => log.info(line),
    executionProvider: readExecutionProvider(),
    // An idle engine that keeps more than a pass's budget plus its caches (models, 256 MB of
    // results) resident starts afresh.
    recycleRssBytes: () => readModelSettings().memoryBudgetBytes + 1.5 * 1024 ** 3,
  });
  const models = new ModelStore(context.globalStorageUri, log);
  const crashes = new CrashMemory(context.workspaceState);
  const interpreter = new PythonInterpreter(log);
  const pytorch = new PytorchSupport(
    interpreter,
    new PytorchAnswers(context.workspaceState, context.globalState),
    context.globalStorageUri.fsPath,
    log,
  );
  const warmUp = new EngineWarmUp(context.storageUri?.fsPath, engine, models, log);
  const panels = new PanelManager(context.extensionUri, { engine, models, log, crashes, pytorch, warmUp });

  context.subscriptions.push(
    log,
    { dispose: () => engine.dispose() },
    warmUp,
    models,
    panels,
    registerShowFeatureMaps(panels),
    registerExportLayer(panels),
    registerSelectModel(models),
    registerSetArchitecture(pytorch, panels),
    interpreter,
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(`${SECTION}.pythonPath`)) panels.pythonChanged();
      if (event.affectsConfiguration(`${SECTION}.executionProvider`)) {
        engine.useExecutionProvider(readExecutionProvider());
        panels.executionProviderChanged();
      }
    }),
    onDidChangeSettings(() => panels.settingsChanged()),
    interpreter.onDidChange(() => panels.pythonChanged()),
    // Trusting the folder brings its own model settings into effect, and lets a pickle be asked about.
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      panels.settingsChanged();
      panels.pythonChanged();
    }),
  );

  warmUp.schedule();

  // `npm run bench` sets this to read how long the extension host's thread was ever blocked.
  if (process.env.FEATURE_MAPS_MONITOR_MAIN_THREAD === '1') context.subscriptions.push(monitorMainThread(log));

  return {
    panel: () => panels.snapshot(),
    engineBackend: () => engine.backend(),
    engineStats: () => engine.stats(),
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

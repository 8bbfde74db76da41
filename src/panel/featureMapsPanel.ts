import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  ignoredInRestrictedMode,
  modelIdentity,
  readModelSettings,
  readSettings,
  SECTION,
  type ModelSettings,
} from '../config';
import { CATALOG, CATALOG_PREFIX, catalogEntry } from '../engine/catalog';
import type { EngineClient } from '../engine/client';
import type { ModelSource } from '../engine/model';
import type { ModelStore } from '../modelStore';
import {
  CancelledError,
  EngineStoppedError,
  NotCachedError,
  PythonError,
  RejectedDownloadError,
  UserFacingError,
  errorText,
} from '../engine/errors';
import { SELECT_MODEL_COMMAND } from '../commands/selectModel';
import { listsLayers, matchLayers } from '../engine/layers';
import { isRpcMessage, serve, type RpcChannel } from '../shared/rpc';
import { exportLayer } from './layerExport';
import {
  isFromWebview,
  isChannelStatsRequest,
  isChannelValuesRequest,
  isLayerDataRequest,
  type ExtractionResult,
  type PanelAction,
  type PanelActionId,
  type PanelHostApi,
  type FromWebview,
  type LayerViewInfo,
  type ToWebview,
  type ViewSettings,
} from '../shared/protocol';
import type { PytorchSupport } from '../python/pytorchSupport';
import type { EngineWarmUp } from '../engineWarmUp';
import type { CrashMemory } from './crashMemory';
import { Disposable } from './disposable';
import { panelHtml } from './html';

export const VIEW_TYPE = 'featureMaps.panel';

/** How long an image stays on screen before the layers not yet shown are computed. */
const COMPLETION_DELAY_MS = 300;
/** The same, for a result the webview does not say it shows (see completeInBackground). */
const COMPLETION_UNSEEN_DELAY_MS = 3000;

/**
 * Work quicker than this shows no "Computing…" over the maps already on screen (they are simply
 * replaced), and work quicker than NOTIFICATION_DELAY_MS no notification: most images take a
 * fraction of a second, and a banner or a toast that flashes by only costs the window a redraw.
 */
const LOADING_DELAY_MS = 250;
const NOTIFICATION_DELAY_MS = 1000;
/** A visible webview says `ready` within a second or two; this long without it, its page did not load. */
const READY_WAIT_MS = 8000;

/** A PyTorch model could not be opened: the message, and what the user can do about it. */
class PytorchProblemError extends UserFacingError {
  constructor(
    message: string,
    readonly code: string,
    detail: string | undefined,
    readonly actions: PanelAction[],
    readonly fix: string | undefined,
  ) {
    super(message, detail);
    this.name = 'PytorchProblemError';
  }
}

/** What the panel shows now; kept on the host so a reloaded or re-shown webview gets it again. */
type PanelState =
  | { kind: 'loading'; fileName: string; message: string }
  | {
      kind: 'error';
      fileName: string;
      message: string;
      detail?: string;
      /** Buttons beyond Retry (choose the architecture, run the fix…). */
      actions?: PanelAction[];
      /** The command runFix/copyFix use: kept here, never taken from the webview. */
      fix?: string;
      /** The error was a problem of a PyTorch model's Python (PythonError's code): a new interpreter or trust may fix it. */
      pythonProblem?: string;
    }
  | { kind: 'result'; result: ExtractionResult };

export interface PanelSnapshot {
  imagePath: string | undefined;
  title: string;
  state: PanelState['kind'] | 'empty';
  error?: string;
  /** The error's own buttons (their labels), e.g. "Choose Architecture…". */
  errorActions?: string[];
  settings: ViewSettings;
  layersShown?: number;
  /** The model of the last result shown. */
  model?: string;
  /** 'all' when the result shown came with every layer, or the background pass completed it. */
  layersComputed?: 'shown' | 'all';
}

/** What every panel shares: the engine process, the downloaded models, the log, the passes that stopped the engine. */
export interface PanelServices {
  engine: EngineClient;
  models: ModelStore;
  log: vscode.LogOutputChannel;
  crashes: CrashMemory;
  pytorch: PytorchSupport;
  warmUp: EngineWarmUp;
}

/**
 * One Feature Maps panel. It follows the image the user picked last: a new
 * image cancels the work for the previous one. Owns the webview's HTML,
 * the message dispatch and the extraction jobs.
 */
export class FeatureMapsPanel extends Disposable {
  private readonly engine: EngineClient;
  private readonly models: ModelStore;
  private readonly log: vscode.LogOutputChannel;
  private readonly crashes: CrashMemory;
  private readonly pytorch: PytorchSupport;
  private readonly warmUp: EngineWarmUp;
  private state: PanelState | undefined;
  private lastResult: ExtractionResult | undefined;
  private imageUri: vscode.Uri | undefined;
  private settings: ViewSettings = readSettings();
  private modelSettings: ModelSettings = readModelSettings();
  private job: AbortController | undefined;
  /** The background pass that computes the layers the first grid did not need. */
  private completion: AbortController | undefined;
  /** The result whose every layer is computed. */
  private completed: string | undefined;
  /** The layer the webview shows: the next image computes it first. */
  private selectedLayer: string | undefined;
  /** What the webview shows of the selected layer (its page, zoom, overlay): what Export saves. */
  private layerView: LayerViewInfo | undefined;
  private ready = false;
  /** The result whose input pixels the webview has (see postPixels). */
  private pixelsPosted: string | undefined;
  /** A top-5 to ask for once its result is on screen (see showPredictions). */
  private predictionsDue:
    { result: ExtractionResult; labelsPath: string | undefined; job: AbortController } | undefined;
  /** Starts the background pass of a result once the webview says it is on screen (see completeInBackground). */
  private completionOnShown: { resultKey: string; begin: () => void } | undefined;
  /** What Restricted Mode ignores of the workspace's settings, shown with the model. */
  private restrictedNotice: string | undefined;
  private readyWatch: ReturnType<typeof setTimeout> | undefined;
  /** When the panel's page was first given to the webview (logged when it says `ready`). */
  private pageLoading: number | undefined = Date.now();
  /** How many times the page was loaded again because it did not say `ready`. */
  private reloads = 0;

  private readonly onDidDisposeEmitter = this.register(new vscode.EventEmitter<void>());
  readonly onDidDispose = this.onDidDisposeEmitter.event;
  private readonly onDidBecomeActiveEmitter = this.register(new vscode.EventEmitter<void>());
  readonly onDidBecomeActive = this.onDidBecomeActiveEmitter.event;
  /** The page did not load, even loaded again: the owner replaces this panel with a new one. */
  private readonly onDidStallEmitter = this.register(new vscode.EventEmitter<void>());
  readonly onDidStall = this.onDidStallEmitter.event;

  static create(
    extensionUri: vscode.Uri,
    services: PanelServices,
    viewColumn: vscode.ViewColumn = vscode.ViewColumn.Beside,
  ): FeatureMapsPanel {
    const panel = vscode.window.createWebviewPanel(
      VIEW_TYPE,
      'Feature Maps',
      { viewColumn, preserveFocus: false },
      FeatureMapsPanel.webviewOptions(extensionUri),
    );
    return new FeatureMapsPanel(panel, extensionUri, services);
  }

  static webviewOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media')],
    };
  }

  constructor(
    readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    services: PanelServices,
  ) {
    super();
    this.engine = services.engine;
    this.models = services.models;
    this.log = services.log;
    this.crashes = services.crashes;
    this.pytorch = services.pytorch;
    this.warmUp = services.warmUp;
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    panel.webview.options = FeatureMapsPanel.webviewOptions(extensionUri);
    panel.webview.html = panelHtml(panel.webview, extensionUri, 'Feature Maps');
    this.register(panel.onDidDispose(() => this.dispose()));
    this.register({ dispose: () => clearTimeout(this.readyWatch) });
    this.register(
      panel.onDidChangeViewState(({ webviewPanel }) => {
        if (webviewPanel.active) this.onDidBecomeActiveEmitter.fire();
        if (webviewPanel.visible) this.watchForReady(extensionUri);
      }),
    );
    this.watchForReady(extensionUri);
    this.register(
      panel.webview.onDidReceiveMessage((message: unknown) => {
        if (isFromWebview(message)) void this.onMessage(message);
        else if (!isRpcMessage(message))
          this.log.warn(`ignored a malformed message from the webview: ${JSON.stringify(message)?.slice(0, 200)}`);
      }),
    );
    // The webview's requests (see PanelHostApi), answered through the same RPC as the engine's.
    const webviewChannel: RpcChannel = {
      post: (message) => {
        // A reply that comes after the panel closed has no one to go to.
        if (!this.isDisposed) void panel.webview.postMessage(message);
      },
      onMessage: (listener) => {
        const subscription = panel.webview.onDidReceiveMessage((message: unknown) => {
          if (isRpcMessage(message)) listener(message);
        });
        return () => subscription.dispose();
      },
    };
    const server = serve<PanelHostApi>(
      webviewChannel,
      {
        layerData: (_context, ...args) => {
          if (!isLayerDataRequest(args)) throw new Error('Malformed layer request.');
          const [resultKey, layer, count, channels] = args;
          return this.fromEngine(resultKey, () => this.engine.layerData(resultKey, layer, count, channels), true).then(
            (data) => {
              this.log.info(`${layer}: ${data.count} channels, ${kilobytes(messageBytes(data))} KB to the webview`);
              return data;
            },
          );
        },
        channelStats: (_context, ...args) => {
          if (!isChannelStatsRequest(args)) throw new Error('Malformed statistics request.');
          const [resultKey, layer] = args;
          return this.fromEngine(resultKey, () => this.engine.channelStats(resultKey, layer), true);
        },
        channelValues: (_context, ...args) => {
          if (!isChannelValuesRequest(args)) throw new Error('Malformed channel request.');
          const [resultKey, layer, channel] = args;
          return this.fromEngine(resultKey, () => this.engine.channelValues(resultKey, layer, channel), true);
        },
      },
      // The webview shows the message; the stack stays in the log.
      { encodeError: (error) => ({ name: 'Error', message: errorText(error) }) },
    );
    this.register({ dispose: () => server.dispose() });
  }

  /**
   * A visible webview says `ready` within a second or two. Seen in the browser-hosted
   * workbench after a reload: a webview whose page never loaded (a service-worker race)
   * stays blank. Load the page again; if that does not load either, the frame itself is
   * broken: ask for a new panel in its place (`onDidStall`) rather than leave the user a blank one.
   */
  private watchForReady(extensionUri: vscode.Uri): void {
    if (this.ready || this.readyWatch || !this.panel.visible) return;
    this.readyWatch = setTimeout(() => {
      this.readyWatch = undefined;
      if (this.ready || this.isDisposed || !this.panel.visible) return;
      if (this.reloads === 0) {
        this.reloads++;
        this.log.warn(`the panel did not load within ${READY_WAIT_MS / 1000} s; loading it again`);
        this.panel.webview.html = panelHtml(this.panel.webview, extensionUri, 'Feature Maps');
        this.watchForReady(extensionUri);
      } else {
        this.log.warn('the panel did not load after loading it again');
        this.onDidStallEmitter.fire();
      }
    }, READY_WAIT_MS);
  }

  /** A restored panel with nothing to show (no image was remembered). */
  showNothing(): void {
    this.setState({
      kind: 'error',
      fileName: '',
      message: 'Right-click an image in the Explorer and choose Show Feature Maps.',
    });
  }

  get image(): vscode.Uri | undefined {
    return this.imageUri;
  }

  snapshot(): PanelSnapshot {
    return {
      imagePath: this.imageUri?.fsPath,
      title: this.panel.title,
      state: this.state?.kind ?? 'empty',
      error: this.state?.kind === 'error' ? this.state.message : undefined,
      errorActions: this.state?.kind === 'error' ? this.state.actions?.map((a) => a.label) : undefined,
      settings: this.settings,
      layersShown: this.state?.kind === 'result' ? this.state.result.layers.filter((l) => l.matched).length : undefined,
      model: this.lastResult?.model.name,
      layersComputed: this.lastResult && (this.completed === this.lastResult.resultKey ? 'all' : 'shown'),
    };
  }

  reveal(): void {
    this.panel.reveal(undefined, false);
  }

  /** Shows the feature maps of `imageUri`, replacing whatever the panel showed. */
  show(imageUri: vscode.Uri): Promise<void> {
    this.follow(imageUri);
    return this.extract({ progress: true });
  }

  /**
   * A panel revived after a window reload: it shows its image again, unless that very pass
   * (image and model) stopped the engine last time. That one runs again only when the user asks.
   */
  restore(imageUri: vscode.Uri): Promise<void> {
    this.follow(imageUri);
    const stoppedIt = this.crashes.find(imageUri.fsPath, modelIdentity(this.modelSettings));
    if (!stoppedIt) return this.extract({ progress: true });
    this.setState({
      kind: 'error',
      fileName: path.basename(imageUri.fsPath),
      message: `Not run again after the reload: last time, this image with this model stopped the engine. ${stoppedIt} Retry runs it again.`,
    });
    return Promise.resolve();
  }

  private follow(imageUri: vscode.Uri): void {
    this.imageUri = imageUri;
    this.modelSettings = readModelSettings(imageUri);
    this.panel.title = `Feature Maps: ${path.basename(imageUri.fsPath)}`;
    this.postIdentity();
  }

  /** Settings changed: redraw, mark again which layers the tree lists, or run the new model. */
  updateSettings(): void {
    this.settings = readSettings(this.imageUri);
    this.post({ type: 'settings', settings: this.settings });
    const previousModel = this.modelSettings;
    this.modelSettings = readModelSettings(this.imageUri);
    if (this.imageUri && JSON.stringify(previousModel) !== JSON.stringify(this.modelSettings)) {
      void this.extract({ progress: true });
    } else if (this.state?.kind === 'result') {
      this.setState({ kind: 'result', result: this.withMatches(this.state.result) });
    }
  }

  /**
   * The result as the panel shows it: the layers the `featureMaps.layers` setting lists marked
   * (cheap, so no trip to the engine), and a word on settings Restricted Mode ignores.
   */
  private withMatches(result: ExtractionResult): ExtractionResult {
    const matched = matchLayers(result.layers, this.settings.layers);
    return {
      ...result,
      model: { ...result.model, notice: this.restrictedNotice },
      layers: result.layers.map((layer, i) => ({ ...layer, matched: matched[i] })),
    };
  }

  override dispose(): void {
    if (this.isDisposed) return;
    this.job?.abort();
    this.completion?.abort();
    this.onDidDisposeEmitter.fire();
    super.dispose();
    this.panel.dispose();
  }

  private async extract({ progress }: { progress: boolean }): Promise<void> {
    const imageUri = this.imageUri;
    if (!imageUri) return;
    this.job?.abort();
    this.completion?.abort();
    const job = new AbortController();
    this.job = job;
    const fileName = path.basename(imageUri.fsPath);

    if (imageUri.scheme !== 'file') {
      this.setState({
        kind: 'error',
        fileName,
        message: `${fileName} is not a file on disk (${imageUri.scheme}:), so the engine cannot read it.`,
      });
      return;
    }
    let loadingShown = false;
    const showLoading = (): void => {
      if (this.job !== job) return;
      loadingShown = true;
      this.setState({ kind: 'loading', fileName, message: 'Computing feature maps…' });
    };
    // Nothing on screen yet: say so at once. Maps on screen: replaced by the new ones, unless that takes a while.
    if (!this.lastResult) showLoading();
    const loadingTimer = this.lastResult && progress ? setTimeout(showLoading, LOADING_DELAY_MS) : undefined;

    const run = async (): Promise<void> => {
      const started = Date.now();
      try {
        const ignored = await ignoredInRestrictedMode();
        this.restrictedNotice =
          ignored.length > 0
            ? `Restricted Mode: this workspace's ${ignored.join(', ')} ${ignored.length > 1 ? 'are' : 'is'} ignored until you trust the folder.`
            : undefined;
        const { preprocessing, resize, labelsPath, customNormalization, memoryBudgetBytes } = this.modelSettings;
        let model = await this.modelSource(fileName);
        // Cancelled during a download (which goes on, with its own notification): say so below.
        if (job.signal.aborted) throw new CancelledError();
        let result: ExtractionResult | undefined;
        // A PyTorch file may need an answer first (its architecture, consent to unpickle): ask, then again.
        for (let asked = 0; !result; asked++) {
          try {
            result = await this.engine.extract(
              {
                imagePath: imageUri.fsPath,
                model,
                // The pass computes what the grid shows first and stops there; see completeInBackground.
                layerPatterns: this.settings.layers,
                onlyListedLayers: true,
                firstLayer: this.selectedLayer,
                // The top-5 follows the first grid: see showPredictions.
                headLater: true,
                // The first grid comes with the result: the webview paints it without asking.
                firstGridChannels: this.settings.channels,
                preprocessing,
                customNormalization,
                resize,
                labelsPath,
                memoryBudgetBytes,
              },
              job.signal,
              (progress) => {
                if (this.job === job && loadingShown && this.state?.kind === 'loading') {
                  this.setState({
                    kind: 'loading',
                    fileName,
                    message:
                      progress.step === 'pass'
                        ? `Running the model (about ${megabytes(progress.bytes)} MB)…`
                        : `${progress.message}…`,
                  });
                }
              },
            );
          } catch (error) {
            model = await this.answerPythonProblem(error, model, fileName, job.signal, asked);
          }
        }
        if (job.signal.aborted) return;
        void this.crashes.forget(imageUri.fsPath, modelIdentity(this.modelSettings));
        this.lastResult = result;
        this.warmUp.noteUse();
        if (!result.partial) this.completed = result.resultKey;
        this.setState({ kind: 'result', result: this.withMatches(result) });
        this.log.info(
          `${fileName}: ${result.layers.length} layers in ${Date.now() - started} ms (forward pass ${result.elapsedMs.toFixed(0)} ms${result.partial ? ', layers shown only' : ''}); ${kilobytes(messageBytes(result))} KB to the webview`,
        );
        // Once the webview has the result on screen (see onMessage, 'resultShown').
        this.predictionsDue = result.predictions ? undefined : { result, labelsPath, job };
        this.completeInBackground(result);
      } catch (error) {
        if (error instanceof CancelledError) {
          // Superseded by newer work: that work owns the panel now.
          if (this.job !== job || this.isDisposed) return;
          this.setState({
            kind: 'error',
            fileName,
            message: `Cancelled: the feature maps of ${fileName} were not computed.`,
          });
          return;
        }
        let message =
          error instanceof UserFacingError
            ? error.message
            : `Something went wrong computing the feature maps of ${fileName}: ${errorText(error)}`;
        if (error instanceof RejectedDownloadError) {
          // A downloaded catalogue file the loader refuses would fail the same way forever.
          const entry = catalogEntry(this.modelSettings.catalogSetting);
          try {
            if (entry) await this.models.discard(entry, error.message);
            message += ' The downloaded file was removed; Retry downloads it again.';
          } catch (discardError) {
            this.log.error(`could not remove ${entry?.fileName}: ${errorText(discardError)}`);
            message += ` Remove it with Manage Downloaded Models… and Retry.`;
          }
        }
        if (error instanceof EngineStoppedError) {
          void this.crashes.remember(imageUri.fsPath, modelIdentity(this.modelSettings), error.summary);
        }
        if (this.job !== job) return;
        const detail = error instanceof UserFacingError ? error.detail : (error as Error)?.stack;
        this.log.error(`${fileName}: ${errorText(error)}${detail ? `\n${detail}` : ''}`);
        if (error instanceof PytorchProblemError) {
          const { actions, fix, code } = error;
          this.setState({ kind: 'error', fileName, message, detail, actions, fix, pythonProblem: code });
          return;
        }
        this.setState({ kind: 'error', fileName, message, detail });
      } finally {
        clearTimeout(loadingTimer);
        if (this.job === job) this.job = undefined;
      }
    };

    const running = run();
    if (!progress) return running;
    // A notification (with Cancel) only for work that takes a while.
    const notify = setTimeout(() => {
      void vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Feature maps of ${fileName}`, cancellable: true },
        async (_progress, token) => {
          const subscription = token.onCancellationRequested(() => job.abort());
          try {
            await running;
          } finally {
            subscription.dispose();
          }
        },
      );
    }, NOTIFICATION_DELAY_MS);
    try {
      await running;
    } finally {
      clearTimeout(notify);
    }
  }

  /**
   * The first pass stopped at the layers on screen (ExtractRequest.headLater): the top-5 is
   * asked for once the result is on screen, and shown when it comes, unless newer work owns
   * the panel by then.
   */
  private showPredictions(result: ExtractionResult, labelsPath: string | undefined, job: AbortController): void {
    if (result.predictions) return;
    this.engine.predictions(result.resultKey, labelsPath, job.signal).then(
      (predictions) => {
        if (!predictions || this.job || this.lastResult?.resultKey !== result.resultKey) return;
        this.lastResult = { ...this.lastResult, predictions };
        if (this.state?.kind === 'result' && this.state.result.resultKey === result.resultKey) {
          this.state = { kind: 'result', result: { ...this.state.result, predictions } };
          this.post({ type: 'predictions', resultKey: result.resultKey, predictions });
        }
      },
      (error: unknown) => {
        // Superseded, or the engine let the image go: the next image has its own.
        if (!(error instanceof CancelledError) && !(error instanceof NotCachedError)) {
          this.log.warn(`${result.input.fileName}: no top-5: ${errorText(error)}`);
        }
      },
    );
  }

  /**
   * When every layer is listed, the first pass computed only the one on screen (and the head):
   * the rest follows once the user stays on the image for a moment, so that switching layers is
   * then instant, while stepping quickly through a folder of images never waits for it. A listed
   * subset stays as it is: the other layers are computed only if the user asks for one.
   */
  private completeInBackground(result: ExtractionResult): void {
    if (!result.partial || listsLayers(this.settings.layers)) return;
    const completion = new AbortController();
    this.completion = completion;
    let start: ReturnType<typeof setTimeout> | undefined;
    let begun = false;
    const beginIn = (delayMs: number) => {
      if (begun) return;
      clearTimeout(start);
      start = setTimeout(() => {
        begun = true;
        const started = Date.now();
        this.engine.complete(result.resultKey, completion.signal).then(
          () => {
            this.completed = result.resultKey;
            this.log.info(`${result.input.fileName}: the other layers in ${Date.now() - started} ms`);
          },
          (error: unknown) => {
            // Cancelled by a newer image, or evicted: a layer asked for later is computed then.
            if (!(error instanceof CancelledError) && !(error instanceof NotCachedError)) {
              this.log.warn(`${result.input.fileName}: the other layers were not computed: ${errorText(error)}`);
            }
          },
        );
      }, delayMs);
    };
    // Counted from when the webview has the image on screen (resultShown): the pass, on every
    // core, does not compete with a webview still loading or painting. One that never says so
    // (hidden, or its page did not load) gets the pass anyway, later.
    beginIn(COMPLETION_UNSEEN_DELAY_MS);
    this.completionOnShown = { resultKey: result.resultKey, begin: () => beginIn(COMPLETION_DELAY_MS) };
    completion.signal.addEventListener('abort', () => clearTimeout(start), { once: true });
  }

  /**
   * A PyTorch model that needs an answer (which architecture, whether to unpickle): the user is
   * asked and the model is opened again with it. Any other error, or an answer that does not
   * help, is thrown for the panel to show, with what the user can do about it.
   */
  private async answerPythonProblem(
    error: unknown,
    model: ModelSource,
    fileName: string,
    signal: AbortSignal,
    asked: number,
  ): Promise<ModelSource> {
    if (!(error instanceof PythonError) || model.kind !== 'file' || signal.aborted) throw error;
    if (error.problem.code === 'needs-architecture') {
      this.setState({
        kind: 'loading',
        fileName,
        message: `Waiting for the architecture of ${path.basename(model.path)}…`,
      });
    }
    const resolution = asked < 3 ? await this.pytorch.resolve(error, model.path) : undefined;
    // The user moved on while the question was open: the newer work owns the panel.
    if (signal.aborted) throw new CancelledError();
    if (resolution?.kind === 'retry') {
      this.setState({ kind: 'loading', fileName, message: `Opening ${path.basename(model.path)}…` });
      return { ...model, hints: await this.pytorch.hints(model.path) };
    }
    throw new PytorchProblemError(
      resolution?.message ?? error.message,
      error.problem.code,
      resolution?.detail ?? error.detail,
      resolution?.actions ?? [],
      resolution?.fix,
    );
  }

  /** Runs the model again on the image shown (the user answered a question about the model). */
  rerun(): void {
    if (this.imageUri) void this.extract({ progress: true });
  }

  /** A PyTorch model's Python problem may be gone (another interpreter, a trusted folder, a new setting): try again. */
  retryPythonProblem(): void {
    if (this.state?.kind === 'error' && this.state.pythonProblem && this.imageUri && !this.job) {
      void this.extract({ progress: true });
    }
  }

  /** What an error's action button does; the host knows the fix command, the webview only names the action. */
  private async runAction(id: PanelActionId): Promise<void> {
    const fix = this.state?.kind === 'error' ? this.state.fix : undefined;
    switch (id) {
      case 'chooseArchitecture': {
        const modelPath = this.modelSettings.modelPath;
        if (modelPath && (await this.pytorch.chooseArchitecture(modelPath))) await this.extract({ progress: true });
        return;
      }
      case 'manageTrust':
        await vscode.commands.executeCommand('workbench.trust.manage');
        return;
      case 'runFix':
        if (fix) this.pytorch.runFix(fix);
        return;
      case 'copyFix':
        if (fix) await this.pytorch.copyFix(fix);
        return;
      case 'choosePython':
        await this.pytorch.choosePython();
        return;
      default: {
        const unexpected: never = id;
        this.log.warn(`unhandled panel action ${String(unexpected)}`);
      }
    }
  }

  /** The model to run; a catalogue model is downloaded first (once per machine), with its own progress. */
  private async modelSource(fileName: string): Promise<ModelSource> {
    const { modelPath, catalogSetting, inputSize, mirror, proxy } = this.modelSettings;
    if (modelPath) return { kind: 'file', path: modelPath, inputSize, hints: await this.pytorch.hints(modelPath) };
    if (!catalogSetting) return { kind: 'bundled' };
    const entry = catalogEntry(catalogSetting);
    if (!entry) {
      throw new UserFacingError(
        `featureMaps.model is "${catalogSetting}", which is not in the catalogue (${CATALOG.map((e) => CATALOG_PREFIX + e.id).join(', ')}).`,
      );
    }
    if ((await this.models.downloadedBytes(entry)) === undefined) {
      this.setState({ kind: 'loading', fileName, message: `Downloading ${entry.name}…` });
    }
    try {
      const weightsPath = await this.models.ensure(entry, { mirror, proxy });
      return { kind: 'catalog', id: entry.id, weightsPath };
    } catch (error) {
      if (error instanceof CancelledError) {
        throw new UserFacingError(
          `The download of ${entry.name} was cancelled. Retry resumes it; Change Model… picks another model (the bundled one needs no network).`,
        );
      }
      if (error instanceof UserFacingError) {
        throw new UserFacingError(
          `${error.message} Change Model… picks another model; the bundled MobileNetV2 needs no network.`,
          error.detail,
        );
      }
      throw error;
    }
  }

  private setState(state: PanelState): void {
    this.state = state;
    this.postState();
  }

  private postState(): void {
    const state = this.state;
    if (!state) return;
    switch (state.kind) {
      case 'loading':
        this.post({ type: 'loading', fileName: state.fileName, message: state.message });
        break;
      case 'error':
        this.post({
          type: 'error',
          fileName: state.fileName,
          message: state.message,
          detail: state.detail,
          actions: state.actions,
        });
        break;
      case 'result':
        this.postResult(state.result);
        break;
    }
  }

  /**
   * A result, without its input's pixels, then those pixels (once per result): they are about
   * as many bytes as the first grid, which thus crosses first.
   */
  private postResult(result: ExtractionResult): void {
    const { input, ...rest } = result;
    const { rgba: _pixels, ...summary } = input;
    this.post({ type: 'result', result: { ...rest, input: summary } });
  }

  /** The input's pixels of a result on screen, once per result (see postResult). */
  private postPixels(result: ExtractionResult): void {
    if (!this.ready || this.pixelsPosted === result.resultKey) return;
    this.pixelsPosted = result.resultKey;
    const { resultKey, input } = result;
    this.post({
      type: 'inputPixels',
      pixels: { resultKey, width: input.width, height: input.height, rgba: input.rgba },
    });
  }

  private postIdentity(): void {
    if (this.imageUri) this.post({ type: 'identity', identity: { imagePath: this.imageUri.fsPath } });
  }

  private post(message: ToWebview): void {
    // A webview that has not said `ready` (or is reloading) drops messages: it gets the state on `ready`.
    if (this.ready && !this.isDisposed) void this.panel.webview.postMessage(message);
  }

  private async onMessage(message: FromWebview): Promise<void> {
    switch (message.type) {
      case 'ready':
        if (this.pageLoading !== undefined) {
          this.log.info(`the panel's page loaded in ${Date.now() - this.pageLoading} ms`);
          this.pageLoading = undefined;
        }
        this.ready = true;
        this.pixelsPosted = undefined; // a (re)loaded webview has none
        this.post({ type: 'settings', settings: this.settings });
        this.postIdentity();
        if (this.lastResult && this.state?.kind !== 'result') this.postResult(this.withMatches(this.lastResult));
        this.postState();
        return;
      case 'layerSelected':
        this.selectedLayer = message.layer;
        return;
      case 'resultShown': {
        // The first grid is painted: what waits for it follows (see protocol.ts).
        const shown = this.state?.kind === 'result' ? this.state.result : undefined;
        if (shown?.resultKey !== message.resultKey) return;
        this.postPixels(shown);
        if (this.completionOnShown?.resultKey === message.resultKey) {
          this.completionOnShown.begin();
          this.completionOnShown = undefined;
        }
        const due = this.predictionsDue;
        if (due?.result.resultKey === message.resultKey) {
          this.predictionsDue = undefined;
          this.showPredictions(due.result, due.labelsPath, due.job);
        }
        return;
      }
      case 'openSettings':
        await vscode.commands.executeCommand(
          'workbench.action.openSettings',
          `@ext:feature-maps.feature-maps ${SECTION}`,
        );
        return;
      case 'retry':
        if (this.imageUri) await this.extract({ progress: true });
        return;
      case 'selectModel':
        await vscode.commands.executeCommand(SELECT_MODEL_COMMAND);
        return;
      case 'action':
        await this.runAction(message.id);
        return;
      case 'view':
        this.layerView = message.view;
        return;
      case 'export':
        await this.exportLayer();
        return;
      default: {
        const unexpected: never = message;
        this.log.warn(`unhandled webview message ${JSON.stringify(unexpected)}`);
      }
    }
  }

  /**
   * Export…: saves what the panel shows of the selected layer (layerExport.ts). Says so when
   * there is nothing to export yet.
   */
  async exportLayer(): Promise<vscode.Uri | undefined> {
    const result = this.state?.kind === 'result' ? this.state.result : undefined;
    const view = this.layerView;
    const layer = result?.layers.find((l) => l.name === view?.layer);
    if (!result || !view || !layer || !this.imageUri) {
      void vscode.window.showInformationMessage('Show the feature maps of an image and select a layer to export it.');
      return undefined;
    }
    const resultKey = result.resultKey;
    return exportLayer({
      engine: { exportFile: (key, request) => this.fromEngine(key, () => this.engine.exportFile(key, request), true) },
      resultKey,
      image: this.imageUri,
      layer,
      view,
      settings: this.settings,
      log: this.log,
    });
  }

  /** An engine call about a result on show; a result the engine no longer has is computed again first. */
  private async fromEngine<T>(resultKey: string, call: () => Promise<T>, mayRecompute: boolean): Promise<T> {
    try {
      return await call();
    } catch (error) {
      const showing = this.state?.kind === 'result' && this.state.result.resultKey === resultKey;
      if (error instanceof NotCachedError && mayRecompute && showing && !this.job) {
        // The engine restarted or evicted the image on show: compute it again, then answer.
        // (While newer work runs, its result replaces this one anyway.)
        await this.extract({ progress: false });
        if (this.lastResult?.resultKey === resultKey) return this.fromEngine(resultKey, call, false);
      }
      throw error;
    }
  }
}

/** About what a message costs to send: its typed arrays' bytes plus the rest as JSON. */
function messageBytes(value: object): number {
  let bytes = 0;
  const json = JSON.stringify(value, (_key, v: unknown) => {
    if (ArrayBuffer.isView(v)) {
      bytes += v.byteLength;
      return undefined;
    }
    return v;
  });
  return bytes + json.length;
}

function megabytes(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

function kilobytes(bytes: number): string {
  return (bytes / 1024).toFixed(1);
}

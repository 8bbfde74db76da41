import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { SECTION, readModelSettings } from './config';
import type { EngineClient } from './engine/client';
import { catalogEntry } from './engine/catalog';
import { errorText } from './engine/errors';
import type { ModelSource } from './engine/model';
import type { ModelStore } from './modelStore';
import { isPytorchFile } from './python/pytorchProblems';

/** In the workspace's storage folder (on the machine the engine runs on), once feature maps were shown. */
const MARK_FILE = 'shown-feature-maps';
/** After the window has started: the engine's start then competes with nothing the user waits for. */
const DELAY_MS = 1500;

/**
 * Starts the engine before the first click, in a folder where feature maps were shown before: a
 * new engine process (Node, onnxruntime, sharp) takes 0.2–0.4 s and opening the model 0.1–0.2 s
 * (more for a big one), which would otherwise be the first click's. A folder that never showed
 * feature maps gets no process; `featureMaps.startEngineEarly` turns it off. The engine stops
 * again after 10 minutes unused (EngineClient's idleStopMs).
 */
export class EngineWarmUp {
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** This folder showed feature maps (the mark file exists, or noteUse was called). */
  private marked = false;

  /** `storageDir`: the workspace's storage folder (ExtensionContext.storageUri); none without a folder. */
  constructor(
    private readonly storageDir: string | undefined,
    private readonly engine: EngineClient,
    private readonly models: ModelStore,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** The panel showed feature maps in this folder: the next window on it starts the engine early. */
  noteUse(): void {
    if (this.marked || !this.storageDir) return;
    this.marked = true;
    const storageDir = this.storageDir;
    void fs.promises
      .mkdir(storageDir, { recursive: true })
      .then(() => fs.promises.writeFile(path.join(storageDir, MARK_FILE), `${new Date().toISOString()}\n`))
      .catch((error: unknown) =>
        this.log.warn(`could not note that this folder showed feature maps: ${errorText(error)}`),
      );
  }

  /** Called at activation (onStartupFinished): schedules the start, if this folder qualifies. */
  schedule(): void {
    void this.decide();
  }

  /** Off the activation's path: the mark file is looked for without blocking the extension host. */
  private async decide(): Promise<void> {
    const mark = this.storageDir && path.join(this.storageDir, MARK_FILE);
    this.marked ||=
      !!mark &&
      (await fs.promises.access(mark).then(
        () => true,
        () => false,
      ));
    if (!this.marked) {
      this.log.info('the engine starts on first use (this folder has not shown feature maps yet)');
    } else if (!enabled()) {
      this.log.info('the engine starts on first use (featureMaps.startEngineEarly is off)');
    } else {
      this.log.info(`this folder showed feature maps before: the engine starts in ${DELAY_MS / 1000} s`);
      this.timer = setTimeout(() => void this.start(), DELAY_MS);
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
  }

  private async start(): Promise<void> {
    const model = await this.modelToOpen();
    const started = Date.now();
    try {
      if (model) await this.engine.prepare(model);
      // Only the process (its modules) then: the model opens with the first image.
      else await this.engine.memory();
      this.log.info(
        `engine started early (this folder showed feature maps before): ${model ? `${describe(model)} opened` : 'the model opens with the first image; the process started'} in ${Date.now() - started} ms`,
      );
    } catch (error) {
      // The first image will meet the same problem, and say it in the panel.
      this.log.info(`engine started early; the model did not open: ${errorText(error)}`);
    }
  }

  /**
   * The model the panel would run, when opening it asks nothing of the user: the bundled one, a
   * catalogue model already downloaded, or a model file that needs no Python (a PyTorch file
   * may ask which architecture it is, or for consent to unpickle it).
   */
  private async modelToOpen(): Promise<ModelSource | undefined> {
    const { modelPath, catalogSetting, inputSize } = readModelSettings();
    if (modelPath) return isPytorchFile(modelPath) ? undefined : { kind: 'file', path: modelPath, inputSize };
    if (!catalogSetting) return { kind: 'bundled' };
    const entry = catalogEntry(catalogSetting);
    const weightsPath = entry && (await this.models.downloadedPath(entry));
    return entry && weightsPath ? { kind: 'catalog', id: entry.id, weightsPath } : undefined;
  }
}

function enabled(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean>('startEngineEarly') !== false;
}

function describe(model: ModelSource): string {
  switch (model.kind) {
    case 'bundled':
      return 'the bundled model';
    case 'catalog':
      return model.id;
    case 'file':
      return path.basename(model.path);
  }
}

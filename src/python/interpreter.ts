import * as fs from 'node:fs';
import * as path from 'node:path';
import { PythonExtension } from '@vscode/python-extension';
import * as vscode from 'vscode';
import { SECTION, resolveSettingPath } from '../config';
import { errorText } from '../engine/errors';
import { isInsideAny } from './pytorchProblems';

export const PYTHON_EXTENSION_ID = 'ms-python.python';
/** How long the Python extension may take to start and answer before it is passed over. */
const PYTHON_EXTENSION_TIMEOUT_MS = 15_000;

/** The interpreter chosen for PyTorch models, and why. */
export interface ChosenPython {
  /** An executable path, or a command looked up on PATH (`python3.12`). */
  command: string;
  /** Where it came from, for the log: "featureMaps.pythonPath", "the Python extension's interpreter for ml". */
  source: string;
}

/**
 * Which Python opens PyTorch models: `featureMaps.pythonPath` when the user set it (a tool's own
 * interpreter setting wins, as with VS Code's Black, Ruff and Pylint extensions), else the
 * interpreter the Python extension has selected for the model's workspace folder (only when that
 * extension is installed; it is never activated otherwise), else none: the engine then tries
 * `python3` and `python` on PATH. Each change of choice is logged with its reason.
 */
export class PythonInterpreter implements vscode.Disposable {
  private api: Promise<PythonExtension | undefined> | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  /** The Python extension's selected interpreter changed. */
  readonly onDidChange = this.changed.event;
  private readonly subscriptions: vscode.Disposable[] = [this.changed];
  private lastLogged: string | undefined;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  /** The interpreter for a model file (its workspace folder decides the Python extension's choice). */
  async choose(resource: vscode.Uri | undefined): Promise<ChosenPython | undefined> {
    const fromSetting = pythonPathSetting(resource);
    if (fromSetting) {
      this.note(`PyTorch models open with ${fromSetting} (featureMaps.pythonPath).`);
      return { command: fromSetting, source: `${SECTION}.pythonPath` };
    }
    const fromExtension = await this.fromPythonExtension(resource);
    if (fromExtension.chosen) {
      this.note(`PyTorch models open with ${fromExtension.chosen.command} (${fromExtension.chosen.source}).`);
      return fromExtension.chosen;
    }
    this.note(
      `PyTorch models open with python3 or python on PATH: featureMaps.pythonPath is empty and ${fromExtension.why}.`,
    );
    return undefined;
  }

  /** Whether the Python extension is installed (its "Select Interpreter" command then exists). */
  static hasPythonExtension(): boolean {
    return vscode.extensions.getExtension(PYTHON_EXTENSION_ID) !== undefined;
  }

  private async fromPythonExtension(resource: vscode.Uri | undefined): Promise<{ chosen?: ChosenPython; why: string }> {
    if (!PythonInterpreter.hasPythonExtension()) return { why: 'the Python extension is not installed' };
    try {
      const api = await this.pythonApi();
      if (!api) return { why: 'the Python extension did not start' };
      const environmentPath = api.environments.getActiveEnvironmentPath(resource);
      const environment = await withTimeout(
        api.environments.resolveEnvironment(environmentPath),
        PYTHON_EXTENSION_TIMEOUT_MS,
        'resolving its interpreter',
      );
      const executable = environment?.executable.uri?.fsPath;
      if (!executable || !fs.existsSync(executable)) {
        return { why: `the Python extension has no interpreter selected (${environmentPath.path})` };
      }
      // An untrusted folder's own venv is code from that folder: not run until the folder is trusted.
      const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
      if (!vscode.workspace.isTrusted && isInsideAny(executable, folders)) {
        return {
          why: `the Python extension's interpreter ${executable} is inside this untrusted workspace, so it is not run (trust the folder to use it)`,
        };
      }
      const folder = resource && vscode.workspace.getWorkspaceFolder(resource);
      const name = environment.environment?.name;
      return {
        chosen: {
          command: executable,
          source: `the Python extension's interpreter${name ? ` "${name}"` : ''}${folder ? ` for ${folder.name}` : ''}`,
        },
        why: '',
      };
    } catch (error) {
      return { why: `the Python extension did not answer (${errorText(error)})` };
    }
  }

  /** The Python extension's API, once: activates the extension (only called when it is installed). */
  private pythonApi(): Promise<PythonExtension | undefined> {
    this.api ??= withTimeout(PythonExtension.api(), PYTHON_EXTENSION_TIMEOUT_MS, 'starting').then(
      (api) => {
        this.subscriptions.push(api.environments.onDidChangeActiveEnvironmentPath(() => this.changed.fire()));
        return api;
      },
      (error: unknown) => {
        this.log.warn(`The Python extension's API is not available: ${errorText(error)}`);
        this.api = undefined; // ask again next time
        return undefined;
      },
    );
    return this.api;
  }

  private note(line: string): void {
    if (line === this.lastLogged) return;
    this.lastLogged = line;
    this.log.info(line);
  }

  dispose(): void {
    for (const subscription of this.subscriptions.splice(0)) subscription.dispose();
  }
}

/**
 * `featureMaps.pythonPath`: a path (absolute, `~`, or relative to the workspace folder) or a
 * command name looked up on PATH (`python3.12`); undefined when empty. Restricted Mode ignores a
 * workspace's value (package.json restrictedConfigurations), so an untrusted folder cannot name it.
 */
export function pythonPathSetting(resource: vscode.Uri | undefined): string | undefined {
  const value = vscode.workspace.getConfiguration(SECTION, resource).get<unknown>('pythonPath');
  if (typeof value !== 'string' || !value.trim()) return undefined;
  const raw = value.trim();
  const isCommand = !raw.includes('/') && !raw.includes('\\') && !raw.startsWith('~');
  return isCommand && !path.isAbsolute(raw) ? raw : resolveSettingPath(raw, resource);
}

function withTimeout<T>(promise: Thenable<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer after ${ms / 1000} s ${what}`)), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error: unknown) => (clearTimeout(timer), reject(error instanceof Error ? error : new Error(String(error)))),
    );
  });
}

import * as path from 'node:path';
import * as vscode from 'vscode';
import { SECTION } from '../config';
import type { PythonError } from '../engine/errors';
import type { FileModelHints } from '../engine/model';
import type { PanelAction } from '../shared/protocol';
import type { PytorchAnswers } from './answers';
import { PythonInterpreter } from './interpreter';
import { askArchitecture, askPickle } from './prompts';
import { commandForShell, isPytorchFile, problemKind } from './pytorchProblems';

/** What to do after a PyTorch model failed: open it again (the user answered), or show why not. */
export type Resolution =
  | { kind: 'retry' }
  | {
      kind: 'show';
      message: string;
      detail?: string;
      actions: PanelAction[];
      /** The command the "Run in Terminal" and "Copy Fix Command" actions use (kept on the host). */
      fix?: string;
    };

const CHOOSE_ARCHITECTURE: PanelAction = { id: 'chooseArchitecture', label: 'Choose Architecture…' };

/**
 * The extension host's side of PyTorch models: what the engine needs beyond the file (the Python,
 * the architecture, whether a pickle may be loaded, where conversions are kept, the workspace a
 * `module:callable` comes from), and what to do when opening one fails (ask, then retry; or say
 * what fixes it). Trust: in an untrusted workspace a pickle is never loaded and no workspace code
 * is imported.
 */
export class PytorchSupport {
  /**
   * The questions open now, by kind and file: a second panel job on the same file (a restored panel
   * and a click, say) waits for the answer to the question on screen instead of queueing another.
   */
  private readonly open = new Map<string, Promise<boolean>>();

  constructor(
    private readonly interpreter: PythonInterpreter,
    private readonly answers: PytorchAnswers,
    /** The extension's global storage: the engine keeps conversions in its `conversions/` folder. */
    private readonly storageDir: string,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** The Python extension's interpreter changed. */
  get onDidChangeInterpreter(): vscode.Event<void> {
    return this.interpreter.onDidChange;
  }

  /** What the engine needs to open `modelPath`; undefined for a file that is not PyTorch's. */
  async hints(modelPath: string): Promise<FileModelHints | undefined> {
    if (!isPytorchFile(modelPath)) return undefined;
    const trusted = vscode.workspace.isTrusted;
    const uri = vscode.Uri.file(modelPath);
    const python = await this.interpreter.choose(uri);
    const folder = vscode.workspace.getWorkspaceFolder(uri) ?? vscode.workspace.workspaceFolders?.[0];
    return {
      python: python?.command,
      pythonSource: python?.source,
      architecture: this.answers.architecture(modelPath),
      allowPickle: trusted && (await this.answers.pickleAllowed(modelPath)) ? true : undefined,
      cacheDir: this.storageDir,
      workspace: trusted ? folder?.uri.fsPath : undefined,
    };
  }

  /**
   * Acts on what went wrong opening `modelPath`: asks for the architecture or for consent to
   * unpickle (then the caller retries), forgets an architecture that did not fit, or says what
   * fixes it.
   */
  async resolve(error: PythonError, modelPath: string): Promise<Resolution> {
    const { problem } = error;
    const fileName = path.basename(modelPath);
    this.log.warn(
      `${fileName}: ${problem.code}${problem.python ? ` (Python: ${problem.python})` : ''}: ${error.message}`,
    );
    switch (problemKind(problem.code)) {
      case 'needs-architecture': {
        if (problem.names?.length) await this.answers.rememberNames(problem.names);
        if (await this.chooseArchitecture(modelPath, problem.names)) return { kind: 'retry' };
        return {
          kind: 'show',
          message: `${error.message} No architecture was chosen, so it cannot be opened: Choose Architecture… (or Retry) asks again.`,
          detail: error.detail,
          actions: [CHOOSE_ARCHITECTURE],
        };
      }
      case 'wrong-architecture': {
        const chosen = this.answers.architecture(modelPath);
        await this.answers.forgetArchitecture(modelPath);
        const forgotten = chosen ? ` The answer ${chosen} is forgotten: Retry or Choose Architecture… asks again.` : '';
        return {
          kind: 'show',
          message: `${error.message}${forgotten}`,
          detail: error.detail,
          actions: [CHOOSE_ARCHITECTURE],
        };
      }
      case 'needs-pickle': {
        if (!vscode.workspace.isTrusted) {
          return {
            kind: 'show',
            message: `${fileName} is a pickled Python object (a whole model saved with torch.save): loading it can run code it contains, so Feature Maps opens it only in a trusted workspace. TorchScript, .pt2, state_dict and safetensors files open in any workspace.`,
            detail: error.detail,
            actions: [{ id: 'manageTrust', label: 'Manage Workspace Trust' }],
          };
        }
        if (await this.askOnce(`pickle:${modelPath}`, () => askPickle(modelPath))) {
          await this.answers.allowPickle(modelPath);
          this.log.info(`${fileName}: the user allowed loading this pickle (asked again if the file changes).`);
          return { kind: 'retry' };
        }
        return {
          kind: 'show',
          message: `You declined to load ${fileName}: it is a pickled Python object, and loading it can run code it contains. Retry asks again; Change Model… picks another model.`,
          detail: error.detail,
          actions: [],
        };
      }
      case 'setup': {
        const actions: PanelAction[] = problem.fix
          ? [
              { id: 'runFix', label: 'Run in Terminal' },
              { id: 'copyFix', label: 'Copy Fix Command' },
            ]
          : [];
        actions.push({
          id: 'choosePython',
          label: PythonInterpreter.hasPythonExtension() ? 'Select Python Interpreter…' : 'Set Python Path…',
        });
        return { kind: 'show', message: error.message, detail: error.detail, actions, fix: problem.fix };
      }
      case 'other':
        return { kind: 'show', message: error.message, detail: error.detail, actions: [] };
    }
  }

  /**
   * Asks which architecture `modelPath`'s weights are and remembers the answer for that file.
   * True when the user answered.
   */
  chooseArchitecture(modelPath: string, names?: readonly string[]): Promise<boolean> {
    return this.askOnce(`architecture:${modelPath}`, () => this.askArchitecture(modelPath, names));
  }

  private async askArchitecture(modelPath: string, names?: readonly string[]): Promise<boolean> {
    const offered = names?.length ? names : this.answers.knownNames();
    const answer = await askArchitecture(
      modelPath,
      offered,
      this.answers.recentArchitectures(),
      this.answers.architecture(modelPath),
    );
    if (!answer) return false;
    await this.answers.rememberArchitecture(modelPath, answer);
    this.log.info(`${path.basename(modelPath)}: architecture ${answer} (remembered for this file in this workspace).`);
    return true;
  }

  /** The answer to the question `key` names: the one open now, or a new one. */
  private askOnce(key: string, ask: () => Promise<boolean>): Promise<boolean> {
    let asking = this.open.get(key);
    if (!asking) {
      asking = ask().finally(() => this.open.delete(key));
      this.open.set(key, asking);
    }
    return asking;
  }

  /** "Run in Terminal": a terminal that runs the fix; the panel says to Retry once it is done. */
  runFix(fix: string): void {
    const terminal = vscode.window.createTerminal({ name: 'Feature Maps: Python setup' });
    terminal.show();
    terminal.sendText(commandForShell(fix, vscode.env.shell), true);
  }

  async copyFix(fix: string): Promise<void> {
    await vscode.env.clipboard.writeText(fix);
    void vscode.window.showInformationMessage(`Copied: ${fix}`);
  }

  /** "Select Python Interpreter…" of the Python extension when installed, else the featureMaps.pythonPath setting. */
  async choosePython(): Promise<void> {
    if (PythonInterpreter.hasPythonExtension()) {
      await vscode.commands.executeCommand('python.setInterpreter');
      return;
    }
    await vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.pythonPath`);
  }
}

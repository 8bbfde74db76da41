import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type * as vscode from 'vscode';
import { pickleConsentKey } from './pytorchProblems';

const ARCHITECTURES_KEY = 'pytorch.architectures';
const RECENT_KEY = 'pytorch.recentArchitectures';
const NAMES_KEY = 'pytorch.architectureNames';
const PICKLE_KEY = 'pytorch.pickleConsent';
const MAX_RECENT = 5;
const MAX_CONSENTS = 200;

/**
 * What the user told us about their PyTorch files: the architecture of each state_dict (per
 * workspace, keyed by the file's absolute path) and their consent to unpickle a file (on this
 * machine, for the file as it is now: a rewritten file asks again). Also the architecture names
 * the user's Python offered last, for "Set PyTorch Architecture…" before any model asked.
 */
export class PytorchAnswers {
  constructor(
    private readonly workspaceState: vscode.Memento,
    private readonly globalState: vscode.Memento,
  ) {}

  architecture(file: string): string | undefined {
    return this.architectures()[path.resolve(file)];
  }

  async rememberArchitecture(file: string, architecture: string): Promise<void> {
    await this.workspaceState.update(ARCHITECTURES_KEY, {
      ...this.architectures(),
      [path.resolve(file)]: architecture,
    });
    const recent = [architecture, ...this.recentArchitectures().filter((a) => a !== architecture)];
    await this.workspaceState.update(RECENT_KEY, recent.slice(0, MAX_RECENT));
  }

  async forgetArchitecture(file: string): Promise<void> {
    const all = this.architectures();
    delete all[path.resolve(file)];
    await this.workspaceState.update(ARCHITECTURES_KEY, all);
  }

  /** The architectures chosen last in this workspace, newest first. */
  recentArchitectures(): string[] {
    const recent = this.workspaceState.get<unknown>(RECENT_KEY);
    return Array.isArray(recent) ? recent.filter((a): a is string => typeof a === 'string') : [];
  }

  /** The names the user's Python offered last (torchvision's and timm's models). */
  knownNames(): string[] {
    const names = this.globalState.get<unknown>(NAMES_KEY);
    return Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : [];
  }

  async rememberNames(names: readonly string[]): Promise<void> {
    if (names.length > 0) await this.globalState.update(NAMES_KEY, [...names]);
  }

  /** Whether the user agreed to unpickle this file as it is now. */
  async pickleAllowed(file: string): Promise<boolean> {
    const key = await consentKey(file);
    return key !== undefined && key in this.consents();
  }

  async allowPickle(file: string): Promise<void> {
    const key = await consentKey(file);
    if (!key) return;
    // The newest consents are kept; an old one costs a question at worst.
    const kept = Object.entries(this.consents())
      .sort(([, a], [, b]) => b - a)
      .slice(0, MAX_CONSENTS - 1);
    await this.globalState.update(PICKLE_KEY, Object.fromEntries([...kept, [key, Date.now()]]));
  }

  private architectures(): Record<string, string> {
    const all = this.workspaceState.get<unknown>(ARCHITECTURES_KEY);
    if (typeof all !== 'object' || all === null) return {};
    return Object.fromEntries(
      Object.entries(all as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'),
    );
  }

  private consents(): Record<string, number> {
    const all = this.globalState.get<unknown>(PICKLE_KEY);
    if (typeof all !== 'object' || all === null) return {};
    return Object.fromEntries(
      Object.entries(all as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === 'number'),
    );
  }
}

async function consentKey(file: string): Promise<string | undefined> {
  try {
    return pickleConsentKey(file, (await fs.stat(file)).mtimeMs);
  } catch {
    return undefined; // the file is gone: the engine says so
  }
}

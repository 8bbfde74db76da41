import * as path from 'node:path';
import { formatsForFile } from '../engine/formats';

// What the extension host makes of a PyTorch model's problems (PythonError's `problem.code`, from
// src/engine/python/torch_bridge.py and src/engine/python.ts), and the architecture names it offers.
// No vscode here: plain functions, unit-tested in Node.

/** What the host does about a problem. */
export type ProblemKind =
  /** A state_dict without an architecture: ask for one, then retry. */
  | 'needs-architecture'
  /** The architecture given does not fit, or does not exist: forget it, so the next try asks again. */
  | 'wrong-architecture'
  /** A full pickle: ask before loading it (in a trusted workspace only), then retry. */
  | 'needs-pickle'
  /** Python, torch or a package is missing or too old: offer the fix command and another interpreter. */
  | 'setup'
  /** Anything else: the message as it is. */
  | 'other';

const SETUP_CODES = new Set(['no-python', 'no-torch', 'old-torch', 'missing-package']);
const ARCHITECTURE_CODES = new Set(['wrong-architecture', 'unknown-architecture', 'bad-architecture']);

export function problemKind(code: string): ProblemKind {
  if (code === 'needs-architecture') return 'needs-architecture';
  if (code === 'needs-pickle') return 'needs-pickle';
  if (ARCHITECTURE_CODES.has(code)) return 'wrong-architecture';
  if (SETUP_CODES.has(code)) return 'setup';
  return 'other';
}

/** Whether a model path names a file the PyTorch format reads (by its name; the engine sniffs the bytes). */
export function isPytorchFile(file: string): boolean {
  return formatsForFile(file).some((format) => format.id === 'pytorch');
}

/** The groups of the architecture quick pick, in order, each with its names (as given, e.g. `timm:convnext_tiny`). */
export interface ArchitectureGroup {
  label: string;
  names: string[];
}

/**
 * The names the bridge offers, grouped by where they come from: torchvision first, then timm, then
 * any other prefix; each group in the order given. Recently used answers come first, in their own
 * group, and are not repeated below.
 */
export function architectureGroups(names: readonly string[], recent: readonly string[] = []): ArchitectureGroup[] {
  const groups = new Map<string, string[]>();
  const seen = new Set<string>();
  const add = (label: string, name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    let group = groups.get(label);
    if (!group) groups.set(label, (group = []));
    group.push(name);
  };
  for (const name of recent) add('recently used', name);
  for (const name of names) {
    const prefix = name.includes(':') ? name.slice(0, name.indexOf(':')) : 'other';
    add(prefix, name);
  }
  const order = (label: string) => ['recently used', 'torchvision', 'timm'].indexOf(label);
  return [...groups]
    .map(([label, grouped]) => ({ label, names: grouped }))
    .sort((a, b) => {
      const [ia, ib] = [order(a.label), order(b.label)];
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    });
}

/**
 * What the user typed, as an architecture: `torchvision:NAME`, `timm:NAME` and `module:callable`
 * as they are; a bare name that exactly one offered name ends with (torchvision's first) becomes
 * that name (`resnet50` → `torchvision:resnet50`); anything else as typed (the bridge says what is
 * wrong with it).
 */
export function architectureFromInput(typed: string, names: readonly string[]): string {
  const value = typed.trim();
  if (value.includes(':')) return value;
  const matches = names.filter((name) => name.slice(name.indexOf(':') + 1) === value);
  return matches.find((name) => name.startsWith('torchvision:')) ?? matches[0] ?? value;
}

/** The key the user's consent to unpickle a file is kept under: the file as it is now (path and modification time). */
export function pickleConsentKey(file: string, mtimeMs: number): string {
  return `${path.resolve(file)}@${Math.round(mtimeMs)}`;
}

/** Whether `file` is inside one of `folders` (an interpreter of an untrusted workspace's own venv). */
export function isInsideAny(file: string, folders: readonly string[]): boolean {
  return folders.some((folder) => {
    const relative = path.relative(folder, file);
    return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
  });
}

/**
 * A shell command line for a fix (e.g. `"/usr/bin/python3" -m pip install torch`) in the user's
 * shell: PowerShell runs a quoted program only after `&`.
 */
export function commandForShell(command: string, shell: string): string {
  return /(^|[\\/])(pwsh|powershell)(\.exe)?$/i.test(shell) && command.startsWith('"') ? `& ${command}` : command;
}

import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { CancelledError, PythonError, type PythonProblem } from './errors';

// Runs src/engine/python/torch_bridge.py in the user's Python: one command per process, one JSON
// line per reply. Python work is bounded: a deadline, a memory ceiling watched from here (RSS, on
// Linux), and an abort signal; each ends the process. The bridge also ends itself when its stdin
// closes, so it never outlives the engine process that started it.

/** The bridge script, copied beside the bundles by esbuild.js (dist/python/torch_bridge.py). */
export function bridgeScript(assetsDir: string): string {
  return path.join(assetsDir, 'python', 'torch_bridge.py');
}

/** Where the interpreter came from, for messages. */
export interface PythonChoice {
  /** The executable, or a command looked up on PATH. */
  command: string;
  /** "the Python extension's interpreter", "featureMaps.pythonPath", "python3 on PATH". */
  source: string;
}

/**
 * The interpreters to try, in order: the one the host chose (the Python extension's, or the
 * featureMaps.pythonPath setting), else `python3` then `python` on PATH (on Windows `python`,
 * then the `py` launcher).
 */
export function pythonCandidates(chosen: string | undefined, chosenSource = 'featureMaps.pythonPath'): PythonChoice[] {
  if (chosen) return [{ command: chosen, source: chosenSource }];
  const names = process.platform === 'win32' ? ['python', 'py'] : ['python3', 'python'];
  return names.map((command) => ({ command, source: `${command} on PATH` }));
}

export interface BridgeOptions {
  python: PythonChoice[];
  script: string;
  args: string[];
  /** Ends the process when it has run this long. */
  timeoutMs: number;
  /** Ends the process when its resident memory passes this. */
  maxRssBytes: number;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
  /** Keeps the process after its first reply (the hook fallback), handing it over instead of ending it. */
  keep?: boolean;
}

export interface BridgeReply {
  ok: true;
  [key: string]: unknown;
}

/** A bridge process that answered and is kept (BridgeOptions.keep). */
export interface KeptBridge {
  child: ChildProcess;
  reply: BridgeReply;
  /** Lines the process printed on stderr last (for the detail of a later failure). */
  stderrTail(): string;
}

/**
 * Runs the bridge with the first interpreter that exists; resolves its `ok` reply, or rejects with
 * a PythonError saying what failed and what fixes it.
 */
export async function runBridge(options: BridgeOptions): Promise<BridgeReply> {
  const kept = await startBridge({ ...options, keep: false });
  return kept.reply;
}

export async function startBridge(options: BridgeOptions): Promise<KeptBridge> {
  const tried: string[] = [];
  for (const choice of options.python) {
    try {
      return await runWith(choice, options);
    } catch (error) {
      if (error instanceof NotFound) {
        tried.push(`${choice.command} (${choice.source})`);
        continue;
      }
      throw error;
    }
  }
  throw new PythonError(
    `No Python was found to open this PyTorch model (tried ${tried.join(', ')}). Install Python 3 with PyTorch, or set featureMaps.pythonPath (the Python extension's selected interpreter is used when that extension is installed).`,
    { code: 'no-python', fix: 'python3 -m pip install torch' },
  );
}

class NotFound extends Error {}

function runWith(choice: PythonChoice, options: BridgeOptions): Promise<KeptBridge> {
  return new Promise<KeptBridge>((resolve, reject) => {
    if (path.isAbsolute(choice.command) && !fs.existsSync(choice.command)) {
      reject(
        new PythonError(`The Python interpreter ${choice.command} (${choice.source}) does not exist.`, {
          code: 'no-python',
          python: choice.command,
        }),
      );
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(choice.command, ['-u', options.script, ...options.args], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', TORCH_CPP_LOG_LEVEL: 'ERROR' },
        windowsHide: true,
      });
    } catch {
      reject(new NotFound());
      return;
    }
    let settled = false;
    let stderr = '';
    let reason: string | undefined;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearInterval(memoryWatch);
      options.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const end = (why: string) => {
      reason ??= why;
      child.kill('SIGKILL');
    };
    const deadline = setTimeout(
      () => end(`took longer than ${Math.round(options.timeoutMs / 1000)} s`),
      options.timeoutMs,
    );
    const memoryWatch = setInterval(() => {
      const rss = residentBytes(child.pid);
      if (rss !== undefined && rss > options.maxRssBytes) {
        end(`used more than ${Math.round(options.maxRssBytes / 2 ** 20)} MB of memory (featureMaps.memoryBudget)`);
      }
    }, 250);
    const onAbort = () => end('cancelled');
    options.signal?.addEventListener('abort', onAbort);
    if (options.signal?.aborted) onAbort();

    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-8000);
    });
    child.stdin?.on('error', () => undefined);
    child.on('error', (error: NodeJS.ErrnoException) => {
      settle(() =>
        reject(
          error.code === 'ENOENT'
            ? new NotFound()
            : new PythonError(`Could not start ${choice.command}: ${error.message}`, {
                code: 'no-python',
                python: choice.command,
              }),
        ),
      );
    });
    const lines = createInterface({ input: child.stdout! });
    const onLine = (line: string) => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // something the model's own code printed
      }
      if (typeof message.progress === 'string') {
        options.onProgress?.(message.progress);
        return;
      }
      if (message.ok === true) {
        lines.off('line', onLine);
        if (options.keep) {
          lines.close();
          settle(() =>
            resolve({
              child,
              reply: message as BridgeReply,
              stderrTail: () => stderr.trim().split('\n').slice(-20).join('\n'),
            }),
          );
        } else {
          settle(() => resolve({ child, reply: message as BridgeReply, stderrTail: () => '' }));
          child.stdin?.end();
        }
        return;
      }
      if (message.ok === false) {
        settle(() => reject(problemError(message, choice)));
        child.stdin?.end();
      }
    };
    lines.on('line', onLine);
    child.on('exit', (code, signal) => {
      settle(() => {
        if (reason === 'cancelled') {
          reject(new CancelledError());
          return;
        }
        if (reason) {
          reject(
            new PythonError(
              `Python ${reason} opening this PyTorch model, and was stopped.`,
              {
                code: reason.startsWith('used') ? 'memory' : 'timeout',
                python: choice.command,
              },
              stderr.trim() || undefined,
            ),
          );
          return;
        }
        // A shell's "command not found" (127) is a missing interpreter too.
        if (code === 127 || code === 9009) {
          reject(new NotFound());
          return;
        }
        reject(
          new PythonError(
            `Python (${choice.command}) ended without an answer (${signal ? `signal ${signal}` : `exit code ${code}`}).`,
            { code: 'python-error', python: choice.command },
            stderr.trim() || undefined,
          ),
        );
      });
    });
  });
}

function problemError(message: Record<string, unknown>, choice: PythonChoice): PythonError {
  const problem: PythonProblem = {
    code: typeof message.code === 'string' ? message.code : 'python-error',
    python: choice.command,
  };
  if (typeof message.fix === 'string') problem.fix = message.fix;
  if (Array.isArray(message.names)) problem.names = message.names.filter((n): n is string => typeof n === 'string');
  let text = typeof message.message === 'string' ? message.message : 'Python could not open the model.';
  if (problem.fix) text += ` Fix: ${problem.fix}`;
  const detail = typeof message.detail === 'string' ? message.detail : undefined;
  return new PythonError(text, problem, detail);
}

/** A process's resident memory, where the system tells it cheaply (Linux); undefined elsewhere. */
function residentBytes(pid: number | undefined): number | undefined {
  if (pid === undefined || process.platform !== 'linux') return undefined;
  try {
    const statm = fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
    return Number(statm[1]) * 4096;
  } catch {
    return undefined;
  }
}

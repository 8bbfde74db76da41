/**
 * An error whose message is written for the user: it names the problem and the
 * file, and is shown as it is in the panel or a notification.
 */
export class UserFacingError extends Error {
  constructor(
    message: string,
    /** Technical detail (the library's own words), shown folded. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'UserFacingError';
  }
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The activations asked for are no longer in the cache: extract again. */
export class NotCachedError extends UserFacingError {
  constructor() {
    super('These feature maps are no longer cached; they are being computed again.');
    this.name = 'NotCachedError';
  }
}

/** The work was cancelled by the user or superseded by newer work. */
export class CancelledError extends Error {
  constructor() {
    super('Cancelled');
    this.name = 'CancelledError';
  }
}

/** The engine process crashed, stopped answering or outlived its deadline, and was stopped. */
export class EngineStoppedError extends UserFacingError {
  constructor(
    /** What happened, in one sentence ("The feature-map engine crashed (signal SIGABRT) while …."). */
    readonly summary: string,
    detail?: string,
  ) {
    super(
      `${summary} It runs in a process of its own, so VS Code and your other extensions are not affected; the next request starts it again.`,
      detail,
    );
    this.name = 'EngineStoppedError';
  }
}

/** A downloaded catalogue file the loader refused: the host removes it, so the next try downloads it afresh. */
export class RejectedDownloadError extends UserFacingError {
  constructor(message: string, detail?: string) {
    super(message, detail);
    this.name = 'RejectedDownloadError';
  }
}

/**
 * What went wrong in the user's Python, in a way the host can act on: `needs-architecture` (a
 * state_dict: ask which model it belongs to), `needs-pickle` (ask before running the file's code),
 * `no-python`, `no-torch`, `old-torch`, `missing-package` (the `fix` command installs it),
 * `wrong-architecture`, `corrupt`, `export-failed`, `timeout`, `memory`, `python-error`. (A cancelled
 * open is a CancelledError.)
 */
export interface PythonProblem {
  code: string;
  /** The interpreter that was used. */
  python?: string;
  /** A shell command that fixes it, e.g. `"/usr/bin/python3" -m pip install torch`. */
  fix?: string;
  /** Architectures to choose from (needs-architecture). */
  names?: string[];
}

/** An error from the Python side of a PyTorch model: its message, traceback as detail, and what the host can do. */
export class PythonError extends UserFacingError {
  constructor(
    message: string,
    readonly problem: PythonProblem,
    detail?: string,
  ) {
    super(message, detail);
    this.name = 'PythonError';
  }
}

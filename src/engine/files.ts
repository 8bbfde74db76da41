import { constants, type Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { UserFacingError, errorText } from './errors';

// Every file the engine reads comes from the user's disk, maybe from a repository they just
// cloned: a model file can be a symlink to /dev/zero, a weight shard a FIFO, a labels file
// gigabytes long. These helpers refuse such files by what they are and how big they say they
// are, before a byte is read, so a hostile file costs neither memory nor a hang.

/** The largest model file (or weight shard, or total of shards) the engine reads: 2 GB. */
export const MAX_MODEL_FILE_BYTES = 2e9;
/** The largest TF.js model.json (the weights are in shards beside it). */
export const MAX_JSON_BYTES = 100e6;
/** The largest labels file. */
export const MAX_LABELS_BYTES = 100e6;

export interface FileCheck {
  /** How the message names the file, e.g. `the model file model.json` (default: `the file <name>`). */
  describe?: string;
  /** Refuse files larger than this many bytes. */
  maxBytes: number;
  /** A folder the file's real path (symlinks resolved) must lie inside, e.g. the model's own folder. */
  within?: string;
}

export interface CheckedFile {
  /** The path as given. */
  path: string;
  /** The path with every symlink resolved: the file that is really read. */
  realPath: string;
  size: number;
  mtimeMs: number;
}

/** "1.5 GB", "340 kB", "12 bytes": decimal units, as file managers show sizes. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} byte${bytes === 1 ? '' : 's'}`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, '')} ${units[unit]}`;
}

/** What a non-regular file is, in plain words. */
function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return 'a folder';
  if (stat.isFIFO()) return 'a named pipe (FIFO)';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

function describeOf(filePath: string, check: FileCheck): string {
  return check.describe ?? `the file ${path.basename(filePath)}`;
}

function refuse(filePath: string, check: FileCheck, reason: string, detail?: string): UserFacingError {
  const what = describeOf(filePath, check);
  return new UserFacingError(`Cannot read ${what}: ${reason}`, detail);
}

function fsFailure(filePath: string, check: FileCheck, error: unknown): UserFacingError {
  const code = (error as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOENT'
      ? 'the file does not exist.'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied.'
        : code === 'ELOOP'
          ? 'its symbolic links form a loop.'
          : 'the system refused to open it.';
  return refuse(filePath, check, reason, errorText(error));
}

/** `child` is `parent` itself or lies below it (both absolute, symlinks resolved). */
function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  const outside = relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
  return !outside;
}

function checkStat(filePath: string, realPath: string, stat: Stats, check: FileCheck): void {
  if (!stat.isFile()) {
    const target = realPath !== path.resolve(filePath) ? ` (it leads to ${realPath})` : '';
    throw refuse(filePath, check, `it is ${kindOf(stat)}${target}, not a regular file.`);
  }
  if (stat.size > check.maxBytes) {
    throw refuse(
      filePath,
      check,
      `it is ${formatBytes(stat.size)}, more than the ${formatBytes(check.maxBytes)} Feature Maps reads.`,
    );
  }
}

/** The file's real path, refused when it leaves `check.within`. */
async function realPathOf(filePath: string, check: FileCheck): Promise<string> {
  let realPath: string;
  try {
    realPath = await fs.realpath(filePath);
  } catch (error) {
    throw fsFailure(filePath, check, error);
  }
  if (check.within !== undefined) {
    let folder: string;
    try {
      folder = await fs.realpath(check.within);
    } catch (error) {
      throw fsFailure(check.within, { ...check, describe: `the folder ${path.basename(check.within)}` }, error);
    }
    if (!isInside(realPath, folder)) {
      throw refuse(
        filePath,
        check,
        `it lies outside the folder ${path.basename(check.within)} (it leads to ${realPath}).`,
      );
    }
  }
  return realPath;
}

/**
 * Checks, without reading it, that `filePath` is a regular file (symlinks followed: a link to
 * /dev/zero, a FIFO or a folder is refused) no larger than `check.maxBytes`, and inside
 * `check.within` when given. For files another library opens by path (sharp).
 */
export async function checkRegularFile(filePath: string, check: FileCheck): Promise<CheckedFile> {
  const realPath = await realPathOf(filePath, check);
  let stat: Stats;
  try {
    stat = await fs.stat(realPath);
  } catch (error) {
    throw fsFailure(filePath, check, error);
  }
  checkStat(filePath, realPath, stat, check);
  return { path: filePath, realPath, size: stat.size, mtimeMs: stat.mtimeMs };
}

/**
 * Opens the real path of `filePath` with O_NONBLOCK (so a FIFO cannot block the open), checks the
 * opened descriptor with fstat (a regular file, at most `check.maxBytes`) and only then hands it
 * to `read`; closes it whatever happens. Failures other than a UserFacingError become one.
 */
async function withCheckedFile<T>(
  filePath: string,
  check: FileCheck,
  read: (handle: fs.FileHandle, file: CheckedFile) => Promise<T>,
): Promise<T> {
  const realPath = await realPathOf(filePath, check);
  let handle: fs.FileHandle;
  try {
    // O_NONBLOCK is 0 (absent) on Windows, where opening a pipe by path does not block this way.
    handle = await fs.open(realPath, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    throw fsFailure(filePath, check, error);
  }
  try {
    const stat = await handle.stat();
    checkStat(filePath, realPath, stat, check);
    return await read(handle, { path: filePath, realPath, size: stat.size, mtimeMs: stat.mtimeMs });
  } catch (error) {
    if (error instanceof UserFacingError) throw error;
    throw refuse(filePath, check, 'reading it failed.', errorText(error));
  } finally {
    await handle.close();
  }
}

/** Reads `length` bytes from the start into `buffer`, fewer when the file ends first; how many. */
async function readUpTo(handle: fs.FileHandle, buffer: Uint8Array, length: number): Promise<number> {
  let done = 0;
  while (done < length) {
    // One read(2) returns at most about 2 GB: loop.
    const { bytesRead } = await handle.read(buffer, done, Math.min(length - done, 1 << 30), done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * Reads a whole regular file, safely (see withCheckedFile): exactly the size fstat gave is read.
 * With `into`, the file must hold exactly `into.length` bytes and is read into it (no second copy).
 */
export function readRegularFile(filePath: string, check: FileCheck & { into?: Uint8Array }): Promise<Buffer> {
  return withCheckedFile(filePath, check, async (handle, { size }) => {
    if (check.into && check.into.length !== size) {
      throw refuse(
        filePath,
        check,
        `it is ${formatBytes(size)} (${size} bytes), not the ${check.into.length} bytes expected; it changed while being read.`,
      );
    }
    const buffer = check.into
      ? Buffer.from(check.into.buffer, check.into.byteOffset, check.into.byteLength)
      : Buffer.allocUnsafe(size);
    const done = await readUpTo(handle, buffer, size);
    if (done < size) throw refuse(filePath, check, `it became shorter (${done} of ${size} bytes) while being read.`);
    return buffer;
  });
}

/**
 * The first `length` bytes of a regular file (fewer when it is shorter) and its size: for
 * checking a header before deciding to read the rest. Refuses what `readRegularFile` refuses.
 */
export function readFileHead(
  filePath: string,
  length: number,
  check: FileCheck,
): Promise<{ head: Buffer; file: CheckedFile }> {
  return withCheckedFile(filePath, check, async (handle, file) => {
    const head = Buffer.alloc(Math.min(length, file.size));
    const done = await readUpTo(handle, head, head.length);
    return { head: head.subarray(0, done), file };
  });
}

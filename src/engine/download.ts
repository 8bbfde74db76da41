import { createHash, randomUUID } from 'node:crypto';
import * as fsSync from 'node:fs';
import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledError, UserFacingError, errorText } from './errors';

/** A file hash as publishers give them: Keras publishes MD5, mirrors usually SHA-256. */
export interface Checksum {
  algorithm: 'md5' | 'sha256';
  hex: string;
  /** Who publishes it, for the message when a file does not match: "Keras", "the mirror's SHA256SUMS". */
  publisher?: string;
}

/** How to reach a URL: the same for a model file and a mirror's SHA256SUMS. */
export interface RequestOptions {
  signal?: AbortSignal;
  /** VS Code's `http.proxy`; when absent the usual environment variables apply. */
  proxy?: string;
  /** How long without any data before the transfer counts as stalled. */
  timeoutMs?: number;
}

export interface DownloadOptions extends RequestOptions {
  url: string;
  destination: string;
  /**
   * The whole file's published hash. Without one, only a complete transfer (Content-Length)
   * is checked, and the caller must check the content (our loaders check every weight shape).
   */
  checksum?: Checksum;
  /** The transfer is stopped, and nothing kept, as soon as it passes this many bytes (with or without Content-Length). */
  maxBytes?: number;
  onProgress?: (received: number, total: number | undefined) => void;
  /** Called once when another process (or call) is downloading the same file and this one waits for it. */
  onWaiting?: () => void;
  /** Transfers that break off are resumed this many times before giving up (default 0). */
  retries?: number;
  /**
   * Whether the `.part` stays when the download finally fails (default true: the next call resumes it).
   * A cancelled download always keeps it; a corrupt or oversized one never does.
   */
  keepPartOnFailure?: boolean;
}

const MAX_REDIRECTS = 5;
const PROGRESS_INTERVAL_MS = 100;
const DEFAULT_TIMEOUT_MS = 30_000;
/** The lock holder touches its lock this often… */
const HEARTBEAT_MS = 2_000;
/** …so a lock untouched for this long belongs to a process that is gone or frozen. */
export const STALE_LOCK_MS = 30_000;
/** How often a process waiting for another one's download looks again. */
const POLL_MS = 200;
/** Node error codes that mean the host could not be reached at all. */
const UNREACHABLE = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'ECONNREFUSED',
  'ECONNRESET',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'ETIMEDOUT',
]);

/** Raised inside the transfer when no data came for timeoutMs; mapped to a UserFacingError. */
class StallError extends Error {}

/** The transfer broke off after some data came; the `.part` is kept, so trying again resumes. */
export class DownloadInterruptedError extends UserFacingError {
  constructor(message: string, detail: string) {
    super(message, detail);
    this.name = 'DownloadInterruptedError';
  }
}

/** The file is not the one asked for (wrong hash, too large, wrong size on disk): its `.part` is deleted. */
class RefusedDownloadError extends UserFacingError {}

/**
 * Downloads `url` to `destination` and renames it into place only once the bytes on disk
 * match `checksum` (and `maxBytes`). One download per file across processes: the first takes
 * `<destination>.lock` and writes `<destination>.part` (resuming one left by a cancelled or
 * crashed download); any other caller, in this process or another, waits for it and then
 * finds the verified file. A lock whose process has died, or that was not touched for
 * STALE_LOCK_MS, is broken.
 */
export async function downloadVerified(options: DownloadOptions): Promise<void> {
  const { destination, signal, checksum } = options;
  if (signal?.aborted) throw new CancelledError();
  await fs.mkdir(path.dirname(destination), { recursive: true });
  for (;;) {
    if (await isVerified(destination, checksum, signal)) return;
    const lock = await acquireLock(destination, options);
    try {
      // Another process may have finished between the check above and taking the lock.
      if (await isVerified(destination, checksum, signal)) return;
      if ((await downloadHoldingLock(options, lock)) === 'done') return;
      // Our lock was broken while we downloaded (we looked frozen): wait for whoever has it now.
    } finally {
      await lock.release();
    }
  }
}

/** The destination exists and, when a checksum is given, matches it. */
async function isVerified(file: string, checksum: Checksum | undefined, signal?: AbortSignal): Promise<boolean> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch {
    return false;
  }
  try {
    if (!(await handle.stat()).isFile()) return false;
    return (
      checksum === undefined || (await hashHandle(handle, checksum.algorithm, signal)) === checksum.hex.toLowerCase()
    );
  } finally {
    await handle.close();
  }
}

type Outcome = 'done' | 'lost';

async function downloadHoldingLock(options: DownloadOptions, lock: DownloadLock): Promise<Outcome> {
  const part = options.destination + '.part';
  // A part from a process that may still be writing it (its lock went silent) is not ours to resume.
  if (!lock.resumable) await fs.rm(part, { force: true });
  const retries = options.retries ?? 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await transferAndCommit(options, part, lock);
    } catch (error) {
      if (error instanceof DownloadInterruptedError && attempt < retries && !options.signal?.aborted) continue;
      const discard =
        error instanceof RefusedDownloadError ||
        (!(error instanceof CancelledError) && options.keepPartOnFailure === false);
      if (discard && (await lock.owned())) await fs.rm(part, { force: true });
      throw error;
    }
  }
}

/**
 * Fetches into `part` (appending when the server honours the range), then hashes the part's
 * bytes on disk and renames it into place, unless the lock was lost meanwhile.
 */
async function transferAndCommit(options: DownloadOptions, part: string, lock: DownloadLock): Promise<Outcome> {
  const name = path.basename(options.destination);
  // One restart: a server answering a range with the wrong start makes us start over.
  for (let restarts = 0; ; restarts++) {
    const file = new PartFile(part);
    try {
      const total = await transfer(options, file, name);
      if (total === 'restart') {
        if (restarts > 0) {
          throw new UserFacingError(
            `The server sent the wrong part of ${name}.`,
            `Range requests to ${redactCredentials(options.url)}`,
          );
        }
        await file.close();
        await fs.rm(part, { force: true });
        continue;
      }
      return await commit(options, part, await file.open(), total, lock);
    } finally {
      await file.close();
    }
  }
}

/** The `.part`, opened only once the server has answered with data (a 404 leaves no empty part). */
class PartFile {
  private handle: fs.FileHandle | undefined;
  constructor(readonly path: string) {}
  /** O_APPEND: every write goes to the end, whatever else happened to the file; reads are positional. */
  async open(): Promise<fs.FileHandle> {
    this.handle ??= await fs.open(this.path, 'a+');
    return this.handle;
  }
  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}

/** Checks the bytes on disk (size, cap, hash) and renames the part into place. */
async function commit(
  options: DownloadOptions,
  part: string,
  file: fs.FileHandle,
  total: number | undefined,
  lock: DownloadLock,
): Promise<Outcome> {
  const { checksum, destination } = options;
  const name = path.basename(destination);
  const url = redactCredentials(options.url);
  const size = (await file.stat()).size;
  // Anything but our own part at the path (the lock was broken, the part deleted): not ours to judge.
  const ours = async (): Promise<boolean> => (await lock.owned()) && (await sameFile(part, file));
  if (options.maxBytes !== undefined && size > options.maxBytes) {
    if (!(await ours())) return 'lost';
    throw tooLarge(name, size, options.maxBytes, url);
  }
  if (total !== undefined && size !== total) {
    if (!(await ours())) return 'lost';
    throw new RefusedDownloadError(
      `The download of ${name} was damaged: ${size.toLocaleString('en-US')} bytes on disk for a ${total.toLocaleString('en-US')}-byte file. It has been deleted; try again.`,
      `${size} bytes in ${part}, the server's size is ${total} (${url})`,
    );
  }
  if (checksum) {
    const actual = await hashHandle(file, checksum.algorithm, options.signal);
    const expected = checksum.hex.toLowerCase();
    if (actual !== expected) {
      if (!(await ours())) return 'lost';
      const label = checksum.algorithm === 'md5' ? 'MD5' : 'SHA-256';
      const against = checksum.publisher ? `the hash ${checksum.publisher} publishes for it` : 'the expected hash';
      throw new RefusedDownloadError(
        `The download of ${name} was corrupt: its ${label} does not match ${against}. It has been deleted.`,
        `Expected ${label} ${expected}, got ${actual} from ${url}`,
      );
    }
  }
  if (!(await ours())) return 'lost';
  await fs.rename(part, destination);
  return 'done';
}

function tooLarge(name: string, bytes: number, maxBytes: number, url: string): RefusedDownloadError {
  return new RefusedDownloadError(
    `The download of ${name} was stopped at ${formatBytes(bytes)}: the file is larger than the ${formatBytes(maxBytes)} it can be, so it is not the expected file. Nothing was kept.`,
    `More than ${maxBytes} bytes from ${url}`,
  );
}

/**
 * Appends the rest of the file (from the part's size) to `file`. Returns the whole file's size
 * when the server gave it, or 'restart' when the part had to be discarded.
 */
async function transfer(
  options: DownloadOptions,
  part: PartFile,
  name: string,
): Promise<number | undefined | 'restart'> {
  const { signal, maxBytes } = options;
  const url = redactCredentials(options.url);
  const offset = await fileSize(part.path);
  const response = await request(options.url, offset, options, name);
  const host = new URL(options.url).host;
  if (response.statusCode === 416 && offset > 0) {
    // Nothing left to send: the part should be the whole file.
    response.resume();
    const whole = /^bytes \*\/(\d+)/.exec(response.headers['content-range'] ?? '');
    return whole ? Number(whole[1]) : undefined;
  }
  let received = 0;
  let total: number | undefined;
  const length = Number(response.headers['content-length'] ?? NaN);
  if (response.statusCode === 206 && offset > 0) {
    const range = /^bytes (\d+)-\d+\/(\d+|\*)/.exec(response.headers['content-range'] ?? '');
    if (!range || Number(range[1]) !== offset) {
      response.destroy();
      return 'restart';
    }
    received = offset;
    total = range[2] !== '*' ? Number(range[2]) : Number.isFinite(length) ? offset + length : undefined;
  } else if (response.statusCode === 200) {
    total = Number.isFinite(length) ? length : undefined;
  } else {
    response.resume();
    throw httpError(response, options.url, name);
  }
  if (maxBytes !== undefined && total !== undefined && total > maxBytes) {
    response.destroy();
    throw tooLarge(name, total, maxBytes, url);
  }
  const file = await part.open();
  // The server ignored the range (or there was none): start the part over.
  if (response.statusCode === 200 && offset > 0) await file.truncate(0);

  const watchdog = new Watchdog(options.timeoutMs, () => response.destroy(new StallError()));
  const onAbort = (): void => {
    response.destroy(new CancelledError());
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let lastProgress = 0;
  try {
    if (signal?.aborted) throw new CancelledError();
    options.onProgress?.(received, total);
    for await (const chunk of response as AsyncIterable<Buffer>) {
      watchdog.pause();
      received += chunk.length;
      // Stop as soon as the cap is passed, whatever the server announced (or did not).
      if (maxBytes !== undefined && received > maxBytes) throw tooLarge(name, received, maxBytes, url);
      await file.write(chunk);
      const now = Date.now();
      if (now - lastProgress >= PROGRESS_INTERVAL_MS) {
        lastProgress = now;
        options.onProgress?.(received, total);
      }
      watchdog.reset();
    }
  } catch (error) {
    throw mapError(error, options.url, name, host, received, true, options.timeoutMs);
  } finally {
    watchdog.stop();
    signal?.removeEventListener('abort', onAbort);
    // Frees the socket when we stopped before the body ended.
    if (!response.complete) response.destroy();
  }
  options.onProgress?.(received, total);
  // A connection closed cleanly but early still leaves a resumable part, not a corrupt one.
  if (total !== undefined && received < total) {
    throw mapError(
      new Error(`the connection closed after ${received} of ${total} bytes`),
      options.url,
      name,
      host,
      received,
      true,
      options.timeoutMs,
    );
  }
  return total;
}

/**
 * GETs a small text file (a mirror's SHA256SUMS) the way model files are fetched: same proxy,
 * same redirects, same stall timeout. Undefined on 404; an error over `maxBytes`.
 */
export async function fetchText(
  url: string,
  options: RequestOptions & { maxBytes: number },
): Promise<string | undefined> {
  const name = path.basename(new URL(url).pathname) || url;
  const response = await request(url, 0, options, name);
  if (response.statusCode === 404) {
    response.resume();
    return undefined;
  }
  if (response.statusCode !== 200) {
    response.resume();
    throw httpError(response, url, name);
  }
  const watchdog = new Watchdog(options.timeoutMs, () => response.destroy(new StallError()));
  const onAbort = (): void => void response.destroy(new CancelledError());
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > options.maxBytes) {
        throw new UserFacingError(
          `${name} at ${new URL(url).host} is larger than ${formatBytes(options.maxBytes)}; it is not a list of hashes.`,
          redactCredentials(url),
        );
      }
      chunks.push(chunk);
      watchdog.reset();
    }
  } catch (error) {
    throw mapError(error, url, name, new URL(url).host, size, false, options.timeoutMs);
  } finally {
    watchdog.stop();
    options.signal?.removeEventListener('abort', onAbort);
    if (!response.complete) response.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Sends the GET (with Range when resuming) and follows redirects up to MAX_REDIRECTS. */
async function request(
  href: string,
  offset: number,
  options: RequestOptions,
  name: string,
): Promise<http.IncomingMessage> {
  let url = new URL(href);
  for (let hops = 0; hops <= MAX_REDIRECTS; hops++) {
    const response = await get(url, offset, options, name);
    const location = response.headers.location;
    if (response.statusCode && [301, 302, 303, 307, 308].includes(response.statusCode) && location) {
      response.resume();
      url = new URL(location, url);
      continue;
    }
    return response;
  }
  throw new UserFacingError(
    `Cannot download ${name}: too many redirects.`,
    `More than ${MAX_REDIRECTS} redirects from ${redactCredentials(href)}`,
  );
}

function get(url: URL, offset: number, options: RequestOptions, name: string): Promise<http.IncomingMessage> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(new CancelledError());
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return Promise.reject(
      new UserFacingError(
        `Cannot download ${name} from ${redactCredentials(url.href)}: only http and https are supported.`,
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'user-agent': 'feature-maps-vscode' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    let req: http.ClientRequest;
    // When a proxy is used, a connection that fails is a connection to the proxy.
    let reached = url.host;
    try {
      const via = proxyFor(url, options.proxy);
      if (via) reached = `the proxy ${new URL(via).host}`;
      const agent = proxyAgent(url, options.proxy);
      const client = url.protocol === 'https:' ? https : http;
      req = client.get(url, { headers, ...(agent ? { agent } : {}) });
    } catch (error) {
      reject(mapError(error, url.href, name, url.host, offset, false, options.timeoutMs));
      return;
    }
    const watchdog = new Watchdog(options.timeoutMs, () => req.destroy(new StallError()));
    const onAbort = (): void => {
      req.destroy(new CancelledError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      watchdog.stop();
      signal?.removeEventListener('abort', onAbort);
    };
    req.once('response', (response) => {
      done();
      resolve(response);
    });
    req.once('error', (error) => {
      done();
      reject(mapError(error, url.href, name, reached, offset, false, options.timeoutMs));
    });
  });
}

function httpError(response: http.IncomingMessage, url: string, name: string): UserFacingError {
  const status = `HTTP ${response.statusCode} ${response.statusMessage ?? ''}`.trim();
  const hint = response.statusCode === 407 ? ' The proxy asks for credentials (check http.proxy).' : '';
  return new UserFacingError(
    `Cannot download ${name}: the server answered ${status}.${hint}`,
    `${status} from ${redactCredentials(url)}`,
  );
}

/** Turns transport failures into messages a user can act on; keeps the .part in every case. */
function mapError(
  error: unknown,
  url: string,
  name: string,
  host: string,
  received: number,
  streaming: boolean,
  timeoutMs: number | undefined,
): Error {
  if (error instanceof CancelledError || error instanceof UserFacingError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const detail = redactCredentials(`${code ? code + ': ' : ''}${errorText(error)} (${url})`);
  if (error instanceof StallError) {
    const seconds = Math.round((timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000);
    return new DownloadInterruptedError(
      `The download of ${name} stalled (no data from ${host} for ${seconds} s); run it again to resume.`,
      detail,
    );
  }
  if (streaming) {
    return new DownloadInterruptedError(
      `The download of ${name} was interrupted after ${formatBytes(received)}; run it again to resume.`,
      detail,
    );
  }
  if (code && UNREACHABLE.has(code)) {
    return new UserFacingError(`Cannot reach ${host} (offline?) to download ${name}.`, detail);
  }
  return new UserFacingError(`Cannot download ${name} from ${host}.`, detail);
}

/**
 * `text` with the credentials of every URL in it (`//user:password@host`) replaced by `***`:
 * a mirror or proxy URL may carry them, and messages and logs must not.
 */
export function redactCredentials(text: string): string {
  return text.replace(/\/\/[^/\s@]*@/g, '//***@');
}

/** Fires `onStall` after timeoutMs without a reset. */
class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private readonly ms: number;
  constructor(
    timeoutMs: number | undefined,
    private readonly onStall: () => void,
  ) {
    this.ms = timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.reset();
  }
  reset(): void {
    this.stop();
    this.timer = setTimeout(this.onStall, this.ms);
  }
  /** Disk writes are not network silence. */
  pause(): void {
    this.stop();
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** What a lock file says: who holds it. Written once, with O_EXCL, by its holder. */
interface LockInfo {
  pid: number;
  host: string;
  token: string;
}

/** `<destination>.lock`, held while this process downloads; touched every HEARTBEAT_MS. */
class DownloadLock {
  private readonly heartbeat: NodeJS.Timeout;
  constructor(
    readonly file: string,
    private readonly token: string,
    /** Whether the `.part` there may be resumed (no other process can still be writing it). */
    readonly resumable: boolean,
  ) {
    this.heartbeat = setInterval(() => {
      const now = new Date();
      fs.utimes(file, now, now).catch(() => undefined);
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** The lock file is still ours (not broken by a process that took us for dead). */
  async owned(): Promise<boolean> {
    return (await readLock(this.file))?.info?.token === this.token;
  }

  async release(): Promise<void> {
    clearInterval(this.heartbeat);
    if (await this.owned()) await fs.rm(this.file, { force: true });
  }
}

/** Takes the download's lock, waiting while a live process holds it and breaking a stale one. */
async function acquireLock(destination: string, options: DownloadOptions): Promise<DownloadLock> {
  const file = destination + '.lock';
  const part = destination + '.part';
  let resumable = true;
  let waiting = false;
  for (;;) {
    if (options.signal?.aborted) throw new CancelledError();
    const info: LockInfo = { pid: process.pid, host: os.hostname(), token: randomUUID() };
    try {
      await fs.writeFile(file, JSON.stringify(info), { flag: 'wx' });
      return new DownloadLock(file, info.token, resumable);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new UserFacingError(
          `Cannot write to the model cache ${path.dirname(destination)}.`,
          redactCredentials(errorText(error)),
        );
      }
    }
    const holder = await readLock(file);
    if (!holder) {
      // Released meanwhile (or unreadable: then waiting keeps this from spinning).
      await sleep(POLL_MS / 10, options.signal);
      continue;
    }
    const state = lockState(holder);
    if (state !== 'alive') {
      // A dead process's part is safe to resume; a silent one's may still be written to.
      if (await breakLock(file, holder)) resumable = state === 'dead';
      else await sleep(POLL_MS, options.signal);
      continue;
    }
    if (!waiting) {
      waiting = true;
      options.onWaiting?.();
    }
    options.onProgress?.(await fileSize(part), undefined);
    await sleep(POLL_MS, options.signal);
  }
}

interface LockHolder {
  mtimeMs: number;
  /** Undefined while its holder is still writing it (or when it is not ours to read). */
  info: LockInfo | undefined;
  text: string;
}

async function readLock(file: string): Promise<LockHolder | undefined> {
  try {
    const [stat, text] = await Promise.all([fs.stat(file), fs.readFile(file, 'utf8')]);
    let info: LockInfo | undefined;
    try {
      const parsed = JSON.parse(text) as Partial<LockInfo>;
      if (typeof parsed.pid === 'number' && typeof parsed.host === 'string' && typeof parsed.token === 'string') {
        info = { pid: parsed.pid, host: parsed.host, token: parsed.token };
      }
    } catch {
      info = undefined;
    }
    return { mtimeMs: stat.mtimeMs, info, text };
  } catch {
    return undefined;
  }
}

/** 'dead': its process on this machine is gone; 'silent': not touched for STALE_LOCK_MS. */
function lockState(holder: LockHolder): 'alive' | 'dead' | 'silent' {
  if (Date.now() - holder.mtimeMs > STALE_LOCK_MS) return 'silent';
  const info = holder.info;
  if (info && info.host === os.hostname() && !processExists(info.pid)) return 'dead';
  return 'alive';
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A process that ended but was not reaped (a zombie: its parent died first, and the machine's
  // first process does not reap) still answers signal 0; on Linux, /proc says it is gone.
  try {
    const stat = fsSync.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * Removes a stale lock, unless another process replaced it meanwhile: the lock is moved aside
 * (atomic, so only one breaker gets it) and put back when it turns out not to be the stale one.
 */
async function breakLock(file: string, stale: LockHolder): Promise<boolean> {
  const aside = `${file}.${process.pid}.${randomUUID()}.stale`;
  try {
    await fs.rename(file, aside);
  } catch {
    return false; // someone else broke or released it
  }
  const moved = await readLock(aside);
  const same = moved !== undefined && moved.text === stale.text && moved.mtimeMs === stale.mtimeMs;
  if (!same) await fs.link(aside, file).catch(() => undefined);
  await fs.rm(aside, { force: true });
  return same;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new CancelledError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The proxy URL for `url`: the explicit proxy, else https_proxy/http_proxy unless no_proxy matches. */
export function proxyFor(url: URL, proxy: string | undefined): string | undefined {
  const secure = url.protocol === 'https:';
  let proxyUrl = proxy?.trim();
  if (!proxyUrl) {
    if (bypassProxy(url.hostname)) return undefined;
    const env = process.env;
    proxyUrl = secure
      ? (env.https_proxy ?? env.HTTPS_PROXY ?? env.all_proxy ?? env.ALL_PROXY)
      : (env.http_proxy ?? env.HTTP_PROXY ?? env.all_proxy ?? env.ALL_PROXY);
    if (!proxyUrl) return undefined;
  }
  // VS Code accepts "host:port" without a scheme.
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxyUrl) ? proxyUrl : `http://${proxyUrl}`;
}

/** The agent for `url` when it goes through a proxy (proxyFor). */
export function proxyAgent(url: URL, proxy: string | undefined): http.Agent | undefined {
  const proxyUrl = proxyFor(url, proxy);
  if (!proxyUrl) return undefined;
  try {
    // Loaded only for a download through a proxy: every engine and CLI start would otherwise
    // spend about 15 ms initialising them (and agent-base, debug).
    if (url.protocol === 'https:') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { HttpsProxyAgent } = require('https-proxy-agent') as typeof import('https-proxy-agent');
      return new HttpsProxyAgent(proxyUrl);
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { HttpProxyAgent } = require('http-proxy-agent') as typeof import('http-proxy-agent');
    return new HttpProxyAgent(proxyUrl);
  } catch (error) {
    throw new UserFacingError(
      `The proxy "${redactCredentials(proxyUrl)}" is not a valid URL (check http.proxy or https_proxy).`,
      redactCredentials(errorText(error)),
    );
  }
}

/** Loopback never goes through a proxy; otherwise a simple no_proxy suffix match. */
export function bypassProxy(hostname: string, noProxy = process.env.no_proxy ?? process.env.NO_PROXY): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host === '::1' || host.startsWith('127.')) return true;
  for (const raw of (noProxy ?? '').split(/[\s,]+/)) {
    const entry = raw
      .toLowerCase()
      .replace(/:\d+$/, '')
      .replace(/^\*?\.?/, '');
    if (raw.trim() === '*') return true;
    if (entry && (host === entry || host.endsWith('.' + entry))) return true;
  }
  return false;
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return 0;
  }
}

/** Whether `file` (a path) is still the file `handle` has open. */
async function sameFile(file: string, handle: fs.FileHandle): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([fs.stat(file), handle.stat()]);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** The hash of the bytes on disk behind `handle`, read from its start. */
async function hashHandle(
  handle: fs.FileHandle,
  algorithm: Checksum['algorithm'],
  signal: AbortSignal | undefined,
): Promise<string> {
  const hash = createHash(algorithm);
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  for (let position = 0; ;) {
    if (signal?.aborted) throw new CancelledError();
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex');
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MB` : `${Math.round(bytes / 1024)} KB`;
}

export interface CacheEntry {
  file: string;
  bytes: number;
  /** An unfinished download (`.part`) that the next download resumes. */
  partial: boolean;
}

/** The files in the model cache with their sizes, for the cache-management command (not the download locks). */
export async function modelCacheEntries(dir: string): Promise<CacheEntry[]> {
  let names: string[];
  try {
    names = (await fs.readdir(dir, { withFileTypes: true }))
      .filter((d) => d.isFile() && !/\.lock$|\.stale$/.test(d.name))
      .map((d) => d.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UserFacingError(`Cannot read the model cache ${dir}.`, errorText(error));
  }
  const entries = await Promise.all(
    names.map(async (file) => ({ file, bytes: await fileSize(path.join(dir, file)), partial: file.endsWith('.part') })),
  );
  return entries.sort((a, b) => a.file.localeCompare(b.file));
}

/** Deletes one cached file (and its unfinished `.part`); `file` must be a name inside `dir`. */
export async function removeCached(dir: string, file: string): Promise<void> {
  if (file !== path.basename(file) || file === '..' || file === '.') {
    throw new UserFacingError(`Cannot remove ${file}: not a file in the model cache.`);
  }
  try {
    await fs.rm(path.join(dir, file), { force: true });
    if (!file.endsWith('.part')) await fs.rm(path.join(dir, file + '.part'), { force: true });
  } catch (error) {
    throw new UserFacingError(`Cannot remove ${file} from the model cache.`, errorText(error));
  }
}

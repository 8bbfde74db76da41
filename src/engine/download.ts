import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { CancelledError, UserFacingError, errorText } from './errors';

/** A file hash as publishers give them: Keras publishes MD5, mirrors usually SHA-256. */
export interface Checksum {
  algorithm: 'md5' | 'sha256';
  hex: string;
}

export interface DownloadOptions {
  url: string;
  destination: string;
  /**
   * The whole file's published hash. Without one, only a complete transfer (Content-Length)
   * is checked, and the caller must check the content (our loaders check every weight shape).
   */
  checksum?: Checksum;
  signal?: AbortSignal;
  /** VS Code's `http.proxy`; when absent the usual environment variables apply. */
  proxy?: string;
  onProgress?: (received: number, total: number | undefined) => void;
  /** How long without any data before the download counts as stalled. */
  timeoutMs?: number;
}

const MAX_REDIRECTS = 5;
const PROGRESS_INTERVAL_MS = 100;
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

/**
 * Downloads `url` to `destination`, resuming a previous `.part`, and only renames it
 * into place once the whole file matches `checksum`.
 */
export async function downloadVerified(options: DownloadOptions): Promise<void> {
  const { destination, signal, checksum } = options;
  const algorithm = checksum?.algorithm ?? 'sha256';
  const expected = checksum?.hex.toLowerCase();
  const name = path.basename(destination);
  if (signal?.aborted) throw new CancelledError();
  const existing = await hashFileIfExists(destination, algorithm, signal);
  if (existing !== undefined && (expected === undefined || existing === expected)) return;

  await fs.mkdir(path.dirname(destination), { recursive: true });
  const part = destination + '.part';
  // One retry: a server answering a range with the wrong start makes us start over.
  for (let attempt = 0; ; attempt++) {
    const outcome = await transfer(options, part, attempt > 0);
    if (outcome === 'restart' && attempt === 0) continue;
    if (outcome === 'restart') {
      throw new UserFacingError(`The server sent the wrong part of ${name}.`, `Range requests to ${options.url}`);
    }
    const actual = outcome.digest('hex');
    if (expected !== undefined && actual !== expected) {
      await fs.rm(part, { force: true });
      throw new UserFacingError(
        `The download of ${name} was corrupt (its checksum does not match); it has been deleted.`,
        `Expected ${algorithm === 'md5' ? 'MD5' : 'SHA-256'} ${expected}, got ${actual} from ${options.url}`,
      );
    }
    await fs.rename(part, destination);
    return;
  }
}

/**
 * Fetches into `part` (appending when the server honours the range) and returns the hash
 * of the whole part, or 'restart' when the part had to be discarded.
 */
async function transfer(options: DownloadOptions, part: string, fresh: boolean): Promise<Hash | 'restart'> {
  const { signal } = options;
  const name = path.basename(options.destination);
  if (fresh) await fs.rm(part, { force: true });
  const offset = await fileSize(part);
  // Hash what we already have before asking for more, so a slow hash cannot look like a stall.
  const algorithm = options.checksum?.algorithm ?? 'sha256';
  let hash = offset > 0 ? await hashFile(part, algorithm, signal) : createHash(algorithm);

  const response = await request(options, offset);
  const host = new URL(options.url).host;
  if (response.statusCode === 416 && offset > 0) {
    // Nothing left to send: the part should be the whole file.
    response.resume();
    return hash;
  }
  let append = false;
  let total: number | undefined;
  const length = Number(response.headers['content-length'] ?? NaN);
  if (response.statusCode === 206 && offset > 0) {
    const range = /^bytes (\d+)-\d+\/(\d+|\*)/.exec(response.headers['content-range'] ?? '');
    if (!range || Number(range[1]) !== offset) {
      response.destroy();
      return 'restart';
    }
    append = true;
    total = range[2] !== '*' ? Number(range[2]) : Number.isFinite(length) ? offset + length : undefined;
  } else if (response.statusCode === 200) {
    // The server ignored the range (or there was none): start the part over.
    if (offset > 0) hash = createHash(algorithm);
    total = Number.isFinite(length) ? length : undefined;
  } else {
    response.resume();
    throw httpError(response, options.url, name);
  }

  let received = append ? offset : 0;
  const file = await fs.open(part, append ? 'a' : 'w');
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
      await file.write(chunk);
      hash.update(chunk);
      received += chunk.length;
      const now = Date.now();
      if (now - lastProgress >= PROGRESS_INTERVAL_MS) {
        lastProgress = now;
        options.onProgress?.(received, total);
      }
      watchdog.reset();
    }
  } catch (error) {
    throw mapError(error, options, host, received, true);
  } finally {
    watchdog.stop();
    signal?.removeEventListener('abort', onAbort);
    // Frees the socket when we stopped before the body ended.
    if (!response.complete) response.destroy();
    await file.close();
  }
  options.onProgress?.(received, total);
  // A connection closed cleanly but early still leaves a resumable part, not a corrupt one.
  if (total !== undefined && received < total) {
    throw mapError(
      new Error(`the connection closed after ${received} of ${total} bytes`),
      options,
      host,
      received,
      true,
    );
  }
  return hash;
}

/** Sends the GET (with Range when resuming) and follows redirects up to MAX_REDIRECTS. */
async function request(options: DownloadOptions, offset: number): Promise<http.IncomingMessage> {
  let url = new URL(options.url);
  for (let hops = 0; hops <= MAX_REDIRECTS; hops++) {
    const response = await get(url, offset, options);
    const location = response.headers.location;
    if (response.statusCode && [301, 302, 303, 307, 308].includes(response.statusCode) && location) {
      response.resume();
      url = new URL(location, url);
      continue;
    }
    return response;
  }
  throw new UserFacingError(
    `Cannot download ${path.basename(options.destination)}: too many redirects.`,
    `More than ${MAX_REDIRECTS} redirects from ${options.url}`,
  );
}

function get(url: URL, offset: number, options: DownloadOptions): Promise<http.IncomingMessage> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(new CancelledError());
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return Promise.reject(new UserFacingError(`Cannot download from ${url.href}: only http and https are supported.`));
  }
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'user-agent': 'feature-maps-vscode' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const agent = proxyAgent(url, options.proxy);
    const client = url.protocol === 'https:' ? https : http;
    const req = client.get(url, { headers, ...(agent ? { agent } : {}) });
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
      reject(mapError(error, options, url.host, offset, false));
    });
  });
}

function httpError(response: http.IncomingMessage, url: string, name: string): UserFacingError {
  const status = `HTTP ${response.statusCode} ${response.statusMessage ?? ''}`.trim();
  const hint = response.statusCode === 407 ? ' The proxy asks for credentials (check http.proxy).' : '';
  return new UserFacingError(`Cannot download ${name}: the server answered ${status}.${hint}`, `${status} from ${url}`);
}

/** Turns transport failures into messages a user can act on; keeps the .part in every case. */
function mapError(error: unknown, options: DownloadOptions, host: string, received: number, streaming: boolean): Error {
  if (error instanceof CancelledError || error instanceof UserFacingError) return error;
  const name = path.basename(options.destination);
  const code = (error as NodeJS.ErrnoException).code;
  const detail = `${code ? code + ': ' : ''}${errorText(error)} (${options.url})`;
  if (error instanceof StallError) {
    const seconds = Math.round((options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000);
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

const DEFAULT_TIMEOUT_MS = 30_000;

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

/** The agent for `url`: the explicit proxy, else https_proxy/http_proxy unless no_proxy matches. */
export function proxyAgent(url: URL, proxy: string | undefined): http.Agent | undefined {
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
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(proxyUrl)) proxyUrl = `http://${proxyUrl}`;
  return secure ? new HttpsProxyAgent(proxyUrl) : new HttpProxyAgent(proxyUrl);
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

async function hashFile(file: string, algorithm: Checksum['algorithm'], signal?: AbortSignal): Promise<Hash> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    if (signal?.aborted) throw new CancelledError();
    hash.update(chunk);
  }
  return hash;
}

async function hashFileIfExists(
  file: string,
  algorithm: Checksum['algorithm'],
  signal?: AbortSignal,
): Promise<string | undefined> {
  try {
    await fs.access(file);
  } catch {
    return undefined;
  }
  return (await hashFile(file, algorithm, signal)).digest('hex');
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

/** The files in the model cache with their sizes, for the cache-management command. */
export async function modelCacheEntries(dir: string): Promise<CacheEntry[]> {
  let names: string[];
  try {
    names = (await fs.readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name);
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

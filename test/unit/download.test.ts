import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  STALE_LOCK_MS,
  bypassProxy,
  downloadVerified,
  fetchText,
  modelCacheEntries,
  redactCredentials,
  removeCached,
} from '../../src/engine/download';
import { CancelledError, UserFacingError } from '../../src/engine/errors';
import { tempDir } from './fixtures';

const SIZE = 3 * 1024 * 1024;
const CHUNK = 64 * 1024;
/** The server refuses anything past this, so a runaway client cannot spin forever. */
const MAX_REQUESTS = 100;

/** ~3 MB of bytes from a fixed seed (xorshift32), the same every run. */
function fixedBytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 0x12345678;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const BODY = fixedBytes(SIZE);
const SHA = createHash('sha256').update(BODY).digest('hex');

type Mode = 'normal' | 'cut' | 'slow' | 'stall';

interface TestServer {
  base: string;
  /** Range headers (or '') of every /file request, in order. */
  ranges: string[];
  requests: number;
  mode: Mode;
  close(): Promise<void>;
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function stop(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Serves BODY at /file with Range support, plus /missing (404) and /moved (redirects to /file). */
async function startServer(): Promise<TestServer> {
  const state = { ranges: [] as string[], requests: 0, mode: 'normal' as Mode };
  const server = http.createServer((req, res) => {
    if (++state.requests > MAX_REQUESTS) return void req.socket.destroy();
    if (req.url === '/missing') return void res.writeHead(404).end('not here');
    if (req.url === '/moved') return void res.writeHead(302, { location: '/hop' }).end();
    if (req.url === '/hop') return void res.writeHead(301, { location: `${base}/file` }).end();
    state.ranges.push(req.headers.range ?? '');
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    if (start >= SIZE) return void res.writeHead(416, { 'content-range': `bytes */${SIZE}` }).end();
    res.writeHead(match ? 206 : 200, {
      'content-length': SIZE - start,
      ...(match ? { 'content-range': `bytes ${start}-${SIZE - 1}/${SIZE}` } : {}),
    });
    const mode = state.mode;
    let offset = start;
    const pump = (): void => {
      if (res.destroyed) return;
      if (offset >= SIZE) return void res.end();
      if (mode === 'cut' && offset - start >= 1024 * 1024) return void req.socket.destroy();
      if (mode === 'stall' && offset - start >= CHUNK) return; // headers and a bit of body, then silence
      const end = Math.min(offset + CHUNK, SIZE);
      const chunk = BODY.subarray(offset, end);
      offset = end;
      res.write(chunk, () => (mode === 'slow' ? setTimeout(pump, 10) : pump()));
    };
    pump();
  });
  const base = await listen(server);
  return {
    base,
    ranges: state.ranges,
    get requests() {
      return state.requests;
    },
    get mode() {
      return state.mode;
    },
    set mode(mode: Mode) {
      state.mode = mode;
    },
    close: () => stop(server),
  };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail('expected the download to fail');
}

describe('download of model weights', function () {
  this.timeout(15_000);
  let server: TestServer;
  let dir: string;
  let destination: string;

  before(async () => {
    server = await startServer();
  });
  after(() => server.close());
  beforeEach(() => {
    server.mode = 'normal';
    server.ranges.length = 0;
    dir = tempDir();
    destination = path.join(dir, 'weights.h5');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('downloads the file, verifies it and reports progress in bytes', async () => {
    const progress: number[] = [];
    await downloadVerified({
      url: `${server.base}/file`,
      destination,
      checksum: { algorithm: 'sha256', hex: SHA },
      onProgress: (received, total) => {
        assert.equal(total, SIZE);
        progress.push(received);
      },
    });
    assert.ok(fs.readFileSync(destination).equals(BODY));
    assert.equal(fs.existsSync(destination + '.part'), false);
    assert.equal(progress.at(-1), SIZE);
    assert.deepEqual(server.ranges, ['']);
  });

  it('resumes an interrupted download where it stopped', async () => {
    server.mode = 'cut';
    const error = await rejection(
      downloadVerified({ url: `${server.base}/file`, destination, checksum: { algorithm: 'sha256', hex: SHA } }),
    );
    assert.ok(error instanceof UserFacingError);
    assert.match(error.message, /weights\.h5 was interrupted.*resume/);
    const partSize = fs.statSync(destination + '.part').size;
    assert.ok(partSize > 0 && partSize < SIZE, `part of ${partSize} bytes`);
    assert.equal(fs.existsSync(destination), false);

    server.mode = 'normal';
    await downloadVerified({ url: `${server.base}/file`, destination, checksum: { algorithm: 'sha256', hex: SHA } });
    assert.deepEqual(server.ranges, ['', `bytes=${partSize}-`]);
    assert.ok(fs.readFileSync(destination).equals(BODY));
    assert.equal(fs.existsSync(destination + '.part'), false);
  });

  it('verifies a complete .part when the server answers 416', async () => {
    fs.writeFileSync(destination + '.part', BODY);
    await downloadVerified({ url: `${server.base}/file`, destination, checksum: { algorithm: 'sha256', hex: SHA } });
    assert.deepEqual(server.ranges, [`bytes=${SIZE}-`]);
    assert.ok(fs.readFileSync(destination).equals(BODY));
  });

  it('rejects a corrupt download and leaves neither file nor .part', async () => {
    const wrong = 'ab'.repeat(32);
    const error = await rejection(
      downloadVerified({ url: `${server.base}/file`, destination, checksum: { algorithm: 'sha256', hex: wrong } }),
    );
    assert.ok(error instanceof UserFacingError);
    assert.match(error.message, /weights\.h5 was corrupt: its SHA-256 does not match the expected hash/);
    assert.match(error.detail ?? '', new RegExp(`Expected SHA-256 ${wrong}, got ${SHA}`));
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('says the host cannot be reached when nothing listens', async () => {
    const closed = http.createServer();
    const base = await listen(closed);
    await stop(closed);
    const started = Date.now();
    const error = await rejection(
      downloadVerified({ url: `${base}/file`, destination, checksum: { algorithm: 'sha256', hex: SHA } }),
    );
    assert.ok(error instanceof UserFacingError);
    assert.match(error.message, /Cannot reach 127\.0\.0\.1:\d+ \(offline\?\)/);
    assert.match(error.detail ?? '', /ECONNREFUSED/);
    assert.ok(Date.now() - started < 5000);
  });

  it('names the HTTP status and the URL on 404', async () => {
    const url = `${server.base}/missing`;
    const error = await rejection(downloadVerified({ url, destination, checksum: { algorithm: 'sha256', hex: SHA } }));
    assert.ok(error instanceof UserFacingError);
    assert.match(error.message, /HTTP 404/);
    assert.ok(error.detail?.includes(url));
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('stops on cancel and keeps the .part for next time', async () => {
    server.mode = 'slow';
    const controller = new AbortController();
    const error = await rejection(
      downloadVerified({
        url: `${server.base}/file`,
        destination,
        checksum: { algorithm: 'sha256', hex: SHA },
        signal: controller.signal,
        onProgress: (received) => {
          if (received >= 512 * 1024) controller.abort();
        },
      }),
    );
    assert.ok(error instanceof CancelledError);
    const partSize = fs.statSync(destination + '.part').size;
    assert.ok(partSize > 0 && partSize < SIZE, `part of ${partSize} bytes`);
    assert.equal(fs.existsSync(destination), false);
  });

  it('reports a stalled download and keeps the .part', async () => {
    server.mode = 'stall';
    const error = await rejection(
      downloadVerified({
        url: `${server.base}/file`,
        destination,
        checksum: { algorithm: 'sha256', hex: SHA },
        timeoutMs: 300,
      }),
    );
    assert.ok(error instanceof UserFacingError);
    assert.match(error.message, /stalled/);
    assert.ok(fs.statSync(destination + '.part').size > 0);
  });

  it('follows redirects', async () => {
    await downloadVerified({ url: `${server.base}/moved`, destination, checksum: { algorithm: 'sha256', hex: SHA } });
    assert.ok(fs.readFileSync(destination).equals(BODY));
  });

  it('goes through the configured proxy', async () => {
    let proxied = 0;
    // A forward proxy: absolute-URI requests in, the same request to the target out.
    const proxy = http.createServer((req, res) => {
      if (++proxied > MAX_REQUESTS) return void req.socket.destroy();
      const upstream = http.get(req.url ?? '', { headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.writeHead(502).end());
    });
    const proxyUrl = await listen(proxy);
    try {
      await downloadVerified({
        url: `${server.base}/file`,
        destination,
        checksum: { algorithm: 'sha256', hex: SHA },
        proxy: proxyUrl,
      });
    } finally {
      await stop(proxy);
    }
    assert.ok(proxied >= 1);
    assert.ok(fs.readFileSync(destination).equals(BODY));
  });

  it('makes no request when the file is already there', async () => {
    fs.writeFileSync(destination, BODY);
    const before = server.requests;
    await downloadVerified({ url: `${server.base}/file`, destination, checksum: { algorithm: 'sha256', hex: SHA } });
    assert.equal(server.requests, before);
  });

  it('hashes the bytes on disk: a part another process wrote into too is refused, not cached', async () => {
    server.mode = 'slow';
    let meddled = false;
    const error = await rejection(
      downloadVerified({
        url: `${server.base}/file`,
        destination,
        checksum: { algorithm: 'sha256', hex: SHA },
        onProgress: (received) => {
          // What a second, unlocked downloader did to the shared .part: its own bytes in the middle.
          if (!meddled && received >= 1024 * 1024) {
            meddled = true;
            const fd = fs.openSync(destination + '.part', 'r+');
            fs.writeSync(fd, Buffer.alloc(CHUNK, 1), 0, CHUNK, 0);
            fs.closeSync(fd);
          }
        },
      }),
    );
    assert.ok(error instanceof UserFacingError);
    assert.match(error.message, /weights\.h5 was corrupt/);
    assert.deepEqual(fs.readdirSync(dir), [], 'neither file, nor .part, nor lock');
  });

  it('refuses an unhashed file whose size on disk is not the size the server sent', async () => {
    server.mode = 'slow';
    let meddled = false;
    const error = await rejection(
      downloadVerified({
        url: `${server.base}/file`,
        destination,
        onProgress: (received) => {
          if (!meddled && received >= 1024 * 1024) {
            meddled = true;
            fs.appendFileSync(destination + '.part', Buffer.alloc(10));
          }
        },
      }),
    );
    assert.ok(error instanceof UserFacingError);
    assert.match(
      error.message,
      /download of weights\.h5 was damaged: 3,145,738 bytes on disk for a 3,145,728-byte file/,
    );
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('stops a transfer as soon as it passes maxBytes, keeping nothing', async () => {
    const error = await rejection(downloadVerified({ url: `${server.base}/file`, destination, maxBytes: SIZE - 1 }));
    assert.ok(error instanceof UserFacingError);
    assert.match(error.message, /weights\.h5 was stopped at 3\.0 MB: the file is larger than the 3\.0 MB it can be/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('downloads once when two calls ask for the same file at the same time', async () => {
    server.mode = 'slow';
    const waited: string[] = [];
    const download = (who: string) =>
      downloadVerified({
        url: `${server.base}/file`,
        destination,
        checksum: { algorithm: 'sha256', hex: SHA },
        onWaiting: () => waited.push(who),
      });
    await Promise.all([download('first'), download('second')]);
    assert.deepEqual(server.ranges, [''], 'one transfer');
    // Which call takes the lock first is the file system's race; the other one waits.
    assert.equal(waited.length, 1, `one call waits for the other (${waited.join(', ')})`);
    assert.ok(fs.readFileSync(destination).equals(BODY));
    assert.deepEqual(fs.readdirSync(dir), ['weights.h5']);
  });

  it('waits while a live process holds the lock, and uses the file it leaves', async () => {
    const lock = destination + '.lock';
    fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), token: 'another download' }));
    fs.writeFileSync(destination + '.part', BODY.subarray(0, 1000));
    const progress: number[] = [];
    let waiting = false;
    const download = downloadVerified({
      url: `${server.base}/file`,
      destination,
      checksum: { algorithm: 'sha256', hex: SHA },
      onWaiting: () => (waiting = true),
      onProgress: (received) => progress.push(received),
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.ok(waiting, 'it says it waits');
    assert.equal(progress.at(-1), 1000, 'and shows the other download’s progress');
    // The other process finishes: the verified file appears, then its lock goes.
    fs.writeFileSync(destination, BODY);
    fs.rmSync(destination + '.part');
    fs.rmSync(lock);
    await download;
    assert.equal(server.ranges.length, 0, 'no transfer of its own');
  });

  it('stops waiting on cancel and leaves the other process’s lock alone', async () => {
    const lock = destination + '.lock';
    const held = JSON.stringify({ pid: process.pid, host: os.hostname(), token: 'another download' });
    fs.writeFileSync(lock, held);
    const controller = new AbortController();
    const download = downloadVerified({
      url: `${server.base}/file`,
      destination,
      signal: controller.signal,
      onWaiting: () => setTimeout(() => controller.abort(), 300),
    });
    await assert.rejects(download, CancelledError);
    assert.equal(fs.readFileSync(lock, 'utf8'), held);
    assert.equal(server.ranges.length, 0);
  });

  it('breaks the lock of a process that died and resumes its part', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    fs.writeFileSync(destination + '.lock', JSON.stringify({ pid: dead, host: os.hostname(), token: 'crashed' }));
    fs.writeFileSync(destination + '.part', BODY.subarray(0, 1024 * 1024));
    await downloadVerified({ url: `${server.base}/file`, destination, checksum: { algorithm: 'sha256', hex: SHA } });
    assert.deepEqual(server.ranges, [`bytes=${1024 * 1024}-`]);
    assert.ok(fs.readFileSync(destination).equals(BODY));
    assert.deepEqual(fs.readdirSync(dir), ['weights.h5']);
  });

  it('breaks a lock nobody touched for 30 s and starts over (its part may still be written to)', async () => {
    const lock = destination + '.lock';
    fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, host: 'another-machine', token: 'frozen' }));
    const old = new Date(Date.now() - STALE_LOCK_MS - 5000);
    fs.utimesSync(lock, old, old);
    fs.writeFileSync(destination + '.part', Buffer.alloc(1024 * 1024, 7));
    await downloadVerified({ url: `${server.base}/file`, destination, checksum: { algorithm: 'sha256', hex: SHA } });
    assert.deepEqual(server.ranges, [''], 'from the start');
    assert.ok(fs.readFileSync(destination).equals(BODY));
    assert.deepEqual(fs.readdirSync(dir), ['weights.h5']);
  });

  it('fetches a small text file through redirects, and says 404 by returning nothing', async () => {
    const text = await fetchText(`${server.base}/moved`, { maxBytes: SIZE });
    assert.equal(text, BODY.toString('utf8'));
    assert.equal(await fetchText(`${server.base}/missing`, { maxBytes: 1024 }), undefined);
    await assert.rejects(
      fetchText(`${server.base}/file`, { maxBytes: 1024 }),
      /file at 127\.0\.0\.1:\d+ is larger than 1 KB/,
    );
  });

  it('hides the credentials of URLs in messages', () => {
    assert.equal(
      redactCredentials('GET http://me:pw@mirror.example/keras/ via https://u:p@proxy:3128 (http://plain/x@y)'),
      'GET http://***@mirror.example/keras/ via https://***@proxy:3128 (http://plain/x@y)',
    );
  });

  it('lists and removes cached files', async () => {
    fs.writeFileSync(destination, Buffer.alloc(10));
    fs.writeFileSync(path.join(dir, 'other.h5.part'), Buffer.alloc(4));
    fs.writeFileSync(path.join(dir, 'other.h5.lock'), '{}');
    assert.deepEqual(await modelCacheEntries(dir), [
      { file: 'other.h5.part', bytes: 4, partial: true },
      { file: 'weights.h5', bytes: 10, partial: false },
    ]);
    await removeCached(dir, 'weights.h5');
    await assert.rejects(removeCached(dir, '../x'), UserFacingError);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['other.h5.lock', 'other.h5.part']);
    assert.deepEqual(await modelCacheEntries(path.join(dir, 'absent')), []);
  });

  it('bypasses environment proxies for loopback and no_proxy hosts', () => {
    assert.ok(bypassProxy('127.0.0.1', ''));
    assert.ok(bypassProxy('localhost', ''));
    assert.ok(bypassProxy('storage.googleapis.com', 'example.org, .googleapis.com'));
    assert.ok(!bypassProxy('storage.googleapis.com', 'example.org'));
    assert.ok(bypassProxy('anything.net', '*'));
  });
});

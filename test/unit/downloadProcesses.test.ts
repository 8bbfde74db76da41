import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type CatalogEntry, MIRROR_ENV, catalogEntry } from '../../src/engine/catalog';
import { type Mirror, startMirror } from '../mirror.mjs';
import { mobileNetV2Weights } from './legacyWeights';
import { DIST, image, tempDir } from './fixtures';

const MOBILENET = catalogEntry('catalog:mobilenet_v2') as CatalogEntry;

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A real `feature-maps` CLI process downloading from `mirror` into `cacheDir`. */
function startCli(mirror: Mirror, cacheDir: string, ...args: string[]): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(
    process.execPath,
    [path.join(DIST, 'cli.js'), image('chelsea.png'), '--model', 'mobilenet_v2', '--cache-dir', cacheDir, ...args],
    { env: { ...process.env, [MIRROR_ENV]: mirror.base }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Run>((resolve) =>
    child.once('close', (status, signal) => resolve({ status, signal, stdout, stderr })),
  );
  return { child, done };
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Resolves once `file` exists and has at least `bytes` bytes. */
async function waitForSize(file: string, bytes: number, withinMs: number): Promise<number> {
  const until = Date.now() + withinMs;
  for (;;) {
    const size = fs.existsSync(file) ? fs.statSync(file).size : 0;
    if (size >= bytes) return size;
    if (Date.now() > until) assert.fail(`${file} did not reach ${bytes} bytes within ${withinMs} ms (${size})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('one catalogue download shared by several processes (real CLI processes, a local mirror)', function () {
  this.timeout(180_000);
  let weights: Buffer;
  let mirror: Mirror | undefined;
  before(async function () {
    this.timeout(120_000);
    // MobileNetV2 is the catalogue file Keras publishes no hash for: the mirror's SHA256SUMS applies.
    weights = await mobileNetV2Weights();
  });
  afterEach(async () => {
    await mirror?.close();
    mirror = undefined;
  });
  const transfers = (): { range: string; sent: number }[] =>
    (mirror?.requests ?? []).filter((r) => r.path === MOBILENET.urlPath);

  it('two CLIs started together: one transfer, one verified file with the served bytes, no .part or lock left', async () => {
    // About 3 s per transfer, so the second process surely starts while the first downloads.
    mirror = await startMirror({
      files: { [MOBILENET.urlPath]: weights },
      checksums: `${sha256(weights)}  ${MOBILENET.fileName}\n`,
      bytesPerSecond: 5 * 1024 * 1024,
    });
    const cache = tempDir();
    const started = Date.now();
    const first = startCli(mirror, cache, '--list');
    const second = startCli(mirror, cache, '--list');
    const [a, b] = await Promise.all([first.done, second.done]);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(b.status, 0, b.stderr);
    for (const run of [a, b]) assert.match(run.stdout, /^Conv1\tConv2D\t112×112×32$/m, 'both list the model');
    assert.equal(
      [a, b].filter((run) => /Another process is downloading it to .*; waiting for it/.test(run.stderr)).length,
      1,
      `exactly one waited:\n${a.stderr}\n---\n${b.stderr}`,
    );
    assert.deepEqual(
      transfers().map((t) => t.range),
      [''],
      'the file was transferred once',
    );
    assert.deepEqual(fs.readdirSync(cache), [MOBILENET.fileName], 'no .part, .lock or temporary file is left');
    assert.ok(fs.readFileSync(path.join(cache, MOBILENET.fileName)).equals(weights), 'the served bytes, exactly');
    const served = transfers().reduce((sum, t) => sum + t.sent, 0);
    console.log(
      `      ${(weights.length / 1e6).toFixed(1)} MB file, ${(served / 1e6).toFixed(1)} MB served, both CLIs done in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });

  it('a CLI killed mid-download leaves its part and lock; the next CLI breaks the dead lock and resumes', async () => {
    mirror = await startMirror({
      files: { [MOBILENET.urlPath]: weights },
      checksums: `${sha256(weights)}  ${MOBILENET.fileName}\n`,
      bytesPerSecond: 4 * 1024 * 1024,
    });
    const cache = tempDir();
    const part = path.join(cache, MOBILENET.fileName + '.part');
    const killed = startCli(mirror, cache, '--list');
    await waitForSize(part, 1024 * 1024, 30_000);
    killed.child.kill('SIGKILL');
    const gone = await killed.done;
    assert.equal(gone.signal, 'SIGKILL');
    assert.ok(fs.existsSync(path.join(cache, MOBILENET.fileName + '.lock')), 'the dead process’s lock is still there');
    const kept = fs.statSync(part).size;

    const started = Date.now();
    const next = await startCli(mirror, cache, '--list').done;
    assert.equal(next.status, 0, next.stderr);
    assert.doesNotMatch(next.stderr, /waiting/, 'a dead process’s lock is not waited for');
    assert.ok(Date.now() - started < 60_000, 'within 60 s');
    const ranges = transfers().map((t) => t.range);
    assert.equal(ranges.length, 2);
    assert.equal(ranges[1], `bytes=${kept}-`, 'resumed from what the killed process had written');
    assert.deepEqual(fs.readdirSync(cache), [MOBILENET.fileName]);
    assert.ok(fs.readFileSync(path.join(cache, MOBILENET.fileName)).equals(weights));
  });

  it('removes a downloaded file the loader rejects, so the next run downloads it again', async () => {
    // A mirror that serves (and vouches for) a file that is not MobileNetV2's weights at all.
    const wrong = fs.readFileSync(image('chelsea.png'));
    mirror = await startMirror({
      files: { [MOBILENET.urlPath]: wrong },
      checksums: `${sha256(wrong)}  ${MOBILENET.fileName}\n`,
    });
    const cache = tempDir();
    const run = await startCli(mirror, cache, '--list').done;
    assert.equal(run.status, 1);
    assert.match(run.stderr, /not a Keras HDF5 weights file/);
    assert.match(run.stderr, /The downloaded file was removed from .*; the next run downloads it again\./);
    assert.deepEqual(fs.readdirSync(cache), [], 'nothing is left in the cache');

    const again = await startCli(mirror, cache, '--list').done;
    assert.equal(again.status, 1);
    assert.match(again.stderr, /Downloading MobileNetV2 ImageNet/, 'downloaded again, not "damaged" forever');
    assert.equal(transfers().length, 2);
  });

  it('never shows the password of a mirror URL, and sends it to the mirror', async () => {
    mirror = await startMirror({ files: {} });
    const withPassword = mirror.base.replace('http://', 'http://reader:s3cret-pw@');
    const cache = tempDir();
    const child = spawn(
      process.execPath,
      [path.join(DIST, 'cli.js'), image('chelsea.png'), '--model', 'mobilenet_v2', '--cache-dir', cache],
      { env: { ...process.env, [MIRROR_ENV]: withPassword }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(status, 1);
    assert.match(stderr, /Downloading MobileNetV2 ImageNet from http:\/\/\*\*\*@127\.0\.0\.1/);
    assert.match(stderr, /Cannot download mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1\.0_224\.h5: .*HTTP 404/);
    assert.doesNotMatch(stderr, /s3cret-pw/);
    assert.ok(
      mirror.requests.length > 0 && mirror.requests.every((r) => r.credentials === 'reader:s3cret-pw'),
      'the credentials are sent to the mirror',
    );
  });
});

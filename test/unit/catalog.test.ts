import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CATALOG,
  KERAS_BASE_URL,
  MAX_SIZE_FACTOR,
  TEST_PUBLISHED_HASHES_ENV,
  type CatalogEntry,
  catalogEntry,
  discardDownloaded,
  downloadedBytes,
  ensureDownloaded,
  normalizeBaseUrl,
} from '../../src/engine/catalog';
import { channelsLast } from '../../src/engine/model';
import { FeatureMapEngine } from '../../src/engine/engine';
import { CancelledError } from '../../src/engine/errors';
import { type Mirror, startMirror } from '../mirror.mjs';
import { rejectsWith } from './assertions';
import { DIST, ORACLE_TOLERANCE, image, oracleCacheFile, tempDir } from './fixtures';
import { readNpy, relErr } from './npy';

const VGG16 = catalogEntry('catalog:vgg16') as CatalogEntry;
const MOBILENET = catalogEntry('catalog:mobilenet_v2') as CatalogEntry;
const SEED_LAYERS = ['block1_conv1', 'block2_conv1', 'block3_conv1'];

function mb(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('model catalogue', () => {
  it('names Keras’ own download URLs and published MD5 hashes', () => {
    const urls = CATALOG.map((entry) => new URL(entry.urlPath, KERAS_BASE_URL).href);
    assert.deepEqual(urls, [
      'https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5',
      'https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5',
      'https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5',
    ]);
    assert.deepEqual(VGG16.checksum, { algorithm: 'md5', hex: '6d6bbae143d832006294945121d1f1fc' });
    assert.deepEqual(VGG16.defaultLayers, SEED_LAYERS);
    assert.equal(VGG16.defaultChannels, 9);
  });

  it('reads catalogue settings and refuses mirrors that are not http URLs', () => {
    assert.equal(catalogEntry(' catalog:resnet50 ')?.application, 'resnet50');
    assert.equal(catalogEntry('catalog:alexnet'), undefined);
    assert.equal(catalogEntry('models/vgg16.h5'), undefined);
    assert.equal(normalizeBaseUrl(undefined), KERAS_BASE_URL);
    assert.equal(normalizeBaseUrl('http://127.0.0.1:9/keras//'), 'http://127.0.0.1:9/keras/');
    assert.throws(() => normalizeBaseUrl('ftp://mirror/'), /must be an http or https URL/);
    assert.throws(() => normalizeBaseUrl('not a url'), /is not a URL/);
  });
});

/** Runs `fn` with TEST_PUBLISHED_HASHES_ENV standing in for Keras' published hashes. */
async function withPublishedHashes<T>(sums: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env[TEST_PUBLISHED_HASHES_ENV];
  process.env[TEST_PUBLISHED_HASHES_ENV] = sums;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[TEST_PUBLISHED_HASHES_ENV];
    else process.env[TEST_PUBLISHED_HASHES_ENV] = before;
  }
}

describe('catalogue download from a mirror', function () {
  this.timeout(60_000);
  const body = randomBytes(3 * 1024 * 1024 + 12_345);
  let mirror: Mirror | undefined;
  let cache: string;
  beforeEach(() => {
    cache = tempDir();
  });
  afterEach(async () => {
    await mirror?.close();
    mirror = undefined;
  });
  // MobileNetV2 is the file Keras publishes no hash for: there a mirror's SHA256SUMS applies.
  const files = { [MOBILENET.urlPath]: body };
  const sums = `${sha256(body)}  ${MOBILENET.fileName}\n`;
  const cacheFiles = (): string[] => fs.readdirSync(cache);
  const transfers = (entry: CatalogEntry) => mirror?.requests.filter((r) => r.path === entry.urlPath) ?? [];

  it('resumes a transfer that breaks off, and verifies it by the mirror’s SHA256SUMS', async () => {
    mirror = await startMirror({ files, checksums: sums, cutOnce: 1024 * 1024 });
    const progress: number[] = [];
    const file = await ensureDownloaded(MOBILENET, cache, {
      baseUrl: mirror.base,
      onProgress: (received) => progress.push(received),
    });
    assert.equal(file, path.join(cache, MOBILENET.fileName));
    assert.ok(fs.readFileSync(file).equals(body), 'the cached file is the served file');
    assert.equal(transfers(MOBILENET).length, 2);
    assert.equal(transfers(MOBILENET)[0].range, '');
    // Resumed, not restarted: from what had arrived when the connection dropped (≤ the 1 MB sent).
    const range = transfers(MOBILENET)[1].range;
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(range)?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 1024 * 1024, `second request: "${range}"`);
    assert.equal(progress.at(-1), body.length);
    assert.deepEqual(cacheFiles(), [MOBILENET.fileName], 'no .part or lock is left');

    // Once per machine: the next call makes no request at all.
    const before = mirror.requests.length;
    await ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base });
    assert.equal(mirror.requests.length, before);
  });

  it('checks Keras’ published MD5 when the mirror has no SHA256SUMS, and deletes a mismatch', async () => {
    mirror = await startMirror({ files: { [VGG16.urlPath]: body } });
    await rejectsWith(
      ensureDownloaded(VGG16, cache, { baseUrl: mirror.base }),
      /download of vgg16_weights_tf_dim_ordering_tf_kernels_notop\.h5 was corrupt: its MD5 does not match the hash Keras publishes for it\. It has been deleted/,
    );
    assert.deepEqual(cacheFiles(), []);
  });

  it('refuses a file Keras hashes even when the mirror’s SHA256SUMS vouches for it', async () => {
    // The mirror serves other bytes under VGG16's name and lists their true SHA-256.
    mirror = await startMirror({ files: { [VGG16.urlPath]: body }, checksums: `${sha256(body)}  ${VGG16.fileName}\n` });
    const error = await rejectsWith(
      ensureDownloaded(VGG16, cache, { baseUrl: mirror.base }),
      /vgg16_weights_tf_dim_ordering_tf_kernels_notop\.h5 was corrupt: its MD5 does not match the hash Keras publishes for it/,
    );
    assert.match(error.detail ?? '', /Expected MD5 6d6bbae143d832006294945121d1f1fc/);
    assert.deepEqual(cacheFiles(), []);
  });

  it('takes Keras’ hash over a mirror’s wrong SHA256SUMS, so Keras’ own file still downloads', async () => {
    // Keras' MD5 of this file stands in (a test switch) for the real one, whose file cannot be served here.
    const md5 = createHash('md5').update(body).digest('hex');
    mirror = await startMirror({
      files: { [VGG16.urlPath]: body },
      checksums: `${'0'.repeat(64)}  ${VGG16.fileName}\n`,
    });
    await withPublishedHashes(`${md5}  ${VGG16.fileName}\n`, () =>
      ensureDownloaded(VGG16, cache, { baseUrl: mirror?.base }),
    );
    assert.ok(fs.readFileSync(path.join(cache, VGG16.fileName)).equals(body));
    assert.deepEqual(
      mirror.requests.map((r) => r.path),
      [VGG16.urlPath],
      'the mirror’s list is not even read for a file Keras hashes',
    );
  });

  it('rejects a file whose SHA-256 is not the mirror’s, leaving nothing behind', async () => {
    mirror = await startMirror({ files, checksums: `${'0'.repeat(64)}  ${MOBILENET.fileName}\n` });
    await rejectsWith(
      ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base }),
      /was corrupt: its SHA-256 does not match the hash the mirror's SHA256SUMS publishes for it/,
    );
    assert.deepEqual(cacheFiles(), []);
  });

  it('follows a redirect for SHA256SUMS like for the file, and uses the list it finds there', async () => {
    const moved = { SHA256SUMS: 'lists/SHA256SUMS' };
    mirror = await startMirror({ files, checksums: sums, redirects: moved });
    await ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base });
    assert.deepEqual(
      mirror.requests.map((r) => r.path),
      ['SHA256SUMS', 'lists/SHA256SUMS', MOBILENET.urlPath],
    );
    await mirror.close();

    // The list behind the redirect is the one checked: a wrong hash there is refused.
    mirror = await startMirror({ files, checksums: `${'0'.repeat(64)}  ${MOBILENET.fileName}\n`, redirects: moved });
    await rejectsWith(ensureDownloaded(MOBILENET, tempDir(), { baseUrl: mirror.base }), /SHA256SUMS publishes/);
  });

  it('stops an unhashed file without Content-Length as soon as it passes twice the published size', async () => {
    mirror = await startMirror({ files: {}, endless: [MOBILENET.urlPath] });
    const cap = MAX_SIZE_FACTOR * MOBILENET.approxBytes;
    const started = Date.now();
    await rejectsWith(
      ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base }),
      /download of mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1\.0_224\.h5 was stopped at 27\.7 MB: the file is larger than the 27\.7 MB it can be/,
      /Nothing was kept/,
    );
    assert.ok(Date.now() - started < 30_000, 'within 30 s');
    assert.deepEqual(cacheFiles(), [], 'nothing cached, no .part');
    // Stopped there: what the server managed to send beyond the cap is what sat in socket buffers.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const sent = transfers(MOBILENET)[0].sent;
    assert.ok(sent < cap + 8 * 1024 * 1024, `the server sent ${sent} bytes for a cap of ${cap}`);
    console.log(`      the server sent ${mb(sent)} MB for a ${mb(cap)} MB cap; stopped in ${Date.now() - started} ms`);
    assert.equal(transfers(MOBILENET).length, 1, 'not retried');
  });

  it('refuses an unhashed file whose Content-Length is over the cap before reading it', async () => {
    const huge = Buffer.alloc(MAX_SIZE_FACTOR * MOBILENET.approxBytes + 1);
    mirror = await startMirror({ files: { [MOBILENET.urlPath]: huge } });
    await rejectsWith(ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base }), /was stopped at 27\.7 MB/);
    assert.deepEqual(cacheFiles(), []);
  });

  it('never shows the password of a mirror or proxy URL', async () => {
    mirror = await startMirror({ files: {} });
    const withPassword = mirror.base.replace('http://', 'http://reader:s3cret-pw@');
    const missing = await rejectsWith(ensureDownloaded(MOBILENET, cache, { baseUrl: withPassword }), /HTTP 404/);
    assert.doesNotMatch(`${missing.message} ${missing.detail}`, /s3cret-pw/);
    assert.match(missing.detail ?? '', /http:\/\/\*\*\*@127\.0\.0\.1/);
    assert.ok(
      mirror.requests.every((r) => r.credentials === 'reader:s3cret-pw'),
      'sent to the mirror, as Basic auth',
    );

    // A proxy with credentials that cannot be reached (nothing listens on port 9 here).
    const viaProxy = await rejectsWith(
      ensureDownloaded(MOBILENET, cache, {
        baseUrl: 'http://mirror.invalid/',
        proxy: 'http://user:pr0xy-pw@127.0.0.1:9',
      }),
      /Cannot reach the proxy 127\.0\.0\.1:9 \(offline\?\) to download SHA256SUMS/,
    );
    assert.doesNotMatch(`${viaProxy.message} ${viaProxy.detail}`, /pr0xy-pw/);

    const notHttp = await rejectsWith(
      ensureDownloaded(MOBILENET, cache, { baseUrl: 'ftp://reader:s3cret-pw@127.0.0.1/' }),
      /must be an http or https URL/,
    );
    assert.doesNotMatch(notHttp.message, /s3cret-pw/);
    assert.deepEqual(cacheFiles(), []);
  });

  it('says the server cannot be reached when it is down', async () => {
    mirror = await startMirror({ files });
    const base = mirror.base;
    await mirror.close();
    mirror = undefined;
    await rejectsWith(ensureDownloaded(VGG16, cache, { baseUrl: base }), /Cannot reach .*127\.0\.0\.1.*offline/);
    assert.deepEqual(cacheFiles(), []);
  });

  it('removes the part of a download that keeps breaking off', async () => {
    mirror = await startMirror({ files, checksums: sums, cutOnce: 1024 * 1024 });
    await rejectsWith(
      ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base, retries: 0 }),
      /was interrupted after/,
    );
    assert.deepEqual(cacheFiles(), [], 'the partial file and the lock are removed');
  });

  it('keeps the part on cancel, so choosing the model again resumes', async () => {
    mirror = await startMirror({ files, checksums: sums, bytesPerSecond: 2 * 1024 * 1024 });
    const controller = new AbortController();
    const cancelled = ensureDownloaded(MOBILENET, cache, {
      baseUrl: mirror.base,
      signal: controller.signal,
      onProgress: (received) => {
        if (received >= 512 * 1024) controller.abort();
      },
    });
    await assert.rejects(cancelled, CancelledError);
    assert.deepEqual(cacheFiles(), [MOBILENET.fileName + '.part'], 'the part stays; the lock is released');
    const part = fs.statSync(path.join(cache, MOBILENET.fileName + '.part')).size;
    assert.ok(part > 0 && part < body.length, `part of ${part} bytes`);

    await ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base });
    assert.equal(transfers(MOBILENET).at(-1)?.range, `bytes=${part}-`);
    assert.ok(fs.readFileSync(path.join(cache, MOBILENET.fileName)).equals(body));
  });

  it('discards a downloaded file (the loader rejected it), so the next use downloads it again', async () => {
    mirror = await startMirror({ files, checksums: sums });
    await ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base });
    await discardDownloaded(MOBILENET, cache);
    assert.deepEqual(cacheFiles(), []);
    assert.equal(await downloadedBytes(MOBILENET, cache), undefined);
    await ensureDownloaded(MOBILENET, cache, { baseUrl: mirror.base });
    assert.equal(transfers(MOBILENET).length, 2);
    await discardDownloaded(MOBILENET, tempDir()); // nothing there: no error
  });
});

describe('VGG16 from the catalogue: download → verify → cache → load → extract, against Keras', function () {
  this.timeout(180_000);
  let mirror: Mirror | undefined;
  let engine: FeatureMapEngine | undefined;
  after(async () => {
    engine?.dispose();
    await mirror?.close();
  });

  it('matches Keras on every layer for chelsea.png, through the real download path', async function () {
    // The oracle's weights are random (seeded): their hash stands in for Keras' (a test switch).
    const weights = fs.readFileSync(oracleCacheFile(VGG16.fileName, this));
    mirror = await startMirror({ files: { [VGG16.urlPath]: weights }, cutOnce: 20 * 1024 * 1024 });
    const cache = tempDir();
    const base = mirror.base;
    const weightsPath = await withPublishedHashes(`${sha256(weights)}  ${VGG16.fileName}\n`, () =>
      ensureDownloaded(VGG16, cache, { baseUrl: base }),
    );
    const log: string[] = [];
    engine = new FeatureMapEngine({ assetsDir: DIST, log: (line) => log.push(line) });
    const result = await engine.extract({
      imagePath: image('chelsea.png'),
      model: { kind: 'catalog', id: VGG16.id, weightsPath },
      layerPatterns: SEED_LAYERS,
    });
    // Converted from the weights file straight to ONNX: no TensorFlow.js model on the way, whose
    // conversion would log the shape check after it.
    assert.ok(
      log.some((line) => /^VGG16 .* runs on onnxruntime \(converted in \d+ ms\)$/.test(line)),
      log.join('\n'),
    );
    // Keras' layer names, and the seed's three layers are the ones the settings list.
    const convs = result.layers.filter((l) => l.op === 'Conv2D').map((l) => l.name);
    assert.equal(convs.length, 13);
    assert.deepEqual(
      result.layers.filter((l) => l.matched).map((l) => l.name),
      SEED_LAYERS,
    );
    assert.match(result.model.preprocessing, /^caffe/);
    const rgb = readNpy(oracleCacheFile('chelsea.rgb224.npy', this));
    const ours = result.input.rgba.filter((_, i) => i % 4 !== 3);
    assert.equal(Buffer.compare(Buffer.from(ours), Buffer.from(rgb.data)), 0, 'load_img’s nearest resize');

    const errors: string[] = [];
    for (const layer of result.layers) {
      const ref = readNpy(oracleCacheFile(`chelsea.${layer.name}.npy`, this));
      const activation = engine.activation(result.resultKey, layer.name);
      assert.ok(activation, layer.name);
      assert.deepEqual([1, ...activation.shape], ref.shape, `${layer.name} shape`);
      const error = relErr(channelsLast(activation), ref.data);
      errors.push(`${layer.name} ${error.toExponential(1)}`);
      assert.ok(error <= ORACLE_TOLERANCE, `${layer.name}: relative error ${error}`);
    }
    assert.equal(errors.length, 18);
    console.log(`      ${errors.join(', ')}`);
  });
});

describe('MobileNetV2 and ResNet50 from the catalogue: predictions in ImageNet’s classes', function () {
  this.timeout(180_000);
  let engine: FeatureMapEngine | undefined;
  afterEach(() => engine?.dispose());

  for (const id of ['mobilenet_v2', 'resnet50']) {
    it(`${id}: downloaded through a mirror, its top-5 are Keras’ classes, named`, async function () {
      const entry = catalogEntry(`catalog:${id}`) as CatalogEntry;
      const manifest = JSON.parse(
        fs.readFileSync(oracleCacheFile(path.join('applications', 'applications.manifest.json'), this), 'utf8'),
      ) as { models: Record<string, { top5: number[] }> };
      const weights = fs.readFileSync(oracleCacheFile(path.join('applications', entry.fileName), this));
      const mirror = await startMirror({ files: { [entry.urlPath]: weights } });
      try {
        // Random (seeded) weights: their hash stands in for Keras' (a test switch; MobileNetV2 has none).
        const weightsPath = await withPublishedHashes(`${sha256(weights)}  ${entry.fileName}\n`, () =>
          ensureDownloaded(entry, tempDir(), { baseUrl: mirror.base }),
        );
        engine = new FeatureMapEngine({ assetsDir: DIST });
        const result = await engine.extract({
          imagePath: image('chelsea.png'),
          model: { kind: 'catalog', id, weightsPath },
          layerPatterns: [],
        });
        const labels = fs.readFileSync(path.join(DIST, 'models', 'imagenet_labels.txt'), 'utf8').split('\n');
        assert.equal(labels[285], 'Egyptian cat', 'ImageNet’s class order');
        assert.deepEqual(
          result.predictions?.map((p) => p.label),
          manifest.models[id].top5.map((index) => labels[index]),
        );
        assert.match(result.model.preprocessing, id === 'mobilenet_v2' ? /^tf:/ : /^caffe:/);
      } finally {
        await mirror.close();
      }
    });
  }
});

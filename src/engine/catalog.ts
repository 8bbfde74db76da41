import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { type Checksum, DownloadInterruptedError, downloadVerified, proxyAgent } from './download';
import { CancelledError, UserFacingError, errorText } from './errors';
import type { ApplicationId } from './models/kerasApplications';
import type { PreprocessMode } from './preprocess';

/** Where Keras' `applications` download their weights from (keras/src/applications/*.py). */
export const KERAS_BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/';

/** `featureMaps.model` values that name a catalogue entry start with this. */
export const CATALOG_PREFIX = 'catalog:';

/** The environment variable that points downloads at a mirror of Keras' files (also a setting). */
export const MIRROR_ENV = 'FEATURE_MAPS_MODEL_MIRROR';

/** ImageNet's class names, written into dist/models/ at build time (tools/bundled-model.js). */
export const IMAGENET_LABELS = 'imagenet_labels.txt';

/** A mirror lists its own hashes here (sha256sum's format), e.g. when it serves other weights. */
export const MIRROR_CHECKSUMS = 'SHA256SUMS';

export interface CatalogEntry {
  /** What follows `catalog:` in `featureMaps.model`. */
  id: string;
  application: ApplicationId;
  name: string;
  detail: string;
  /** The file name Keras uses; also its name in our cache. */
  fileName: string;
  /** Its path under Keras' base URL (or a mirror's). */
  urlPath: string;
  /** Keras' own published hash, where Keras publishes one. */
  checksum?: Checksum;
  /** The download's size as published, for the picker before it is downloaded. */
  approxBytes: number;
  preprocessing: PreprocessMode;
  /** Layers and channel count shown unless `featureMaps.layers` / `featureMaps.channels` say otherwise. */
  defaultLayers?: string[];
  defaultChannels?: number;
}

export const CATALOG: readonly CatalogEntry[] = [
  {
    id: 'vgg16',
    application: 'vgg16_notop',
    name: 'VGG16 ImageNet (no top)',
    detail: "Keras' VGG16(weights='imagenet', include_top=False): the classic feature-map view.",
    fileName: 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5',
    urlPath: 'vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5',
    checksum: { algorithm: 'md5', hex: '6d6bbae143d832006294945121d1f1fc' },
    approxBytes: 58_889_256,
    preprocessing: 'caffe',
    defaultLayers: ['block1_conv1', 'block2_conv1', 'block3_conv1'],
    defaultChannels: 9,
  },
  {
    id: 'mobilenet_v2',
    application: 'mobilenet_v2',
    name: 'MobileNetV2 ImageNet',
    detail: "Keras' MobileNetV2(weights='imagenet'), with its classifier: predictions are ImageNet classes.",
    fileName: 'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5',
    urlPath: 'mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5',
    // Keras publishes no hash for this file: the download must be complete and every weight's shape right.
    approxBytes: 14_536_120,
    preprocessing: 'tf',
  },
  {
    id: 'resnet50',
    application: 'resnet50',
    name: 'ResNet50 ImageNet',
    detail: "Keras' ResNet50(weights='imagenet'), with its classifier: predictions are ImageNet classes.",
    fileName: 'resnet50_weights_tf_dim_ordering_tf_kernels.h5',
    urlPath: 'resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5',
    checksum: { algorithm: 'md5', hex: '2cb95161c43110f7111970584f804107' },
    approxBytes: 102_853_048,
    preprocessing: 'caffe',
  },
];

/** The entry a `featureMaps.model` value names, if it names one (`catalog:vgg16`). */
export function catalogEntry(setting: string | undefined): CatalogEntry | undefined {
  const value = setting?.trim() ?? '';
  if (!value.startsWith(CATALOG_PREFIX)) return undefined;
  return CATALOG.find((entry) => entry.id === value.slice(CATALOG_PREFIX.length));
}

/** Whether a `featureMaps.model` value is meant as a catalogue entry (known or not). */
export function isCatalogSetting(setting: string | undefined): boolean {
  return (setting?.trim() ?? '').startsWith(CATALOG_PREFIX);
}

export function cachedPath(entry: CatalogEntry, cacheDir: string): string {
  return path.join(cacheDir, entry.fileName);
}

/** The downloaded file's size, or undefined when it is not (completely) downloaded. */
export async function downloadedBytes(entry: CatalogEntry, cacheDir: string): Promise<number | undefined> {
  try {
    const stat = await fs.stat(cachedPath(entry, cacheDir));
    return stat.isFile() ? stat.size : undefined;
  } catch {
    return undefined;
  }
}

export interface FetchOptions {
  /** Keras' base URL unless a mirror is set. */
  baseUrl?: string;
  proxy?: string;
  signal?: AbortSignal;
  onProgress?: (received: number, total: number | undefined) => void;
  timeoutMs?: number;
  /** Transfers that break off are resumed this many times before giving up (default 3). */
  retries?: number;
}

/**
 * Makes sure `entry`'s weights are in `cacheDir` and returns their path: downloads them
 * once per machine, verified, resuming a transfer that breaks off. On failure nothing
 * partial stays behind; on cancel the `.part` stays, so choosing the model again resumes.
 */
export async function ensureDownloaded(
  entry: CatalogEntry,
  cacheDir: string,
  options: FetchOptions = {},
): Promise<string> {
  const destination = cachedPath(entry, cacheDir);
  const baseUrl = normalizeBaseUrl(options.baseUrl);
  const url = new URL(entry.urlPath, baseUrl).href;
  // A file already in the cache was verified when it arrived.
  if ((await downloadedBytes(entry, cacheDir)) !== undefined) return destination;
  const checksum = baseUrl === KERAS_BASE_URL ? entry.checksum : await mirrorChecksum(entry, baseUrl, options);
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      await downloadVerified({ ...options, url, destination, checksum });
      return destination;
    } catch (error) {
      if (error instanceof DownloadInterruptedError && attempt < retries && !options.signal?.aborted) continue;
      if (!(error instanceof CancelledError)) await fs.rm(destination + '.part', { force: true });
      throw error;
    }
  }
}

/** A base URL with exactly one trailing slash, so `new URL(path, base)` appends. */
export function normalizeBaseUrl(baseUrl: string | undefined): string {
  const trimmed = baseUrl?.trim();
  if (!trimmed) return KERAS_BASE_URL;
  let parsed: URL;
  try {
    parsed = new URL(trimmed);
  } catch {
    throw new UserFacingError(`The model mirror "${trimmed}" is not a URL (featureMaps.modelMirror or ${MIRROR_ENV}).`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UserFacingError(`The model mirror "${trimmed}" must be an http or https URL.`);
  }
  return parsed.href.replace(/\/*$/, '/');
}

/**
 * A mirror's own SHA-256 for the file from its SHA256SUMS, else Keras' published hash (a
 * faithful copy of Keras' files passes it). A mirror that lists the file but cannot be read is an error.
 */
async function mirrorChecksum(
  entry: CatalogEntry,
  baseUrl: string,
  options: FetchOptions,
): Promise<Checksum | undefined> {
  const url = new URL(MIRROR_CHECKSUMS, baseUrl).href;
  const text = await fetchSmallText(url, options);
  if (text === undefined) return entry.checksum;
  for (const line of text.split(/\r?\n/)) {
    const match = /^([0-9a-f]{64})\s+\*?(.+)$/i.exec(line.trim());
    if (match && (match[2] === entry.fileName || match[2] === entry.urlPath)) {
      return { algorithm: 'sha256', hex: match[1].toLowerCase() };
    }
  }
  return entry.checksum;
}

/** GETs a small text file; undefined on 404. */
function fetchSmallText(url: string, options: FetchOptions): Promise<string | undefined> {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  const agent = proxyAgent(target, options.proxy);
  return new Promise((resolve, reject) => {
    const req = client.get(target, { headers: { 'user-agent': 'feature-maps-vscode' }, ...(agent ? { agent } : {}) });
    const timer = setTimeout(() => req.destroy(new Error('timed out')), options.timeoutMs ?? 30_000);
    const onAbort = (): void => void req.destroy(new CancelledError());
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    req.once('error', (error) => {
      finish();
      reject(
        error instanceof CancelledError
          ? error
          : new UserFacingError(
              `Cannot reach the model mirror ${target.host} (offline?).`,
              `${errorText(error)} (${url})`,
            ),
      );
    });
    req.once('response', (response) => {
      if (response.statusCode === 404) {
        finish();
        response.resume();
        return resolve(undefined);
      }
      if (response.statusCode !== 200) {
        finish();
        response.resume();
        return reject(
          new UserFacingError(
            `The model mirror answered HTTP ${response.statusCode} for its ${MIRROR_CHECKSUMS}.`,
            `GET ${url}`,
          ),
        );
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > 1024 * 1024) response.destroy(new Error(`${MIRROR_CHECKSUMS} is larger than 1 MB`));
        else chunks.push(chunk);
      });
      response.once('error', (error) => {
        finish();
        reject(new UserFacingError(`Cannot read the model mirror's ${MIRROR_CHECKSUMS}.`, errorText(error)));
      });
      response.once('end', () => {
        finish();
        resolve(Buffer.concat(chunks).toString('utf8'));
      });
    });
  });
}

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Checksum, downloadVerified, fetchText, redactCredentials } from './download';
import { UserFacingError, errorText } from './errors';
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
  /** Called once when another window or process is downloading the same model and this call waits for it. */
  onWaiting?: () => void;
  timeoutMs?: number;
  /** Transfers that break off are resumed this many times before giving up (default 3). */
  retries?: number;
}

/**
 * A test-only switch: `sha256sum`-style lines (`<hex>  <file name>`, MD5 or SHA-256) that stand in
 * for the hashes Keras publishes, so tests can serve weights Keras did not publish (the oracle's
 * seeded random ones) through the real download path. A mirror's SHA256SUMS can never do that.
 */
export const TEST_PUBLISHED_HASHES_ENV = 'FEATURE_MAPS_TEST_PUBLISHED_HASHES';

/** A catalogue file may be at most this many times its published size; the transfer stops there. */
export const MAX_SIZE_FACTOR = 2;

/** The hash Keras publishes for `entry`'s file, if it publishes one. */
export function publishedChecksum(entry: CatalogEntry, env: NodeJS.ProcessEnv = process.env): Checksum | undefined {
  const override = env[TEST_PUBLISHED_HASHES_ENV];
  if (override) {
    for (const line of override.split(/\r?\n/)) {
      const match = /^([0-9a-f]{32}|[0-9a-f]{64})\s+\*?(.+)$/i.exec(line.trim());
      if (match && (match[2] === entry.fileName || match[2] === entry.urlPath)) {
        return {
          algorithm: match[1].length === 32 ? 'md5' : 'sha256',
          hex: match[1].toLowerCase(),
          publisher: 'Keras',
        };
      }
    }
  }
  return entry.checksum && { ...entry.checksum, publisher: 'Keras' };
}

/**
 * Makes sure `entry`'s weights are in `cacheDir` and returns their path: downloads them
 * once per machine (one download across windows and processes), verified, resuming a transfer
 * that breaks off. On failure nothing partial stays behind; on cancel the `.part` stays, so
 * choosing the model again resumes. The file is checked against Keras' published hash; only
 * where Keras publishes none does a mirror's SHA256SUMS apply, and a file without either must
 * come complete and within MAX_SIZE_FACTOR of its published size (the loader then checks every
 * weight's shape).
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
  const checksum =
    publishedChecksum(entry) ??
    (baseUrl === KERAS_BASE_URL ? undefined : await mirrorChecksum(entry, baseUrl, options));
  await downloadVerified({
    ...options,
    url,
    destination,
    checksum,
    maxBytes: MAX_SIZE_FACTOR * entry.approxBytes,
    retries: options.retries ?? 3,
    keepPartOnFailure: false,
  });
  return destination;
}

/**
 * Removes `entry`'s downloaded file from the cache, for when the loader rejects it: the next
 * use downloads it afresh instead of failing on the same file forever.
 */
export async function discardDownloaded(entry: CatalogEntry, cacheDir: string): Promise<void> {
  try {
    await fs.rm(cachedPath(entry, cacheDir), { force: true });
  } catch (error) {
    throw new UserFacingError(`Cannot remove ${entry.fileName} from the model cache ${cacheDir}.`, errorText(error));
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
    throw new UserFacingError(
      `The model mirror "${redactCredentials(trimmed)}" is not a URL (featureMaps.modelMirror or ${MIRROR_ENV}).`,
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UserFacingError(`The model mirror "${redactCredentials(trimmed)}" must be an http or https URL.`);
  }
  return parsed.href.replace(/\/*$/, '/');
}

/**
 * The mirror's own SHA-256 for a file Keras publishes no hash for, from its SHA256SUMS (fetched
 * like the file itself: same proxy, same redirects). Undefined when it has no list or the list
 * does not name the file; a list that cannot be read is an error.
 */
async function mirrorChecksum(
  entry: CatalogEntry,
  baseUrl: string,
  options: FetchOptions,
): Promise<Checksum | undefined> {
  const url = new URL(MIRROR_CHECKSUMS, baseUrl).href;
  const text = await fetchText(url, { ...options, maxBytes: 1024 * 1024 });
  if (text === undefined) return undefined;
  for (const line of text.split(/\r?\n/)) {
    const match = /^([0-9a-f]{64})\s+\*?(.+)$/i.exec(line.trim());
    if (match && (match[2] === entry.fileName || match[2] === entry.urlPath)) {
      return { algorithm: 'sha256', hex: match[1].toLowerCase(), publisher: `the mirror's ${MIRROR_CHECKSUMS}` };
    }
  }
  return undefined;
}

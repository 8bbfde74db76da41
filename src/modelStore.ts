import * as vscode from 'vscode';
import { type CatalogEntry, cachedPath, discardDownloaded, downloadedBytes, ensureDownloaded } from './engine/catalog';
import { modelCacheEntries, removeCached, type CacheEntry } from './engine/download';
import { CancelledError } from './engine/errors';

export interface DownloadSettings {
  mirror: string | undefined;
  proxy: string | undefined;
}

/**
 * The catalogue models downloaded to this machine (the extension's global storage), and
 * the downloads under way: one per model however many panels or commands ask for it,
 * each with a cancellable progress notification in MB.
 */
export class ModelStore implements vscode.Disposable {
  private readonly downloads = new Map<string, Promise<string>>();
  private readonly cancels = new Set<AbortController>();

  constructor(
    private readonly storageUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  get cacheDir(): string {
    return vscode.Uri.joinPath(this.storageUri, 'models').fsPath;
  }

  downloadedBytes(entry: CatalogEntry): Promise<number | undefined> {
    return downloadedBytes(entry, this.cacheDir);
  }

  /** The weights file of `entry` when it is downloaded already; undefined otherwise (no download). */
  async downloadedPath(entry: CatalogEntry): Promise<string | undefined> {
    return (await this.downloadedBytes(entry)) === undefined ? undefined : cachedPath(entry, this.cacheDir);
  }

  /** The weights file of `entry`, downloading it first when needed. */
  ensure(entry: CatalogEntry, settings: DownloadSettings): Promise<string> {
    let download = this.downloads.get(entry.id);
    if (!download) {
      download = this.download(entry, settings).finally(() => this.downloads.delete(entry.id));
      this.downloads.set(entry.id, download);
    }
    return download;
  }

  private async download(entry: CatalogEntry, settings: DownloadSettings): Promise<string> {
    const downloaded = await this.downloadedPath(entry);
    if (downloaded) return downloaded;
    const controller = new AbortController();
    this.cancels.add(controller);
    const started = Date.now();
    try {
      return await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `Downloading ${entry.name}`,
          cancellable: true,
        },
        async (progress, token) => {
          const subscription = token.onCancellationRequested(() => controller.abort());
          let reported = 0;
          let waiting = false;
          try {
            const file = await ensureDownloaded(entry, this.cacheDir, {
              baseUrl: settings.mirror,
              proxy: settings.proxy,
              signal: controller.signal,
              onWaiting: () => {
                waiting = true;
                this.log.info(`Another window or process is downloading ${entry.name}; waiting for it.`);
              },
              onProgress: (received, total) => {
                // Our own transfer (after the other one failed) knows the size; waiting does not.
                if (total !== undefined) waiting = false;
                const size = total ?? entry.approxBytes;
                const percent = Math.min(100, (received / size) * 100);
                const prefix = waiting ? 'another window is downloading it: ' : '';
                progress.report({
                  message: `${prefix}${megabytes(received)} of ${megabytes(size)} MB`,
                  increment: percent - reported,
                });
                reported = percent;
              },
            });
            this.log.info(`Downloaded ${entry.name} to ${file} in ${Date.now() - started} ms`);
            return file;
          } finally {
            subscription.dispose();
          }
        },
      );
    } catch (error) {
      if (error instanceof CancelledError) this.log.info(`Download of ${entry.name} cancelled; the part is kept.`);
      throw error;
    } finally {
      this.cancels.delete(controller);
    }
  }

  entries(): Promise<CacheEntry[]> {
    return modelCacheEntries(this.cacheDir);
  }

  remove(file: string): Promise<void> {
    return removeCached(this.cacheDir, file);
  }

  /**
   * Removes `entry`'s downloaded weights after the engine rejected them, so the next use
   * downloads them afresh instead of failing on the same file forever.
   */
  async discard(entry: CatalogEntry, reason?: string): Promise<void> {
    await discardDownloaded(entry, this.cacheDir);
    this.log.warn(
      `Removed ${entry.fileName} from ${this.cacheDir}: the engine rejected it${reason ? ` (${reason})` : ''}.`,
    );
  }

  dispose(): void {
    for (const controller of this.cancels) controller.abort();
  }
}

export function megabytes(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

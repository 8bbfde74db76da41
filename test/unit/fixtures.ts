import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root (tests run from dist/test/unit after the build). */
export const REPO = path.resolve(__dirname, '..', '..', '..');
/** Built assets: wasm binaries and the decoded bundled model. */
export const DIST = path.join(REPO, 'dist');
const SHARED = path.resolve(REPO, '..', 'shared');

/** A file under ../shared, failing loudly when that folder is missing. */
export function shared(...parts: string[]): string {
  const file = path.join(SHARED, ...parts);
  if (!fs.existsSync(file)) {
    throw new Error(`Test fixture missing: ${file}. The tests need the ../shared folder beside the repository.`);
  }
  return file;
}

export function image(name: string): string {
  return shared('fixtures', 'images', name);
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'feature-maps-test-'));
}

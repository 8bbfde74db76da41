import * as path from 'node:path';
import { UserFacingError } from './errors';
import { MAX_LABELS_BYTES, readRegularFile } from './files';

const INDEXED_LINE = /^\s*(\d+)\s*,(.*)$/;

/** The highest class index an `index,name` labels file may use (a million classes). */
export const MAX_LABEL_INDEX = 999_999;

/**
 * Class names from a labels file, indexed by class. Two formats: one name per line
 * (line order is class order), or "index,name" per line (the name may hold commas).
 */
export async function readLabels(filePath: string): Promise<string[]> {
  const fileName = path.basename(filePath);
  const text = (
    await readRegularFile(filePath, { describe: `the labels file ${fileName}`, maxBytes: MAX_LABELS_BYTES })
  ).toString('utf8');
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  const nonEmpty = lines.filter((line) => line.trim() !== '');
  if (nonEmpty.length === 0) throw new UserFacingError(`The labels file ${fileName} is empty.`);

  if (!nonEmpty.every((line) => INDEXED_LINE.test(line))) return lines.map((line) => line.trim());
  const labels: string[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    const [, index, name] = INDEXED_LINE.exec(line) ?? [];
    // The array is as long as the highest index: bound it, or one line could ask for gigabytes.
    if (Number(index) > MAX_LABEL_INDEX) {
      throw new UserFacingError(
        `The labels file ${fileName} gives the class index ${index} on line ${i + 1}; class indices go up to ${MAX_LABEL_INDEX.toLocaleString('en-US')}.`,
      );
    }
    labels[Number(index)] = name.trim();
  }
  // Indices the file skips get an empty name rather than a hole.
  return Array.from(labels, (name) => name ?? '');
}

/** The k highest scores, best first (ties: lower index first); NaN never ranks. */
export function topK(probabilities: Float32Array, k: number): { index: number; score: number }[] {
  const best: { index: number; score: number }[] = [];
  if (k <= 0) return best;
  for (let index = 0; index < probabilities.length; index++) {
    const score = probabilities[index];
    if (Number.isNaN(score)) continue;
    if (best.length === k && score <= best[k - 1].score) continue;
    let at = best.length;
    while (at > 0 && best[at - 1].score < score) at--;
    best.splice(at, 0, { index, score });
    if (best.length > k) best.pop();
  }
  return best;
}

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { UserFacingError, errorText } from './errors';

const INDEXED_LINE = /^\s*(\d+)\s*,(.*)$/;

/**
 * Class names from a labels file, indexed by class. Two formats: one name per line
 * (line order is class order), or "index,name" per line (the name may hold commas).
 */
export async function readLabels(filePath: string): Promise<string[]> {
  let text: string;
  try {
    text = await fs.readFile(filePath, 'utf8');
  } catch (error) {
    throw new UserFacingError(`Cannot read the labels file ${path.basename(filePath)}.`, errorText(error));
  }
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  const nonEmpty = lines.filter((line) => line.trim() !== '');
  if (nonEmpty.length === 0) throw new UserFacingError(`The labels file ${path.basename(filePath)} is empty.`);

  if (!nonEmpty.every((line) => INDEXED_LINE.test(line))) return lines.map((line) => line.trim());
  const labels: string[] = [];
  for (const line of nonEmpty) {
    const [, index, name] = INDEXED_LINE.exec(line) ?? [];
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

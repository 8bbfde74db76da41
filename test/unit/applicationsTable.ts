// The README's table of Keras architectures: written by the test run that checked them
// (kerasApps.test.ts), never by hand. Each run's results are merged into
// docs/keras-applications.json by architecture and file kind (a run of the CI set keeps the slow
// suite's rows for the large models), and the table between the README's markers is rewritten.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from './fixtures';

export interface ApplicationResult {
  id: string;
  label: string;
  kind: 'h5' | 'keras';
  /** What ran the pass: onnxruntime, tfjs-wasm… */
  runtime: string;
  /** The worst layer's max|ours − Keras| / max|Keras|. */
  worst: number;
  worstLayer: string;
  /** Where a layer missed 1e-4: Keras' own worst float32 error against its float64 on this model. */
  kerasOwn?: number;
  layers: number;
  /** Which suite checked it: `npm test` (CI) or `npm run test:applications`. */
  suite: string;
  date: string;
  machine?: string;
  loadMs?: number;
  passMs?: number;
}

const RESULTS = path.join(REPO, 'docs', 'keras-applications.json');
const README = path.join(REPO, 'README.md');
const START = '<!-- keras-applications-table:start (written by test/unit/kerasApps.test.ts) -->';
const END = '<!-- keras-applications-table:end -->';

/** Merges `results` into docs/keras-applications.json and rewrites the README's table from it. */
export function recordResults(results: readonly ApplicationResult[]): void {
  if (results.length === 0) return;
  const machine = `${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${os.cpus().length} cores`;
  const all = new Map<string, ApplicationResult>();
  if (fs.existsSync(RESULTS)) {
    for (const r of JSON.parse(fs.readFileSync(RESULTS, 'utf8')) as ApplicationResult[])
      all.set(`${r.id}.${r.kind}`, r);
  }
  for (const r of results) all.set(`${r.id}.${r.kind}`, { ...r, machine });
  const sorted = [...all.values()].sort((a, b) => a.id.localeCompare(b.id) || a.kind.localeCompare(b.kind));
  fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
  fs.writeFileSync(RESULTS, `${JSON.stringify(sorted, null, 2)}\n`);
  prettier(RESULTS);
  // KERAS_APPS_README=0: results only (a long run while the README is being edited).
  if (!fs.existsSync(README) || process.env.KERAS_APPS_README === '0') return;
  const readme = fs.readFileSync(README, 'utf8');
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) return;
  fs.writeFileSync(README, `${readme.slice(0, start)}${START}\n${table(sorted)}\n${readme.slice(end)}`);
  prettier(README);
}

/** Formats a written file as `npm run lint` wants it. */
function prettier(file: string): void {
  spawnSync(path.join(REPO, 'node_modules', '.bin', 'prettier'), ['--write', file], { stdio: 'ignore' });
}

function table(results: readonly ApplicationResult[]): string {
  const byId = new Map<string, Partial<Record<'h5' | 'keras', ApplicationResult>>>();
  for (const r of results) byId.set(r.id, { ...byId.get(r.id), [r.kind]: r });
  // Times are npm run bench's to give (a test run shares the machine): only what ran and how close.
  const cell = (r?: ApplicationResult) =>
    r
      ? `${r.runtime}, ${r.worst.toExponential(1)}${r.kerasOwn !== undefined ? ` (Keras' own float32: ${r.kerasOwn.toExponential(1)})` : ''}`
      : 'not checked';
  const rows = [...byId.entries()].map(([, kinds]) => {
    const any = (kinds.h5 ?? kinds.keras)!;
    const checked = [...new Set([kinds.h5, kinds.keras].filter(Boolean).map((r) => `${r!.suite}, ${r!.date}`))].join(
      '; ',
    );
    return `| ${any.label} | ${any.layers} | ${cell(kinds.h5)} | ${cell(kinds.keras)} | ${checked} |`;
  });
  const machines = [...new Set(results.map((r) => r.machine).filter(Boolean))].join('; ');
  return [
    '| Architecture | Layers | `.h5`: runtime, worst error against Keras | `.keras`: runtime, worst error against Keras | Checked by |',
    '| --- | ---: | --- | --- | --- |',
    ...rows,
    '',
    `Worst error: the largest max|ours − Keras| / max|Keras| over every layer Keras gives a map (or vector) for, on chelsea.png, random weights (seed 0). Where it is above 1e-4, Keras' own float32 is that far from its float64 too (shown), and every layer is within three times Keras' own error. Machine: ${machines}.`,
  ].join('\n');
}

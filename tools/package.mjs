#!/usr/bin/env node
// `npm run package`: one platform-specific .vsix per VS Code target, in
// dist/packages/feature-maps-<target>-<version>.vsix, each with only its own platform's native
// binaries (sharp + libvips, onnxruntime-node). One npm package carries a single platform's sharp
// and every platform's onnxruntime (~270 MB), so a package cannot be made from the repo's
// node_modules: each target is packaged in a staging folder of its own, holding
//   - node_modules from `npm ci --omit=dev --os --cpu [--libc]`: the lockfile's exact versions, with
//     the sharp packages (@img/*) of that target instead of this machine's;
//   - the production build (made once, into dist/packages/.build, so that dist/ keeps the
//     development build and dist/test for the test steps that follow) and the other files the
//     repo's .vscodeignore ships;
//   - that .vscodeignore with its onnxruntime-node/bin line (this machine's binaries) replaced by
//     the target's, so that .vscodeignore stays the one list of what ships;
// then `vsce package --target <target>` there.
// Usage: node tools/package.mjs [--target linux-x64,win32-x64] [--skip-build]
//   --skip-build packages the production build the last run left in dist/packages/.build.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const packagesDir = path.join(repoRoot, 'dist', 'packages');
// Inside the repo, so that the build's last step (dist/bundled-onnx.js, run by esbuild.js) finds
// the repo's node_modules; dist/ is ignored by git, ESLint, Prettier and the repo's .vscodeignore.
const buildDir = path.join(packagesDir, '.build');
const stagingDir = path.join(packagesDir, '.staging');

const ORT_BIN = '!node_modules/onnxruntime-node/bin/';
/**
 * npm's platform flags, and the files of onnxruntime-node/bin/napi-v6/ the target ships (null: no
 * onnxruntime-node at all: 1.30 has no Intel-Mac binding, and its Linux binaries need glibc, which
 * Alpine lacks; the engine then runs every model on TensorFlow.js, src/engine/models/onnx.ts).
 */
export const TARGETS = {
  'win32-x64': { npm: ['--os=win32', '--cpu=x64'], onnxruntime: ['win32/x64/**'] },
  'win32-arm64': { npm: ['--os=win32', '--cpu=arm64'], onnxruntime: ['win32/arm64/**'] },
  // libonnxruntime.1.30.0.dylib is the same 44 MB again; the binding loads @rpath/libonnxruntime.1.dylib.
  'darwin-arm64': {
    npm: ['--os=darwin', '--cpu=arm64'],
    onnxruntime: ['darwin/arm64/onnxruntime_binding.node', 'darwin/arm64/libonnxruntime.1.dylib'],
  },
  'darwin-x64': { npm: ['--os=darwin', '--cpu=x64'], onnxruntime: null },
  'linux-x64': { npm: ['--os=linux', '--cpu=x64', '--libc=glibc'], onnxruntime: ['linux/x64/**'] },
  'linux-arm64': { npm: ['--os=linux', '--cpu=arm64', '--libc=glibc'], onnxruntime: ['linux/arm64/**'] },
  'alpine-x64': { npm: ['--os=linux', '--cpu=x64', '--libc=musl'], onnxruntime: null },
};

export function packageFile(target) {
  const { name, version } = readJson(path.join(repoRoot, 'package.json'));
  return path.join(packagesDir, `${name}-${target}-${version}.vsix`);
}

/** The VS Code target of this machine (Alpine: a Linux whose Node has no glibc). */
export function hostTarget() {
  const musl = process.platform === 'linux' && !process.report.getReport().header.glibcVersionRuntime;
  return `${musl ? 'alpine' : process.platform}-${process.arch}`;
}

/** The repo's .vscodeignore, made to ship the target's onnxruntime binaries instead of this machine's. */
export function vscodeignoreFor(target) {
  const lines = fs.readFileSync(path.join(repoRoot, '.vscodeignore'), 'utf8').split('\n');
  const binLines = lines.filter((line) => line.startsWith(ORT_BIN));
  if (binLines.length !== 1) {
    throw new Error(
      `.vscodeignore should have one "${ORT_BIN}…" line to replace per target; it has ${binLines.length}`,
    );
  }
  const { onnxruntime } = TARGETS[target];
  const made = lines.flatMap((line) => {
    if (line === binLines[0]) return onnxruntime ? onnxruntime.map((file) => `${ORT_BIN}napi-v6/${file}`) : [];
    if (!onnxruntime && line.startsWith('!node_modules/onnxruntime-')) return [];
    return [line];
  });
  return [`# Made by tools/package.mjs for ${target} from the repo's .vscodeignore.`, ...made].join('\n');
}

/**
 * The repo's top-level files and folders that ship, besides dist/ and node_modules/: those the
 * .vscodeignore's "!" lines start with, and README.md (vsce always ships it).
 */
function shippedTopLevel() {
  const names = new Set(['README.md']);
  for (const line of fs.readFileSync(path.join(repoRoot, '.vscodeignore'), 'utf8').split('\n')) {
    if (!line.startsWith('!')) continue;
    const first = line.slice(1).split('/')[0];
    if (/[*?[{]/.test(first)) throw new Error(`tools/package.mjs cannot stage a top-level pattern: ${line}`);
    if (first !== 'dist' && first !== 'node_modules') names.add(first);
  }
  return [...names].filter((name) => fs.existsSync(path.join(repoRoot, name)));
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function run(command, args, cwd) {
  execFileSync(command, args, {
    cwd,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, npm_config_loglevel: 'error', npm_config_fund: 'false', npm_config_audit: 'false' },
  });
}

function packageTarget(target) {
  const stage = path.join(stagingDir, target);
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  // .npmrc keeps onnxruntime-node-install=skip; --ignore-scripts skips every install script anyway
  // (sharp's and onnxruntime-node's only fetch or build what the packages already hold).
  for (const file of ['package.json', 'package-lock.json', '.npmrc']) {
    fs.copyFileSync(path.join(repoRoot, file), path.join(stage, file));
  }
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  run(npm, ['ci', '--omit=dev', '--ignore-scripts', ...TARGETS[target].npm], stage);
  fs.cpSync(buildDir, path.join(stage, 'dist'), { recursive: true });
  for (const name of shippedTopLevel()) {
    fs.cpSync(path.join(repoRoot, name), path.join(stage, name), { recursive: true });
  }
  fs.writeFileSync(path.join(stage, '.vscodeignore'), vscodeignoreFor(target));
  const out = packageFile(target);
  const vsce = path.join(repoRoot, 'node_modules', '@vscode', 'vsce', 'vsce');
  // Dependency detection stays on: without it vsce never looks into node_modules.
  run(
    process.execPath,
    [vsce, 'package', '--target', target, '--allow-missing-repository', '--no-rewrite-relative-links', '--out', out],
    stage,
  );
  fs.rmSync(stage, { recursive: true, force: true });
  return out;
}

function main() {
  const { values } = parseArgs({
    options: { target: { type: 'string' }, 'skip-build': { type: 'boolean', default: false } },
  });
  const targets = values.target ? values.target.split(',').map((t) => t.trim()) : Object.keys(TARGETS);
  const unknown = targets.filter((t) => !(t in TARGETS));
  if (unknown.length)
    throw new Error(`unknown target ${unknown.join(', ')}; known: ${Object.keys(TARGETS).join(', ')}`);

  const started = Date.now();
  if (values['skip-build']) {
    if (!fs.existsSync(path.join(buildDir, 'extension.js'))) {
      throw new Error(`--skip-build: no production build in ${path.relative(repoRoot, buildDir)}; run without it`);
    }
  } else {
    fs.rmSync(buildDir, { recursive: true, force: true });
    run(process.execPath, ['esbuild.js', '--production', '--outdir', buildDir], repoRoot);
  }
  // A full run leaves only its own packages (none of an older version); --target replaces its targets'.
  fs.mkdirSync(packagesDir, { recursive: true });
  for (const file of fs.readdirSync(packagesDir)) {
    if (file.endsWith('.vsix') && (!values.target || targets.some((t) => file.includes(`-${t}-`)))) {
      fs.rmSync(path.join(packagesDir, file));
    }
  }
  console.log(`production build: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    for (const target of targets) {
      const start = Date.now();
      const out = packageTarget(target);
      const mb = (fs.statSync(out).size / 2 ** 20).toFixed(1);
      const seconds = ((Date.now() - start) / 1000).toFixed(1);
      console.log(`${path.relative(repoRoot, out)}: ${mb} MB (${seconds} s)`);
    }
  } finally {
    fs.rmSync(stagingDir, { recursive: true, force: true });
  }
  console.log(`${targets.length} package(s) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (error) {
    console.error(`package: ${error.message}`);
    process.exit(1);
  }
}

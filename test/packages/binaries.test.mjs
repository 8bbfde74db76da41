// The platform packages in dist/packages (made by `npm run package`, tools/package.mjs) carry
// exactly their own platform's native binaries: each binary's header says which OS, CPU and C
// library it is built for, and every library it loads is in the package (or is the system's).
// Run: npx mocha --no-config test/packages/binaries.test.mjs
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { unzipSync } from 'fflate';
import { readBinary } from './native.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const packagesDir = path.join(repoRoot, 'dist', 'packages');
const { name, version } = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));

const ORT = 'extension/node_modules/onnxruntime-node/bin/napi-v6';
const WINDOWS_ORT = ['onnxruntime_binding.node', 'onnxruntime.dll', 'DirectML.dll', 'dxcompiler.dll', 'dxil.dll'];
/**
 * What each VS Code target must carry: sharp's platform (its addon and libvips), and the files of
 * onnxruntime-node's binding folder (null: no onnxruntime-node at all, as 1.30 has no binding
 * that loads there; the engine falls back to TensorFlow.js).
 */
const TARGETS = {
  'win32-x64': { format: 'PE', arch: 'x64', sharp: 'win32-x64', onnxruntime: WINDOWS_ORT },
  'win32-arm64': { format: 'PE', arch: 'arm64', sharp: 'win32-arm64', onnxruntime: WINDOWS_ORT },
  'darwin-arm64': {
    format: 'Mach-O',
    arch: 'arm64',
    sharp: 'darwin-arm64',
    onnxruntime: ['onnxruntime_binding.node', 'libonnxruntime.1.dylib'],
  },
  'darwin-x64': { format: 'Mach-O', arch: 'x64', sharp: 'darwin-x64', onnxruntime: null },
  'linux-x64': {
    format: 'ELF',
    arch: 'x64',
    libc: 'glibc',
    sharp: 'linux-x64',
    onnxruntime: ['onnxruntime_binding.node', 'libonnxruntime.so.1'],
  },
  'linux-arm64': {
    format: 'ELF',
    arch: 'arm64',
    libc: 'glibc',
    sharp: 'linux-arm64',
    onnxruntime: ['onnxruntime_binding.node', 'libonnxruntime.so.1'],
  },
  'alpine-x64': { format: 'ELF', arch: 'x64', libc: 'musl', sharp: 'linuxmusl-x64', onnxruntime: null },
};

// Libraries a binary may load without the package carrying them: the OS's own.
const SYSTEM = {
  ELF: /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|librt\.so\.1|libpthread\.so\.0|libresolv\.so\.2|ld-linux-[\w-]+\.so\.\d|libc\.musl-\w+\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1)$/,
  'Mach-O': /^\/(usr\/lib|System\/Library)\//,
  PE: /^(api-ms-win-[\w-]+|kernel32|user32|advapi32|shell32|shlwapi|ole32|oleaut32|ws2_32|ntdll|bcrypt|bcryptprimitives|iphlpapi|dnsapi|setupapi|dbghelp|d3d12|dxgi|node)\.(dll|exe)$/i,
};
// The Visual C++ runtime, imported by onnxruntime's Windows binding and onnxruntime.dll. Windows
// does not ship it and neither does this package: on a machine without the VC++ redistributable,
// require('onnxruntime-node') fails and the engine falls back to TensorFlow.js.
const VC_RUNTIME = /^(msvcp140(_1|_atomic_wait)?|vcruntime140(_1)?)\.dll$/i;

const BINARY_NAME = /\.(node|dylib|dll|exe)$|\.so(\.\d+)*$/i;
/** One library's name without its version: libonnxruntime.1.30.0.dylib and libonnxruntime.1.dylib alike. */
const libraryName = (file) =>
  path.posix
    .basename(file)
    .toLowerCase()
    .replace(/\.so(\.\d+)+$/, '.so')
    .replace(/([.-]\d+)+\.(dylib|dll)$/, '.$2');

/** Every native binary of one package (a zip), and its manifest; read once, before the tests. */
function readPackage(file) {
  const entries = unzipSync(fs.readFileSync(file));
  const binaries = [];
  for (const [entry, bytes] of Object.entries(entries)) {
    const info = readBinary(bytes);
    if (info || BINARY_NAME.test(entry)) {
      binaries.push({ path: entry, info, sha256: createHash('sha256').update(bytes).digest('hex') });
    }
  }
  const manifest = Buffer.from(entries['extension.vsixmanifest'] ?? []).toString('utf8');
  return { files: Object.keys(entries), binaries, manifest, mb: fs.statSync(file).size / 2 ** 20 };
}

const packageName = new RegExp(`^${name}-(.+?)-(\\d[^-]*)\\.vsix$`);
const files = fs.existsSync(packagesDir) ? fs.readdirSync(packagesDir).filter((f) => f.endsWith('.vsix')) : [];
const packages = files.sort().map((file) => {
  const [, target, fileVersion] = file.match(packageName) ?? [];
  return { file, target, fileVersion, ...readPackage(path.join(packagesDir, file)) };
});

describe('platform packages (dist/packages)', () => {
  it(`there is one for each of the ${Object.keys(TARGETS).length} targets, at version ${version}`, () => {
    const missing = Object.keys(TARGETS).filter(
      (t) => !packages.some((p) => p.target === t && p.fileVersion === version),
    );
    assert.ok(
      packages.length > 0,
      `no .vsix in ${path.relative(repoRoot, packagesDir)}: run \`npm run package\` first`,
    );
    assert.deepEqual(missing, [], `no package for ${missing.join(', ')}: run \`npm run package\``);
    const strays = packages.filter((p) => !(p.target in TARGETS) || p.fileVersion !== version).map((p) => p.file);
    assert.deepEqual(strays, [], 'packages of no known target, or of another version');
  });

  for (const pkg of packages) {
    const expected = TARGETS[pkg.target];
    if (!expected) continue; // a stray: the test above names it
    describe(`${pkg.file}: ${pkg.mb.toFixed(1)} MB, ${pkg.binaries.length} native binaries`, () => {
      it(`is marked for ${pkg.target} (TargetPlatform and Version in extension.vsixmanifest)`, () => {
        assert.equal(pkg.manifest.match(/TargetPlatform="([^"]*)"/)?.[1], pkg.target);
        assert.equal(pkg.manifest.match(/<Identity [^>]*Version="([^"]*)"/)?.[1], pkg.fileVersion);
      });

      it(`every native binary is built for ${pkg.target}`, () => {
        const wrong = [];
        for (const { path: file, info } of pkg.binaries) {
          const what = info ? `${info.format} ${info.arch.join('+')}${info.libc ? ` ${info.libc}` : ''}` : 'no header';
          console.log(`        ${what.padEnd(16)} ${file.replace('extension/node_modules/', '')}`);
          if (!info) wrong.push(`${file}: named like a binary, but not ELF, Mach-O or PE`);
          else if (info.format !== expected.format || !info.arch.includes(expected.arch)) {
            wrong.push(`${file}: ${what}, not ${expected.format} ${expected.arch}`);
          } else if (expected.libc && info.libc !== expected.libc) {
            wrong.push(`${file}: links ${info.libc}, not ${expected.libc}`);
          }
        }
        assert.deepEqual(wrong, []);
      });

      const ortWhat = expected.onnxruntime ? "ONNX Runtime's binding and libraries" : 'no onnxruntime-node at all';
      it(`carries sharp's addon and libvips, and ${ortWhat}`, () => {
        const have = new Set(pkg.binaries.map((b) => b.path));
        const sharp = `extension/node_modules/@img/sharp-${expected.sharp}/lib/sharp-${expected.sharp}.node`;
        assert.ok(have.has(sharp), `${sharp} is missing`);
        assert.ok(
          pkg.binaries.some((b) => /\/@img\/sharp-(libvips-)?[\w-]+\/lib\/libvips-cpp[.-]/.test(b.path)),
          'no libvips-cpp library under node_modules/@img',
        );
        const ort = pkg.files.filter((f) => /^extension\/node_modules\/onnxruntime-/.test(f));
        if (!expected.onnxruntime) {
          assert.deepEqual(ort, [], 'onnxruntime-node is shipped');
          return;
        }
        const dir = `${ORT}/${pkg.target.replace('-', '/')}`;
        const shipped = pkg.binaries.filter((b) => b.path.startsWith(`${ORT}/`)).map((b) => b.path);
        assert.deepEqual(shipped.sort(), expected.onnxruntime.map((f) => `${dir}/${f}`).sort());
      });

      it('every library a binary loads is in the package, or is the system’s', () => {
        const shipped = new Set(pkg.binaries.map((b) => path.posix.basename(b.path).toLowerCase()));
        const missing = [];
        for (const { path: file, info } of pkg.binaries) {
          for (const lib of info?.loads ?? []) {
            const base = path.posix.basename(lib).toLowerCase();
            const system = SYSTEM[info.format].test(info.format === 'Mach-O' ? lib : base) || VC_RUNTIME.test(base);
            if (!system && !shipped.has(base)) missing.push(`${file} loads ${lib}`);
          }
        }
        assert.deepEqual(missing, []);
      });

      it('ships no library twice (the same bytes, or one library under two names)', () => {
        const twice = [];
        for (const [i, a] of pkg.binaries.entries()) {
          for (const b of pkg.binaries.slice(i + 1)) {
            if (a.sha256 === b.sha256) twice.push(`${a.path} and ${b.path} are the same file`);
            else if (libraryName(a.path) === libraryName(b.path)) twice.push(`${a.path} and ${b.path}: one library`);
          }
        }
        assert.deepEqual(twice, []);
      });
    });
  }
});

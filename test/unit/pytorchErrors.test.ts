import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CancelledError, PythonError, UserFacingError } from '../../src/engine/errors';
import type { FileModelHints } from '../../src/engine/model';
import { ModelCache } from '../../src/engine/modelCache';
import { locateModel } from '../../src/engine/modelSources';
import { DIST, tempDir, torchOracle } from './fixtures';

// What a PyTorch user sees when something is wrong: no Python, a Python without torch, weights
// for another architecture, a damaged file, a pickle nobody allowed, a state_dict with no
// architecture, a cancelled conversion; and a model torch.onnx.export cannot convert, which runs
// in Python with forward hooks instead. Every failure is a PythonError with a code the host acts on.

const torch = torchOracle();

(torch ? describe : describe.skip)('PyTorch files that cannot be opened as they are', function () {
  this.timeout(300_000);
  const work = tempDir();
  const cacheDir = path.join(work, 'cache');
  const resnet = (file: string) => path.join(torch!.dir, 'resnet18', file);
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  async function open(file: string, hints: FileModelHints) {
    const located = await locateModel({ kind: 'file', path: file, hints: { cacheDir, ...hints } }, DIST);
    return located.open();
  }

  async function problem(file: string, hints: FileModelHints): Promise<PythonError> {
    try {
      const model = await open(file, hints);
      model.dispose();
    } catch (error) {
      assert.ok(error instanceof PythonError, `expected a PythonError, got ${String(error)}`);
      return error;
    }
    assert.fail(`${path.basename(file)} opened`);
  }

  it('no Python: says which interpreter is missing', async () => {
    const error = await problem(resnet('exported.pt2'), { python: path.join(work, 'no', 'python3') });
    assert.equal(error.problem.code, 'no-python');
    assert.match(error.message, /The Python interpreter .*no\/python3.* does not exist/);
  });

  it('a Python without torch: says so, and the pip command that installs it', async () => {
    // A fresh venv of the same interpreter, without torch.
    const bare = path.join(work, 'bare-venv');
    execFileSync(torch!.python, ['-m', 'venv', '--without-pip', bare]);
    const python = path.join(bare, 'bin', 'python');
    const error = await problem(resnet('exported.pt2'), { python });
    assert.equal(error.problem.code, 'no-torch');
    assert.match(error.message, /PyTorch is not installed in .*bare-venv/);
    assert.match(error.problem.fix ?? '', /-m pip install torch$/);
  });

  it('a torchvision architecture in a Python without torchvision: says which package, and its pip command', async () => {
    // A venv that sees the torch venv's packages but not torchvision (hidden by an import blocker),
    // as a Python with torch alone is.
    const venv = path.join(work, 'torch-only-venv');
    execFileSync(torch!.python, ['-m', 'venv', '--without-pip', venv]);
    const site = execFileSync(path.join(venv, 'bin', 'python'), [
      '-c',
      'import sysconfig; print(sysconfig.get_paths()["purelib"])',
    ])
      .toString()
      .trim();
    const torchSite = execFileSync(torch!.python, [
      '-c',
      'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))',
    ])
      .toString()
      .trim();
    fs.writeFileSync(
      path.join(site, 'no_torchvision.py'),
      [
        'import importlib.abc, sys',
        'class Hide(importlib.abc.MetaPathFinder):',
        '    def find_spec(self, name, path=None, target=None):',
        '        if name == "torchvision" or name.startswith("torchvision."):',
        '            raise ImportError("No module named " + repr(name))',
        'sys.meta_path.insert(0, Hide())',
        '',
      ].join('\n'),
    );
    fs.writeFileSync(path.join(site, 'zz_torch_only.pth'), `${torchSite}\nimport no_torchvision\n`);
    const python = path.join(venv, 'bin', 'python');
    const error = await problem(resnet('state_dict.pth'), { python, architecture: 'torchvision:resnet18' });
    assert.equal(error.problem.code, 'missing-package');
    assert.match(
      error.message,
      /The architecture torchvision:resnet18 needs the Python package torchvision, which .*torch-only-venv.* does not have/,
    );
    assert.match(error.problem.fix ?? '', /-m pip install torchvision$/);
  });

  it('a state_dict without an architecture asks for one, offering torchvision and timm names', async () => {
    const error = await problem(resnet('state_dict.pth'), { python: torch!.python });
    assert.equal(error.problem.code, 'needs-architecture');
    assert.match(error.message, /state_dict.pth holds only weights .*say which architecture/);
    assert.ok(error.problem.names?.includes('torchvision:resnet18'));
    assert.ok(error.problem.names?.includes('timm:convnext_tiny'));
  });

  it('weights of another architecture: names the first key that does not fit', async () => {
    const error = await problem(resnet('state_dict.pth'), {
      python: torch!.python,
      architecture: 'torchvision:resnet50',
    });
    assert.equal(error.problem.code, 'wrong-architecture');
    assert.match(error.message, /do not fit torchvision:resnet50: "layer1\.0\.conv1\.weight" is \[64, 64, 3, 3\]/);
  });

  it('a pickled module is not loaded unless allowed, and says why', async () => {
    const error = await problem(resnet('pickled.pt'), { python: torch!.python });
    assert.equal(error.problem.code, 'needs-pickle');
    assert.match(error.message, /pickled Python object: loading it can run code it contains/);
  });

  it('a damaged file: a clear message, no traceback in it', async () => {
    const bytes = fs.readFileSync(resnet('exported.pt2'));
    const damaged = path.join(work, 'damaged.pt2');
    fs.writeFileSync(damaged, bytes.subarray(0, Math.floor(bytes.length / 3)));
    const error = await problem(damaged, { python: torch!.python });
    assert.equal(error.problem.code, 'corrupt');
    assert.match(error.message, /^damaged\.pt2 is not a torch\.export program PyTorch can load\.$/);
  });

  it('bytes that are no PyTorch file are refused before Python starts', async () => {
    const notTorch = path.join(work, 'notes.pth');
    fs.writeFileSync(notTorch, 'these are my training notes, not a checkpoint\n');
    await assert.rejects(
      open(notTorch, { python: path.join(work, 'no', 'python3') }),
      (error: unknown) =>
        error instanceof UserFacingError && /notes\.pth is not a valid PyTorch model file/.test(error.message),
    );
  });

  it('a cancelled conversion ends its Python process at once', async () => {
    const stop = new AbortController();
    const located = await locateModel(
      {
        kind: 'file',
        path: resnet('state_dict.pth'),
        hints: { cacheDir: path.join(work, 'cancel'), python: torch!.python, architecture: 'torchvision:resnet18' },
      },
      DIST,
    );
    const started = Date.now();
    setTimeout(() => stop.abort(), 1000);
    await assert.rejects(located.open({ signal: stop.signal }), CancelledError);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    assert.deepEqual(fs.readdirSync(path.join(work, 'cancel', 'conversions')), [], 'no partial conversion is left');
  });

  it('an open asked for right after the one before was cancelled converts afresh, not cancelled with it', async () => {
    // As when a new image replaces one whose conversion was under way: the first caller gives up,
    // which stops its Python; the next caller must get the model, not the first one's cancel.
    const models = new ModelCache({ assetsDir: DIST, nativeLayers: true, memoryBudget: 2 ** 31 });
    const source = {
      kind: 'file' as const,
      path: resnet('state_dict.pth'),
      hints: { cacheDir: path.join(work, 'replaced'), python: torch!.python, architecture: 'torchvision:resnet18' },
    };
    const first = new AbortController();
    const replaced = models.load(source, first.signal);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    first.abort();
    const next = models.load(source);
    await assert.rejects(replaced, CancelledError);
    const model = await next;
    try {
      assert.match(model.backend ?? '', /converted from PyTorch/);
    } finally {
      models.dispose();
    }
  });

  it('a model torch.onnx.export cannot convert runs in Python with forward hooks', async () => {
    // A module of the workspace (module:callable) with a cumulative max, which the ONNX exporter has no op for.
    const workspace = path.join(work, 'workspace');
    fs.mkdirSync(workspace);
    fs.writeFileSync(
      path.join(workspace, 'cumnet.py'),
      [
        'import torch',
        'class CumMax(torch.nn.Module):',
        '    def forward(self, x):',
        '        return torch.cummax(x, dim=3).values',
        'class CumNet(torch.nn.Module):',
        '    def __init__(self):',
        '        super().__init__()',
        '        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)',
        '        self.act = torch.nn.ReLU()',
        '        self.scan = CumMax()',
        '    def forward(self, x):',
        '        return self.scan(self.act(self.conv(x)))',
        'def build():',
        '    torch.manual_seed(0)',
        '    return CumNet()',
        '',
      ].join('\n'),
    );
    const weights = path.join(work, 'cumnet.pth');
    execFileSync(torch!.python, [
      '-c',
      `import sys; sys.path.insert(0, ${JSON.stringify(workspace)}); import torch, cumnet; torch.save(cumnet.build().state_dict(), ${JSON.stringify(weights)})`,
    ]);
    const model = await open(weights, { python: torch!.python, architecture: 'cumnet:build', workspace });
    try {
      assert.match(model.backend ?? '', /PyTorch .* in Python \(forward hooks\)/);
      assert.deepEqual(
        model.layers.map((l) => [l.name, l.op, l.shape]),
        [
          ['conv', 'Conv2d', [224, 224, 8]],
          ['act', 'ReLU', [224, 224, 8]],
          ['scan', 'CumMax', [224, 224, 8]],
        ],
      );
      const input = new Float32Array(224 * 224 * 3).fill(0.5);
      const out = await model.run(input);
      const act = out.get('act')!;
      assert.equal(act.data.length, 224 * 224 * 8);
      assert.ok(
        act.data.every((v) => v >= 0) && act.data.some((v) => v > 0),
        'ReLU maps are non-negative and not blank',
      );
      // Same input, same values: the process is kept and answers again.
      const again = await model.run(input);
      assert.deepEqual(again.get('conv')!.data, out.get('conv')!.data);
    } finally {
      model.dispose();
    }
  });
});

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import {
  architectureFromInput,
  architectureGroups,
  commandForShell,
  isInsideAny,
  isPytorchFile,
  pickleConsentKey,
  problemKind,
} from '../../src/python/pytorchProblems';

// The extension host's decisions about PyTorch models that need no VS Code: which files are
// PyTorch's, how the architecture question is laid out and read, what each problem offers.

describe('PyTorch models in the extension host', () => {
  it('treats .pt, .pth, .ptl, .pt2, .safetensors and a named .bin as PyTorch files, and nothing else', () => {
    for (const file of ['a.pt', 'b.PTH', 'c.ptl', 'd.pt2', 'e.safetensors', 'pytorch_model.bin']) {
      assert.ok(isPytorchFile(path.join('/models', file)), file);
    }
    for (const file of ['model.json', 'x.onnx', 'y.h5', 'z.keras', 'notes.txt']) {
      assert.equal(isPytorchFile(path.join('/models', file)), false, file);
    }
  });

  it('lists recent answers first, then torchvision’s models, then timm’s, each once', () => {
    const names = ['timm:convnext_tiny', 'torchvision:resnet18', 'timm:resnet18', 'torchvision:vgg16'];
    const groups = architectureGroups(names, ['torchvision:vgg16']);
    assert.deepEqual(groups, [
      { label: 'recently used', names: ['torchvision:vgg16'] },
      { label: 'torchvision', names: ['torchvision:resnet18'] },
      { label: 'timm', names: ['timm:convnext_tiny', 'timm:resnet18'] },
    ]);
  });

  it('reads a typed answer: a full name as it is, a bare name as torchvision’s (else timm’s) model of that name', () => {
    const names = ['timm:resnet18', 'torchvision:resnet18', 'timm:convnext_tiny'];
    assert.equal(architectureFromInput(' resnet18 ', names), 'torchvision:resnet18');
    assert.equal(architectureFromInput('convnext_tiny', names), 'timm:convnext_tiny');
    assert.equal(architectureFromInput('my_models.net:build', names), 'my_models.net:build');
    assert.equal(architectureFromInput('unheard_of', names), 'unheard_of');
  });

  it('asks again, rather than reusing a consent, once the file has changed', () => {
    assert.notEqual(pickleConsentKey('/m/model.pt', 1000), pickleConsentKey('/m/model.pt', 2000));
    assert.equal(pickleConsentKey('/m/./model.pt', 1000.2), pickleConsentKey('/m/model.pt', 1000));
  });

  it("knows an interpreter inside the workspace (an untrusted folder's own venv) from one outside it", () => {
    const folders = ['/work/project'];
    assert.ok(isInsideAny('/work/project/.venv/bin/python', folders));
    assert.equal(isInsideAny('/usr/bin/python3', folders), false);
    assert.equal(isInsideAny('/work/project-other/bin/python', folders), false);
  });

  it('offers what fixes each problem: a question, an install command, or the message alone', () => {
    assert.equal(problemKind('needs-architecture'), 'needs-architecture');
    assert.equal(problemKind('needs-pickle'), 'needs-pickle');
    for (const code of ['wrong-architecture', 'unknown-architecture', 'bad-architecture'])
      assert.equal(problemKind(code), 'wrong-architecture', code);
    for (const code of ['no-python', 'no-torch', 'old-torch', 'missing-package'])
      assert.equal(problemKind(code), 'setup', code);
    for (const code of ['corrupt', 'timeout', 'memory', 'python-error', 'export-failed'])
      assert.equal(problemKind(code), 'other', code);
  });

  it('runs a fix with a quoted interpreter in PowerShell too', () => {
    const fix = '"C:\\Python312\\python.exe" -m pip install torch';
    assert.equal(commandForShell(fix, 'C:\\Program Files\\PowerShell\\7\\pwsh.exe'), `& ${fix}`);
    assert.equal(commandForShell(fix, '/bin/bash'), fix);
    assert.equal(commandForShell('python3 -m pip install torch', 'powershell.exe'), 'python3 -m pip install torch');
  });
});

#!/usr/bin/env python3
"""PyTorch oracle: real PyTorch models with random weights, saved as every file kind a user has,
and PyTorch's own forward-hook activations for one photo.

Usage:  python torch_models.py OUTDIR IMAGE       make everything, then verify it in a fresh process
        python torch_models.py --verify OUTDIR    only the self-check (load every file back)

Writes into OUTDIR:
  input.npy                  float32 1x3x224x224: IMAGE as RGB, PIL resize to 224x224 (BILINEAR),
                             /255, torchvision's ImageNet mean/std, NCHW (what every model receives)
  custom/custom_net.py       a small nn.Module (`build()` returns it), the workspace folder for the
                             `custom_net:build` architecture and for unpickling custom/pickled.pt
  <arch>/torchscript.pt      torch.jit.trace(model, input) + torch.jit.save (traced, not scripted)
  <arch>/exported.pt2        torch.export.export + torch.export.save
  <arch>/pickled.pt          torch.save(model): the whole module (unpickling runs code)
  <arch>/state_dict.pth      torch.save(model.state_dict()) (loads with weights_only=True)
  <arch>/weights.safetensors safetensors.torch.save_file of the state dict
  <arch>/architecture.txt    the name a loader is told for the state dict: torchvision:resnet18,
                             timm:convnext_tiny, custom_net:build (module:callable in custom/)
  <arch>/hooks/<module>.npy  float32 output of every call of every named submodule (not the root)
                             whose output is a tensor, batch axis dropped, PyTorch's own layout
                             (C x H x W for convolutions); a module's 2nd call is <module>@2.npy
  <arch>/output.npy          the root model's output (batch axis dropped)
  <arch>/manifest.json       files, modules in call order ({name, module, call, class, shape,
                             file}; `name` is <module> for the first call, <module>#2, ... after),
                             torch version, seconds per step
  manifest.json              architectures, this script's sha256 (make-torch-oracle.sh reuses
                             OUTDIR when it matches), the image's sha256, versions, timings

Weights are random (torch.manual_seed per model), then made non-trivial: every BatchNorm gets
running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5), weight ~ U(0.5, 1.5), bias ~ N(0, 0.1); every
other bias ~ U(-0.1, 0.1) (torchvision zero-initialises many) and LayerNorm's affine like BN's;
ConvNeXt's layer scale (1e-6 at init) ~ U(0.1, 0.3) so its blocks count. Every module's `inplace`
flag is set to False before anything, so a hook sees the value the module returned.

Run with the venv of tools/make-torch-oracle.sh (torch 2.13.0+cpu, torchvision, timm, safetensors).
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import time

T0 = time.time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(int(os.environ.get("ORACLE_THREADS", "2")))
# NNPACK cannot initialise on most CI CPUs and then warns once per convolution; it is not used anyway.
torch.backends.nnpack.set_flags(False)

SEED = 0
SIZE = 224
MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet normalisation
STD = (0.229, 0.224, 0.225)
TOLERANCE = 1e-4  # max|reloaded - oracle| <= TOLERANCE * max|oracle|

ARCHITECTURES = {
    "resnet18": "torchvision:resnet18",
    "mobilenet_v3_small": "torchvision:mobilenet_v3_small",
    "efficientnet_b0": "torchvision:efficientnet_b0",
    "convnext_tiny": "timm:convnext_tiny",
    "custom": "custom_net:build",
}

FILES = {
    "torchscript": "torchscript.pt",
    "exported": "exported.pt2",
    "pickled": "pickled.pt",
    "state_dict": "state_dict.pth",
    "safetensors": "weights.safetensors",
}

# The workspace module for `custom_net:build`. Written to OUTDIR/custom/custom_net.py and
# imported from there, so the pickle of the custom model refers to `custom_net.CustomNet`.
CUSTOM_NET = '''"""A small CNN for the PyTorch tests (written by test/oracle/torch_models.py).

It has what a converter must get right beyond a plain chain: BatchNorm, a residual addition,
a torch.cat concatenation, nearest upsampling (nn.Upsample) and F.interpolate, one ReLU module
called four times, and a non-4-D head (pool + flatten + linear).
"""
import torch
import torch.nn.functional as F
from torch import nn


class CustomNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()  # shared: called four times
        self.residual = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1),
        )
        self.down = nn.Sequential(
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
        )
        self.deeper = nn.Conv2d(32, 32, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = nn.Conv2d(16 + 32 + 32, 24, 1, bias=False)
        self.fuse_bn = nn.BatchNorm2d(24)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(24, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem_bn(self.stem(x)))  # 16 x 112 x 112
        x = self.relu(x + self.residual(x))  # residual addition
        d = self.down(x)  # 32 x 56 x 56
        e = self.relu(self.deeper(d))  # 32 x 28 x 28
        u = self.up(d)  # 32 x 112 x 112
        v = F.interpolate(e, scale_factor=4.0, mode="nearest")  # 32 x 112 x 112
        y = torch.cat([x, u, v], dim=1)  # 80 x 112 x 112
        y = self.relu(self.fuse_bn(self.fuse(y)))
        return self.fc(self.flatten(self.pool(y)))


def build() -> nn.Module:
    return CustomNet()
'''


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_npy(path, tensor):
    """numpy.save of float32, little-endian, C order (what test/unit/npy.ts reads)."""
    array = np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype="<f4")
    np.save(path, array, allow_pickle=False)


def resolve_architecture(name, workspace):
    """A fresh model from an architecture name, as the extension's loader is told it."""
    kind, _, rest = name.partition(":")
    if kind == "torchvision":
        import torchvision

        return torchvision.models.get_model(rest, weights=None)
    if kind == "timm":
        import timm

        return timm.create_model(rest, pretrained=False)
    if workspace not in sys.path:
        sys.path.insert(0, workspace)
    import importlib

    return getattr(importlib.import_module(kind), rest)()


def make_nontrivial(model, generator):
    """Random BatchNorm statistics and affine, random biases, ConvNeXt's layer scale."""

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=generator) * (hi - lo) + lo)

    def normal(t, std):
        t.copy_(torch.randn(t.shape, generator=generator) * std)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                normal(module.running_mean, 0.1)
                uniform(module.running_var, 0.5, 1.5)
                if module.weight is not None:
                    uniform(module.weight, 0.5, 1.5)
                if module.bias is not None:
                    normal(module.bias, 0.1)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                if module.weight is not None:
                    uniform(module.weight, 0.5, 1.5)
                if module.bias is not None:
                    normal(module.bias, 0.1)
            else:
                bias = getattr(module, "bias", None)
                if isinstance(bias, nn.Parameter):
                    uniform(bias, -0.1, 0.1)
                gamma = getattr(module, "gamma", None)  # timm ConvNeXt layer scale
                if isinstance(gamma, nn.Parameter):
                    uniform(gamma, 0.1, 0.3)


def no_inplace(model):
    for module in model.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False


def load_input(image_path):
    from PIL import Image

    with Image.open(image_path) as im:
        rgb = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    x = np.asarray(rgb, dtype=np.float32) / np.float32(255)
    x = (x - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32))


def file_stem(module_name, call):
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", module_name)
    return stem if call == 1 else f"{stem}@{call}"


def record_hooks(model, x, hooks_dir):
    """Every call of every named submodule, in call (completion) order."""
    os.makedirs(hooks_dir, exist_ok=True)
    calls = {}
    records = []
    files = set()

    def hook_for(module_name):
        def hook(module, _inputs, output):
            call = calls.get(module_name, 0) + 1
            calls[module_name] = call
            record = {
                "name": module_name if call == 1 else f"{module_name}#{call}",
                "module": module_name,
                "call": call,
                "class": type(module).__name__,
                "shape": None,
                "file": None,
            }
            if isinstance(output, torch.Tensor):
                value = output.detach().clone()[0]
                record["shape"] = list(value.shape)
                record["file"] = f"hooks/{file_stem(module_name, call)}.npy"
                if record["file"] in files:
                    raise RuntimeError(f"two calls map to one file: {record['file']}")
                files.add(record["file"])
                record["_value"] = value
            records.append(record)

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            output = model(x)
    finally:
        for h in handles:
            h.remove()
    for record in records:
        value = record.pop("_value", None)
        if value is not None:
            save_npy(os.path.join(hooks_dir, os.path.basename(record["file"])), value)
    return output, records


def make_arch(arch, outdir, x):
    name = ARCHITECTURES[arch]
    folder = os.path.join(outdir, arch)
    os.makedirs(folder, exist_ok=True)
    seconds = {}
    t = time.time()

    def step(label):
        nonlocal t
        now = time.time()
        seconds[label] = round(now - t, 2)
        t = now

    torch.manual_seed(SEED)
    model = resolve_architecture(name, os.path.join(outdir, "custom"))
    no_inplace(model)
    make_nontrivial(model, torch.Generator().manual_seed(SEED + 1))
    model.eval()
    step("build")

    output, records = record_hooks(model, x, os.path.join(folder, "hooks"))
    save_npy(os.path.join(folder, "output.npy"), output[0])
    step("hooks")

    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(model, x)
    torch.jit.save(traced, os.path.join(folder, FILES["torchscript"]))
    step("torchscript")

    with _quiet():
        program = torch.export.export(model, (x,))
    torch.export.save(program, os.path.join(folder, FILES["exported"]))
    step("exported")

    torch.save(model, os.path.join(folder, FILES["pickled"]))
    step("pickled")

    state = model.state_dict()
    torch.save(state, os.path.join(folder, FILES["state_dict"]))
    step("state_dict")

    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, os.path.join(folder, FILES["safetensors"]))
    step("safetensors")

    with open(os.path.join(folder, "architecture.txt"), "w") as f:
        f.write(name + "\n")

    tensors = [r for r in records if r["file"]]
    manifest = {
        "architecture": name,
        "files": FILES,
        "torchscript": "traced with torch.jit.trace on input.npy (control flow frozen for that input)",
        "input": "../input.npy",
        "output": {"file": "output.npy", "shape": list(output.shape[1:])},
        "pickled_needs": ["custom (on sys.path: custom_net.CustomNet)"] if arch == "custom" else ["torchvision" if name.startswith("torchvision:") else "timm"],
        "modules": records,
        "torch_version": torch.__version__,
        "seconds": seconds,
    }
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    four_d = sum(1 for r in tensors if len(r["shape"]) == 3)
    print(
        f"torch-oracle: {arch}: {len(records)} module calls, {len(tensors)} tensors ({four_d} 4-D), "
        + ", ".join(f"{k} {v} s" for k, v in seconds.items()),
        flush=True,
    )
    return seconds


class _quiet:
    """Tracing and export warnings (TracerWarning for shape-dependent Python) are expected here."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def close(ours, ref):
    ours = ours.detach().float()
    if tuple(ours.shape) != tuple(ref.shape):
        return False, f"shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    diff = (ours - ref).abs().max().item()
    scale = ref.abs().max().item()
    ok = diff <= TOLERANCE * scale and not torch.isnan(ours).any().item()
    return ok, f"max|diff| {diff:.3g} (max|ref| {scale:.3g})"


def verify(outdir):
    """Loads every file kind back in this (fresh) process; its output must equal output.npy."""
    t0 = time.time()
    x = torch.from_numpy(np.load(os.path.join(outdir, "input.npy")))
    workspace = os.path.join(outdir, "custom")
    failures = []
    for arch, name in ARCHITECTURES.items():
        folder = os.path.join(outdir, arch)
        ref = torch.from_numpy(np.load(os.path.join(folder, "output.npy")))[None]
        with open(os.path.join(folder, "architecture.txt")) as f:
            assert f.read().strip() == name
        path = {k: os.path.join(folder, v) for k, v in FILES.items()}
        results = {}

        def check(kind, load):
            t = time.time()
            try:
                model = load()
                with torch.no_grad():
                    ok, text = close(model(x), ref)
            except Exception as e:  # reported below, with the others
                ok, text = False, f"{type(e).__name__}: {e}"
            results[kind] = f"{'ok' if ok else 'FAIL'} ({time.time() - t:.1f} s, {text})"
            if not ok:
                failures.append(f"{arch}/{FILES[kind]}: {text}")

        def pickled():
            if arch == "custom":
                # The pickle names custom_net.CustomNet: without the workspace it must not load.
                assert workspace not in sys.path and "custom_net" not in sys.modules
                try:
                    torch.load(path["pickled"], weights_only=False)
                except ModuleNotFoundError:
                    pass
                else:
                    raise AssertionError("the custom pickle loaded without custom/ on sys.path")
                sys.path.insert(0, workspace)
            return torch.load(path["pickled"], weights_only=False).eval()

        def from_state(load_state):
            def load():
                model = resolve_architecture(name, workspace)
                model.load_state_dict(load_state(), strict=True)
                return model.eval()

            return load

        from safetensors.torch import load_file

        check("torchscript", lambda: torch.jit.load(path["torchscript"]).eval())
        check("exported", lambda: torch.export.load(path["exported"]).module())
        check("pickled", pickled)
        check("state_dict", from_state(lambda: torch.load(path["state_dict"], weights_only=True)))
        check("safetensors", from_state(lambda: load_file(path["safetensors"])))
        print(f"torch-oracle: verify {arch}: " + "; ".join(f"{k} {v}" for k, v in results.items()), flush=True)
    if failures:
        print("torch-oracle: SELF-CHECK FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"torch-oracle: self-check passed, 5 architectures x 5 file kinds ({time.time() - t0:.1f} s)")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--verify":
        verify(os.path.abspath(sys.argv[2]))
        return
    if len(sys.argv) != 3:
        sys.exit("usage: torch_models.py OUTDIR IMAGE  |  torch_models.py --verify OUTDIR")
    outdir, image = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    import torchvision  # noqa: F401  (the test venv's shim makes the mirror's CUDA build importable)
    import timm
    import safetensors

    print(f"torch-oracle: torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, imports {time.time() - T0:.1f} s", flush=True)
    os.makedirs(os.path.join(outdir, "custom"), exist_ok=True)
    with open(os.path.join(outdir, "custom", "custom_net.py"), "w") as f:
        f.write(CUSTOM_NET)
    x = load_input(image)
    save_npy(os.path.join(outdir, "input.npy"), x)

    seconds = {}
    for arch in ARCHITECTURES:
        t = time.time()
        make_arch(arch, outdir, x)
        seconds[arch] = round(time.time() - t, 2)

    t = time.time()
    subprocess.run([sys.executable, os.path.abspath(__file__), "--verify", outdir], check=True)
    seconds["verify"] = round(time.time() - t, 2)

    manifest = {
        "script_sha256": sha256(os.path.abspath(__file__)),
        "image": image,
        "image_sha256": sha256(image),
        "architectures": {arch: {"dir": arch, "architecture": name} for arch, name in ARCHITECTURES.items()},
        "input": {
            "file": "input.npy",
            "shape": [1, 3, SIZE, SIZE],
            "preprocessing": "PIL convert('RGB'), resize((224, 224), BILINEAR), /255, (x - mean) / std, NCHW float32",
            "mean": MEAN,
            "std": STD,
        },
        "files": FILES,
        "tolerance": TOLERANCE,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "timm": timm.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
        },
        "seed": SEED,
        "seconds": seconds,
    }
    # Written last: its presence means everything above is complete.
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"torch-oracle: done in {time.time() - T0:.1f} s")


if __name__ == "__main__":
    main()

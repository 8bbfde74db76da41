#!/usr/bin/env python3
"""PyTorch's side of the PyTorch-file part of `npm run bench`, on the same ResNet-50 file the engine opens.

  torch_open_bench.py make OUT.pth
      torchvision's resnet50() with random weights (seed 0) and non-trivial BatchNorm statistics,
      in eval mode, saved as a state_dict (torch.save(model.state_dict())): a user's file.
  torch_open_bench.py run FILE IMAGE THREADS RUNS WARMUP SPAWNED_AT_MS
      What a PyTorch user does to see every layer: import torch and torchvision, build resnet50(),
      load the state_dict (weights_only), register a forward hook on every module, preprocess the
      image like torchvision (resize to 224x224, bilinear, to_tensor, ImageNet normalisation) and
      run the forward pass. In-place ReLUs are made out-of-place and each hook hands the model a
      copy of the output it keeps (ResNet's `out += identity` would otherwise change the kept
      bn3 outputs), so every kept output is that module's own, as Feature Maps shows it. The same
      pass without hooks is timed too. SPAWNED_AT_MS is the caller's Date.now() when it started
      this process: `ready_ms` is then the whole process, spawn to model loaded.

Prints one JSON line. The mirror's torchvision is a CUDA build: its op schemas are defined first
when this torch lacks them (a test-environment matter, see issue 10).
"""
import json
import statistics
import sys
import time


def import_torchvision(torch):
    try:
        if not hasattr(torch.ops.torchvision, "nms"):
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            import_torchvision.lib = lib  # kept alive: the schemas go with the Library object
    except Exception:
        pass
    import torchvision

    return torchvision


def make(out):
    import torch

    torchvision = import_torchvision(torch)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    model.eval()
    torch.save(model.state_dict(), out)
    print(json.dumps({"file": out, "torch": torch.__version__, "torchvision": torchvision.__version__}))


def stats(values):
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
        "n": len(values),
    }


def run(path, image, threads, runs, warmup, spawned_at_ms):
    t0 = time.perf_counter()
    import torch

    torchvision = import_torchvision(torch)
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F
    from PIL import Image

    t_import = time.perf_counter()
    torch.set_num_threads(threads)
    model = torchvision.models.resnet50(weights=None)
    t_build = time.perf_counter()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    t_load = time.perf_counter()
    ready_ms = time.time() * 1000 - spawned_at_ms

    for module in model.modules():
        if getattr(module, "inplace", None) is True:
            module.inplace = False
    kept = []

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            kept.append(output)
            return output.clone()
        return None

    handles = [m.register_forward_hook(hook) for name, m in model.named_modules() if name]

    t = time.perf_counter()
    pil = Image.open(image).convert("RGB")
    x = F.to_tensor(F.resize(pil, [224, 224], interpolation=InterpolationMode.BILINEAR, antialias=True))
    x = F.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).unsqueeze(0)
    preprocess_ms = (time.perf_counter() - t) * 1000

    def once():
        kept.clear()
        with torch.inference_mode():
            model(x)
        return len(kept)

    t = time.perf_counter()
    outputs = once()
    first_ms = (time.perf_counter() - t) * 1000
    for _ in range(max(0, warmup - 1)):
        once()
    hooked = []
    for _ in range(runs):
        t = time.perf_counter()
        once()
        hooked.append((time.perf_counter() - t) * 1000)
    maps = sum(1 for o in kept if o.dim() == 4)

    for h in handles:
        h.remove()
    kept.clear()
    plain = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        with torch.inference_mode():
            model(x)
        if i >= warmup:
            plain.append((time.perf_counter() - t) * 1000)

    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "threads": threads,
                "modulesHooked": len(handles),
                "outputs": outputs,
                "outputsWithMaps": maps,
                "readyMs": round(ready_ms, 1),
                "importMs": round((t_import - t0) * 1000, 1),
                "buildMs": round((t_build - t_import) * 1000, 1),
                "loadMs": round((t_load - t_build) * 1000, 1),
                "preprocessMs": round(preprocess_ms, 1),
                "firstForwardMs": round(first_ms, 1),
                "forwardHooks": stats(hooked),
                "forwardPlain": stats(plain),
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 8 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]))
    else:
        sys.exit(__doc__)

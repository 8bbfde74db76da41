#!/usr/bin/env python3
"""The PyTorch peer for `npm run bench`: every layer's activation for one 224x224 image.

Usage: torch_bench.py MODEL [THREADS=2] [RUNS=10] [WARMUP=2] [MODE=eager]
MODE: eager, or compile (torch.compile, inductor, with the model and the image channels_last:
PyTorch at its fastest on a CPU; the first pass, which compiles, is reported apart).
MODEL: vgg16 (VGG16 without top, like torchvision's vgg16().features) or mobilenet_v2 (with
its classifier, like torchvision's mobilenet_v2()), defined here in plain torch.nn because
the mirror's torchvision does not load with its torch. Random weights: only the time matters. A forward hook on every leaf module
keeps its output (in-place ReLUs are made out-of-place, or they would overwrite the conv
outputs we keep), which is what "every layer" costs in PyTorch. Prints one JSON line.
"""
import json
import statistics
import sys
import time

import torch
from torch import nn

name = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
warmup = int(sys.argv[4]) if len(sys.argv) > 4 else 2
mode = sys.argv[5] if len(sys.argv) > 5 else "eager"
torch.set_num_threads(threads)
torch.manual_seed(0)



def vgg16_features():
    layers, channels = [], 3
    for block in ([64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3):
        for filters in block:
            layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU()]
            channels = filters
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def conv_bn(cin, cout, kernel, stride=1, groups=1, relu=True):
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    return layers + [nn.ReLU6()] if relu else layers


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = conv_bn(cin, hidden, 1) if expand != 1 else []
        layers += conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += conv_bn(hidden, cout, 1, relu=False)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_v2():
    layers, cin = conv_bn(3, 32, 3, 2), 32
    for expand, cout, repeats, stride in (
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)
    ):
        for i in range(repeats):
            layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    layers += conv_bn(cin, 1280, 1)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000), nn.Softmax(dim=1))


if name == "vgg16":
    model = vgg16_features()
elif name == "mobilenet_v2":
    model = mobilenet_v2()
else:
    sys.exit(f"unknown model {name}")
model.eval()

kept = []
leaves = [m for m in model.modules() if len(list(m.children())) == 0]
for module in leaves:
    if hasattr(module, "inplace"):
        module.inplace = False
    module.register_forward_hook(lambda _m, _i, out: kept.append(out))

x = torch.rand(1, 3, 224, 224)
forward = model
if mode == "compile":
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model)
elif mode != "eager":
    sys.exit(f"unknown mode {mode}")


def once():
    kept.clear()
    with torch.inference_mode():
        forward(x)
    return len(kept)


t = time.perf_counter()
layers = once()
first_ms = (time.perf_counter() - t) * 1000
for _ in range(max(0, warmup - 1)):
    once()
times = []
for _ in range(runs):
    t = time.perf_counter()
    once()
    times.append((time.perf_counter() - t) * 1000)

print(
    json.dumps(
        {
            "model": name,
            "mode": mode,
            "torch": torch.__version__,
            "threads": threads,
            "layers": layers,
            "first_ms": round(first_ms, 1),
            "min": round(min(times), 1),
            "median": round(statistics.median(times), 1),
            "max": round(max(times), 1),
            "n": runs,
        }
    )
)

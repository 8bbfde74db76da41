"""Lets this machine's CUDA build of torchvision (and timm, which imports it) load beside torch+cpu.

Test environment only, never shipped: the local wheel mirror's torchvision 0.28 is built for CUDA,
and its import stops at `register_fake("torchvision::nms")` because its C ops library cannot load
(it needs libc10_cuda.so). Defining the `torchvision::nms` and `torchvision::qnms` op schemas with
torch.library first lets its model definitions (and timm's) load; detection ops stay unavailable.
A user's own Python has a matching torchvision and needs none of this.

make-torch-oracle.sh installs it in the test venv with a .pth line, as an import hook that acts
only when torchvision is first imported, so Python processes that never import it pay nothing.
"""

import importlib.abc
import sys

_done = False


def _define_schemas():
    global _done
    if _done:
        return
    _done = True
    import torch

    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "nms"):
        return
    try:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        sys.modules[__name__]._library = lib  # keep the registration alive
    except Exception:  # already defined by a working build: nothing to do
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            _define_schemas()
        return None


def install():
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())

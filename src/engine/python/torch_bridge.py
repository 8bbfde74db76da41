"""Feature Maps' bridge to the user's own PyTorch: opens a checkpoint, converts it to ONNX with every
module's output exposed, or runs it with forward hooks when the exporter cannot.

Runs in the interpreter the user picked (Python extension, featureMaps.pythonPath or PATH). It is
started by src/engine/models/pytorch.ts, one command per process:

  probe                       the versions of python, torch, torchvision, timm, onnx, safetensors
  convert FILE OUT_DIR ...    OUT_DIR/model.onnx + OUT_DIR/layers.json (the module tree)
  serve FILE ...              forward passes with hooks, one per request on stdin (the fallback)

Every reply is one JSON line on stdout; errors are {"ok": false, "code", "message", "detail"}. The
process ends when its stdin closes, so it never outlives the engine that started it.
"""

import argparse
import importlib
import json
import os
import struct
import sys
import threading
import time
import traceback
import zipfile

MIN_TORCH = (2, 1)
OPSET = 17


class BridgeError(Exception):
    def __init__(self, code, message, detail=None, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        self.extra = extra


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def progress(message):
    reply({"progress": message})


def die_with_parent():
    """Ends this process when the engine closes our stdin (or dies), unless stdin carries requests."""

    def watch():
        try:
            while sys.stdin.buffer.read(65536):
                pass
        finally:
            os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def version_tuple(text):
    parts = []
    for piece in text.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def package_version(name):
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:
        return None


def import_torch():
    try:
        import torch
    except ImportError as error:
        raise BridgeError(
            "no-torch",
            f"PyTorch is not installed in {sys.executable}.",
            str(error),
            fix=f'"{sys.executable}" -m pip install torch',
        )
    if version_tuple(torch.__version__) < MIN_TORCH:
        raise BridgeError(
            "old-torch",
            f"PyTorch {torch.__version__} in {sys.executable} is too old: Feature Maps needs 2.1 or later.",
            fix=f'"{sys.executable}" -m pip install --upgrade torch',
        )
    return torch


def import_package(name, pip_name, why):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise BridgeError(
            "missing-package",
            f"{why} needs the Python package {pip_name}, which {sys.executable} does not have.",
            str(error),
            fix=f'"{sys.executable}" -m pip install {pip_name}',
            package=pip_name,
        )


# ---------------------------------------------------------------------------------------------
# Opening a checkpoint


def archive_kind(path):
    """What a PyTorch zip archive holds: 'torchscript', 'exported' (.pt2) or 'pickle' (torch.save)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    top = set(name.split("/", 1)[1] if "/" in name else name for name in names)
    if any(n.startswith("code/") for n in top) or "constants.pkl" in top:
        return "torchscript"
    if any(n.startswith("models/") or n == "archive_format" or n.startswith("serialized_") for n in top):
        return "exported"
    if "data.pkl" in top:
        return "pickle"
    return None


def first_state_dict(obj):
    """A state_dict inside a training checkpoint ({'state_dict': …}, {'model': …}), prefixes removed."""
    torch = sys.modules["torch"]
    if isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            keys = list(obj)
            for prefix in ("module.", "model."):
                if all(k.startswith(prefix) for k in keys):
                    obj = {k[len(prefix) :]: v for k, v in obj.items()}
            return obj
        for key in ("state_dict", "model_state_dict", "model", "net", "ema"):
            if key in obj:
                found = first_state_dict(obj[key])
                if found is not None:
                    return found
    return None


def build_architecture(spec, workspace):
    """torchvision:NAME, timm:NAME or module:callable (a module of the workspace)."""
    kind, _, name = spec.partition(":")
    if not name:
        raise BridgeError(
            "bad-architecture",
            f'"{spec}" is not an architecture Feature Maps understands: use torchvision:NAME, timm:NAME or module:callable.',
        )
    if kind == "torchvision":
        models = import_package("torchvision.models", "torchvision", f"The architecture {spec}")
        try:
            return lambda **kw: models.get_model(name, weights=None, **kw)
        except Exception as error:  # pragma: no cover - get_model is lazy
            raise BridgeError("unknown-architecture", f"torchvision has no model {name}.", str(error))
    if kind == "timm":
        timm = import_package("timm", "timm", f"The architecture {spec}")
        return lambda **kw: timm.create_model(name, pretrained=False, **kw)
    if workspace and workspace not in sys.path:
        sys.path.insert(0, workspace)
    try:
        module = importlib.import_module(kind)
    except ImportError as error:
        raise BridgeError(
            "unknown-architecture",
            f'Cannot import the module "{kind}" for the architecture {spec} (looked in {workspace or "the Python path"}).',
            "".join(traceback.format_exception(error)),
        )
    builder = getattr(module, name, None)
    if not callable(builder):
        raise BridgeError("unknown-architecture", f'The module "{kind}" has no callable "{name}".')
    return lambda **kw: builder(**kw)


def architecture_names():
    """Names offered by the architecture quick pick: every torchvision classification model and timm's."""
    names = []
    try:
        import torchvision.models as models

        names += [f"torchvision:{n}" for n in models.list_models(module=models)]
    except Exception:
        pass
    try:
        import timm

        names += [f"timm:{n}" for n in timm.list_models()]
    except Exception:
        pass
    return names


def load_state_dict_into(build, state, spec):
    torch = sys.modules["torch"]
    try:
        model = build()
    except Exception as error:
        raise BridgeError(
            "unknown-architecture",
            f"Cannot build the architecture {spec}: {error}",
            "".join(traceback.format_exception(error)),
        )
    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch and mismatch[0] == "shape":
        # A fine-tuned classifier: the same architecture with another number of classes.
        key = mismatch[1]
        classes = state[key].shape[0]
        try:
            retry = build(num_classes=classes)
            if not state_dict_mismatch(retry.state_dict(), state):
                model, mismatch = retry, None
        except Exception:
            pass
    if mismatch:
        what, key, expected, found = mismatch
        if what == "missing":
            text = f'the file has no "{key}", which {spec} needs'
        elif what == "unexpected":
            text = f'the file has "{key}", which {spec} does not have'
        else:
            text = f'"{key}" is {list(found)} in the file but {list(expected)} in {spec}'
        raise BridgeError(
            "wrong-architecture",
            f"These weights do not fit {spec}: {text}.",
            f"{len(state)} tensors in the file, {len(model.state_dict())} in {spec}.",
        )
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    return model


def state_dict_mismatch(expected, found):
    for key, tensor in expected.items():
        if key not in found:
            return ("missing", key, tuple(tensor.shape), None)
        if tuple(found[key].shape) != tuple(tensor.shape):
            return ("shape", key, tuple(tensor.shape), tuple(found[key].shape))
    for key in found:
        if key not in expected:
            return ("unexpected", key, None, tuple(found[key].shape))
    return None


def open_checkpoint(path, architecture, allow_pickle, workspace):
    """(what was opened, the model, the kind of file). Raises BridgeError with a code the host acts on."""
    torch = import_torch()
    # A pickle may name classes of the workspace's own code (a trusted workspace only: the host says).
    if workspace and workspace not in sys.path:
        sys.path.insert(0, workspace)
    name = os.path.basename(path)
    lower = name.lower()
    if lower.endswith(".safetensors"):
        st = import_package("safetensors.torch", "safetensors", "A .safetensors file")
        try:
            state = st.load_file(path)
        except Exception as error:
            raise BridgeError("corrupt", f"{name} is not a readable safetensors file.", str(error))
        return with_architecture(state, architecture, workspace, name, "safetensors")

    kind = archive_kind(path)
    if kind == "exported" or lower.endswith(".pt2"):
        try:
            program = torch.export.load(path)
        except Exception as error:
            raise BridgeError("corrupt", f"{name} is not a torch.export program PyTorch can load.", str(error))
        return program, "exported"
    if kind == "torchscript":
        try:
            return torch.jit.load(path, map_location="cpu"), "torchscript"
        except Exception as error:
            raise BridgeError("corrupt", f"{name} is not a TorchScript file PyTorch can load.", str(error))

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        text = str(error)
        if "weights_only" not in text and "Unsupported global" not in text and "GLOBAL" not in text:
            raise BridgeError("corrupt", f"{name} is not a PyTorch file torch.load can read.", text)
        if not allow_pickle:
            raise BridgeError(
                "needs-pickle",
                f"{name} is a pickled Python object: loading it can run code it contains.",
                text,
            )
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error2:
            raise BridgeError(
                "corrupt",
                f"{name} could not be unpickled: {error2}",
                "".join(traceback.format_exception(error2)),
            )
    if isinstance(obj, torch.nn.Module):
        return obj, "pickled module"
    state = first_state_dict(obj)
    if state is None:
        raise BridgeError(
            "corrupt",
            f"{name} holds neither a model nor a state_dict (it holds a {type(obj).__name__}).",
        )
    return with_architecture(state, architecture, workspace, name, "state_dict")


def with_architecture(state, architecture, workspace, name, kind):
    if not architecture:
        raise BridgeError(
            "needs-architecture",
            f"{name} holds only weights (a state_dict of {len(state)} tensors): say which architecture they belong to.",
            names=architecture_names(),
        )
    build = build_architecture(architecture, workspace)
    return load_state_dict_into(build, state, architecture), f"{kind} + {architecture}"


# ---------------------------------------------------------------------------------------------
# The module tree and its outputs


def module_class(module):
    return getattr(module, "_feature_maps_class", None) or getattr(module, "original_name", None) or type(module).__name__


def name_exported_classes(program, model):
    """An unflattened program's submodules are InterpreterModules: give each its original class name."""
    classes = {}
    for node in program.graph.nodes:
        for fqn, type_name in (node.meta.get("nn_module_stack") or {}).values():
            fqn = fqn.replace("L['self'].", "").replace("L__self__.", "")
            if isinstance(type_name, str):
                classes[fqn] = type_name.rsplit(".", 1)[-1]
            elif isinstance(type_name, type):
                classes[fqn] = type_name.__name__
    for name, module in model.named_modules():
        if name in classes:
            try:
                object.__setattr__(module, "_feature_maps_class", classes[name])
            except Exception:
                pass


def disable_inplace(model):
    """Hooks and exported outputs then see each module's own output, not one changed in place later."""
    for module in model.modules():
        if getattr(module, "inplace", None) is True:
            try:
                module.inplace = False
            except Exception:
                pass


class Recorder:
    """Forward hooks on every named submodule: the calls of one pass, in order."""

    def __init__(self, model):
        torch = sys.modules["torch"]
        self.calls = []
        self.handles = []
        for name, module in model.named_modules():
            if not name:
                continue
            self.handles.append(module.register_forward_hook(self._hook(name, module_class(module), torch)))

    def _hook(self, name, cls, torch):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.is_floating_point():
                self.calls.append((name, cls, output))
                # The model goes on with a copy: an in-place op after the module (ResNet's
                # `out += identity`) then cannot change the output recorded here.
                return output.clone()
            return None

        return hook

    def named_calls(self):
        """(layer name, class, tensor): a module called again is `name#2`, `name#3`."""
        seen = {}
        out = []
        for name, cls, tensor in self.calls:
            seen[name] = seen.get(name, 0) + 1
            out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", cls, tensor))
        return out


def input_size_of(model, program, requested):
    """(height, width, where it came from): the model's own where it says, else the requested size."""
    if program is not None:
        for spec in program.graph_signature.input_specs:
            if spec.kind.name == "USER_INPUT":
                node = next(n for n in program.graph.nodes if n.name == spec.arg.name)
                shape = node.meta.get("val").shape
                if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
                    return int(shape[2]), int(shape[3]), "the exported program"
                break
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)) and len(cfg["input_size"]) == 3:
        return int(cfg["input_size"][1]), int(cfg["input_size"][2]), "timm's configuration"
    return requested[0], requested[1], "the featureMaps.inputSize setting"


def input_channels(model, program):
    torch = sys.modules["torch"]
    if program is not None:
        return None
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module.in_channels
    return 3


class Tapped(object):
    pass


def prepare(path, args):
    """The model ready to run or export: (module, kind, program, (h, w, source), channels)."""
    progress("Loading the checkpoint")
    opened, kind = open_checkpoint(path, args.arch, args.allow_pickle, args.workspace)
    program = None
    if kind == "exported":
        torch = sys.modules["torch"]
        program = opened
        model = torch.export.unflatten(program)
        name_exported_classes(program, model)
    else:
        model = opened
    if kind != "torchscript":
        disable_inplace(model)
        model.eval()
    h, w, source = input_size_of(model, program, (args.height, args.width))
    channels = 3
    if kind != "torchscript":
        channels = input_channels(model, program) or 3
        if program is not None:
            for spec in program.graph_signature.input_specs:
                if spec.kind.name == "USER_INPUT":
                    node = next(n for n in program.graph.nodes if n.name == spec.arg.name)
                    channels = int(node.meta["val"].shape[1])
                    break
    return model, kind, program, (h, w, source), channels


def convert(args):
    torch = import_torch()
    started = time.time()
    model, kind, program, (h, w, size_source), channels = prepare(args.file, args)
    x = torch.zeros(1, channels, h, w)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "model.onnx")
    progress("Converting to ONNX")
    try:
        if kind == "torchscript":
            layers = export_torchscript(torch, model, x, onnx_path)
        else:
            layers = export_with_hooks(torch, model, x, onnx_path)
    except BridgeError:
        raise
    except Exception as error:
        raise BridgeError(
            "export-failed",
            f"torch.onnx.export could not convert this {kind}: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
            "".join(traceback.format_exception(error)),
        )
    info = {
        "kind": kind,
        "torch": torch.__version__,
        "python": sys.executable,
        "input": {"channels": channels, "height": h, "width": w, "source": size_source},
        "layers": layers,
        "seconds": round(time.time() - started, 3),
    }
    with open(os.path.join(args.out, "layers.json"), "w") as f:
        json.dump(info, f)
    reply({"ok": True, **{k: v for k, v in info.items() if k != "layers"}, "layerCount": len(layers)})


def export_with_hooks(torch, model, x, onnx_path):
    """Legacy (TorchScript-based) export of a wrapper that returns every hooked module output."""
    recorder = Recorder(model)
    names = []

    class Everything(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, image):
            recorder.calls.clear()
            self.inner(image)
            calls = recorder.named_calls()
            if not names:  # the first, eager pass (while tracing, shapes may be traced values)
                names.extend((name, cls, tuple(int(d) for d in t.shape)) for name, cls, t in calls)
            return tuple(t for _, _, t in calls)

    with torch.no_grad():
        Everything(model)(x)  # learn the names the export will give
        if not names:
            raise BridgeError("no-modules", "The model has no submodule with a floating-point tensor output to show.")
        output_names = [f"fm_out_{i}" for i in range(len(names))]
        torch.onnx.export(
            Everything(model),
            (x,),
            onnx_path,
            dynamo=False,
            input_names=["input"],
            output_names=output_names,
            opset_version=OPSET,
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=True,
        )
    for handle in recorder.handles:
        handle.remove()
    return [
        {"name": name, "op": cls, "tensor": tensor, "shape": list(shape[1:])}
        for (name, cls, shape), tensor in zip(names, output_names)
    ]


def export_torchscript(torch, script, x, onnx_path):
    """A ScriptModule takes no hooks: export it whole, then find each module's output by its node scopes."""
    onnx = import_package("onnx", "onnx", "Opening a TorchScript file")
    with torch.no_grad():
        torch.onnx.export(
            script,
            (x,),
            onnx_path,
            dynamo=False,
            input_names=["input"],
            opset_version=OPSET,
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=True,
        )
    classes = {name: module_class(m) for name, m in script.named_modules() if name}
    graph = onnx.load(onnx_path, load_external_data=False).graph
    # Node names carry the module path as scopes: "/layer1/0/conv1/Conv"; "relu_1" is relu's second call.
    last = {}
    finished = {}
    for index, node in enumerate(graph.node):
        if node.op_type in ("Constant", "Identity") or not node.output:
            continue
        scopes = [s for s in node.name.split("/")[1:-1] if s]
        for depth in range(1, len(scopes) + 1):
            key = module_call(scopes[:depth], classes)
            if key is None:
                break
            last[key] = node.output[0]
            finished[key] = (index, -depth)
    # In the order modules finish, as forward hooks see them: a block after its last layer.
    order = sorted(last, key=lambda key: finished[key])
    layers = []
    for name, call in order:
        layers.append(
            {
                "name": name if call == 1 else f"{name}#{call}",
                "op": classes.get(name, "Module"),
                "tensor": last[(name, call)],
                "shape": [],
            }
        )
    return layers


def module_call(scopes, classes):
    """('layer1.0.relu', 2) for the scopes ['layer1', '0', 'relu_1'], if that module exists."""
    parts = []
    call = 1
    for i, scope in enumerate(scopes):
        candidate = ".".join(parts + [scope])
        if candidate in classes:
            parts.append(scope)
            continue
        base, _, number = scope.rpartition("_")
        if base and number.isdigit() and ".".join(parts + [base]) in classes:
            parts.append(base)
            if i == len(scopes) - 1:
                call = int(number) + 1
            continue
        return None
    return ".".join(parts), call


# ---------------------------------------------------------------------------------------------
# The fallback: a forward pass with hooks, per request


def serve(args):
    """Requests on stdin: a 4-byte length, then float32 NCHW input; replies: a JSON line, then the outputs' bytes."""
    torch = import_torch()
    model, kind, program, (h, w, size_source), channels = prepare(args.file, args)
    if kind == "torchscript":
        raise BridgeError("export-failed", "A TorchScript file that torch.onnx.export cannot convert cannot be run with hooks either.")
    recorder = Recorder(model)
    with torch.no_grad():
        recorder.calls.clear()
        model(torch.zeros(1, channels, h, w))
    layers = [{"name": n, "op": c, "tensor": n, "shape": list(t.shape[1:])} for n, c, t in recorder.named_calls()]
    reply(
        {
            "ok": True,
            "kind": kind,
            "torch": torch.__version__,
            "python": sys.executable,
            "input": {"channels": channels, "height": h, "width": w, "source": size_source},
            "layers": layers,
        }
    )
    stdin = sys.stdin.buffer
    out = sys.stdout.buffer
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        (length,) = struct.unpack("<I", head)
        body = stdin.read(length)
        if len(body) < length:
            return
        image = torch.frombuffer(bytearray(body), dtype=torch.float32).reshape(1, channels, h, w)
        with torch.no_grad():
            recorder.calls.clear()
            model(image)
        calls = recorder.named_calls()
        meta = [{"name": n, "shape": list(t.shape[1:])} for n, _, t in calls]
        payload = [t.detach().contiguous().float().numpy().tobytes() for _, _, t in calls]
        out.write((json.dumps({"ok": True, "outputs": meta}) + "\n").encode())
        for chunk in payload:
            out.write(chunk)
        out.flush()


def probe(_args):
    info = {"ok": True, "python": sys.executable, "version": sys.version.split()[0]}
    for name in ("torch", "torchvision", "timm", "onnx", "onnxscript", "safetensors"):
        info[name] = package_version(name)
    reply(info)


def main():
    parser = argparse.ArgumentParser(prog="torch_bridge.py")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("probe")
    for command in ("convert", "serve"):
        p = sub.add_parser(command)
        p.add_argument("file")
        if command == "convert":
            p.add_argument("out")
        p.add_argument("--arch", default="")
        p.add_argument("--workspace", default="")
        p.add_argument("--allow-pickle", action="store_true")
        p.add_argument("--height", type=int, default=224)
        p.add_argument("--width", type=int, default=224)
        p.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.command != "serve":
        die_with_parent()
    status = 0
    try:
        if args.command == "probe":
            probe(args)
        else:
            if args.threads:
                import_torch().set_num_threads(args.threads)
            {"convert": convert, "serve": serve}[args.command](args)
    except BridgeError as error:
        reply({"ok": False, "code": error.code, "message": error.message, "detail": error.detail, **error.extra})
        status = 1
    except MemoryError as error:
        reply({"ok": False, "code": "memory", "message": "Python ran out of memory opening this model.", "detail": str(error)})
        status = 1
    except Exception as error:
        reply(
            {
                "ok": False,
                "code": "python-error",
                "message": f"{type(error).__name__}: {error}",
                "detail": "".join(traceback.format_exception(error)),
            }
        )
        status = 1
    # Not sys.exit: the thread blocked reading stdin would abort the interpreter's shutdown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Keras oracle for keras.applications MobileNetV2 and ResNet50 (with their classifiers).

Usage:  python applications.py OUTDIR IMAGE

Writes into OUTDIR/applications/:
  mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5   legacy weights-only HDF5 layout,
  resnet50_weights_tf_dim_ordering_tf_kernels.h5                named like Keras' own downloads
  <model>.input.npy            float32 1x224x224x3: IMAGE after load_img + img_to_array +
                               the model's own preprocess_input (what the model receives)
  <model>.<layer>.npy          float32 activations of a representative set of layers
  applications.manifest.json   layer names in order, output shapes, weights, hashes, top-5

The weights are random (weights=None after keras.utils.set_random_seed(0)), then every
BatchNormalization's gamma/beta/moving_mean/moving_variance and every bias is made
non-trivial with a seeded NumPy generator, so a missing bias, a swapped BN statistic or a
wrong epsilon cannot hide. Run it with the venv of shared/oracle/make-oracle.sh
(tensorflow-cpu 2.21.0, keras 3.15.1); tools/make-app-oracle.sh does that.
"""
import hashlib
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
T0 = time.time()

import numpy as np  # noqa: E402
import h5py  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

tf.get_logger().setLevel("ERROR")
absl_logging.set_verbosity(absl_logging.ERROR)

THREADS = int(os.environ.get("ORACLE_THREADS", "2"))
tf.config.threading.set_intra_op_parallelism_threads(THREADS)
tf.config.threading.set_inter_op_parallelism_threads(THREADS)

SEED = 0

# Each model: how Keras builds it, the file name of Keras' download, and the layers whose
# activations are saved (every layer kind in the model at least once, shallow to deep).
MODELS = {
    "mobilenet_v2": {
        "builder": "keras.applications.MobileNetV2(alpha=1.0, include_top=True, weights=None)",
        "build": lambda: keras.applications.MobileNetV2(alpha=1.0, include_top=True, weights=None),
        "preprocess": keras.applications.mobilenet_v2.preprocess_input,
        "preprocess_mode": "tf",
        # Small variances amplify, so that ReLU(6) really clips (about 12% of block_13_pad is 6).
        # Smaller still (0.01-0.1) makes the net ill-conditioned: Keras' own float32 then
        # differs from float64 by 1e-3 at block_13_pad (see keras_f32_vs_f64 in the manifest).
        "bn_variance": (0.05, 0.3),
        "file": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
        "layers": [
            "Conv1",
            "bn_Conv1",
            "Conv1_relu",
            "expanded_conv_depthwise",
            "expanded_conv_depthwise_relu",
            "expanded_conv_project_BN",
            "block_1_expand",
            "block_1_pad",
            "block_1_depthwise",
            "block_1_depthwise_relu",
            "block_2_add",
            "block_13_pad",
            "block_16_project",
            "block_16_project_BN",
            "Conv_1",
            "out_relu",
            "global_average_pooling2d",
            "predictions",
        ],
    },
    "resnet50": {
        "builder": "keras.applications.ResNet50(include_top=True, weights=None)",
        "build": lambda: keras.applications.ResNet50(include_top=True, weights=None),
        "preprocess": keras.applications.resnet50.preprocess_input,
        "preprocess_mode": "caffe",
        "bn_variance": (0.5, 2.0),
        "file": "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        "layers": [
            "conv1_pad",
            "conv1_conv",
            "conv1_bn",
            "conv1_relu",
            "pool1_pad",
            "pool1_pool",
            "conv2_block1_0_conv",
            "conv2_block1_1_relu",
            "conv2_block1_2_conv",
            "conv2_block1_3_bn",
            "conv2_block1_add",
            "conv2_block1_out",
            "conv2_block2_out",
            "conv3_block1_out",
            "conv4_block6_out",
            "conv5_block3_out",
            "avg_pool",
            "predictions",
        ],
    },
}


def log(msg):
    print(f"[app-oracle {time.time() - T0:5.1f}s] {msg}", flush=True)


def file_hash(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rel_err(a, b):
    """max|a - b| / max|b|."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def save_f32(path, arr):
    np.save(path, np.ascontiguousarray(np.asarray(arr, dtype="<f4")), allow_pickle=False)


def perturb(model, rng, variance):
    """
    Non-trivial BN statistics and biases (weights=None leaves them at 1, 0, 0, 1 and 0).
    `variance` is the range of moving_variance: small values amplify, so that ReLU(6) clips.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, c).astype("float32"),    # gamma
                rng.normal(0.0, 0.2, c).astype("float32"),     # beta
                rng.normal(0.0, 0.2, c).astype("float32"),     # moving_mean
                rng.uniform(*variance, c).astype("float32"),   # moving_variance (> 0)
            ])
        elif getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            values = layer.get_weights()
            values[-1] = rng.normal(0.0, 0.1, values[-1].shape).astype("float32")
            layer.set_weights(values)


def legacy_layout(path):
    """What the legacy loader reads: layers with weights in file order, their weight names and shapes."""
    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        out = []
        for n in names:
            wn = [w.decode() if isinstance(w, bytes) else w for w in f[n].attrs.get("weight_names", [])]
            if len(wn):
                out.append({"layer": n, "weights": [{"name": w, "shape": list(f[n][w].shape)} for w in wn]})
        return {"layer_names": names, "layers_with_weights": out}


def make(model_id, spec, outdir, image_path, man):
    t = time.time()
    keras.backend.clear_session()  # auto names (input_layer, global_average_pooling2d) as in a fresh session
    keras.utils.set_random_seed(SEED)
    model = spec["build"]()
    perturb(model, np.random.default_rng(SEED), spec["bn_variance"])

    weights_path = os.path.join(outdir, spec["file"])
    if os.path.exists(weights_path):
        os.remove(weights_path)
    with h5py.File(weights_path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)

    img = keras.utils.load_img(image_path, target_size=(224, 224))  # nearest, Keras' default
    x = spec["preprocess"](np.expand_dims(keras.utils.img_to_array(img), 0).copy())
    x = np.asarray(x, dtype="float32")
    save_f32(os.path.join(outdir, f"{model_id}.input.npy"), x)

    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in spec["layers"]])
    ys = probe.predict(x, verbose=0)
    outputs = {}
    for name, y in zip(spec["layers"], ys):
        y = np.asarray(y, dtype="float32")
        file = f"{model_id}.{name}.npy"
        save_f32(os.path.join(outdir, file), y)
        outputs[name] = {
            "file": file,
            "shape": list(y.shape),
            "max_abs": float(np.abs(y).max()),
            "min": float(y.min()),
            "max": float(y.max()),
            "zero_fraction": float(np.mean(y == 0)),
            "six_fraction": float(np.mean(y == 6)),  # ReLU6 outputs that were clipped
        }

    # How well-conditioned the net is: the same weights in float64. A correct float32
    # implementation should land near these errors; far above 1e-4 would make the test meaningless.
    weights = model.get_weights()
    keras.backend.clear_session()
    keras.config.set_floatx("float64")
    try:
        wide = spec["build"]()
        wide.set_weights([w.astype("float64") for w in weights])
        wide_probe = keras.Model(wide.inputs, [wide.get_layer(n).output for n in spec["layers"]])
        ys64 = wide_probe.predict(x.astype("float64"), verbose=0)
    finally:
        keras.config.set_floatx("float32")
    for name, y, y64 in zip(spec["layers"], ys, ys64):
        outputs[name]["keras_f32_vs_f64"] = rel_err(y, y64)
    worst64 = max(o["keras_f32_vs_f64"] for o in outputs.values())

    probs = np.asarray(ys[-1], dtype="float64")[0]
    order = np.argsort(-probs, kind="stable")

    # The file must load back into Keras' own model (order-based legacy loader) and give the same outputs.
    keras.backend.clear_session()
    fresh = spec["build"]()
    with h5py.File(weights_path, "r") as f:
        legacy_h5_format.load_weights_from_hdf5_group(f, fresh)
    again = np.asarray(fresh.predict(x, verbose=0), dtype="float32")
    reload_err = rel_err(again, ys[-1])

    layers = []
    for layer in model.layers:
        shape = layer.output.shape
        layers.append({
            "name": layer.name,
            "class_name": layer.__class__.__name__,
            "output_shape": list(shape[1:]),
            "weights": [list(w.shape) for w in legacy_h5_format._legacy_weights(layer)],
        })
    man["models"][model_id] = {
        "keras_builder": spec["builder"],
        "weights_file": spec["file"],
        "file_sha256": file_hash(weights_path, "sha256"),
        "file_md5": file_hash(weights_path, "md5"),
        "file_bytes": os.path.getsize(weights_path),
        "param_count": int(model.count_params()),
        "preprocessing": spec["preprocess_mode"],
        "input": f"{model_id}.input.npy",
        "layer_names_in_order": [layer.name for layer in model.layers],
        "layers": layers,
        "legacy_layout": legacy_layout(weights_path),
        "saved_layers": spec["layers"],
        "outputs": outputs,
        "top5": [int(i) for i in order[:5]],
        "top5_probabilities": [float(probs[i]) for i in order[:5]],
        "top5_margin": float(probs[order[4]] - probs[order[5]]),
        "reload_with_keras_legacy_loader_rel_err": reload_err,
        "keras_f32_vs_f64_worst": worst64,
        "seconds": round(time.time() - t, 1),
    }
    log(
        f"{model_id}: {len(model.layers)} layers, {len(spec['layers'])} saved, top-5 {man['models'][model_id]['top5']} "
        f"(p1 {probs[order[0]]:.3f}, 5th-6th margin {probs[order[4]] - probs[order[5]]:.2e}), "
        f"reload error {reload_err:.1e}, float32 vs float64 {worst64:.1e}, {time.time() - t:.1f} s"
    )


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: applications.py OUTDIR IMAGE")
    outdir = os.path.join(os.path.abspath(sys.argv[1]), "applications")
    image_path = os.path.abspath(sys.argv[2])
    if not os.path.isfile(image_path):
        sys.exit(f"no such image: {image_path}")
    os.makedirs(outdir, exist_ok=True)
    man = {
        "generator": "test/oracle/applications.py",
        "image": os.path.basename(image_path),
        "image_sha256": file_hash(image_path, "sha256"),
        "load_img": "keras.utils.load_img(path, target_size=(224, 224)) (nearest) + img_to_array",
        "seed": SEED,
        "perturbation": "BN gamma U(0.5,1.5), beta N(0,0.2), moving_mean N(0,0.2), moving_variance "
        "U(0.05,0.3) in MobileNetV2 (so ReLU6 clips) and U(0.5,2) in ResNet50; "
        "biases N(0,0.1); numpy default_rng(0) over model.layers in order",
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "h5py": h5py.__version__,
            "python": platform.python_version(),
        },
        "threads": THREADS,
        "comparison_rule": "per layer: max|ours - ref| / max|ref| <= 1e-4",
        "models": {},
    }
    for model_id, spec in MODELS.items():
        make(model_id, spec, outdir, image_path, man)
    man["seconds"] = round(time.time() - T0, 1)
    with open(os.path.join(outdir, "applications.manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    log(f"done in {time.time() - T0:.1f} s: {outdir}/applications.manifest.json")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Keras' own side of the Keras part of `npm run bench`, on the same .h5 / .keras file the engine opens.

  keras_bench.py run FILE IMAGE THREADS RUNS WARMUP SPAWNED_AT_MS
      What a Keras user does to see every layer, timed step by step: import TensorFlow and
      Keras; keras.saving.load_model(FILE, compile=False) (ConvNeXt's LayerScale passed as a
      custom object, as Keras' own round trip needs); the same load again in this process after
      keras.backend.clear_session(); the image through keras.utils.load_img (nearest, the model's
      input size) and img_to_array (both models normalise inside: their preprocess_input is the
      identity); then one keras.Model(model.inputs, [every layer's output]) (model.layers after
      the input, each layer's one output; a nested model gives its own output, as Keras exposes
      it) run `model(x, training=False)` with every output copied to numpy, and with `predict`;
      and the same for a model of the first layer after the input alone. Each pass: its first
      run apart, WARMUP more, then the median of RUNS. SPAWNED_AT_MS is the caller's Date.now()
      when it started this process: `readyMs` is then the whole process, spawn to model loaded.
      When Keras cannot load the file it says so (`loadError`) and stops there.
  keras_bench.py whole FILE IMAGE THREADS
      The whole process of a user's script, timed from outside by the caller: import, load_model,
      load_img, the every-layer model's `predict`, every activation in numpy; then exit.

THREADS sets TensorFlow's intra- and inter-op threads. Prints one JSON line. The venv is the Keras
oracle's (../shared/oracle/make-oracle.sh), whose .pth guard sets TF_ENABLE_ONEDNN_OPTS=0 where
oneDNN misbehaves (AMD family >= 26).
"""
import gc
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_keras(threads):
    import numpy as np
    import tensorflow as tf
    import keras

    tf.get_logger().setLevel("ERROR")
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return np, tf, keras


def custom_objects():
    from keras.src.applications import convnext

    return {"LayerScale": convnext.LayerScale}


def load(keras, path):
    return keras.saving.load_model(path, custom_objects=custom_objects(), compile=False)


def single_output(layer):
    """The layer's one output tensor, or None (several outputs, or called more than once)."""
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    return None if isinstance(out, (list, tuple, dict)) else out


def every_layer(keras, model):
    """The layers after the input with one output each, and a model with all their outputs."""
    layers = [
        l for l in model.layers if l.__class__.__name__ != "InputLayer" and single_output(l) is not None
    ]
    return layers, keras.Model(model.inputs, [single_output(l) for l in layers])


def load_image(np, keras, model, image):
    _, height, width, _ = model.input_shape
    img = keras.utils.load_img(image, target_size=(height, width))
    return np.expand_dims(keras.utils.img_to_array(img), 0).astype("float32")


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024)
    return None


def stats(values):
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
        "n": len(values),
    }


def ms_since(t):
    return round((time.perf_counter() - t) * 1000, 1)


def timed(fn, runs, warmup):
    """fn's first run, then `warmup` more untimed, then `runs` timed (ms)."""
    t = time.perf_counter()
    fn()
    first = ms_since(t)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"firstMs": first, **stats(times)}


def passes(np, sub, x, runs, warmup):
    """`sub(x)` with every output copied to numpy, and `sub.predict(x)`, each timed."""

    def call():
        ys = sub(x, training=False)
        return [np.asarray(y) for y in (ys if isinstance(ys, (list, tuple)) else [ys])]

    def predict():
        return sub.predict(x, verbose=0, batch_size=1)

    return {"call": timed(call, runs, warmup), "predict": timed(predict, runs, warmup)}


def run(path, image, threads, runs, warmup, spawned_at_ms):
    t0 = time.perf_counter()
    np, tf, keras = import_keras(threads)
    result = {
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "threads": threads,
        "oneDnnOpts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "importMs": ms_since(t0),
    }
    t = time.perf_counter()
    try:
        model = load(keras, path)
    except Exception as e:  # noqa: BLE001 - reported: Keras cannot read this file
        result["loadError"] = f"{e.__class__.__name__}: {' '.join(str(e).split())[:300]}"
        result["loadFailedAfterMs"] = ms_since(t)
        result["peakRssMB"] = peak_rss_mb()
        print(json.dumps(result))
        return
    result["loadMs"] = ms_since(t)
    result["readyMs"] = round(time.time() * 1000 - spawned_at_ms, 1)
    result["rssAfterLoadMB"] = rss_mb()

    # The same file again in this process, as a user reloading it would.
    del model
    keras.backend.clear_session()
    gc.collect()
    t = time.perf_counter()
    model = load(keras, path)
    result["secondLoadMs"] = ms_since(t)

    t = time.perf_counter()
    x = load_image(np, keras, model, image)
    result["imageMs"] = ms_since(t)

    t = time.perf_counter()
    layers, everything = every_layer(keras, model)
    result["buildEveryLayerMs"] = ms_since(t)
    result["outputs"] = len(layers)
    result["everyLayer"] = passes(np, everything, x, runs, warmup)
    del everything
    gc.collect()

    first = layers[0]
    t = time.perf_counter()
    alone = keras.Model(model.inputs, single_output(first))
    result["firstLayer"] = {"layer": first.name, "buildMs": ms_since(t), **passes(np, alone, x, runs, warmup)}
    result["peakRssMB"] = peak_rss_mb()
    print(json.dumps(result))


def whole(path, image, threads):
    np, _, keras = import_keras(threads)
    model = load(keras, path)
    x = load_image(np, keras, model, image)
    layers, everything = every_layer(keras, model)
    ys = everything.predict(x, verbose=0, batch_size=1)
    maps = [np.asarray(y) for y in ys]
    print(json.dumps({"outputs": len(layers), "activations": len(maps), "peakRssMB": peak_rss_mb()}))


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 7 and args[0] == "run":
        run(args[1], args[2], int(args[3]), int(args[4]), int(args[5]), float(args[6]))
    elif len(args) == 4 and args[0] == "whole":
        whole(args[1], args[2], int(args[3]))
    else:
        sys.exit(__doc__)

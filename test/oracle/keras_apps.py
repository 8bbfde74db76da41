#!/usr/bin/env python3
"""Keras oracle for every keras.applications architecture, plus three models built here.

Usage:
  keras_apps.py OUTDIR IMAGE ID [ID ...] [--f64] [--verify]         make these models
  keras_apps.py --list ci|all                                       print a set's IDs, one a line
  keras_apps.py --version                                           print the generator version
  keras_apps.py --reindex OUTDIR                                    rewrite OUTDIR/keras-apps/index.json

tools/make-keras-apps-oracle.sh runs it with the venv of ../shared/oracle/make-oracle.sh
(tensorflow-cpu 2.21.0, keras 3.15.1), one process per model. IMAGE is
../shared/fixtures/images/chelsea.png; coffee.png beside it is the second photo (below).

IDs: the lowercase Keras names of the keras.applications classes (xception, vgg16,
resnet50, ..., efficientnetv2b0, convnexttiny, ...; `--list all` prints them), and three
models built by this script: `unet`, `autoencoder` and `layers_zoo` (see build_unet,
build_autoencoder, build_layers_zoo). Keras 3.15 has no RegNet (RegNetX/Y were in
tf.keras 2.x only, keras.applications of 3.x never had them), so there is no regnet ID.

Each model is built with weights=None, include_top=True and its default input size, after
keras.backend.clear_session() and keras.utils.set_random_seed(0). Then `perturb` makes
the weights that Keras initialises to constants non-trivial, from numpy default_rng(0)
over the layers in model.layers order (recursing into nested models):
  BatchNormalization   gamma U(0.5,1.5), beta N(0,0.2); its moving statistics are measured,
                       then moved off: `calibrate_bn` runs the second photo through the model
                       once and sets moving_mean = mean_c + N(0,0.2) * std_c and
                       moving_variance = var_c * U(0.5,2) (layers_zoo: U(0.02,0.1), so that
                       its ReLU's threshold and max_value really cut) from the per-channel
                       mean_c and var_c of what reaches that layer. (Purely random statistics
                       let the image fade out with depth behind the biases: at MobileNetV3Small's
                       head the two photos differed by 2e-7 of the range.)
  LayerNormalization,  gamma U(0.5,1.5), beta N(0,0.2)
  GroupNormalization
  LayerScale (ConvNeXt) gamma U(0.1,1) (Keras starts it at 1e-6, which hides every block)
  PReLU                alpha U(0.05,0.3)
  every bias           N(0,0.1)
Then (keras.applications only) `damp_residual_branches` scales the last BN/LN/LayerScale/conv of
every residual branch that meets an Add by U(0.1,0.3), from default_rng(1): with full-size random
branches deep residual nets are chaotic and Keras' own float32 drifts from float64 beyond the
tests' 1e-4 (ResNet152: 7.6e-4; damped 1.3e-5). Then `calibrate_bn` (above) sets the BN statistics.
The Normalization layers of the applications are left as Keras makes them (EfficientNet's:
mean 0, variance 1, count 0 as weights; ConvNeXt's and EfficientNetV2-S/M/L's: ImageNet
constants in the config); layers_zoo has an adapted one. The autoencoder (no normalisation
at all) uses he_normal kernels: with Glorot the image faded to 5e-4 of its output's range.

Written into OUTDIR/keras-apps/<ID>/ (made in <ID>.partial/, renamed when complete):
  <ID>.h5        model.save(path): the legacy full-model HDF5 format (model_config + weights)
  <ID>.keras     model.save(path): the Keras 3 zip
  input.npy      float32 [1,H,W,C]: IMAGE through keras.utils.load_img(target_size=(H,W))
                 (nearest) + img_to_array + keras.applications.<preprocess>.preprocess_input,
                 exactly what the model receives. For unet, autoencoder and layers_zoo:
                 img_to_array / 255 (preprocess "none").
  layers/<i>.npy float32 activation, batch included, Keras layout (NHWC for maps), of
                 model.layers[i] (i from 0 over model.layers, the InputLayer included) for
                 every layer whose output is one tensor of rank 4 or 2 (and, in layers_zoo
                 only, also rank 3: the token tensors).
  operations/<name>.npy  the same for the graph's operations that are no layers (keras.ops
                 applied to tensors: MobileNetV3's hard_sigmoid is `ReLU(6)(x + 3.0) * (1/6)`,
                 18 such Add/Multiply operations that model.layers does not list)
  manifest.json  {
    "generator": "test/oracle/keras_apps.py", "version": 2, "id", "label", "builder"
    (the Python expression), "keras_version", "tensorflow_version", "seed",
    "input_shape": [H,W,C] (what input.npy holds), "model_input_shape" (the model's declared
    input without batch, null for a free dimension: MobileNetV3 is [null,null,3]),
    "preprocess" (module of preprocess_input, e.g. "efficientnet", or "none"),
    "preprocess_mode" ("caffe", "tf", "torch", "identity" (the model has its own
    Rescaling/Normalization layers) or "divide by 255"),
    "files": {"h5": {"name","bytes","sha256"}, "keras": {...}},
    "layers": [ every layer of model.layers in order:
      {"index", "name", "class_name",
       "output_shape" (without batch, from the computed activation when there is one, else
                       the declared shape; null for a layer with several outputs),
       "file" ("layers/<i>.npy", or null when not saved),
       "max_abs", "min", "max" (null when not saved),
       extra: "rank", "zero_fraction",
       "keras_f32_vs_f64" (max|f32 - f64| / max|f64|: Keras' own float32 against the same
                           weights in float64, how far a correct float32 implementation can
                           land; null unless --f64: float64 is slow on CPU, ConvNeXtTiny's
                           depthwise 7x7 convolutions take 86 s instead of 3),
       "image_sensitivity" (max|a - b| / max|a| between the two photos' activations: near 0
                            means the image no longer reaches this layer, and a comparison
                            there checks little more than the biases),
       "nested" (for a nested model: its layers' names and classes, e.g. ConvNeXt's
                 Sequential stem and downsampling blocks)} ],
    "operations": [ the operations that are no layers, in graph order: {"name", "class_name",
       "module" (e.g. keras.src.ops.numpy), "args" ([{"tensor_of": layer name} or
       {"constant": number}]), "output_shape", "file" ("operations/<name>.npy"), "max_abs",
       "min", "max", "keras_f32_vs_f64", "image_sensitivity"} ],
    "top5": [the 5 largest class indices of the last layer's output, best first] (null when
            the last layer is not a classifier: unet, autoencoder),
    "top5_margin": p5 - p6 (with random weights the softmax is near uniform; a tiny margin
                   means comparing top-5 is not meaningful), "top5_probabilities",
    "seconds": {"build", "perturb" (with calibrate_bn), "save", "hash", "predict",
                "sensitivity", "f64", "verify", "total"},
    "param_count",
    extra: "perturbation" (the recipe above, with this model's ranges),
    "conditioning" {"last_map_layer" (the last rank-4 layer with more than 1x1 pixels),
                    "max_abs", "zero_fraction", "image_sensitivity" of that layer,
                    "least_image_sensitivity", "least_sensitive_layer" (over all layers)},
    "keras_f32_vs_f64_worst", "reload" ({"h5", "keras"}: max rel. error of the last layer
    after keras.saving.load_model of each file, or {"error": ...} when Keras cannot read its
    own file: MobileNetV3's and ConvNeXt's .h5; null unless --verify), "layers_saved" (input included),
    "bytes" (the whole folder), "image", "image_sha256", "calibration_image", "notes",
    and for layers_zoo "activations" {"present", "missing_in_keras", "not_expressible"}
  }
And OUTDIR/keras-apps/index.json: {"generator", "version", "ids": [IDs whose manifest.json
exists, sorted], "models": {ID: {"label", "version", "bytes"}}}, rewritten from the folders
present after each model (so it never drops another run's models).

Rule for the tests: per saved layer, max|ours - ref| / max_abs <= 1e-4.
"""

import gc
import hashlib
import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GENERATOR = "test/oracle/keras_apps.py"
VERSION = 2
SEED = 0

# keras.applications class name -> the module whose preprocess_input it uses, and its mode.
APPLICATIONS = {
    "Xception": ("xception", "tf"),
    "VGG16": ("vgg16", "caffe"),
    "VGG19": ("vgg19", "caffe"),
    "ResNet50": ("resnet50", "caffe"),
    "ResNet101": ("resnet", "caffe"),
    "ResNet152": ("resnet", "caffe"),
    "ResNet50V2": ("resnet_v2", "tf"),
    "ResNet101V2": ("resnet_v2", "tf"),
    "ResNet152V2": ("resnet_v2", "tf"),
    "InceptionV3": ("inception_v3", "tf"),
    "InceptionResNetV2": ("inception_resnet_v2", "tf"),
    "MobileNet": ("mobilenet", "tf"),
    "MobileNetV2": ("mobilenet_v2", "tf"),
    "MobileNetV3Small": ("mobilenet_v3", "identity"),
    "MobileNetV3Large": ("mobilenet_v3", "identity"),
    "DenseNet121": ("densenet", "torch"),
    "DenseNet169": ("densenet", "torch"),
    "DenseNet201": ("densenet", "torch"),
    "NASNetMobile": ("nasnet", "tf"),
    "NASNetLarge": ("nasnet", "tf"),
    **{f"EfficientNetB{i}": ("efficientnet", "identity") for i in range(8)},
    **{f"EfficientNetV2{s}": ("efficientnet_v2", "identity") for s in ["B0", "B1", "B2", "B3", "S", "M", "L"]},
    **{f"ConvNeXt{s}": ("convnext", "identity") for s in ["Tiny", "Small", "Base", "Large", "XLarge"]},
}
CI_SET = [
    "mobilenetv3small",
    "efficientnetb0",
    "efficientnetv2b0",
    "convnexttiny",
    "nasnetmobile",
    "densenet121",
    "resnet50v2",
    "xception",
    "inceptionv3",
    "inceptionresnetv2",
    "mobilenet",
    "unet",
    "autoencoder",
    "layers_zoo",
]
LABELS = {name.lower(): name for name in APPLICATIONS}
LABELS.update({"unet": "U-Net", "autoencoder": "ConvAutoencoder", "layers_zoo": "LayersZoo"})
ALL_SET = list(LABELS)

# The factor on each BatchNormalization's measured variance, per model (default U(0.5, 2)).
# In layers_zoo a small factor amplifies, so that ReLU's threshold and max_value really cut.
DEFAULT_BN_VARIANCE = (0.5, 2.0)
BN_VARIANCE = {"layers_zoo": (0.02, 0.1)}

RESIDUAL_DAMP = (0.1, 0.3)  # see damp_residual_branches
CALIBRATION_IMAGE = "coffee.png"  # beside IMAGE; BN statistics and the sensitivity check use it
CHUNK_BYTES = int(float(os.environ.get("ORACLE_CHUNK_BYTES", "1.5e9")))  # activations per predict


def sets(name):
    if name == "ci":
        return list(CI_SET)
    if name == "all":
        return list(ALL_SET)
    raise SystemExit(f"unknown set {name!r} (ci or all)")


# ---------------------------------------------------------------------------------------------
# Everything below needs TensorFlow; the --list/--version paths above stay fast.


def log(msg):
    print(f"[keras-apps {time.time() - T0:6.1f}s] {msg}", flush=True)


def file_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def save_f32(path, arr):
    np.save(path, np.ascontiguousarray(np.asarray(arr, dtype="<f4")), allow_pickle=False)


def rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    m = np.abs(b).max()
    return float(np.abs(a - b).max() / m) if m > 0 else float(np.abs(a - b).max())


def load_image(path, size, preprocess):
    img = keras.utils.load_img(path, target_size=size)  # nearest, Keras' default
    x = np.expand_dims(keras.utils.img_to_array(img), 0).astype("float32")
    x = preprocess(x.copy())
    return np.asarray(x, dtype="float32")


def all_layers(model):
    """Layers in model.layers order, nested models' layers right after the nested model."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def perturb(model, rng, bn_variance):
    """Non-trivial values for every weight Keras initialises to a constant (see the docstring)."""
    for layer in all_layers(model):
        cls = layer.__class__.__name__
        for v in layer.weights:
            n = v.name
            shape = tuple(v.shape)
            if cls in ("BatchNormalization", "LayerNormalization", "GroupNormalization") and n == "gamma":
                val = rng.uniform(0.5, 1.5, shape)
            elif cls in ("BatchNormalization", "LayerNormalization", "GroupNormalization") and n == "beta":
                val = rng.normal(0.0, 0.2, shape)
            elif cls == "BatchNormalization" and n == "moving_mean":
                val = rng.normal(0.0, 0.2, shape)  # a draw that calibrate_bn combines with the real mean
            elif cls == "BatchNormalization" and n == "moving_variance":
                val = rng.uniform(*bn_variance, shape)  # a draw that calibrate_bn multiplies the variance by
            elif cls == "LayerScale":
                val = rng.uniform(0.1, 1.0, shape)
            elif cls == "PReLU":
                val = rng.uniform(0.05, 0.3, shape)
            elif n == "bias":
                val = rng.normal(0.0, 0.1, shape)
            else:
                continue
            v.assign(np.asarray(val, dtype=v.dtype))


# Layers a residual branch may end with after its last scalable layer: each commutes with a
# positive scale factor, so scaling the layer before them scales the branch.
_TRANSPARENT = {
    "Dropout",
    "SpatialDropout2D",
    "GaussianDropout",
    "GaussianNoise",
    "Identity",
    "StochasticDepth",
    "MaxPooling2D",
    "AveragePooling2D",
    "ZeroPadding2D",
    "Cropping2D",
}


def damp_residual_branches(model, rng, damp=RESIDUAL_DAMP):
    """
    Scales down each residual branch. For every Add (layer, or keras.ops add of two tensors) and
    each of its inputs, walks back through layers that commute with a positive factor (dropout,
    pooling, padding, linear or plain ReLU activations) to the first layer with a gamma
    (BatchNormalization, LayerNormalization, LayerScale) or a kernel. An input that reaches a
    merge first is an identity shortcut. If there is one, every other input is a branch; if not
    (a projection shortcut: ResNet's conv + BN), the deepest input (longest path from the model's
    input) is the branch. Each branch's layer gets its gamma and beta, or kernel and bias,
    multiplied by s ~ U(damp). Trained residual nets look like this (their branches add small
    corrections); with full-size random branches, deep ones are chaotic: float32 rounding grows
    block by block (ResNet152: Keras' own float32 differed from float64 by 7.6e-4 of a layer's
    range at conv5, far above the tests' 1e-4; damped: 1.3e-5).
    Returns the names of the layers scaled.
    """
    done = []

    def producer(t):
        hist = getattr(t, "_keras_history", None)
        return hist[0] if hist else None

    def inputs_of(op):
        if not op._inbound_nodes:
            return []
        node = op._inbound_nodes[0]
        if isinstance(op, keras.layers.Layer):
            return list(node.input_tensors)
        return [a for a in node.arguments.args if isinstance(a, keras.KerasTensor)]

    depth = {}
    for op in model.operations:  # in graph order
        depth[id(op)] = 1 + max((depth.get(id(producer(t)), 0) for t in inputs_of(op)), default=0)

    def target(layer):
        """The layer whose scaling scales this input, or None (reaches a merge or something else)."""
        while layer is not None:
            cls = layer.__class__.__name__
            transparent = (
                cls in _TRANSPARENT
                or (cls == "Activation" and layer.get_config()["activation"] in ("linear", "relu"))
                or (cls == "ReLU" and not layer.threshold and layer.negative_slope == 0)
            )
            if not transparent:
                if isinstance(layer, keras.Model):
                    return None
                if cls == "LayerScale":
                    return layer
                names = {v.name for v in getattr(layer, "weights", [])}
                return layer if names & {"gamma", "kernel", "depthwise_kernel"} else None
            ins = inputs_of(layer)
            if len(ins) != 1:
                return None
            layer = producer(ins[0])
        return None

    def scale(layer):
        if layer.name in done:
            return
        names = {v.name: v for v in layer.weights}
        if layer.__class__.__name__ == "LayerScale":  # its one weight is unnamed
            names = {"gamma": layer.gamma}
        for group in (("gamma", "beta"), ("kernel", "bias"), ("depthwise_kernel", "bias")):
            if group[0] in names:
                f = rng.uniform(*damp)
                for n in group:
                    if n in names:
                        v = names[n]
                        v.assign(np.asarray(v.numpy() * f, dtype=v.dtype))
                done.append(layer.name)
                return

    for op in model.operations:
        if op.__class__.__name__ != "Add":
            continue
        if not isinstance(op, keras.layers.Layer) and len(inputs_of(op)) != len(op._inbound_nodes[0].arguments.args):
            continue  # x + 3.0, not a merge
        ts = [target(producer(t)) for t in inputs_of(op)]
        if len(ts) < 2:
            continue
        if all(t is not None for t in ts):
            deepest = max(range(len(ts)), key=lambda i: (depth.get(id(ts[i]), 0), i))
            ts = [ts[deepest]]
        for t in ts:
            if t is not None:
                scale(t)
    return done


def calibrate_bn(model, x_cal):
    """
    Sets each BatchNormalization's moving statistics from what reaches it when x_cal goes through
    the model (one eager pass, in graph order, so each layer sees the already calibrated ones before
    it), then moves them off by the random draws `perturb` left there:
      moving_mean     = mean_c + draw_mean_c * std_c          (draw_mean_c ~ N(0, 0.2))
      moving_variance = var_c * draw_var_c                    (draw_var_c ~ U(BN variance range))
    where mean_c, var_c are the per-channel statistics over batch, height and width; var_c is
    floored at 5% of the layer's mean variance (dead or constant channels). Without this, random
    statistics let the image fade out with depth (convolutions with Glorot weights roughly halve
    the variance, and BN's random statistics don't undo it), so deep layers showed biases only.
    """
    from keras import ops

    def wrap(op):
        if op.__class__.__name__ != "BatchNormalization":
            return op

        def run(*args, **kwargs):
            t = args[0]
            axes = tuple(a for a in range(len(t.shape)) if a != (op.axis % len(t.shape)))
            v = np.asarray(t, dtype="float64")
            if v.shape[0] * np.prod([v.shape[a] for a in axes[1:]]) < 2:
                mean_c = np.full(v.shape[op.axis], v.mean())
                var_c = np.full(v.shape[op.axis], v.var() + 1e-6)
            else:
                mean_c = v.mean(axis=axes)
                var_c = v.var(axis=axes)
                var_c = np.maximum(var_c, 0.05 * var_c.mean() + 1e-6)
            draw_mean = np.asarray(op.moving_mean.numpy(), "float64")
            draw_var = np.asarray(op.moving_variance.numpy(), "float64")
            op.moving_mean.assign((mean_c + draw_mean * np.sqrt(var_c)).astype("float32"))
            op.moving_variance.assign((var_c * draw_var).astype("float32"))
            return op(*args, **kwargs)

        return run

    model._run_through_graph(ops.convert_to_tensor(x_cal), operation_fn=wrap)


# ---------------------------------------------------------------------------------------------
# The three models built here.


def _he_layers():
    """keras.layers with he_normal as the default kernel initialiser of Conv2D, Conv2DTranspose, Dense."""
    import functools
    import types

    ns = types.SimpleNamespace(**{k: getattr(keras.layers, k) for k in dir(keras.layers) if not k.startswith("_")})
    for k in ("Conv2D", "Conv2DTranspose", "Dense"):
        setattr(ns, k, functools.partial(getattr(keras.layers, k), kernel_initializer="he_normal"))
    return ns


def build_unet():
    L = keras.layers
    inp = keras.Input((128, 128, 3), name="image")

    def conv_bn_relu(x, filters, name, pad=False):
        if pad:  # ZeroPadding2D + a valid convolution instead of padding="same"
            x = L.ZeroPadding2D(1, name=f"{name}_pad")(x)
            x = L.Conv2D(filters, 3, padding="valid", name=f"{name}_conv")(x)
        else:
            x = L.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
        x = L.BatchNormalization(name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x)

    e1 = conv_bn_relu(inp, 16, "enc1a")
    e1 = conv_bn_relu(e1, 16, "enc1b")  # 128
    e2 = L.MaxPooling2D(2, name="pool1")(e1)
    e2 = conv_bn_relu(e2, 32, "enc2a", pad=True)
    e2 = conv_bn_relu(e2, 32, "enc2b")  # 64
    e3 = L.MaxPooling2D(2, name="pool2")(e2)
    e3 = conv_bn_relu(e3, 64, "enc3a")
    e3 = conv_bn_relu(e3, 64, "enc3b")  # 32
    b = L.MaxPooling2D(2, name="pool3")(e3)
    b = conv_bn_relu(b, 128, "bottleneck_a")
    b = conv_bn_relu(b, 128, "bottleneck_b")  # 16
    # decoder 3: transposed convolution, stride 2
    d3 = L.Conv2DTranspose(64, 2, strides=2, name="up3_deconv")(b)  # 32
    d3 = L.Concatenate(name="skip3_concat")([d3, e3])
    d3 = conv_bn_relu(d3, 64, "dec3a")
    d3 = conv_bn_relu(d3, 64, "dec3b")
    # decoder 2: bilinear upsampling + 1x1 convolution
    d2 = L.UpSampling2D(2, interpolation="bilinear", name="up2_bilinear")(d3)  # 64
    d2 = L.Conv2D(32, 1, name="up2_conv1x1")(d2)
    d2 = L.Concatenate(name="skip2_concat")([d2, e2])
    d2 = conv_bn_relu(d2, 32, "dec2a")
    d2 = conv_bn_relu(d2, 32, "dec2b")
    # decoder 1: a valid 3x3 transposed convolution (129x129), cropped back to 128
    d1 = L.Conv2DTranspose(16, 3, strides=2, padding="valid", name="up1_deconv_valid")(d2)
    d1 = L.Cropping2D(((0, 1), (1, 0)), name="up1_crop")(d1)
    d1 = L.Concatenate(name="skip1_concat")([d1, e1])
    d1 = conv_bn_relu(d1, 16, "dec1a")
    d1 = conv_bn_relu(d1, 16, "dec1b")
    out = L.Conv2D(3, 1, activation="softmax", name="segmentation")(d1)
    return keras.Model(inp, out, name="unet")


def build_autoencoder():
    # He initialisation (the usual choice for ReLU nets): with Keras' default Glorot and no
    # normalisation, the image faded to 5e-4 of the reconstruction's range behind the biases.
    L = _he_layers()
    inp = keras.Input((128, 128, 3), name="image")
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="enc_conv1")(inp)  # 64
    x = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="enc_conv2")(x)  # 32
    x = L.Conv2D(64, 3, strides=2, padding="same", activation="relu", name="enc_conv3")(x)  # 16
    x = L.Flatten(name="flatten")(x)
    z = L.Dense(64, activation="relu", name="bottleneck")(x)
    x = L.Dense(16 * 16 * 64, activation="relu", name="dec_dense")(z)
    x = L.Reshape((16, 16, 64), name="dec_reshape")(x)
    x = L.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu", name="dec_deconv1")(x)  # 32
    x = L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu", name="dec_deconv2")(x)  # 64
    out = L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid", name="reconstruction")(x)
    return keras.Model(inp, out, name="autoencoder")


# Activation names tried in layers_zoo, in this order; those keras.activations lacks are skipped
# and listed in the manifest.
ZOO_ACTIVATIONS = [
    "relu",
    "relu6",
    "sigmoid",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "silu",
    "swish",
    "gelu",
    "mish",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "tanh",
    "exponential",
    "leaky_relu",
    "log_softmax",
    "softmax",
    "linear",
    "celu",
    "glu",
    "squareplus",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "soft_shrink",
    "hard_shrink",
    "tanh_shrink",
    "hard_tanh",
    "log_sigmoid",
    "threshold",
]
# Activations a saved Keras 3 config cannot express by name alone (Activation("x") calls x(inputs)).
ZOO_NOT_EXPRESSIBLE = {
    "threshold": "keras.activations.threshold(x, threshold, default_value) has no defaults, so "
    "Activation('threshold') cannot run; a config names a function without arguments",
    "gelu(approximate=True)": "Activation('gelu') is gelu(approximate=False); no layer or config "
    "string gives the tanh approximation",
    "glu": "Activation('glu') halves the last axis but Keras' symbolic shape keeps it whole, so a "
    "functional model cannot feed its output to a layer with weights (the built weights do not fit)",
}


def zoo_activations():
    present = [a for a in ZOO_ACTIVATIONS if hasattr(keras.activations, a) and a not in ZOO_NOT_EXPRESSIBLE]
    missing = [a for a in ZOO_ACTIVATIONS if not hasattr(keras.activations, a)]
    return present, missing


def build_layers_zoo():
    L = keras.layers
    inp = keras.Input((64, 64, 3), name="image")
    x = L.Rescaling(2.0, offset=-1.0, name="rescale")(inp)  # [0,1] -> [-1,1]
    norm = L.Normalization(axis=-1, name="normalization_adapted")
    # adapted on seeded data, so mean, variance and count (int64) are weights with real values
    norm.adapt(np.random.default_rng(1).normal([0.2, -0.1, 0.3], [0.5, 0.8, 1.2], (16, 64, 64, 3)).astype("float32"))
    x = norm(x)
    x = L.Conv2D(16, 3, strides=2, padding="same", name="conv_stem")(x)  # 32x32x16
    x = L.BatchNormalization(name="bn")(x)
    x1 = L.ReLU(negative_slope=0.1, threshold=0.5, max_value=4.0, name="relu_slope_threshold")(x)

    a1 = L.Conv2D(16, 3, dilation_rate=2, padding="same", name="conv_dilated")(x1)
    a2 = L.Conv2D(16, 3, groups=4, padding="same", name="conv_grouped")(x1)
    a3 = L.DepthwiseConv2D(3, padding="same", name="dwconv")(x1)
    a4 = L.SeparableConv2D(16, 3, padding="same", name="sepconv")(x1)
    merged = [
        L.Add(name="add")([a1, a2]),
        L.Subtract(name="subtract")([a3, a4]),
        L.Average(name="average")([a1, a3]),
        L.Maximum(name="maximum")([a2, a4]),
        L.Minimum(name="minimum")([a1, a4]),
    ]
    x = L.Concatenate(name="concat_merges")(merged)
    x = L.Conv2D(16, 1, name="conv_mix")(x)
    x = L.GroupNormalization(groups=4, name="groupnorm")(x)
    x = L.LeakyReLU(negative_slope=0.2, name="leaky_relu")(x)
    x = L.LayerNormalization(axis=-1, name="layernorm_channels")(x)
    x = L.ELU(alpha=0.8, name="elu_layer")(x)
    x2 = L.PReLU(shared_axes=[1, 2], name="prelu")(x)

    present, _ = zoo_activations()
    acts = [L.Activation(a, name=f"act_{a}")(x2) for a in present]
    x = L.Concatenate(name="concat_activations")(acts)
    x3 = L.Conv2D(16, 1, name="conv_activations_mix")(x)
    s1 = L.Softmax(axis=1, name="softmax_axis1")(x3)
    s2 = L.Softmax(axis=-1, name="softmax_axis_last")(x3)
    x = L.Concatenate(name="concat_softmax")([x3, s1, s2])
    x4 = L.Conv2D(16, 1, name="conv_softmax_mix")(x)

    # squeeze-excitation
    s = L.GlobalAveragePooling2D(keepdims=True, name="se_gap_keepdims")(x4)
    s = L.Dense(4, activation="relu", name="se_reduce")(s)
    s = L.Dense(16, activation="sigmoid", name="se_expand")(s)
    x5 = L.Multiply(name="se_multiply")([x4, s])

    # map -> tokens -> attention -> map
    t = L.Reshape((32 * 32, 16), name="to_tokens")(x5)
    t = L.Permute((2, 1), name="tokens_transpose")(t)
    t = L.Permute((2, 1), name="tokens_transpose_back")(t)
    t = L.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")(t, t)
    t = L.Reshape((32, 32, 16), name="from_tokens")(t)
    x = L.Add(name="add_attention")([x5, t])

    # identities at inference
    x = L.Dropout(0.3, name="dropout")(x)
    x = L.SpatialDropout2D(0.3, name="spatial_dropout")(x)
    x = L.GaussianNoise(0.5, name="gaussian_noise")(x)
    x = L.GaussianDropout(0.3, name="gaussian_dropout")(x)
    x8 = L.Permute((2, 1, 3), name="permute_hw")(x)

    p1 = L.MaxPooling2D(3, strides=2, padding="same", name="maxpool_same")(x8)  # 16
    p2 = L.AveragePooling2D(3, strides=2, padding="same", name="avgpool_same")(x8)  # 16
    p3 = L.MaxPooling2D(2, padding="valid", name="maxpool_valid")(x8)  # 16
    p4 = L.AveragePooling2D(3, strides=2, padding="valid", name="avgpool_valid")(x8)  # 15
    p4 = L.ZeroPadding2D(((1, 0), (0, 1)), name="zeropad_asym")(p4)  # 16
    x = L.Concatenate(name="concat_pools")([p1, p2, p3, p4])
    x9 = L.Dense(16, name="dense_on_map")(x)  # 16x16x16

    u1 = L.Conv2DTranspose(16, 3, strides=2, padding="same", name="deconv_same")(x9)  # 32
    u2 = L.UpSampling2D(2, interpolation="nearest", name="upsample_nearest")(x9)
    u3 = L.UpSampling2D(2, interpolation="bilinear", name="upsample_bilinear")(x9)
    u4 = L.Conv2DTranspose(16, 4, strides=2, padding="valid", name="deconv_valid")(x9)  # 34
    u4 = L.Cropping2D(((1, 1), (2, 0)), name="crop_asym")(u4)  # 32
    u5 = L.Resizing(40, 40, interpolation="bilinear", name="resize_bilinear_40")(x9)  # x2.5
    u5 = L.Resizing(32, 32, interpolation="nearest", name="resize_nearest_32")(u5)
    x = L.Concatenate(name="concat_decoder")([u1, u2, u3, u4, u5])
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv_head")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out, name="layers_zoo")


BUILT = {
    "unet": ("build_unet()  # in test/oracle/keras_apps.py", build_unet),
    "autoencoder": ("build_autoencoder()  # in test/oracle/keras_apps.py", build_autoencoder),
    "layers_zoo": ("build_layers_zoo()  # in test/oracle/keras_apps.py", build_layers_zoo),
}


def spec_of(model_id):
    """(label, builder expression, build(), preprocess module, mode, preprocess fn, input size or None)."""
    if model_id in BUILT:
        expr, fn = BUILT[model_id]
        size = (64, 64) if model_id == "layers_zoo" else (128, 128)
        return LABELS[model_id], expr, fn, "none", "divide by 255", lambda x: x / 255.0, size
    label = LABELS[model_id]
    module, mode = APPLICATIONS[label]
    expr = f"keras.applications.{label}(weights=None, include_top=True)"

    def build():
        return getattr(keras.applications, label)(weights=None, include_top=True)

    pre = getattr(keras.applications, module).preprocess_input
    return label, expr, build, module, mode, pre, None


def build_seeded(build):
    keras.backend.clear_session()  # auto names as in a fresh session
    keras.utils.set_random_seed(SEED)
    return build()


def single_output(layer):
    """The layer's one output tensor, or None (several outputs, or called more than once)."""
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple, dict)):
        return None
    return out


def free_operations(model):
    """Operations of the graph that are no Layer, so not in model.layers (MobileNetV3's x + 3.0)."""
    return [op for op in model.operations if not isinstance(op, keras.layers.Layer)]


def layer_plan(model, input_hw, save_rank3):
    """
    What to save: [(key, layer or operation, output tensor, estimated bytes)], key = the index
    in model.layers, or the operation's name for the operations that are no layers.
    """
    ranks = (2, 3, 4) if save_rank3 else (2, 4)
    plan = []
    items = list(enumerate(model.layers)) + [(op.name, op) for op in free_operations(model)]
    for key, layer in items:
        out = single_output(layer)
        if out is None or key == 0 and layer.__class__.__name__ == "InputLayer":
            continue
        if len(out.shape) not in ranks:
            continue
        dims = [d if d is not None else max(input_hw) for d in out.shape[1:]]
        plan.append((key, layer, out, 4 * int(np.prod(dims))))
    return plan


def npy_path(key):
    return f"layers/{key}.npy" if isinstance(key, int) else f"operations/{key}.npy"


def chunks(plan, budget):
    cur, size = [], 0
    for item in plan:
        if cur and size + item[3] > budget:
            yield cur
            cur, size = [], 0
        cur.append(item)
        size += item[3]
    if cur:
        yield cur


def run_outputs(model, plan, x, on_output, budget=CHUNK_BYTES):
    """predict() with the plan's layers as outputs, a few at a time to bound memory."""
    for part in chunks(plan, budget):
        probe = keras.Model(model.inputs, [item[2] for item in part])
        ys = probe.predict(x, verbose=0, batch_size=1)
        if not isinstance(ys, (list, tuple)):
            ys = [ys]
        for item, y in zip(part, ys):
            on_output(item, np.asarray(y))
        del probe, ys
        gc.collect()


def custom_objects():
    from keras.src.applications import convnext, inception_resnet_v2

    return {"LayerScale": convnext.LayerScale, "CustomScaleLayer": inception_resnet_v2.CustomScaleLayer}


def make(model_id, outdir, image_path, do_f64, do_verify):
    T = {}
    t_all = time.time()
    label, expr, build, pre_module, pre_mode, preprocess, size = spec_of(model_id)
    bn_variance = BN_VARIANCE.get(model_id, DEFAULT_BN_VARIANCE)
    target = os.path.join(outdir, model_id)
    work = target + ".partial"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "layers"))
    os.makedirs(os.path.join(work, "operations"))

    t = time.time()
    model = build_seeded(build)
    T["build"] = time.time() - t
    declared = [d for d in model.inputs[0].shape[1:]]
    if size is None:
        if declared[0] is None or declared[1] is None:
            size = (224, 224)  # MobileNetV3's default size; its model accepts any size
        else:
            size = (declared[0], declared[1])
    x = load_image(image_path, size, preprocess)
    save_f32(os.path.join(work, "input.npy"), x)
    # The second photo: BN statistics come from it, and it tells whether the image reaches a layer.
    other_path = os.path.join(os.path.dirname(image_path), CALIBRATION_IMAGE)
    if not os.path.isfile(other_path):
        raise SystemExit(f"the calibration image {other_path} is missing (it must sit beside {image_path})")
    x_other = load_image(other_path, size, preprocess)

    t = time.time()
    perturb(model, np.random.default_rng(SEED), bn_variance)
    damped = [] if model_id in BUILT else damp_residual_branches(model, np.random.default_rng(SEED + 1))
    calibrate_bn(model, x_other)
    T["perturb"] = time.time() - t

    t = time.time()
    h5_name, keras_name = f"{model_id}.h5", f"{model_id}.keras"
    model.save(os.path.join(work, h5_name))
    model.save(os.path.join(work, keras_name))
    T["save"] = time.time() - t
    t = time.time()
    files = {}
    for kind, name in (("h5", h5_name), ("keras", keras_name)):
        p = os.path.join(work, name)
        files[kind] = {"name": name, "bytes": os.path.getsize(p), "sha256": file_hash(p)}
    T["hash"] = time.time() - t

    save_rank3 = model_id == "layers_zoo"
    plan = layer_plan(model, size, save_rank3)
    stats = {}
    last = {}
    last_index = len(model.layers) - 1

    def keep(item, y):
        i = item[0]
        y = y.astype("float32")
        save_f32(os.path.join(work, npy_path(i)), y)
        stats[i] = {
            "output_shape": list(y.shape[1:]),
            "max_abs": float(np.abs(y).max()),
            "min": float(y.min()),
            "max": float(y.max()),
            "zero_fraction": float(np.mean(y == 0)),
        }
        if i == last_index:
            last["y"] = y

    t = time.time()
    run_outputs(model, plan, x, keep)
    T["predict"] = time.time() - t
    n_saved = sum(isinstance(k, int) for k in stats)
    # The InputLayer: its output is the input itself.
    first = model.layers[0]
    if first.__class__.__name__ == "InputLayer":
        save_f32(os.path.join(work, "layers", "0.npy"), x)
        stats[0] = {
            "output_shape": list(x.shape[1:]),
            "max_abs": float(np.abs(x).max()),
            "min": float(x.min()),
            "max": float(x.max()),
            "zero_fraction": float(np.mean(x == 0)),
        }

    # Conditioning: does the image still reach each layer? The second photo through the same plan.
    sens = {}
    t = time.time()

    def sensitivity(item, y):
        ref = np.load(os.path.join(work, npy_path(item[0])))
        sens[item[0]] = rel_err(y, ref)

    run_outputs(model, plan, x_other, sensitivity)
    T["sensitivity"] = time.time() - t
    map_items = [
        item
        for item in plan
        if isinstance(item[0], int) and len(item[2].shape) == 4 and np.prod(stats[item[0]]["output_shape"][:2]) > 1
    ]
    cond = None
    if map_items:
        li = map_items[-1]
        cond = {
            "last_map_layer": li[1].name,
            "max_abs": stats[li[0]]["max_abs"],
            "zero_fraction": stats[li[0]]["zero_fraction"],
            "image_sensitivity": sens.get(li[0]),
            "least_image_sensitivity": min(sens.values()) if sens else None,
            "least_sensitive_layer": model.layers[min((k for k in sens if isinstance(k, int)), key=sens.get)].name
            if sens
            else None,
        }

    # Keras' own float32 against float64 with the same weights.
    f64 = {}
    T["f64"] = 0.0
    if do_f64:
        t = time.time()
        weights = model.get_weights()
        keras.config.set_floatx("float64")
        try:
            wide = build_seeded(build)
            wide.set_weights([w.astype("float64") if w.dtype.kind == "f" else w for w in weights])
            wplan = [p for p in layer_plan(wide, size, save_rank3) if p[0] in stats]

            def compare(item, y):
                ref = np.load(os.path.join(work, npy_path(item[0])))
                f64[item[0]] = rel_err(ref, y)

            run_outputs(wide, wplan, x.astype("float64"), compare, budget=CHUNK_BYTES // 2)
            del wide
        finally:
            keras.config.set_floatx("float32")
            keras.backend.clear_session()
        T["f64"] = time.time() - t

    # Load both files back into Keras and compare the last layer.
    reload = None
    T["verify"] = 0.0
    if do_verify:
        t = time.time()
        reload = {}
        ref = np.load(os.path.join(work, npy_path(len(model.layers) - 1)))
        for kind in ("h5", "keras"):
            keras.backend.clear_session()
            try:
                back = keras.saving.load_model(
                    os.path.join(work, files[kind]["name"]), custom_objects=custom_objects(), compile=False
                )
                reload[kind] = rel_err(np.asarray(back.predict(x, verbose=0)), ref)
                del back
            except Exception as e:  # noqa: BLE001 - recorded: Keras cannot read its own file
                reload[kind] = {"error": f"{e.__class__.__name__}: {' '.join(str(e).split())[:300]}"}
                log(f"{model_id}: Keras cannot load its own {kind} file: {reload[kind]['error']}")
            gc.collect()
        T["verify"] = time.time() - t

    layers = []
    for i, layer in enumerate(model.layers):
        out = single_output(layer)
        st = stats.get(i)
        if st is not None:
            shape = st["output_shape"]
        elif out is not None:
            shape = [d for d in out.shape[1:]]
        else:
            shape = None
        entry = {
            "index": i,
            "name": layer.name,
            "class_name": layer.__class__.__name__,
            "output_shape": shape,
            "file": f"layers/{i}.npy" if st is not None else None,
            "max_abs": st["max_abs"] if st else None,
            "min": st["min"] if st else None,
            "max": st["max"] if st else None,
            "rank": len(out.shape) if out is not None else None,
            "zero_fraction": st["zero_fraction"] if st else None,
            "keras_f32_vs_f64": f64.get(i),
            "image_sensitivity": sens.get(i),
        }
        if isinstance(layer, keras.Model):
            entry["nested"] = [{"name": s.name, "class_name": s.__class__.__name__} for s in layer.layers]
        layers.append(entry)

    operations = []
    for op in free_operations(model):
        out = single_output(op)
        st = stats.get(op.name)
        args = []
        for node in op._inbound_nodes[:1]:
            for a in node.arguments.args:
                if isinstance(a, keras.KerasTensor):
                    args.append({"tensor_of": a._keras_history[0].name})
                elif isinstance(a, (int, float)):
                    args.append({"constant": a})
                else:
                    args.append({"other": a.__class__.__name__})
        operations.append(
            {
                "name": op.name,
                "class_name": op.__class__.__name__,
                "module": op.__class__.__module__,
                "args": args,
                "output_shape": st["output_shape"] if st else ([d for d in out.shape[1:]] if out is not None else None),
                "file": npy_path(op.name) if st else None,
                "max_abs": st["max_abs"] if st else None,
                "min": st["min"] if st else None,
                "max": st["max"] if st else None,
                "keras_f32_vs_f64": f64.get(op.name),
                "image_sensitivity": sens.get(op.name),
            }
        )

    top5 = margin = probs5 = None
    y_last = last.get("y")
    if y_last is not None and y_last.ndim == 2 and y_last.shape[1] >= 6:
        p = y_last[0].astype("float64")
        order = np.argsort(-p, kind="stable")
        top5 = [int(k) for k in order[:5]]
        probs5 = [float(p[k]) for k in order[:5]]
        margin = float(p[order[4]] - p[order[5]])

    notes = []
    if model_id == "layers_zoo":
        present, missing = zoo_activations()
        notes.append(
            f"BatchNormalization's variance factor U{bn_variance}, so that ReLU(threshold=0.5, max_value=4) cuts"
        )
        notes.append(
            "Keras saves the aliases by their canonical names: act_hard_swish as 'hard_silu', act_swish as 'silu'"
        )
    if model_id == "autoencoder":
        notes.append("he_normal kernels (with Keras' default Glorot the image faded to 5e-4 of the output's range)")
    if operations:
        kinds = sorted({f"{o['module']}.{o['class_name']}" for o in operations})
        notes.append(
            f"{len(operations)} operations of the graph are no layers ({', '.join(kinds)}: keras.ops applied to "
            "tensors, like MobileNetV3's x + 3.0 or ConvNeXt's residual inputs + x); they are listed under "
            "'operations', their outputs in operations/<name>.npy. The .keras config names them with their "
            "module; the legacy .h5 config only by class name (Add, Multiply), so Keras itself reads them back "
            "as the merge layers and fails: the only difference is in the node's args (two positional "
            "arguments, one of them maybe a number, instead of one list of tensors)"
        )
    import tensorflow as tf

    manifest = {
        "generator": GENERATOR,
        "version": VERSION,
        "id": model_id,
        "label": label,
        "builder": expr,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "seed": SEED,
        "input_shape": list(x.shape[1:]),
        "model_input_shape": declared,
        "preprocess": pre_module,
        "preprocess_mode": pre_mode,
        "files": files,
        "layers": layers,
        "operations": operations,
        "top5": top5,
        "top5_probabilities": probs5,
        "top5_margin": margin,
        "seconds": {},
        "param_count": int(model.count_params()),
        "perturbation": {
            "rng": f"numpy default_rng({SEED}) over the layers in order, nested models recursed",
            "BatchNormalization": "gamma U(0.5,1.5), beta N(0,0.2); moving_mean = mean_c + N(0,0.2) * std_c, "
            f"moving_variance = var_c * U{bn_variance}, mean_c and var_c measured on {CALIBRATION_IMAGE} (calibrate_bn)",
            "LayerNormalization/GroupNormalization": "gamma U(0.5,1.5), beta N(0,0.2)",
            "LayerScale": "gamma U(0.1,1)",
            "PReLU": "alpha U(0.05,0.3)",
            "bias": "N(0,0.1)",
            "Normalization": "left as Keras makes it" if model_id != "layers_zoo" else "adapted on seeded data",
            "residual_branches": f"{len(damped)} layers at the end of a residual branch scaled by U{RESIDUAL_DAMP} "
            "(gamma and beta, or kernel and bias; damp_residual_branches)"
            if model_id not in BUILT
            else "not damped",
            "damped_layers": damped,
        },
        "conditioning": cond,
        "keras_f32_vs_f64_worst": max(f64.values()) if f64 else None,
        "reload": reload,
        "layers_saved": n_saved + (0 in stats),
        "image": os.path.basename(image_path),
        "image_sha256": file_hash(image_path),
        "calibration_image": CALIBRATION_IMAGE,
        "notes": notes,
    }
    if model_id == "layers_zoo":
        manifest["activations"] = {
            "present": present,
            "missing_in_keras": missing,
            "not_expressible": ZOO_NOT_EXPRESSIBLE,
        }
    T["total"] = time.time() - t_all
    manifest["seconds"] = {k: round(v, 2) for k, v in T.items()}
    with open(os.path.join(work, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    manifest["bytes"] = folder_bytes(work)
    with open(os.path.join(work, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    shutil.rmtree(target, ignore_errors=True)
    os.rename(work, target)
    log(
        f"{model_id}: {len(model.layers)} layers ({n_saved} + input saved), {manifest['param_count']:,} params, "
        f"{manifest['bytes'] / 1e6:.0f} MB; last map {cond and cond['last_map_layer']} max|x| "
        f"{cond and cond['max_abs']:.3g} zeros {cond and cond['zero_fraction']:.2f} image sensitivity "
        f"{cond and cond['image_sensitivity']}; f32 vs f64 worst {manifest['keras_f32_vs_f64_worst']}; "
        f"reload {reload}; top-5 margin {margin}; seconds {manifest['seconds']}"
    )
    del model
    keras.backend.clear_session()
    gc.collect()


def reindex(root):
    models = {}
    if os.path.isdir(root):
        for d in sorted(os.listdir(root)):
            p = os.path.join(root, d, "manifest.json")
            if os.path.isfile(p):
                with open(p) as f:
                    m = json.load(f)
                models[d] = {"label": m.get("label"), "version": m.get("version"), "bytes": m.get("bytes")}
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, f".index.{os.getpid()}.json")
    with open(tmp, "w") as f:
        json.dump({"generator": GENERATOR, "version": VERSION, "ids": sorted(models), "models": models}, f, indent=1)
    os.replace(tmp, os.path.join(root, "index.json"))


def main(argv):
    if argv[:1] == ["--version"]:
        print(VERSION)
        return
    if argv[:1] == ["--list"] and len(argv) == 2:
        print("\n".join(sets(argv[1])))
        return
    if argv[:1] == ["--reindex"] and len(argv) == 2:
        reindex(os.path.join(os.path.abspath(argv[1]), "keras-apps"))
        return
    flags = {a for a in argv if a.startswith("--")}
    args = [a for a in argv if not a.startswith("--")]
    unknown = flags - {"--f64", "--verify"}
    if unknown or len(args) < 3:
        raise SystemExit(
            __doc__.split("\n\n")[1] + ("\nunknown option: " + " ".join(sorted(unknown)) if unknown else "")
        )
    outdir = os.path.join(os.path.abspath(args[0]), "keras-apps")
    image = os.path.abspath(args[1])
    ids = args[2:]
    bad = [i for i in ids if i not in LABELS]
    if bad:
        regnet = " (Keras 3.15's keras.applications has no RegNet)" if any(b.startswith("regnet") for b in bad) else ""
        raise SystemExit(f"unknown model ID(s): {' '.join(bad)}{regnet} (see --list all)")
    if not os.path.isfile(image):
        raise SystemExit(f"no such image: {image}")
    init_tf()
    os.makedirs(outdir, exist_ok=True)
    for model_id in ids:
        make(model_id, outdir, image, "--f64" in flags, "--verify" in flags)
        reindex(outdir)


def init_tf():
    global np, keras
    import keras as k
    import numpy
    import tensorflow as tf
    from absl import logging as absl_logging

    np, keras = numpy, k
    tf.get_logger().setLevel("ERROR")
    absl_logging.set_verbosity(absl_logging.ERROR)
    threads = int(os.environ.get("ORACLE_THREADS", "2"))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


T0 = time.time()
np = keras = None

if __name__ == "__main__":
    main(sys.argv[1:])

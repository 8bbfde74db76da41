#!/usr/bin/env python3
"""The seed's Keras recipe as a user runs it, one whole process: VGG16 without top on the given
weights file, one sub-model per layer (block1_conv1, block2_conv1, block3_conv1), `predict`, and
each layer's first 9 channels drawn as a 3x3 grid written to a PNG (with Pillow: the recipe's
matplotlib figure, without matplotlib's own start-up). Run by test/bench/run.mjs, timed from
spawn to exit, beside our CLI drawing the same three layers from the same file.

Usage: python seed_process.py IMAGE WEIGHTS OUT_DIR
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from keras import models  # noqa: E402
from keras.applications.vgg16 import VGG16, preprocess_input  # noqa: E402
from keras.utils import img_to_array, load_img  # noqa: E402

image_path, weights, out_dir = sys.argv[1:4]
model = VGG16(weights=weights, include_top=False)
x = preprocess_input(np.expand_dims(img_to_array(load_img(image_path, target_size=(224, 224))), 0))
for name in ("block1_conv1", "block2_conv1", "block3_conv1"):
    maps = models.Model(inputs=model.inputs, outputs=model.get_layer(name).output).predict(x, verbose=0)[0]
    tiles = []
    for c in range(9):
        m = maps[:, :, c]
        span = float(m.max() - m.min()) or 1.0
        tiles.append(((m - m.min()) / span * 255).astype(np.uint8))
    rows = [np.concatenate(tiles[r * 3 : r * 3 + 3], axis=1) for r in range(3)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(os.path.join(out_dir, f"seed.{name}.png"))

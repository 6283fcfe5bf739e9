"""Classify images with an exported SSL Studio model using only ONNX Runtime, NumPy and Pillow.

    pip install onnxruntime numpy pillow
    python predict_onnx.py model.onnx photo1.jpg photo2.png ...
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def load_square(path, size):
    """The app's preprocessing: RGB, EXIF applied, shorter side to `size`, centre crop."""
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = im.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    im = im.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
    return np.asarray(im, dtype=np.float32) / 255.0          # size×size×3 in [0, 1]


session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
card = json.loads(session.get_modelmeta().custom_metadata_map["sslstudio"])  # the model card
size, classes = card["image_size"], card["classes"]
input_name = session.get_inputs()[0].name

paths = sys.argv[2:]
batch = np.stack([load_square(p, size) for p in paths]).transpose(0, 3, 1, 2)  # N×3×S×S
probabilities = session.run(None, {input_name: batch})[0]                     # N×classes
for path, p in zip(paths, probabilities):
    best = int(p.argmax())
    print(f"{path}: {classes[best]} ({p[best]:.1%})")

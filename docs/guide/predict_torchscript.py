"""Classify images with an exported SSL Studio TorchScript model (needs only torch and Pillow).

    python predict_torchscript.py model.pt photo1.jpg photo2.png ...
"""

import json
import sys

import numpy as np
import torch
from PIL import Image, ImageOps


def load_square(path, size):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = im.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    im = im.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)


extra = {"sslstudio.json": ""}                 # the model card travels inside the file
model = torch.jit.load(sys.argv[1], map_location="cpu", _extra_files=extra).eval()
card = json.loads(extra["sslstudio.json"])
size, classes = card["image_size"], card["classes"]

paths = sys.argv[2:]
with torch.no_grad():
    probabilities = model(torch.stack([load_square(p, size) for p in paths]))
for path, p in zip(paths, probabilities):
    best = int(p.argmax())
    print(f"{path}: {classes[best]} ({p[best]:.1%})")

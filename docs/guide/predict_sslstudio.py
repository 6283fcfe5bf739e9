"""Classify a folder with SSL Studio's own loader (any exported format or a model folder).

    python predict_sslstudio.py model.onnx IMAGE_FOLDER
"""

import sys

from sslstudio.export.predict import load_predictor, predict_folder

predictor = load_predictor(sys.argv[1])          # .onnx, .pt, .safetensors or a model folder
print("classes:", predictor.classes, "input size:", predictor.image_size)
result = predict_folder(sys.argv[1], sys.argv[2], predictor=predictor)
for relpath, label, confidence, _probabilities in result.rows[:5]:
    print(f"{relpath}: {label} ({confidence:.1%})")
for relpath, reason in result.bad:
    print(f"skipped {relpath}: {reason}")

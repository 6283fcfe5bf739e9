"""Export formats (TorchScript, ONNX, safetensors + JSON) and stand-alone prediction."""

from sslstudio.export.model_dir import (ModelFileError, load_model_dir, save_model_dir,
                                        save_result)

__all__ = ["ModelFileError", "load_model_dir", "save_model_dir", "save_result"]

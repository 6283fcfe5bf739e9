"""Backbones and their files (no tasks, no Qt)."""
from sslstudio.models.backbones import BACKBONES, Backbone, WeightsError, create_backbone

__all__ = ["BACKBONES", "Backbone", "WeightsError", "create_backbone"]

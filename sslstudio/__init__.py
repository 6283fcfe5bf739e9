"""SSL Studio: image classifiers from very few labels, via self-supervised pretraining."""

__version__ = "0.1.0"

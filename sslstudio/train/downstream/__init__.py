"""The classifier stage: from a pretrained backbone and a few labels to a validated classifier."""

from sslstudio.train.downstream.fit import (METHODS, ClassifierOptions, ClassifierResult,
                                            Prediction, fit_classifier, load_pretrained)
from sslstudio.train.downstream.label_efficiency import label_efficiency
from sslstudio.train.downstream.model import ClassifierModel, KNNHead
from sslstudio.train.downstream.recommend import METHOD_GUIDE, recommend_method

__all__ = ["METHODS", "METHOD_GUIDE", "ClassifierModel", "ClassifierOptions",
           "ClassifierResult", "KNNHead", "Prediction", "fit_classifier", "label_efficiency",
           "load_pretrained", "recommend_method"]

"""Downstream fitting (linear / partial / finetune / scratch / knn); see train/downstream/."""

from sslstudio.train.downstream import (METHOD_GUIDE, METHODS, ClassifierModel, ClassifierOptions,
                                        ClassifierResult, Prediction, fit_classifier,
                                        label_efficiency, load_pretrained, recommend_method)

__all__ = ["METHOD_GUIDE", "METHODS", "ClassifierModel", "ClassifierOptions", "ClassifierResult",
           "Prediction", "fit_classifier", "label_efficiency", "load_pretrained",
           "recommend_method"]

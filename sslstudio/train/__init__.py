"""Training loops without Qt: pretraining (pretrain.py) and downstream fitting (classifier.py).

Import the submodules directly (``from sslstudio.train.pretrain import run_pretraining``);
this package imports nothing so that ``import sslstudio.train.events`` stays light.
"""

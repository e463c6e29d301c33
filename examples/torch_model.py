"""Example model.py for PyTorch: an MLP for binary classification (signal = 1, background = 0).

mlaas4hep calls ``model(idim)`` with the number of input features and trains what it returns.
The last layer has one unit and no activation: it gives logits, the loss below applies the
sigmoid itself (numerically safer than nn.Sigmoid + nn.BCELoss), and predictions are turned
into probabilities of class 1 for you. For k classes, end in nn.Linear(..., k) and use
nn.CrossEntropyLoss() (or leave ``loss`` out: that is the default).

``loss`` and ``optimizer`` are optional; without them mlaas4hep uses BCEWithLogitsLoss (for
this one-unit output) and Adam(lr=1e-3).
"""

import torch
from torch import nn


def model(idim):
    return nn.Sequential(
        nn.Linear(idim, 128),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(64, 1),  # one logit: the score of class 1
    )


# a loss module instance; pos_weight=torch.tensor([w]) would weight the signal class
loss = nn.BCEWithLogitsLoss()


def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=1e-3, weight_decay=1e-5)

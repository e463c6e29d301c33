"""An example model.py (Keras 3): the MLaaS4HEP contract is ``def model(idim)`` returning a
compiled model that takes ``idim`` input features."""

import keras


def model(idim):
    """A small fully connected binary classifier."""
    inputs = keras.Input(shape=(idim,))
    x = keras.layers.Dense(128, activation="relu")(inputs)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    net = keras.Model(inputs, outputs)
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                metrics=["accuracy", keras.metrics.AUC(name="auc")])
    return net

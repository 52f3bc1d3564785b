"""Keras 3: ``Sequential`` + ``compile`` + ``fit``, as the source notes' Keras example.

The backend is whatever ``KERAS_BACKEND`` names (tensorflow, torch or jax), set by the
parent before this process starts. Fixes to the notes: ``tf.dewaxis`` (a typo for
``tf.newaxis``; objrec's arrays already carry the channel axis), ``optimizer='sgd'`` and the
bare ``accuracy`` name (the recipe is Adam 1e-3 and the metric the string ``"accuracy"``).
Weights use Keras' defaults (Glorot uniform, zero biases), the scheme every file uses.
"""

import keras
from keras import layers

from objrec.frameworks._common import EpochClock


def train(data: dict, epochs: int, batch_size: int, seed: int) -> dict:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=data["x_train"].shape[1:]),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(data["n_classes"], activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    clock = EpochClock()
    on_epoch = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: clock.epoch_end(logs["val_accuracy"])
    )
    clock.start()
    model.fit(
        data["x_train"],
        data["y_train"],
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(data["x_val"], data["y_val"]),
        callbacks=[on_epoch],
        verbose=0,
    )
    _, test_acc = model.evaluate(data["x_test"], data["y_test"], verbose=0)
    return {**clock.result(test_acc, model.count_params()), "model": model}

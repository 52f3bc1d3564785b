"""The source notes' four frameworks, one small file each, training the same ``simple_cnn``.

:mod:`objrec.frameworks.bench` runs each file in its own process (``python -m
objrec.frameworks.worker``) on objrec's split and collects what it measures; the command
is ``objrec frameworks DATASET``. No framework is imported here.

Every file starts from the same initialisation scheme, :data:`INIT_SCHEME`: Glorot-uniform
weights (``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``, fans of a 3x3 convolution
counted over its 9 taps) and zero biases. It is Keras' default (the Keras file keeps it),
written out in raw TensorFlow, and set explicitly in the PyTorch and Lightning modules
(``nn.init.xavier_uniform_`` / ``zeros_``) and in objrec's loop (a callback before the
first step), replacing PyTorch's Kaiming-uniform default. The draws differ (each framework
has its own random generator); the distribution is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INSTALL_HINT = "pip install 'objrec[frameworks]'"

#: The initialisation every framework file uses (see the module docstring).
INIT_SCHEME = (
    "Glorot-uniform weights, zero biases (Keras' default, set explicitly in the torch files)"
)


#: Image sides (pixels) at which objrec's ``simple_cnn`` is the notes' network layer for layer,
#: as every framework file builds it: unpadded convolutions need at least 10 pixels, and above
#: 29 the last map is larger than 5x5, which ``simple_cnn`` average-pools (``GridPool``) while
#: the notes' network flattens it as it is.
REFERENCE_SIDES = range(10, 30)


@dataclass(frozen=True)
class Framework:
    """One row of the comparison: the file (module under ``objrec.frameworks``) that trains
    the network, the environment it runs under, the modules it needs and the column of the
    source notes' opinion table it is measured against."""

    name: str
    module: str
    label: str
    needs: tuple[str, ...]
    notes_column: str
    env: dict[str, str] = field(default_factory=dict)


FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework(
            "keras",
            "keras_sequential",
            "Keras 3 (TensorFlow backend)",
            ("keras", "tensorflow"),
            "TensorFlow/Keras",
            {"KERAS_BACKEND": "tensorflow"},
        ),
        Framework(
            "keras-torch",
            "keras_sequential",
            "Keras 3 (torch backend)",
            ("keras", "torch"),
            "TensorFlow/Keras",
            {"KERAS_BACKEND": "torch"},
        ),
        Framework(
            "keras-jax",
            "keras_sequential",
            "Keras 3 (jax backend)",
            ("keras", "jax"),
            "TensorFlow/Keras",
            {"KERAS_BACKEND": "jax"},
        ),
        Framework(
            "tensorflow",
            "tensorflow_raw",
            "TensorFlow (tf.Module, GradientTape)",
            ("tensorflow",),
            "TensorFlow (without Keras)",
        ),
        Framework("pytorch", "pytorch_loop", "PyTorch (hand loop)", ("torch",), "PyTorch"),
        Framework("objrec", "objrec_loop", "PyTorch (objrec's loop)", ("torch",), "PyTorch"),
        Framework(
            "lightning",
            "lightning_module",
            "PyTorch Lightning 2.x",
            ("lightning", "torch"),
            "PyTorch Lightning",
        ),
    )
}

#: The source notes' comparison table, verbatim: feature -> value per notes column.
NOTES_COLUMNS = ("TensorFlow/Keras", "TensorFlow (without Keras)", "PyTorch", "PyTorch Lightning")
NOTES_TABLE = {
    "API Level": ("High-level", "Low-level", "Mid-level", "High-level"),
    "Ease of Use": ("Easy", "Moderate", "Moderate", "Easy"),
    "Flexibility": ("Moderate", "High", "High", "Moderate"),
    "Dynamic Computation Graph": ("No", "Yes", "Yes", "Yes"),
    "Popularity in Research": ("Moderate", "Moderate", "High", "High"),
    "Suitable for Beginners": ("Yes", "No", "Yes", "Yes"),
    "Suitable for Production": ("Yes", "Yes", "Yes", "Yes"),
}

"""Training networks: an in-memory uint8 batch loader, batch augmentation, schedules,
a small Keras-style loop (``fit`` = ``train_step`` + ``evaluate`` + callbacks),
atomic checkpoints with resume, and data-parallel training under ``torchrun``.

Everything here but ``distributed.DistInfo`` (torchrun's environment) imports PyTorch;
import it only when a network is trained.
"""

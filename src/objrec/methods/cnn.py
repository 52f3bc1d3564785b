"""The fourth approach: convolutional networks trained end to end, as a scikit-learn estimator.

    >>> clf = objrec.make_method("simple_cnn", epochs=5).fit(X_train, y_train)  # uint8 (N, H, W[, C])
    >>> clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)

Every network of :mod:`objrec.nets` is a method of the same name (``simple_cnn``,
``lenet5``, ``resnet_small``, ``mlp``). PyTorch is imported only when a network is fitted,
used or loaded.

Validation: ``fit(X, y, X_val, y_val)`` validates on the given split; without one it holds
out a stratified ``val_fraction`` (default 10%, seeded) of the training images, which are
then not trained on. Validation drives early stopping and the best checkpoint; a test
split is never seen by ``fit``.

Streaming: ``X`` (and ``X_val``, and the input of ``predict*``) may be an
:class:`objrec.data.lazy.ImageFiles` (``load_dataset(folder, stream=True)``): the images
stay on disk and ``num_workers`` DataLoader processes decode each batch, which then goes
through the same batch normalisation and augmentation; channel statistics are computed
from the stream in chunks. Same seed, same batches, same weights as in memory.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time

import numpy as np

from objrec.errors import InputError, ModelFileError, ObjrecError
from objrec.methods import register_method
from objrec.methods.base import ImageClassifier
from objrec.nets.registry import list_models, model_info, pretrained_input_side
from objrec.training.recipes import AUTO_AUGMENT, GLOBAL_DEFAULTS, resolve_recipe

__all__ = ["GLOBAL_DEFAULTS", "CNNClassifier"]

WEIGHTS_NAME = "weights.safetensors"
# Input pixels per forward pass without autograd (validation, predict): those of 1,024
# images of 28x28, i.e. 196 at 64x64, 31 at 160x160. A pass's activations grow with the
# pixels the network computes on, so a fixed image count that suits digits holds
# gigabytes at 160 px: EfficientNet-Lite0 at 160, 2 threads, peaks 75 MB above its
# fine-tuning step (batch 16) with 32 images per pass, 390 MB with 81 and 920 MB with 150.
FORWARD_CAP = 1024  # images per forward pass at most
FORWARD_PIXELS = FORWARD_CAP * 28 * 28


def forward_batch(net, input_hw) -> int:
    """Images per forward pass without autograd: at most :data:`FORWARD_CAP`, and at most
    :data:`FORWARD_PIXELS` pixels per pass at the side the network computes on: its
    ``image_size`` (H, W) where it resizes its input inside (the pretrained backbones),
    else ``input_hw``, the (H, W) of the images given to it (also when ``net`` is None)."""
    h, w = getattr(net, "image_size", None) or input_hw
    return max(1, min(FORWARD_CAP, FORWARD_PIXELS // max(1, int(h) * int(w))))


class CNNClassifier(ImageClassifier):
    """A network from :mod:`objrec.nets` trained on uint8 images ``(N, H, W[, C])``.

    Parameters left as ``None`` take the value of ``recipe``: by default the network's
    measured best (``objrec.nets.model_info(name).defaults``), then
    :data:`GLOBAL_DEFAULTS`. Training counts optimiser steps (``min_steps`` at least, the
    batch clipped to the data, see :mod:`objrec.training.recipes`); the resolved plan is
    ``recipe_`` after fitting and is saved with the model.

    Parameters
    ----------
    model : network name (``objrec.nets.list_models()``)
    recipe : "default" (None; the network's best measured recipe) or "seed" (the source
        notes' recipe exactly: Adam 1e-3, batch 32, 5 epochs, constant rate, no step floor)
    epochs, batch_size, lr, optimizer, schedule, warmup, weight_decay, label_smoothing, augment,
    min_steps
        training recipe (units in :data:`GLOBAL_DEFAULTS`); set ones override ``recipe``.
        ``augment="auto"`` (pretrained networks' default): colour images train with
        random horizontal flips and shifts (``training.recipes.photo_recipe``), grey ones
        as without augmentation. On small data a recipe without augmentation trains with
        small random shifts (``augment="none"`` switches all of them off)
    class_weight : None or "balanced" (loss weights inversely proportional to class counts)
    early_stopping : patience in (logged) epochs on ``monitor``, restoring the best weights;
        None: on when the data is small (the step floor applies), 0: off
    max_time : None or a training time budget in seconds: the schedule advances with the time
        spent (see ``training.schedules``) and training stops when it is used up, even within
        an epoch; ``epochs`` is then an upper bound. Not reproducible bit for bit; single process only
    monitor : "val_accuracy" or "val_loss", for early stopping and the best checkpoint
    val_fraction : share of the training images held out when no validation split is given
    model_args : extra constructor arguments of the network (e.g. ``{"widths": [16, 32, 64]}``)
    init_from : a trained objrec model (run or model folder) to fine-tune: its weights are
        loaded, the last layer replaced when the class count differs (then fine-tuned in two
        phases as a pretrained network is)
    weights : initial weights for the network: a local ``.safetensors``/``.pt`` file or a
        ``URL#sha256=<hex>`` (downloaded once, checked, cached; see :mod:`objrec.nets.weights`);
        a head of another shape stays new. None: the network's own start (ImageNet for
        pretrained networks, random otherwise)
    freeze_backbone : with ``init_from`` or a pretrained network, train only the head (the
        backbone frozen, its BatchNorm in eval mode). Pretrained networks (``ModelInfo.
        pretrained``) otherwise fine-tune as fastai's ``fine_tune``: the head with the backbone
        frozen, then everything at discriminative rates (``training.recipes``); their input
        is normalised with the weights' mean and std, not the data's
    checkpoint_dir : write ``last.pt`` / ``best.pt`` there every epoch (and history files)
    resume : checkpoint (file or run folder) to continue from; ``epochs`` may be raised
    tensorboard : folder for TensorBoard logs, or None
    device : "auto" (CUDA when available), "cpu", "cuda"
    precision : "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" (also on CPU: 1.5-2.3x
        faster training steps on CPUs with AMX, see ``training.runtime.native_bf16``), "fp32".
        Prediction and export always run in fp32
    num_workers : decoding processes for image files (``ImageFiles`` input); None: the
        usable cores, at most 4; 0: decode in the training process
    threads : CPU threads (None: free cores, see ``objrec.training.runtime``)
    seed : seeds initialisation, validation split, batch order and augmentation
    verbose : True or 2: a progress bar per epoch and one summary line per epoch; 1: the
        summary lines only (for logs); 0 or False: silent
    """

    def __init__(
        self,
        model: str = "simple_cnn",
        *,
        recipe: str | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        optimizer: str | None = None,
        schedule: str | None = None,
        warmup: float | None = None,
        weight_decay: float | None = None,
        label_smoothing: float | None = None,
        augment=None,
        min_steps: int | None = None,
        class_weight: str | None = None,
        early_stopping: int | None = None,
        max_time: float | None = None,
        monitor: str = "val_accuracy",
        val_fraction: float = 0.1,
        model_args: dict | None = None,
        init_from: str | None = None,
        weights: str | None = None,
        freeze_backbone: bool = False,
        checkpoint_dir: str | None = None,
        resume: str | None = None,
        tensorboard: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        num_workers: int | None = None,
        threads: int | None = None,
        seed: int = 0,
        verbose: bool | int = True,
    ):
        self.model = model
        self.recipe = recipe
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.schedule = schedule
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.min_steps = min_steps
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.max_time = max_time
        self.monitor = monitor
        self.val_fraction = val_fraction
        self.model_args = model_args
        self.init_from = init_from
        self.weights = weights
        self.freeze_backbone = freeze_backbone
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.tensorboard = tensorboard
        self.device = device
        self.precision = precision
        self.num_workers = num_workers
        self.threads = threads
        self.seed = seed
        self.verbose = verbose

    @property
    def method_name(self) -> str:
        return self.model

    def resolved_recipe(self) -> dict:
        """The training recipe: explicit parameters, else ``recipe``'s, else global defaults
        (keys of :data:`GLOBAL_DEFAULTS`, plus ``recipe``, the recipe's name)."""
        info = model_info(self.model)
        explicit = {k: getattr(self, k) for k in GLOBAL_DEFAULTS}
        try:
            return resolve_recipe(
                self.recipe or info.recipe,
                explicit,
                info.defaults,
                pretrained=self._fine_tunes_pretrained(),
            )
        except ValueError as e:
            raise InputError(f"recipe: {e}") from e

    def _fine_tunes_pretrained(self) -> bool:
        """A pretrained network built with its weights (not ``model_args`` pretrained=False)."""
        info = model_info(self.model)
        return bool(info.pretrained and (self.model_args or {}).get("pretrained", True))

    # ----------------------------------------------------------------- data
    def _check_input(self, X):
        """``_check_predict`` for arrays; a shape check (nothing decoded) for image files."""
        if not is_lazy(X):
            return self._check_predict(X)
        if tuple(X.shape[1:]) != self.input_shape_:
            raise InputError(
                f"X: images are {tuple(X.shape[1:])}, the model was trained on {self.input_shape_}; "
                "load the folder with the model's size and colour (--size, --color)"
            )
        if len(X) == 0:
            raise InputError("X: got 0 images")
        return X

    def _check_fit_any(self, X, y, min_size):
        if not is_lazy(X):
            return self._check_fit(X, y, min_size=min_size)
        from objrec.validation import check_labels

        y = check_labels(y, len(X))
        h, w = X.shape[1:3]
        mh, mw = (min_size, min_size) if isinstance(min_size, int) else (min_size or (1, 1))
        if h < mh or w < mw:
            raise InputError(
                f"X: images are {h}x{w} pixels, this network needs at least {mh}x{mw}; "
                "load them with a larger --size"
            )
        self.classes_ = np.unique(y)
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        return X, y

    def _split_validation(self, X, y, X_val, y_val):
        if X_val is not None:
            X_val = self._check_input(X_val)
            y_val = np.asarray(y_val)
            if len(y_val) != len(X_val):
                raise InputError(f"y_val: {len(y_val)} labels for {len(X_val)} validation images")
            unknown = np.setdiff1d(np.unique(y_val), self.classes_)
            if len(unknown):
                raise InputError(
                    f"y_val: classes {unknown[:5].tolist()} do not occur in the training labels"
                )
            return X, y, X_val, y_val
        if not self.val_fraction:
            return X, y, None, None
        tr, va = stratified_holdout(y, self.val_fraction, self.seed)
        if is_lazy(X):
            return X.subset(tr), y[tr], X.subset(va), y[va]
        return X[tr], y[tr], X[va], y[va]

    def _encode(self, y) -> np.ndarray:
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def to_tensor(self, X):
        """uint8 images (N, H, W[, C]) -> float32 tensor (N, C, H, W) = (X/255 - mean) / std."""
        import torch

        from objrec.training.loader import to_nchw

        return self._normalise(torch.from_numpy(to_nchw(check_shape(self, X))))

    def _normalise(self, x):
        """uint8 tensor (N, C, H, W) -> float32 (x/255 - mean) / std, the network's input."""
        import torch

        mean = torch.tensor(self.preprocessing_["mean"], dtype=torch.float32)[None, :, None, None]
        std = torch.tensor(self.preprocessing_["std"], dtype=torch.float32)[None, :, None, None]
        return (x.float() / 255 - mean) / std

    # ----------------------------------------------------------------- fit
    def fit(self, X, y, X_val=None, y_val=None, *, callbacks=()):
        """Train on uint8 images ``X`` (N, H, W[, C]) with labels ``y`` (N,); returns ``self``.

        ``X_val, y_val``: the validation split (else a stratified ``val_fraction`` of ``X``).
        ``callbacks``: extra :mod:`objrec.training.callbacks` objects, run after the built-in ones.
        """
        import torch

        from objrec.nets import create_model
        from objrec.training import callbacks as cb
        from objrec.training import distributed as ddp
        from objrec.training.augment import resolve_recipe as resolve_augment
        from objrec.training.checkpoint import load_checkpoint, set_rng_state
        from objrec.training.loader import BatchLoader, to_nchw
        from objrec.training.loop import Batches, TrainState, fit
        from objrec.training.recipes import plan_training
        from objrec.training.runtime import configure_threads, pick_device, use_bf16
        from objrec.training.streaming import StreamingLoader

        info = model_info(self.model)
        X, y = self._check_fit_any(X, y, info.min_size)
        X, y, X_val, y_val = self._split_validation(X, y, X_val, y_val)
        rec = self.resolved_recipe()
        try:  # a bad name fails before any work ("auto" waits for the images' channels)
            if rec["augment"] != AUTO_AUGMENT or rec["recipe"] == "airbench":
                resolve_augment(rec["augment"])
        except ValueError as e:
            raise InputError(f"augment: {e}") from e
        if rec["recipe"] == "airbench":
            return self._fit_airbench(X, y, X_val, y_val, rec)
        device = pick_device(self.device)
        try:
            amp = use_bf16(self.precision, device)
        except ValueError as e:
            raise InputError(str(e)) from e
        dist = ddp.setup(device)
        configure_threads(self.threads, world_size=dist.local_world_size)
        torch.manual_seed(self.seed)

        lazy = is_lazy(X)
        workers = self._workers()
        Xt = X if lazy else torch.from_numpy(to_nchw(X))  # (N, C, H, W) uint8 in memory
        channels = (3 if len(X.shape) == 4 else 1) if lazy else int(Xt.shape[1])
        size = [int(X.shape[1]), int(X.shape[2])]
        state_ckpt = load_checkpoint(self.resume) if self.resume else None
        if state_ckpt is not None:
            m = state_ckpt["meta"]
            if m["classes"] != self.classes_.tolist() or m["preprocessing"]["input_size"] != size:
                raise InputError(
                    f"{self.resume}: the checkpoint was trained on classes {m['classes'][:10]} and "
                    f"{m['preprocessing']['input_size']} images; resume needs the same data"
                )
            mean, std = m["preprocessing"]["mean"], m["preprocessing"]["std"]
        elif self._fine_tunes_pretrained() and info.mean is not None:
            mean, std = _pretrained_stats(info, channels)
        else:
            mean, std = _channel_stats(self._stream(X) if lazy else Xt)
        self.preprocessing_ = {"mean": mean, "std": std, "channels": channels, "input_size": size}

        net, fine_tune = self._build_network(create_model, channels, size)
        try:
            plan = plan_training(
                rec,
                len(y),
                explicit={k for k in GLOBAL_DEFAULTS if getattr(self, k) is not None},
                early_stopping=self.early_stopping,
                fine_tune=fine_tune == "phases",
                world_size=dist.world_size,
                image_size=tuple(size),
                channels=channels,
            )
        except ValueError as e:
            raise InputError(str(e)) from e
        aug = resolve_augment(plan.recipe["augment"])
        if fine_tune == "head":  # head only, throughout
            plan.phases[0].name = "frozen"
        self.recipe_ = plan.summary()
        net.to(device)
        # NHWC weights and batches: oneDNN's and cuDNN's fast convolution layout (on 2 CPU
        # cores a training step is 1.1-1.5x faster than NCHW: benchmarks/train_step.py).
        net = net.to(memory_format=torch.channels_last)
        weight = None
        if self.class_weight == "balanced":
            counts = np.bincount(self._encode(y), minlength=len(self.classes_))
            weight = torch.tensor(
                len(y) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32
            )
        elif self.class_weight is not None:
            raise InputError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=rec["label_smoothing"])
        loss_fn.to(device)

        mean_t, std_t = self.preprocessing_["mean"], self.preprocessing_["std"]
        pin = device.type == "cuda"

        def loader(Xs, ys, batch_size: int, shuffle: bool):
            """In-memory batches for arrays, worker-decoded batches for image files."""
            kw = {"shuffle": shuffle, "seed": self.seed, "rank": dist.rank}
            kw.update(world_size=dist.world_size, drop_last=shuffle and plan.drop_last)
            labels = torch.from_numpy(self._encode(ys))
            if is_lazy(Xs):
                return StreamingLoader(
                    Xs, labels, batch_size, num_workers=workers, pin_memory=pin, **kw
                )
            data = Xt if Xs is X else torch.from_numpy(to_nchw(Xs))
            return BatchLoader(data, labels, batch_size, **kw)

        train = Batches(
            loader(X, y, plan.batch_size, True),
            mean_t, std_t, device, augment=aug, seed=self.seed,
        )  # fmt: skip
        phases = _Phases(self, net, plan, train, rec, dist, device)
        state = TrainState(net, None, None, loss_fn, amp=amp)
        start_epoch = int(state_ckpt["epoch"]) if state_ckpt is not None else 0
        phases.enter(state, phases.index_at(start_epoch))
        if self.max_time:
            if dist.enabled:
                raise InputError("max_time is not supported in data-parallel training; use epochs")
            state.deadline = time.perf_counter() + float(self.max_time)
        if state_ckpt is not None:
            net.load_state_dict(state_ckpt["model"])
            if not (start_epoch > 0 and start_epoch in phases.starts):  # else a new phase
                state.optimizer.load_state_dict(state_ckpt["optimizer"])
                state.scheduler.load_state_dict(state_ckpt["scheduler"])
            state.epoch = start_epoch
            state.history = list(state_ckpt["meta"].get("history", []))
            set_rng_state(state_ckpt["rng"])

        val = None
        if X_val is not None:
            bs = min(512, forward_batch(net, self.input_shape_[:2]))
            val = Batches(loader(X_val, y_val, bs, False), mean_t, std_t, device)
        cbs = [cb.EpochPrinter()] if self.verbose else []
        cbs.append(phases)
        if plan.early_stopping:
            if val is None:
                if self.early_stopping:
                    raise InputError("early_stopping needs a validation split (val_fraction > 0)")
                plan.early_stopping = self.recipe_["early_stopping"] = None
            else:
                best = os.path.join(self.checkpoint_dir, "best.pt") if self.checkpoint_dir else None
                cbs.append(
                    cb.EarlyStopping(self.monitor, int(plan.early_stopping), best_checkpoint=best)
                )
        if self.checkpoint_dir:
            ckpt = cb.Checkpointer(self.checkpoint_dir, self._checkpoint_meta, self.monitor)
            cbs.append(ckpt)
        if self.tensorboard:
            cbs.append(cb.TensorBoardLogger(self.tensorboard))
        cbs += list(callbacks)
        if self.verbose and dist.is_main:
            print(f"{self.model}: {describe_plan(plan)}", file=sys.stderr)
        self._state = state
        try:
            fit(
                state,
                train,
                val,
                plan.epochs,
                cbs,
                progress=self.verbose is True or self.verbose >= 2,
            )
        except KeyboardInterrupt:
            if self.checkpoint_dir and state.epoch == 0:
                ckpt.save(state)  # a resumable starting point even before epoch 1 ends
            raise
        finally:
            self.history_ = list(state.history)
        for p in net.parameters():
            p.requires_grad_(True)
        self.model_ = net.to("cpu").to(memory_format=torch.contiguous_format).eval()
        self._state = None
        self.val_accuracy_ = None
        last = self.history_[-1] if self.history_ else {}
        if X_val is not None and not plan.early_stopping and last.get("val_accuracy") is not None:
            self.val_accuracy_ = float(last["val_accuracy"])  # the final weights' validation
        elif X_val is not None:  # early stopping may have restored an earlier epoch's weights
            pred, kept = self.predict_stream(X_val, skip_errors=True)
            self.val_accuracy_ = float(np.mean(pred == np.asarray(y_val)[kept]))
        return self

    def _fit_airbench(self, X, y, X_val, y_val, rec):
        """``fit`` with the airbench recipe's own loop (:mod:`objrec.training.airbench`):
        in-memory images, one process; no per-epoch checkpoints (``checkpoint_dir`` gets
        none, so no ``resume``); ``max_time`` stops it early."""
        import torch

        from objrec.nets import create_model
        from objrec.training import airbench
        from objrec.training.augment import resolve_recipe as resolve_augment
        from objrec.training.loader import to_nchw
        from objrec.training.runtime import configure_threads, native_bf16, pick_device

        unsupported = {
            "streamed images": is_lazy(X) or is_lazy(X_val),
            "resume": self.resume,
            "init_from": self.init_from,
            "class_weight": self.class_weight,
            "early_stopping": self.early_stopping,
        }
        bad = [k for k, v in unsupported.items() if v]
        if self.optimizer not in (None, "sgd") or self.schedule not in (None, "triangular"):
            bad.append("optimizer/schedule other than its own (Nesterov SGD, triangular)")
        if bad:
            raise InputError(
                f"recipe airbench does not support {', '.join(bad)}; use recipe='default'"
            )
        if pick_device(self.device).type != "cpu":
            raise InputError("recipe airbench trains on the CPU only here; use device='cpu'")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise InputError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        # auto: bf16 where the CPU has it natively (AMX, AVX512-BF16), as the recipe was measured
        amp = self.precision == "bf16" or (self.precision == "auto" and native_bf16())
        configure_threads(self.threads)
        torch.manual_seed(self.seed)
        Xt = torch.from_numpy(to_nchw(X))
        mean, std = _channel_stats(Xt)
        size = [int(X.shape[1]), int(X.shape[2])]
        channels = int(Xt.shape[1])
        self.preprocessing_ = {"mean": mean, "std": std, "channels": channels, "input_size": size}
        net, _ = self._build_network(create_model, channels, size)
        if not hasattr(net, "init_whitening"):
            raise InputError(f"recipe airbench trains the airbench network only, not {self.model}")
        rec = dict(rec, augment=resolve_augment(rec["augment"]))
        self.recipe_ = {
            "recipe": "airbench",
            "settings": {k: v for k, v in rec.items() if k != "recipe"},
            "batch_size": int(rec["batch_size"]),
            "lr": float(rec["lr"]),
            "epochs": int(rec["epochs"]),
            "precision": "bf16" if amp else "fp32",
        }
        val = {}
        if X_val is not None:
            val = {
                "X_val": torch.from_numpy(to_nchw(X_val)),
                "y_val": torch.from_numpy(self._encode(y_val)),
            }
        verbose = bool(self.verbose)
        self.history_ = airbench.train(
            net, Xt, torch.from_numpy(self._encode(y)), mean, std, rec,
            amp=amp, seed=self.seed, max_time=self.max_time,
            log=(lambda line: print(f"{self.model}: {line}", file=sys.stderr)) if verbose else None,
            **val,
        )  # fmt: skip
        self.model_ = net.to(memory_format=torch.contiguous_format).eval()
        last = self.history_[-1] if self.history_ else {}
        self.val_accuracy_ = last.get("val_accuracy")
        return self

    def _workers(self) -> int:
        from objrec.training.streaming import default_num_workers

        if self.num_workers is None:
            return default_num_workers()
        if int(self.num_workers) < 0:
            raise InputError(f"num_workers must be 0 or more, got {self.num_workers}")
        return int(self.num_workers)

    def _stream(self, X, skip_errors: bool = True):
        """Decoded uint8 batches (B, C, H, W) of image files in order, ``(x, positions)``."""
        import torch

        from objrec.data.lazy import chunk_size
        from objrec.training.streaming import StreamingLoader

        net = getattr(self, "model_", None)  # None while fitting: channel statistics
        ld = StreamingLoader(
            X, torch.arange(len(X)),
            chunk_size(X.shape[1:], cap=forward_batch(net, X.shape[1:3])),
            num_workers=self._workers(), skip_errors=skip_errors,
        )  # fmt: skip
        return iter(ld)

    def _build_network(self, create_model, channels, size):
        """The network, and how it is fine-tuned: None (trained whole), ``"head"`` (the
        backbone frozen throughout) or ``"phases"`` (frozen, then unfrozen)."""
        import objrec

        if not self.init_from:
            args = dict(self.model_args or {})
            pretrained = self._fine_tunes_pretrained()
            if pretrained:
                args["pretrained"] = True
                info = model_info(self.model)
                if info.native_input and "image_size" not in args:  # see pretrained_input_side
                    side = pretrained_input_side(size, info.native_input[1])
                    args["image_size"] = (side, side)
            if self.weights:
                args["weights"] = self.weights
            net = create_model(self.model, channels, len(self.classes_), size, **args)
            if not pretrained:
                if self.freeze_backbone:
                    raise InputError(
                        f"freeze_backbone: {self.model} starts from random weights; give "
                        "init_from (a trained model) or use a pretrained network"
                    )
                return net, None
            if net.model_args.get("pretrained"):  # a saved model holds all of its weights:
                net.model_args = {**net.model_args, "pretrained": False}  # rebuilt without these
            return net, "head" if self.freeze_backbone else "phases"
        base = objrec.load(self.init_from)
        if not isinstance(base, CNNClassifier):
            raise ModelFileError(
                f"{self.init_from}: init_from needs a trained network, got {type(base).__name__}"
            )
        if (
            base.preprocessing_["channels"] != channels
            or list(base.preprocessing_["input_size"]) != size
        ):
            raise InputError(
                f"init_from {self.init_from}: the network takes {base.preprocessing_['channels']}x"
                f"{'x'.join(map(str, base.preprocessing_['input_size']))} input, the data is "
                f"{channels}x{'x'.join(map(str, size))}; resize the images (--size) or convert colour (--color)"
            )
        net = base.model_
        new_head = net.model_args["num_classes"] != len(self.classes_) or not np.array_equal(
            base.classes_, self.classes_
        )
        if new_head:
            net.reset_classifier(len(self.classes_))
        if self.freeze_backbone:
            return net, "head"
        return net, "phases" if new_head else None

    def _checkpoint_meta(self, state) -> dict:
        net = getattr(state.model, "module", state.model)
        return {
            "model_args": net.model_args,
            "classes": self.classes_.tolist(),
            "input_shape": list(self.input_shape_),
            "preprocessing": self.preprocessing_,
            "params": {k: v for k, v in self.get_params().items() if _jsonable(v)},
            "history": state.history,
        }

    # ----------------------------------------------------------------- predict
    def predict_stream(self, X, *, skip_errors: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Predicted labels of the images that could be read, and their positions (int64).

        For arrays every image is predicted. For image files (``ImageFiles``) batches are
        decoded by ``num_workers`` processes; with ``skip_errors`` an undecodable file is
        left out (with a warning) instead of raising :class:`~objrec.errors.DatasetError`.
        """
        if not is_lazy(X):
            pred = self.predict(X)
            return pred, np.arange(len(pred))
        proba, kept = self._proba_stream(self._check_input(X), skip_errors)
        return self.classes_[np.argmax(proba, axis=1)], kept

    def _proba_stream(self, X, skip_errors: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch

        out, kept = [], []
        self.model_.eval()
        with torch.no_grad():
            for xb, pos in self._stream(X, skip_errors):
                out.append(torch.softmax(self.model_(self._normalise(xb)), dim=1))
                kept.append(pos)
        n = len(self.classes_)
        if not out:
            return np.empty((0, n), np.float32), np.empty(0, np.int64)
        return torch.cat(out).numpy(), torch.cat(kept).numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in the order of ``classes_``.

        ``X``: uint8 images (N, H, W[, C]) or image files (``ImageFiles``, decoded in
        batches by ``num_workers`` processes; an undecodable file raises ``DatasetError``).
        """
        import torch

        if is_lazy(X):
            return self._proba_stream(self._check_input(X), skip_errors=False)[0]
        x = self.to_tensor(X)
        out = []
        self.model_.eval()
        net, fmt = self.model_, torch.contiguous_format
        if len(x) >= 256:  # an NHWC copy of the network: 1.7x faster on large inputs
            net, fmt = copy.deepcopy(net).to(memory_format=torch.channels_last), torch.channels_last
        step = forward_batch(net, x.shape[-2:])
        with torch.no_grad():
            for i in range(0, len(x), step):
                xb = x[i : i + step].contiguous(memory_format=fmt)
                out.append(torch.softmax(net(xb), dim=1))
        return torch.cat(out).numpy()

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # ----------------------------------------------------------------- artifact
    def _save_artifact(self, folder) -> dict:
        from pathlib import Path

        from safetensors import SafetensorError
        from safetensors.torch import save

        from objrec.io import atomic_write_bytes

        state = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        file = Path(folder) / WEIGHTS_NAME
        try:  # atomic, and with the permissions of every other file objrec writes
            atomic_write_bytes(file, save(state))
        except SafetensorError as e:
            raise ModelFileError(f"{file}: could not write the weights ({e})") from e
        return {
            "weights": WEIGHTS_NAME,
            "model_args": self.model_.model_args,
            "preprocessing": self.preprocessing_,
            "history": getattr(self, "history_", []),
            "recipe": getattr(self, "recipe_", None),
        }

    @classmethod
    def _load_artifact(cls, folder, meta):
        """The network saved in model folder ``folder``; ``meta`` its validated
        :class:`~objrec.metadata.ModelMetadata`. The weights' tensor names and shapes are
        checked against the network ``model_args`` describes (built on PyTorch's meta
        device, so nothing is allocated) before it is built and loaded."""
        from pathlib import Path

        import torch
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        from objrec.artifact import model_file
        from objrec.metadata import META_NAME
        from objrec.nets import create_model

        meta.require("model_args", "preprocessing", why="a network model needs it")
        where = Path(folder) / META_NAME
        file = model_file(folder, meta.weights or WEIGHTS_NAME)
        if not file.is_file():
            raise ModelFileError(f"{file}: missing; the model folder is incomplete")
        pre = meta.preprocessing
        for key in ("mean", "std", "channels"):
            if key not in pre:
                raise ModelFileError(f"{where}: field 'preprocessing.{key}' is missing")
        shape = meta.input_shape
        channels = 1 if len(shape) == 2 else (shape[2] if len(shape) == 3 else None)
        if channels is None or pre["channels"] != channels:
            raise ModelFileError(
                f"{where}: field 'input_shape' {list(shape)} does not fit "
                f"preprocessing.channels {pre['channels']}"
            )
        args = dict(meta.model_args)
        name = args.pop("name")
        if args.get("in_channels", channels) != channels:
            raise ModelFileError(
                f"{where}: field 'model_args.in_channels' {args['in_channels']} does not fit "
                f"input_shape {list(shape)}"
            )
        try:
            with torch.device("meta"):
                probe = create_model(name, **args)
        except (ObjrecError, TypeError, ValueError, RuntimeError) as e:
            raise ModelFileError(
                f"{where}: field 'model_args' does not build a network ({e})"
            ) from e
        try:
            with safe_open(str(file), framework="pt") as f:
                stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFileError(f"{file}: corrupt weights file ({e})") from e
        wanted = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
        if stored != wanted:
            bad = sorted(set(stored) ^ set(wanted)) or [k for k in wanted if stored[k] != wanted[k]]
            raise ModelFileError(
                f"{file}: weights do not fit the network of model_args {meta.model_args} "
                f"(first difference: {bad[0]})"
            )
        outputs = [m.out_features for m in probe.modules() if isinstance(m, torch.nn.Linear)]
        if outputs and outputs[-1] != len(meta.classes):
            raise ModelFileError(
                f"{where}: field 'classes' holds {len(meta.classes)} labels but the network "
                f"has {outputs[-1]} outputs"
            )
        net = create_model(name, **args)
        try:
            net.load_state_dict(load_file(str(file)))
        except (SafetensorError, RuntimeError, OSError, ValueError) as e:
            raise ModelFileError(f"{file}: weights do not fit {meta.model_args} ({e})") from e
        est = cls(**meta.params)
        est.model_ = net.eval()
        est.classes_ = np.asarray(meta.classes)
        est.input_shape_ = tuple(shape)
        est.preprocessing_ = dict(pre)
        est.history_ = list(meta.history)
        est.recipe_ = meta.get("recipe")
        return est


def is_lazy(X) -> bool:
    """True for image files decoded on access (:class:`objrec.data.lazy.ImageFiles`)."""
    lazy = sys.modules.get("objrec.data.lazy")  # not imported: X cannot be one
    return lazy is not None and lazy.is_lazy(X)


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (int64) of the training and validation images of a seeded stratified split.

    The validation split holds ``ceil(fraction * N)`` images and at least one image of
    every class that has two or more (so early stopping sees every class it can); a
    class with a single image stays in training. Without such a class the split is
    ``sklearn.model_selection.train_test_split``'s, as before.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    pos = np.arange(len(y))
    multi = np.isin(y, classes[counts >= 2])
    k = int((counts >= 2).sum())
    n_val = max(k, math.ceil(fraction * len(y)))
    if n_val > int(multi.sum()) - k or k == 0:  # too few to stratify: a plain random split
        if len(y) - n_val < 1:
            raise InputError(f"X: {len(y)} images are too few to hold out a validation split")
        return train_test_split(pos, test_size=n_val, random_state=seed)
    tr, va = train_test_split(pos[multi], test_size=n_val, stratify=y[multi], random_state=seed)
    # stratified rounding can leave a small class out: swap one of its images in for one
    # of the class with the most validation images
    for c in classes[counts >= 2]:
        if (y[va] == c).any():
            continue
        vals, n = np.unique(y[va], return_counts=True)
        out = np.flatnonzero(y[va] == vals[np.argmax(n)])[-1]
        into = np.flatnonzero(y[tr] == c)[0]
        tr[into], va[out] = va[out], tr[into]
    return np.sort(np.concatenate([tr, pos[~multi]])) if (~multi).any() else tr, va


def _channel_stats(Xt) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (ddof 1, at least 1e-3) of uint8 (N, C, H, W) in 0..1 units.

    ``Xt``: a uint8 tensor, or an iterator of ``(uint8 (B, C, H, W), ...)`` batches (a
    stream of image files). Accumulated in float64 over chunks, so no float copy of the
    whole split is made.
    """
    import torch

    if isinstance(Xt, torch.Tensor):
        chunks = (Xt[i : i + 4096] for i in range(0, len(Xt), 4096))
    else:
        chunks = (xb for xb, _ in Xt)
    total = squares = None
    n = 0
    for xb in chunks:
        x = xb.to(torch.float64) / 255
        s, q = x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3))
        total, squares = (s, q) if total is None else (total + s, squares + q)
        n += x.shape[0] * x.shape[2] * x.shape[3]
    if total is None:
        raise InputError("X: no readable images to compute the channel statistics from")
    mean = total / n
    var = (squares - n * mean * mean) / max(n - 1, 1)
    return mean.tolist(), var.clamp_min(0).sqrt().clamp_min(1e-3).tolist()


def check_shape(est, X) -> np.ndarray:
    """``est._check_predict`` (validated uint8 images of the training shape)."""
    return est._check_predict(X)


def _jsonable(v) -> bool:
    import json

    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


def _make_optimizer(
    name: str, groups: list[dict], weight_decay: float, *, fused: bool | None = None
):
    """Optimiser ``name`` over parameter ``groups`` (dicts with ``params`` and ``lr``).

    ``fused`` None (the default): the update runs as PyTorch's fused kernel (one pass over
    every parameter tensor) where the parameters are float tensors on the CPU or a CUDA
    device; False: PyTorch's CPU default, a Python loop over the tensors. Whole training steps on 2
    threads (``benchmarks/optimizer_step.py``, BENCHMARKS.md "CNN training"):
    EfficientNet-Lite0 (AdamW, 149 tensors, batch 16 at 160 px) 435 -> 411 ms, simple_cnn
    (Adam, batch 64 at 64x64) 117 -> 113 ms, resnet_small (Nesterov SGD, batch 128) 375 ->
    369 ms.
    """
    import torch

    lr = groups[0]["lr"]
    if fused is None:
        params = [p for g in groups for p in g["params"]]
        fused = bool(params) and all(
            p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params
        )
    kw = {"lr": lr, "weight_decay": weight_decay, "fused": fused or None}
    if name == "adam":
        return torch.optim.Adam(groups, **kw)
    if name == "adamw":
        return torch.optim.AdamW(groups, **kw)
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, nesterov=True, **kw)
    raise ObjrecError(f"unknown optimizer {name!r}; choose adam, adamw or sgd")


def backbone_of(net):
    """The feature extractor of a network: ``backbone`` (pretrained nets) or ``features``."""
    return getattr(net, "backbone", None) or net.features


def _batchnorms(module) -> tuple:
    """The BatchNorm layers inside ``module``."""
    import torch

    return tuple(
        m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    )


def param_groups(net) -> list[list]:
    """Parameter lists from the input side to the head: ``net.param_groups()`` where the
    network has it, else [backbone, head]; parameters in no group join the last one."""
    if callable(getattr(net, "param_groups", None)):
        groups = [list(g) for g in net.param_groups()]
    else:
        groups = [list(backbone_of(net).parameters()), list(net.head.parameters())]
    seen = {id(p) for g in groups for p in g}
    rest = [p for p in net.parameters() if id(p) not in seen]
    if rest:
        groups[-1].extend(rest)
    return [g for g in groups if g]


def _pretrained_stats(info, channels: int) -> tuple[list[float], list[float]]:
    """The pretrained weights' normalisation for ``channels`` input channels; grey input
    (repeated to RGB inside the network) takes the mean over the RGB values."""
    mean, std = list(info.mean), list(info.std or [1.0] * len(info.mean))
    if channels == len(mean):
        return mean, std
    if channels == 1:
        return [float(np.mean(mean))], [float(np.mean(std))]
    raise InputError(
        f"{info.name} takes {len(mean)}-channel or grey images, got {channels} channels"
    )


def describe_plan(plan) -> str:
    """One line for the log: recipe, optimiser, steps and phases of a training plan."""
    rec = plan.recipe
    parts = [
        f"recipe {rec['recipe']}: {rec['optimizer']} lr {plan.lr:.3g} {rec['schedule']}",
        f"batch {plan.batch_size}",
        f"{plan.total_steps} steps",
    ]
    for ph in plan.phases:
        what = {"frozen": "head only", "unfrozen": "all layers", "train": ""}[ph.name]
        parts.append(
            f"{ph.epochs} epoch{'s' * (ph.epochs != 1)} of {ph.steps_per_epoch} steps"
            + (f" ({what})" if what else "")
        )
    aug = rec.get("augment")
    if aug and aug != "none":
        text = aug if isinstance(aug, str) else ",".join(
            k if v is True else f"{k}={v:g}" for k, v in aug.items()
        )  # fmt: skip
        parts.append(f"augment {text}")
    if plan.early_stopping:
        parts.append(f"early stopping after {plan.early_stopping} epochs without improvement")
    return ", ".join(parts)


class _Phases:
    """Callback: sets up each phase of a plan (trained parameters, frozen modules,
    optimiser, schedule, steps per epoch) when its first epoch begins."""

    def __init__(self, est, net, plan, train, rec, dist, device):
        self.net, self.plan, self.train, self.rec = net, plan, train, rec
        self.dist, self.device, self.max_time = dist, device, est.max_time
        self.starts = np.cumsum([0] + [p.epochs for p in plan.phases])[:-1].tolist()
        self.current = None

    def index_at(self, epoch: int) -> int:
        return max(i for i, s in enumerate(self.starts) if s <= epoch)

    def enter(self, state, i: int) -> None:
        from objrec.training import distributed as ddp
        from objrec.training.recipes import discriminative_lrs
        from objrec.training.schedules import make_scheduler

        phase, net = self.plan.phases[i], self.net
        for p in net.parameters():
            p.requires_grad_(True)
        state.frozen = ()
        if phase.name == "frozen":
            backbone = backbone_of(net)
            for p in backbone.parameters():
                p.requires_grad_(False)
            state.frozen = (backbone,)  # kept in eval mode: BatchNorm statistics stay
            groups, lrs = [[p for p in net.parameters() if p.requires_grad]], [phase.lr]
        elif phase.name == "unfrozen":
            # BatchNorm of the backbone keeps its statistics (eval mode) while its weights
            # train: small batches of new data would otherwise replace the pretrained
            # statistics in training mode only, and evaluation would use stale ones
            # (Keras' fine-tuning guide does the same).
            state.frozen = _batchnorms(backbone_of(net))
            groups = param_groups(net)
            lrs = discriminative_lrs(phase.lr, len(groups), phase.lr_mult)
        else:
            groups, lrs = [list(net.parameters())], [phase.lr]
        state.model = ddp.wrap(net, self.dist, self.device)
        state.optimizer = _make_optimizer(
            self.rec["optimizer"],
            [{"params": g, "lr": lr} for g, lr in zip(groups, lrs, strict=True)],
            self.rec["weight_decay"],
        )
        last = i == len(self.plan.phases) - 1
        state.scheduler = make_scheduler(
            state.optimizer,
            self.rec["schedule"],
            total_steps=phase.steps,
            warmup_steps=self.plan.warmup_steps if last else None,
            max_time=self.max_time if len(self.plan.phases) == 1 else None,
        )
        per_pass = self.plan.batches_per_pass
        self.train.loader.steps_per_epoch = (
            phase.steps_per_epoch if phase.steps_per_epoch != per_pass else None
        )
        self.current = i

    def on_train_begin(self, state) -> None:
        pass

    def on_epoch_begin(self, state) -> None:
        i = self.index_at(state.epoch)
        if i != self.current:
            self.enter(state, i)

    def on_epoch_end(self, state, logs) -> None:
        pass

    def on_train_end(self, state) -> None:
        pass


def _factory(name: str):
    def make(**params) -> CNNClassifier:
        return CNNClassifier(model=name, **params)

    return make


for _name in list_models():
    register_method(_name, approach="cnn", description=model_info(_name).description)(
        _factory(_name)
    )

"""Argument types of the command line: each checks a number's range when the arguments are
parsed, so that a wrong value is refused with its range before anything is loaded or written.

Use them as argparse ``type=`` functions; a bad value raises ``argparse.ArgumentTypeError``,
which the parser reports as one line naming the option::

    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--val-size", type=fraction_or_count)
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, batch sizes, counts)."""
    v = _number(text, int, "an integer (1 or more)")
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer of 1 or more, got {text}")
    return v


def non_negative_int(text: str) -> int:
    """An integer >= 0 (0 usually meaning "none" or "all", as the option's help says)."""
    v = _number(text, int, "an integer (0 or more)")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer of 0 or more, got {text}")
    return v


def positive_float(text: str) -> float:
    """A number > 0 (learning rates, seconds, MiB)."""
    v = _number(text, float, "a number above 0")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return v


def non_negative_float(text: str) -> float:
    """A number >= 0 (weight decay, warm-up epochs)."""
    v = _number(text, float, "a number of 0 or more")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a number of 0 or more, got {text}")
    return v


def probability(text: str) -> float:
    """A number in [0, 1] (thresholds)."""
    v = _number(text, float, "a probability between 0 and 1")
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability between 0 and 1, got {text}")
    return v


def unit_fraction(text: str) -> float:
    """A number in [0, 1) (label smoothing)."""
    v = _number(text, float, "a number in [0, 1)")
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return v


def fraction_or_count(text: str) -> int | float:
    """A split size: a fraction strictly between 0 and 1 (0.1: a tenth of the images) or a
    whole count of 1 or more images (10000). Anything else (0, 1.0, 2.5, -3) is refused."""
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        pass
    v = _number(text, float, "a fraction in (0, 1) or a count of 1 or more")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(
            f"give a fraction between 0 and 1 (e.g. 0.1) or a whole count of 1 or more "
            f"(e.g. 500), got {text}"
        )
    return v


def port(text: str) -> int:
    """A TCP port, 1..65535."""
    v = _number(text, int, "a port number (1-65535)")
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text}")
    return v


def severity(text: str) -> int:
    """A nuisance severity, 1 (mild) .. 5 (hard)."""
    v = _number(text, int, "a severity (1-5)")
    if not 1 <= v <= 5:
        raise argparse.ArgumentTypeError(f"must be a severity from 1 to 5, got {text}")
    return v


def severities(text: str) -> str:
    """A severity list such as ``1-5`` or ``1,3,5`` (each 1..5); returned as given, checked."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: give severities such as 1-5 or 1,3,5")
    for part in parts:
        lo, sep, hi = part.partition("-")
        try:
            a = severity(lo)
            b = severity(hi) if sep else a
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: severities run from 1 to 5, e.g. 1-5 or 1,3,5"
            ) from None
        if b < a:
            raise argparse.ArgumentTypeError(f"{text!r}: a range goes up, e.g. 1-5")
    return text


def opset(text: str) -> int:
    """An ONNX opset version (7 or later)."""
    v = _number(text, int, "an opset number")
    if v < 7:
        raise argparse.ArgumentTypeError(f"ONNX opsets start at 7, got {text}")
    return v

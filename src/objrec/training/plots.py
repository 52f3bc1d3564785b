"""Learning curves: loss and accuracy per epoch, train against validation, as PNG files."""

from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], folder, title: str = "") -> list[Path]:
    """Write ``loss.png`` and ``accuracy.png`` (train vs val per epoch) into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = Path(folder)
    epochs = [h["epoch"] for h in history]
    out = []
    for metric, ylabel in (("loss", "cross-entropy loss"), ("accuracy", "accuracy")):
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        ax.plot(epochs, [h[f"train_{metric}"] for h in history], "o-", label="train")
        val = [h.get(f"val_{metric}") for h in history]
        if any(v is not None for v in val):
            ax.plot(epochs, val, "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {metric}" if title else metric)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = folder / f"{metric}.png"
        fig.savefig(path)
        plt.close(fig)
        out.append(path)
    return out

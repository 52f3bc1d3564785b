"""Learning curves: loss and accuracy per epoch, train against validation, as PNG files."""

from __future__ import annotations

from pathlib import Path


def plot_history(
    history: list[dict], folder, title: str = "", metric: str = "accuracy", loss: str = ""
) -> list[Path]:
    """Write ``loss.png`` and ``METRIC.png`` (train vs val per epoch, the logs'
    ``train_METRIC`` and ``val_METRIC``) into ``folder``; ``loss``: the loss's axis label
    (default cross-entropy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = Path(folder)
    epochs = [h["epoch"] for h in history]
    out = []
    curves = (("loss", loss or "cross-entropy loss"), (metric, metric.replace("_", " ")))
    for key, ylabel in curves:
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        val = [h.get(f"val_{key}") for h in history]
        if any(v is not None for v in val):
            ax.plot(epochs, val, "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {key}" if title else key)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = folder / f"{key}.png"
        fig.savefig(path)
        plt.close(fig)
        out.append(path)
    return out

"""Plots for DFER results (matplotlib with the non-interactive Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from processing.files import atomic_write


def plot_confusion_matrix(
    confusion_matrix: Sequence[Sequence[float]] | np.ndarray,
    class_names: Sequence[str],
    out_png: str | os.PathLike,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Write a confusion-matrix heat map (rows = true class, columns = predicted class) to a PNG.

    Args:
        confusion_matrix: square matrix of counts (e.g. ``compute_dfer_metrics(...)["confusion_matrix"]``;
            a sum over folds works too).
        class_names: one name per row/column.
        out_png: the PNG path (parent folders are created).
        normalize: show each row as fractions of its true class (row recall on the diagonal); rows without
            samples stay 0.
        title: figure title (default: "Confusion matrix", with "(row-normalised)" when ``normalize``).

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers / CI
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion_matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion_matrix must be square, got shape {matrix.shape}")
    if len(class_names) != matrix.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {matrix.shape[0]}x{matrix.shape[0]} matrix")
    shown = matrix
    if normalize:
        row_sums = matrix.sum(axis=1, keepdims=True)
        shown = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)

    size = max(4.0, 0.75 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix"))
    threshold = shown.max() / 2 if shown.size else 0
    for i in range(shown.shape[0]):
        for j in range(shown.shape[1]):
            text = f"{shown[i, j]:.2f}" if normalize else f"{int(round(matrix[i, j]))}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > threshold else "black")
    return save_figure(fig, out_png, dpi=120)


def save_figure(fig, out_png: str | os.PathLike, dpi: int = 120) -> Path:
    """Lay out, write (creating parent folders) and close a matplotlib figure; returns the PNG path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_png, lambda temporary: fig.savefig(temporary, dpi=dpi))
    plt.close(fig)
    return out_png


__all__ = ["plot_confusion_matrix", "save_figure"]

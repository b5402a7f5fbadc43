"""The timeline files of ``mtcae-predict``: every window's probabilities as JSON, CSV and a plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hub_scripts.plots import save_figure
from processing.files import write_json, write_text


def write_timeline(result: dict, output_dir: str | Path, name: str) -> dict[str, Path]:
    """Write ``<name>.timeline.json``, ``.csv`` and ``.png`` into ``output_dir``; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: output_dir / f"{name}.timeline.{kind}" for kind in ("json", "csv", "png")}
    write_json(paths["json"], result, indent=2)
    labels, table = result["labels"], io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["window", "start_time", "end_time", "start_frame", "end_frame", "label", "score",
                     *[f"p_{label}" for label in labels]])
    for window in result["windows"]:
        writer.writerow([window["index"], f"{window['start_time']:.3f}", f"{window['end_time']:.3f}",
                         window["start_frame"], window["end_frame"], window["label"], f"{window['score']:.6f}",
                         *[f"{window['probabilities'][label]:.6f}" for label in labels]])
    write_text(paths["csv"], table.getvalue())
    plot_timeline(result, paths["png"])
    return paths


def plot_timeline(result: dict, out_png: str | Path) -> Path:
    """Probabilities per label over the window centres (a bar chart for a single window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, windows = result["labels"], result["windows"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    if len(windows) == 1:
        values = [windows[0]["probabilities"][label] for label in labels]
        ax.barh(labels, values, color=[colors(i) for i in range(len(labels))])
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("probability")
        ax.set_title(f"{Path(result['video']).name}: whole clip ({result['duration']:.2f} s)")
    else:
        centres = [(w["start_time"] + w["end_time"]) / 2 for w in windows]
        for i, label in enumerate(labels):
            ax.plot(centres, [w["probabilities"][label] for w in windows], marker="o", markersize=3,
                    label=label, color=colors(i))
        ax.set_xlim(0, result["duration"])
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (s), window centre")
        ax.set_ylabel("probability")
        ax.set_title(f"{Path(result['video']).name}: {result['window_seconds']:g} s windows every "
                     f"{result['stride_seconds']:g} s")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
    return save_figure(fig, out_png, dpi=110)


__all__ = ["plot_timeline", "write_timeline"]

"""``mtcae-annotate``: label a dataset folder with face boxes and 5 landmarks per sampled frame.

Writes one Parquet face-label cache keyed by ``(path relative to the root, sampler_key)``; resumable, saved
every ``--save_every`` videos or ``--save_interval_s`` seconds, checked writable before any labelling, and a
file that cannot be decoded is reported at the end (:mod:`processing.labelling`).

By default the root is searched for video files. ``--dataset NAME`` takes the clips from the data set's
loader in ``processing/dataset_registry.py`` instead, which is how clips given as folders of frame images
(DFEW, FERV39k, MAFW) are labelled.

Example::

    mtcae-annotate --data_root /data/RAVDESS --output /data/RAVDESS/face_labels.parquet --workers 4
    mtcae-annotate --data_root /data/DFEW --dataset dfew --workers 4
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hub_scripts.cli import parse_arguments, reports_errors
from processing.dataset_registry import dataset_key, get_dataset
from processing.labelling import DEFAULT_CACHE_NAME, annotate_dataset
from processing.sampling_mtcae import SAMPLING_MODES


@dataclass
class AnnotateArguments:
    """Arguments of ``mtcae-annotate`` (flags are the field names: ``--data_root``, ``--save_every``, ...)."""

    data_root: str = field(metadata={"help": "dataset folder, searched recursively for videos"})
    dataset: str | None = field(default=None, metadata={
        "help": "take the clips from this data set's loader (processing/dataset_registry.py, e.g. dfew, ferv39k, "
                "mafw: clips given as folders of frame images) instead of searching DATA_ROOT for video files"})
    output: str | None = field(
        default=None, metadata={"help": f"cache file, ending in .parquet; unset: DATA_ROOT/{DEFAULT_CACHE_NAME}"})
    detector: Literal["mtcnn", "dlib"] = field(default="mtcnn", metadata={"help": "face detector backend"})
    num_frames: int = field(default=16, metadata={"help": "frames sampled per video"})
    mode: Literal[SAMPLING_MODES] = field(default="uniform", metadata={"help": "frame sampling mode"})
    label_size: int = field(
        default=224,
        metadata={"help": "detect on frames resized to this size (0 = source resolution; 224 as the authors)"})
    prefer: Literal["largest", "score"] = field(default="largest", metadata={"help": "face kept when several"})
    workers: int = field(default=max(1, (os.cpu_count() or 2) - 1), metadata={"help": "worker processes"})
    save_every: int = field(default=50, metadata={"help": "save the cache every N labelled videos ..."})
    save_interval_s: float = field(default=10.0, metadata={"help": "... or every S seconds, whichever comes first"})
    extensions: list[str] | None = field(default=None,
                                         metadata={"help": "video file extensions; unset: every known one"})
    limit: int | None = field(default=None, metadata={"help": "label at most N new videos (for a trial run)"})
    strict: bool = field(default=False, metadata={"help": "exit with status 1 if any video failed"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bar"})

    def __post_init__(self):
        if not Path(self.data_root).is_dir():
            raise ValueError(f"--data_root {self.data_root} is not a folder")
        if self.dataset is not None:
            self.dataset = get_dataset(dataset_key(self.dataset)).key  # a clear error for an unknown name
        self.output = self.output or str(Path(self.data_root) / DEFAULT_CACHE_NAME)
        if Path(self.output).suffix.lower() != ".parquet":
            raise ValueError(f"--output must be a .parquet file, got {self.output}")
        for name in ("num_frames", "workers", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.label_size < 0 or (self.limit is not None and self.limit < 0):
            raise ValueError("--label_size and --limit must not be negative")
        if not self.save_interval_s > 0:
            raise ValueError(f"--save_interval_s must be positive, got {self.save_interval_s}")


@reports_errors("mtcae-annotate")
def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when labelling went through, 1 when everything (or, with ``--strict``, anything) failed,
    2 for a bad option or an output that cannot be written (one line, before any labelling)."""
    try:
        (args,) = parse_arguments((AnnotateArguments,), argv, prog="mtcae-annotate", description=__doc__,
                                  exit_on_error=False)
    except ValueError as error:
        print(f"mtcae-annotate: {error}", file=sys.stderr)
        return 2
    options = {name: value for name, value in vars(args).items() if name != "no_progress"}
    return annotate_dataset(**options, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())

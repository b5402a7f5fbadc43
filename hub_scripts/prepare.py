"""mtcae-prepare: decode and frame every video of a data set once, into the prepared-clip cache.

    mtcae-prepare RAVDESS --dataset ravdess --preset paper --num_workers 2
    mtcae-prepare data/synthetic_dfer --dataset ravdess --resize_mode face_align   # the synthetic set's layout

It takes training's data, model and framing options (``--dataset``, ``--preset`` / ``--encoder`` /
``--model_name_or_path``, ``--resize_mode``, ``--annotations``), so that it prepares exactly the
entries a training run with the same options reads.

Training (``hub_scripts.train``, cross-validation, ablation) prepares what is missing by itself
before its first epoch; this command does it ahead of time (e.g. on a machine with more cores).
The entries are keyed by file and by every processor setting that changes pixels, so one cache
folder serves several settings; a killed run resumes where it stopped. Videos that cannot be read
are listed at the end and in ``CACHE_DIR/prepare_report.json``; the others are prepared.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hub_scripts.cli import parse_arguments
from processing.prepared_cache import DEFAULT_FRAMES_PER_SEGMENT, PreparedClipCache
from processing.prepared_clips import face_labels_of


@dataclass
class PrepareArguments:
    cache_dir: str | None = field(
        default=None, metadata={"help": "the prepared-clip cache folder (default: $MTCAE_CACHE/prepared, else "
                                        "~/.cache/mtcae/prepared, as hub_scripts.train uses it)"})
    frames_per_segment: int = field(
        default=DEFAULT_FRAMES_PER_SEGMENT,
        metadata={"help": "stored frames per uniform segment for clips longer than num_frames x this (all frames "
                          "of shorter clips are stored)"})
    num_workers: int = field(default=-1, metadata={"help": "decoding worker processes (-1: one per core, up to 4, when "
                                                           "more than 64 clips are missing; 0: in this process)"})

    def __post_init__(self):
        if self.frames_per_segment < 1:
            raise ValueError(f"--frames_per_segment must be >= 1, got {self.frames_per_segment}")
        if self.num_workers < -1:
            raise ValueError(f"--num_workers must be >= -1, got {self.num_workers}")


def prepare_splits(splits: dict, cache: PreparedClipCache, num_workers: int = 0, progress: bool = True):
    """Prepare every clip of the splits (each video once, even when it is in several splits)."""
    videos, labels, seen = [], [], set()
    for split in splits.values():
        for video, label in zip(split["video"], face_labels_of(split)):
            if video not in seen:
                seen.add(video)
                videos.append(video)
                labels.append(label)
    return cache.prepare(videos, labels, num_workers=num_workers, progress=progress)


def write_report(cache_dir: Path, report) -> Path:
    path = Path(cache_dir) / "prepare_report.json"
    path.write_text(json.dumps({"prepared": report.prepared, "reused": report.reused, "failed": report.failed},
                               indent=2))
    return path


def labelled_table(data_args, processor):
    """The whole data set with its face labels joined, as training joins them."""
    from hub_scripts.train import load_table, with_face_labels

    table, _, root = load_table(data_args)
    return with_face_labels({"all": table}, data_args, root, processor)["all"]


def main(argv: list[str] | None = None) -> int:
    from hub_scripts.train import DataArguments, ModelArguments, run_processor

    prepare_args, data_args, model_args = parse_arguments(
        (PrepareArguments, DataArguments, ModelArguments), argv, prog="mtcae-prepare", description=__doc__,
        positional="data_root")
    processor = run_processor(data_args, model_args)
    cache = PreparedClipCache(prepare_args.cache_dir, processor, prepare_args.frames_per_segment)
    cache.check_writable()  # before reading the data set
    report = prepare_splits({"all": labelled_table(data_args, processor)}, cache, prepare_args.num_workers)
    report_path = write_report(cache.cache_dir, report)
    print(report.summary())
    print(f"Prepared-clip cache: {cache.cache_dir} (report: {report_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

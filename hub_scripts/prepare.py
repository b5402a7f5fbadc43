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

import sys
from dataclasses import dataclass, field

from hub_scripts.cli import parse_arguments, reports_errors
from hub_scripts.training.arguments import DataArguments, ModelArguments
from hub_scripts.training.data import prepare_dataset
from processing.sampling_mtcae import DEFAULT_FRAMES_PER_SEGMENT


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


@reports_errors("mtcae-prepare")
def main(argv: list[str] | None = None) -> int:
    prepare_args, data_args, model_args = parse_arguments(
        (PrepareArguments, DataArguments, ModelArguments), argv, prog="mtcae-prepare", description=__doc__,
        positional="data_root")
    report, cache = prepare_dataset(data_args, model_args, prepare_args.cache_dir, prepare_args.frames_per_segment,
                                    prepare_args.num_workers)
    print(report.summary())
    print(f"Prepared-clip cache: {cache.cache_dir} (report: {cache.cache_dir / 'prepare_report.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

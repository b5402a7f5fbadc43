"""``mtcae-synthetic``: render the built-in synthetic DFER set (RAVDESS layout, exact face labels).

The renderer is :mod:`processing.synthetic`; the set is rendered only when ``ROOT/synthetic_info.json`` records
other settings or a clip or its labels are missing. ``--preview out.png`` also writes a contact sheet with the
labels drawn.

    mtcae-synthetic --root data/synthetic [--num_actors 24 --clips_per_class 6 ...]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from hub_scripts.cli import parse_arguments, reports_errors
from processing.synthetic import generate_synthetic_dfer, save_preview


@dataclass
class SyntheticArguments:
    """Options of ``mtcae-synthetic`` (checked on construction)."""

    root: str = field(metadata={"help": "output folder"})
    num_actors: int = field(default=24, metadata={"help": "synthetic subjects Actor_01..Actor_NN (at most 99)"})
    clips_per_class: int = field(default=6, metadata={"help": "clips per subject and class (at most 8)"})
    num_frames: int = field(default=32, metadata={"help": "nominal frames per clip"})
    num_frames_jitter: float = field(default=0.25, metadata={"help": "clip lengths vary by +- this fraction"})
    height: int = field(default=144, metadata={"help": "frame height (even)"})
    width: int = field(default=192, metadata={"help": "frame width (even)"})
    fps: int = field(default=25, metadata={"help": "frame rate written into the files"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    num_workers: int | None = field(default=None, metadata={"help": "worker processes (default: the CPUs)"})
    overwrite: bool = field(default=False, metadata={"help": "render again even when the set on disk matches"})
    preview: str | None = field(default=None, metadata={"help": "also write a contact-sheet PNG here"})

    def __post_init__(self):
        if not 1 <= self.num_actors <= 99:
            raise ValueError(f"--num_actors must be in 1-99; got {self.num_actors}")
        if not 1 <= self.clips_per_class <= 8:
            raise ValueError(f"--clips_per_class must be in 1-8; got {self.clips_per_class}")
        if self.height <= 0 or self.width <= 0 or self.height % 2 or self.width % 2:
            raise ValueError(f"--height and --width must be positive even numbers; got {self.height} x {self.width}")
        if self.num_frames < 2 or self.fps <= 0 or not 0 <= self.num_frames_jitter < 1:
            raise ValueError("--num_frames must be >= 2, --fps > 0 and --num_frames_jitter in [0, 1)")


@reports_errors("mtcae-synthetic")
def main(argv: Sequence[str] | None = None) -> None:
    """``mtcae-synthetic``: render the synthetic DFER set (RAVDESS layout, exact face labels)."""
    (args,) = parse_arguments((SyntheticArguments,), argv, prog="mtcae-synthetic",
                              description="Render the synthetic DFER data set (RAVDESS layout, exact face labels).")
    logging.basicConfig(level=logging.INFO)
    root = generate_synthetic_dfer(args.root, args.num_actors, args.clips_per_class, args.num_frames,
                                   (args.height, args.width), args.fps, args.seed, args.num_workers, args.overwrite,
                                   args.num_frames_jitter)
    print(f"synthetic DFER set: {root}")
    if args.preview:
        print(f"preview: {save_preview(root, args.preview)}")


if __name__ == "__main__":
    main()

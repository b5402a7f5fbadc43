"""``mtcae-convert-videomae``: convert a plain-ViT video checkpoint (VideoMAE's original ``.pth`` layout: MCG-NJU
VideoMAE, HiCMAE, S4D) into a transformers ``VideoMAEModel`` folder that MTCAE-DFER's encoder loads.

The layouts, the key conversion and the checks are :mod:`hub_scripts.hub.videomae_conversion`'s. MAE-DFER's
encoder (an LGI-Former, not a plain ViT) is refused. The report is printed and saved as
``conversion_report.json``.

Example:
    mtcae-convert-videomae --checkpoint hicmae_pretrain_base.pth --output_dir hicmae-video --num_frames 16
    python -m hub_scripts.train --encoder hicmae-video --preset paper ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hub_scripts.cli import parse_arguments, reports_errors
from hub_scripts.hub.videomae_conversion import LAYOUTS, convert_checkpoint, format_report


@dataclass
class ConversionArguments:
    checkpoint: str = field(metadata={"help": "the .pth / .pt / .bin checkpoint (HiCMAE, S4D, VideoMAE, ...)"})
    output_dir: str = field(metadata={"help": "where to write the transformers VideoMAEModel folder"})
    layout: str = field(default="auto", metadata={"help": f"auto, {', '.join(LAYOUTS)}: fills in what the tensors do "
                                                         "not hold (heads, image size)"})
    num_frames: int = field(default=16, metadata={"help": "frames per clip the encoder was trained on"})
    image_size: int | None = field(default=None, metadata={
        "help": "input size when the checkpoint stores no pos_embed (default: 160 for hicmae/s4d, 224 otherwise)"})
    num_attention_heads: int | None = field(default=None, metadata={
        "help": "heads per layer (default: 8 hicmae, 12 s4d, else by width: 384:6, 512:8, 768:12, 1024:16, 1280:16)"})
    allow_unused: bool = field(default=False, metadata={
        "help": "convert even when keys of no known group are left over (they are listed in the report)"})

    def __post_init__(self):
        if not Path(self.checkpoint).is_file():
            raise ValueError(f"--checkpoint {self.checkpoint}: no such file")
        if self.layout != "auto" and self.layout not in LAYOUTS:
            raise ValueError(f"--layout {self.layout!r} is not one of auto, {', '.join(LAYOUTS)}")
        for name in ("num_frames", "image_size", "num_attention_heads"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be > 0; got {getattr(self, name)}")


@reports_errors("mtcae-convert-videomae")
def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    (args,) = parse_arguments((ConversionArguments,), argv, prog="mtcae-convert-videomae", description=__doc__)
    report = convert_checkpoint(args.checkpoint, args.output_dir, args.num_frames, args.image_size,
                                args.num_attention_heads, args.layout, args.allow_unused)
    print(format_report(report, args.output_dir))
    return report


if __name__ == "__main__":
    main()

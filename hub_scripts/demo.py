"""``mtcae-demo``: a short, honest demo: build the tiny MTCAE-DFER, run a few optimisation steps on random clips.

This checks that the install works (forward, multi-task loss, backward, save, reload) in seconds on a
CPU. It learns nothing useful: the inputs are random noise. Fine-tuning on real or synthetic data is
`mtcae-train`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Literal

import torch

from hub_scripts.cli import check_choice, check_positive, parse_arguments, reports_errors
from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification
from modeling_mtcae.configuration_mtcae import PRESETS

PresetName = Literal[tuple(PRESETS)]


@dataclass
class DemoArguments:
    """Options of mtcae-demo (checked on construction)."""

    preset: PresetName = field(default="tiny", metadata={"help": "an MTCAEConfig preset"})
    steps: int = field(default=3, metadata={"help": "optimisation steps"})
    batch_size: int = field(default=2, metadata={"help": "random clips per step"})

    def __post_init__(self):
        check_choice("preset", self.preset, tuple(PRESETS))
        check_positive(steps=self.steps, batch_size=self.batch_size)


@reports_errors("mtcae-demo")
def main(argv: list[str] | None = None) -> None:
    (args,) = parse_arguments((DemoArguments,), argv, prog="mtcae-demo", description=__doc__)

    torch.manual_seed(0)
    config = MTCAEConfig.from_preset(args.preset, num_labels=7)
    model = MTCAEForVideoClassification(config)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"MTCAE-DFER preset={args.preset}: {total:,} parameters, {trainable:,} trainable, "
          f"{config.num_tokens} encoder tokens, decoders {config.tasks} ({config.decoder_mode})")

    height, width = config.image_size
    batch = args.batch_size
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for step in range(args.steps):
        output = model(
            torch.randn(batch, config.num_frames, 3, height, width),
            labels=torch.randint(0, config.num_labels, (batch,)),
            face_boxes=torch.rand(batch, config.num_frames, 4),
            face_landmarks=torch.rand(batch, config.num_frames, config.num_landmarks, 2),
            face_mask=torch.rand(batch, config.num_frames) > 0.2,
        )
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        print(f"step {step}: loss {output.loss.item():.4f} = 1.5 x CE {output.loss_expression.item():.4f} "
              f"+ 0.5 x box MSE {output.loss_face_boxes.item():.4f} "
              f"+ 0.5 x landmark MSE {output.loss_face_landmarks.item():.4f}")

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        reloaded = MTCAEForVideoClassification.from_pretrained(folder).eval()
        model.eval()
        pixel_values = torch.randn(1, config.num_frames, 3, height, width)
        with torch.no_grad():
            same = torch.equal(model(pixel_values).logits, reloaded(pixel_values).logits)
    print(f"save_pretrained / from_pretrained round trip identical: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""``mtcae-ablate``: the paper's framework ablation, the decoder modes on the same subject-independent folds.

Runs :func:`hub_scripts.cross_validate.cross_validate` once per ``decoder_mode`` (the paper's single-task,
non-fully-shared, fully-shared and cascaded frameworks, named in ``hub_scripts.model_card.DECODER_MODES``),
each into ``OUTPUT_DIR/<mode>``, and writes one results table (per fold, then mean ± std test UAR / WAR
per mode) to ``OUTPUT_DIR/ablation.md`` and ``ablation.json``. Takes every argument of ``mtcae-train``
(the test-time views included) plus ``--folds`` and ``--modes``.

    mtcae-ablate --dataset ravdess --data_root RAVDESS --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --output_dir runs/ravdess-ablation
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hub_scripts.cli import check_choice, parse_arguments
from hub_scripts.cross_validate import CrossValidationArguments, cross_validate, fold_rows
from hub_scripts.model_card import DECODER_MODES, decoder_mode_title
from hub_scripts.multiview import MultiViewArguments
from hub_scripts.results import results_table
from hub_scripts.train import DataArguments, ModelArguments, MTCAETrainingArguments


@dataclass
class AblationArguments:
    """Which decoder modes to compare (checked on construction)."""

    modes: list[str] = field(default_factory=lambda: list(DECODER_MODES),
                             metadata={"help": f"decoder modes to compare, from {', '.join(DECODER_MODES)}"})

    def __post_init__(self):
        for mode in self.modes:
            check_choice("modes", mode, tuple(DECODER_MODES))
        if not self.modes or len(set(self.modes)) != len(self.modes):
            raise ValueError(f"--modes must be distinct decoder modes; got {self.modes}")


def ablation_table(summaries: dict[str, dict]) -> str:
    """The one results table over the modes: each mode's folds, then its mean ± std."""
    rows = [row for mode, summary in summaries.items()
            for row in fold_rows(summary, group=f"{decoder_mode_title(mode)} (`{mode}`)")]
    return results_table(rows, group_header="Framework") + "\n"


def ablate(data_args: DataArguments, model_args: ModelArguments, training_args: MTCAETrainingArguments,
           modes: list[str], folds: list[int] | None = None,
           views: MultiViewArguments | None = None) -> dict[str, dict]:
    """Cross-validate each decoder mode into ``OUTPUT_DIR/<mode>``; write and return the summaries by mode."""
    base_dir = Path(training_args.output_dir)
    summaries: dict[str, dict] = {}
    for mode in modes:
        mode_model = copy.deepcopy(model_args)
        mode_model.decoder_mode = mode
        mode_training = copy.deepcopy(training_args)
        mode_training.output_dir = str(base_dir / mode)
        summaries[mode] = cross_validate(data_args, mode_model, mode_training, folds,
                                         title=f"{decoder_mode_title(mode)} on {data_args.dataset}", views=views)
    if training_args.process_index == 0:
        table = ablation_table(summaries)
        base_dir.mkdir(parents=True, exist_ok=True)
        (base_dir / "ablation.md").write_text(table)
        (base_dir / "ablation.json").write_text(json.dumps(summaries, indent=2))
        print("\nFramework ablation (same folds, same settings):\n" + table)
    return summaries


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    data_args, model_args, training_args, views, cv_args, ablation_args = parse_arguments(
        (DataArguments, ModelArguments, MTCAETrainingArguments, MultiViewArguments, CrossValidationArguments,
         AblationArguments), argv, prog="mtcae-ablate", description=__doc__)
    ablate(data_args, model_args, training_args, ablation_args.modes, cv_args.folds, views)


if __name__ == "__main__":
    main()

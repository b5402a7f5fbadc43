"""The paper's framework ablation: the four decoder modes on the same subject-independent folds.

Runs :func:`hub_scripts.cross_validate.cross_validate` once per ``decoder_mode`` (single-task,
non-fully-shared = ``parallel``, fully-shared, cascaded), each into ``OUTPUT_DIR/<mode>``, and prints
one table of mean +- std test UAR / WAR per mode; also written to ``OUTPUT_DIR/ablation.md`` and
``ablation.json``. Takes every argument of ``hub_scripts.train`` plus ``--folds`` and ``--modes``.

    python -m hub_scripts.ablate --dataset ravdess --data_root RAVDESS --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --output_dir runs/ravdess-ablation
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from hub_scripts.cross_validate import CrossValidationArguments, cross_validate, parse_fold_list
from hub_scripts.train import DataArguments, MTCAETrainingArguments, ModelArguments
from modeling_mtcae.configuration_mtcae import DECODER_MODES

# The paper's names for the four frameworks (Table "ablation of the framework").
MODE_TITLES = {
    "single_task": "single-task (expression decoder only)",
    "parallel": "non-fully-shared MTL (parallel decoders)",
    "fully_shared": "fully-shared MTL",
    "cascaded": "cascaded MTL (MTCAE-DFER)",
}


@dataclass
class AblationArguments:
    modes: str = field(default=",".join(MODE_TITLES), metadata={"help": f"comma-separated subset of {DECODER_MODES}"})


def ablation_table(summaries: dict[str, dict]) -> str:
    """One Markdown row per decoder mode: mean +- std UAR and WAR in percent over the folds."""
    lines = ["| framework | decoder_mode | folds | UAR (%) | WAR (%) |", "| --- | --- | --- | --- | --- |"]
    for mode, summary in summaries.items():
        lines.append(
            f"| {MODE_TITLES.get(mode, mode)} | `{mode}` | {summary['num_folds_finished']} | "
            f"{100 * summary['uar_mean']:.2f} +- {100 * summary['uar_std']:.2f} | "
            f"{100 * summary['war_mean']:.2f} +- {100 * summary['war_std']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def ablate(data_args: DataArguments, model_args: ModelArguments, training_args: MTCAETrainingArguments,
           modes: list[str], folds: list[int] | None = None) -> dict[str, dict]:
    unknown = [m for m in modes if m not in DECODER_MODES]
    if unknown:
        raise ValueError(f"--modes {unknown} are not decoder modes; choose from {DECODER_MODES}")
    base_dir = Path(training_args.output_dir)
    summaries: dict[str, dict] = {}
    for mode in modes:
        mode_model = copy.deepcopy(model_args)
        mode_model.decoder_mode = mode
        mode_training = copy.deepcopy(training_args)
        mode_training.output_dir = str(base_dir / mode)
        summaries[mode] = cross_validate(data_args, mode_model, mode_training, folds,
                                         title=f"{MODE_TITLES.get(mode, mode)} on {data_args.dataset}")
    if training_args.process_index == 0:
        table = ablation_table(summaries)
        base_dir.mkdir(parents=True, exist_ok=True)
        (base_dir / "ablation.md").write_text(table)
        (base_dir / "ablation.json").write_text(json.dumps(summaries, indent=2))
        print("\nFramework ablation (same folds, same settings):\n" + table)
    return summaries


def main(argv: list[str] | None = None) -> dict[str, dict]:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    parser = HfArgumentParser(
        (DataArguments, ModelArguments, MTCAETrainingArguments, CrossValidationArguments, AblationArguments))
    data_args, model_args, training_args, cv_args, ablation_args = parser.parse_args_into_dataclasses(args=argv)
    modes = [m.strip() for m in ablation_args.modes.split(",") if m.strip()]
    return ablate(data_args, model_args, training_args, modes, parse_fold_list(cv_args.folds))


if __name__ == "__main__":
    main()

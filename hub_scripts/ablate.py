"""``mtcae-ablate``: the paper's framework ablation, the decoder modes on the same subject-independent folds.

Runs :func:`hub_scripts.training.cross_validation.cross_validate` once per ``decoder_mode`` (the paper's
single-task, non-fully-shared, fully-shared and cascaded frameworks, named in
``modeling_mtcae.configuration_mtcae.DECODER_MODE_DESCRIPTIONS``), each into ``OUTPUT_DIR/<mode>``, and writes
one results table (per fold, then mean ± std test UAR / WAR per mode) to ``OUTPUT_DIR/ablation.md`` and
``ablation.json``. Takes every argument of ``mtcae-train``
(the test-time views included) plus ``--folds`` and ``--modes``.

    mtcae-ablate --dataset ravdess --data_root RAVDESS --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --output_dir runs/ravdess-ablation
"""

from __future__ import annotations

from hub_scripts.cli import configure_logging, parse_arguments, reports_errors
from hub_scripts.training.arguments import RUN_ARGUMENTS, AblationArguments, CrossValidationArguments
from hub_scripts.training.cross_validation import ablate


@reports_errors("mtcae-ablate")
def main(argv: list[str] | None = None) -> None:
    configure_logging()
    *run_args, cv_args, ablation_args = parse_arguments(
        (*RUN_ARGUMENTS, CrossValidationArguments, AblationArguments), argv, prog="mtcae-ablate", description=__doc__)
    data_args, model_args, training_args, views = run_args
    ablate(data_args, model_args, training_args, ablation_args.modes, cv_args.folds, views)


if __name__ == "__main__":
    main()

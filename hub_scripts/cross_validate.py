"""``mtcae-cross-validate``: subject-independent cross-validation of MTCAE-DFER: train and test every fold.

Takes every argument of ``mtcae-train`` (dataset, preset, encoder, epochs, test-time views, ...) plus
``--folds`` (default: every fold of the scheme the data set has subjects for; numbers are the protocol's). Each
fold trains into ``OUTPUT_DIR/fold<k>``; the summary goes to ``OUTPUT_DIR/cv_results.json`` and
``OUTPUT_DIR/cv_results.md`` (per-fold test UAR / WAR and mean ± std, as the papers report them, and the
test-time views ``--test_temporal_views`` x ``--test_spatial_views`` they were scored on) and
a confusion matrix summed over the folds, ``OUTPUT_DIR/cv_confusion_matrix.png``. A fold that fails
is reported at the end; the others still run.

    mtcae-cross-validate --dataset ravdess --data_root RAVDESS --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --output_dir runs/ravdess-cv
    accelerate launch -m hub_scripts.cross_validate --dataset crema_d --data_root CREMA-D ...
"""

from __future__ import annotations

import sys

from hub_scripts.cli import configure_logging, parse_arguments, reports_errors
from hub_scripts.training.arguments import RUN_ARGUMENTS, CrossValidationArguments
from hub_scripts.training.cross_validation import cross_validate


@reports_errors("mtcae-cross-validate")
def main(argv: list[str] | None = None) -> None:
    configure_logging()
    *run_args, cv_args = parse_arguments((*RUN_ARGUMENTS, CrossValidationArguments), argv,
                                         prog="mtcae-cross-validate", description=__doc__)
    data_args, model_args, training_args, views = run_args
    summary = cross_validate(data_args, model_args, training_args, cv_args.folds, views=views)
    if summary["num_folds_finished"] == 0:
        sys.exit("every fold failed; see the log above")


if __name__ == "__main__":
    main()

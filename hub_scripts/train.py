"""``mtcae-train``: fine-tune MTCAE-DFER with transformers' Trainer on one subject-independent fold.

Data sets: every entry of ``processing/dataset_registry.py`` (RAVDESS, CREMA-D, MEAD, DFEW, FERV39k,
MAFW, a class-per-folder layout, the built-in synthetic set). With no arguments it renders the synthetic
set (if absent) and trains the `tiny` preset on it on the CPU. The same script runs under every launcher:

    mtcae-train --dataset ravdess --data_root RAVDESS --fold 1 --preset paper \\
        --encoder MCG-NJU/videomae-large-finetuned-kinetics --bf16 --output_dir runs/ravdess-f1
    accelerate launch -m hub_scripts.train ...
    torchrun --nproc_per_node 2 -m hub_scripts.train ...

``--fold N`` is fold N of the scheme's protocol (fold 2 of ravdess6 tests actors 05-08), also when the
data set lacks the subjects of other folds. The output folder holds the best-on-validation model (by
UAR) with its processor and code, loadable with
``AutoModelForVideoClassification.from_pretrained(dir, trust_remote_code=True)`` and the
``video-classification`` pipeline, plus ``all_results.json``, ``eval_results.json``,
``test_results.json``, ``run_summary.json``, ``training_args.json`` and ``confusion_matrix.png``.
``--test_temporal_views 2 --test_spatial_views 2`` scores the test split on 2 x 2 views per clip (softmax
averaged, the peers' protocol; validation stays single-view); the results files record the views used.
"""

from __future__ import annotations

from hub_scripts.cli import configure_logging, parse_arguments, reports_errors
from hub_scripts.training.arguments import RUN_ARGUMENTS
from hub_scripts.training.engine import run


def parse_args(argv: list[str] | None = None) -> tuple:
    """``(DataArguments, ModelArguments, MTCAETrainingArguments, MultiViewArguments)``."""
    return parse_arguments(RUN_ARGUMENTS, argv, prog="mtcae-train", description=__doc__)


@reports_errors("mtcae-train")
def main(argv: list[str] | None = None) -> None:
    configure_logging()
    run(*parse_args(argv))


if __name__ == "__main__":
    main()

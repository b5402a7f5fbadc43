"""``mtcae-push-to-hub``: turn a training output folder into a self-contained Hub repo and upload it.

The repo folder (:mod:`hub_scripts.hub.repo`) holds the weights, the config, the model and processor code
and the model card, so it loads with ``trust_remote_code`` and transformers alone; checkpoints, optimizer
states and pickles are never uploaded. Usage::

    mtcae-push-to-hub outputs/ravdess-f1 --dry_run /tmp/repo            # build and check the folder only
    mtcae-push-to-hub outputs/ravdess-f1 --repo_id you/mtcae-ravdess --private \\
        --revision fold-1 --commit_message "RAVDESS fold 1"
    mtcae-push-to-hub outputs/ravdess-f1 --repo_id you/mtcae-ravdess \\
        --results outputs/ravdess-f2 outputs/ravdess-f3 cv_results.json   # per-fold rows in the card
    mtcae-push-to-hub --repo_id you/mtcae-ravdess --results_only --results outputs/ravdess-f4
        # add fold rows to the model-index of a repo already pushed (huggingface_hub.metadata_update)

``--results`` takes more training output folders (their ``test_results.json`` / ``run_summary.json``)
or JSON files with rows ``{"dataset": ..., "fold": ..., "split": "test", "uar": ..., "war": ...}``
(a list, or a dict with a ``"folds"`` list as ``cv_results.json``; keys may also be ``test_uar`` /
``eval_uar`` ...; fractions in [0, 1], values above 1 are read as percentages).

``--dry_run DIR --overwrite`` only ever deletes files this tool wrote into ``DIR`` (listed in its
``.mtcae-push-to-hub.json``) and refuses a ``DIR`` that holds or lies inside the training folder.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hub_scripts.cli import parse_arguments, reports_errors
from hub_scripts.hub.repo import add_results_to_repo, build_repo_folder, push_folder
from processing.dataset_registry import DATASETS, dataset_key


@dataclass
class PushArguments:
    """Options of mtcae-push-to-hub (checked on construction)."""

    output_dir: str | None = field(default=None, metadata={
        "help": "training output folder (mtcae-train --output_dir); may also be given as the first argument"})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repo, 'user/name' or 'name' "
                                                                "(required unless --dry_run)"})
    dry_run: str | None = field(default=None, metadata={"help": "build and check the repo folder in this folder; "
                                                                "upload nothing"})
    overwrite: bool = field(default=False, metadata={"help": "let --dry_run replace a folder it built before"})
    private: bool = field(default=False, metadata={"help": "create the repo as private"})
    revision: str | None = field(default=None, metadata={"help": "branch to push to (created from main when missing)"})
    commit_message: str | None = field(default=None, metadata={"help": "commit message of the upload"})
    create_pr: bool = field(default=False, metadata={"help": "open a pull request instead of committing"})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in user's)"})
    dataset: str | None = field(default=None, metadata={"help": f"one of {', '.join(DATASETS)} "
                                                                "(default: run_summary.json's)"})
    results: list[str] = field(default_factory=list, metadata={
        "help": "more result rows for the card: other folds' output folders or results JSON files"})
    results_only: bool = field(default=False, metadata={
        "help": "only add --results to the model-index of the existing repo --repo_id (metadata_update)"})
    model_card: str | None = field(default=None, metadata={"help": "model card template (Jinja markdown)"})
    model_name: str | None = field(default=None, metadata={"help": "title of the card (default: the repo name)"})
    license: str | None = field(default=None, metadata={"help": "license tag of the card (default: the data set's)"})
    base_model: str | None = field(default=None, metadata={"help": "encoder checkpoint the model was fine-tuned from"})

    def __post_init__(self):
        if self.dataset is not None and dataset_key(self.dataset) not in DATASETS:
            raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}; got {self.dataset!r}")
        if self.results_only:
            if not (self.repo_id and self.results) or self.dry_run:
                raise ValueError("--results_only needs --repo_id and --results, and no --dry_run")
            return
        if not self.output_dir:
            raise ValueError("the training output folder is required (first argument or --output_dir)")
        if not self.dry_run and not self.repo_id:
            raise ValueError("--repo_id is required (or pass --dry_run DIR to build the folder only)")
        if self.overwrite and not self.dry_run:
            raise ValueError("--overwrite only applies to --dry_run (pushes build in a temporary folder)")
        if self.model_card and not Path(self.model_card).is_file():
            raise ValueError(f"--model_card {self.model_card} does not exist")


def parse_args(argv: list[str] | None = None) -> PushArguments:
    (args,) = parse_arguments((PushArguments,), argv, prog="mtcae-push-to-hub", description=__doc__,
                              positional="output_dir")
    return args


def run(args: PushArguments) -> int:
    build = dict(repo_id=args.repo_id, model_name=args.model_name, dataset=args.dataset, results=args.results,
                 template=args.model_card, license=args.license, base_model=args.base_model)
    if args.results_only:
        url = add_results_to_repo(args.repo_id, args.results, dataset=args.dataset, token=args.token,
                                  revision=args.revision, create_pr=args.create_pr)
        print(f"Added the results to {args.repo_id}: {url}")
        return 0
    if args.dry_run:
        files = build_repo_folder(args.output_dir, args.dry_run, overwrite=args.overwrite, **build)
        print(f"Built {args.dry_run} ({len(files)} files); nothing was uploaded:")
        print("\n".join(f"  {name}" for name in files))
        return 0
    with tempfile.TemporaryDirectory(prefix="mtcae-hub-") as staging:
        files = build_repo_folder(args.output_dir, Path(staging) / "repo", **build)
        info = push_folder(Path(staging) / "repo", args.repo_id, token=args.token, private=args.private or None,
                           revision=args.revision, commit_message=args.commit_message, create_pr=args.create_pr)
    print(f"Uploaded {len(files)} files: {', '.join(files)}")
    print(info.pr_url or info.commit_url)
    return 0


@reports_errors("mtcae-push-to-hub")
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"mtcae-push-to-hub: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

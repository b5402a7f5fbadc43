"""The self-contained Hub repo of a trained MTCAE-DFER model: build it from a training output, check it, upload it.

The repo folder holds everything `transformers` needs, with no copy of this package:

- ``config.json`` (with an ``auto_map`` for ``AutoConfig``, ``AutoModel`` and
  ``AutoModelForVideoClassification``), ``model.safetensors``, ``configuration_mtcae.py`` and
  ``modeling_mtcae.py``;
- ``video_preprocessor_config.json`` (``auto_map`` for ``AutoVideoProcessor``),
  ``video_processing_mtcae.py`` and the sibling files it imports (:data:`PROCESSOR_CODE_FILES`);
- ``README.md``: the model card (:mod:`hub_scripts.hub.model_card`) with the run's UAR / WAR in its
  ``model-index`` and in a results table, and an install line naming what the saved processor needs;
- the run's result files when present (:data:`RESULT_FILES`).

Checkpoint folders, optimizer states and pickles are never uploaded, and never unpickled: the card's
hyperparameters come from ``training_args.json`` (written by ``MTCAETrainer``), never from
``training_args.bin``. A repo folder built into a given folder (``mtcae-push-to-hub --dry_run DIR``) records
what it wrote in ``.mtcae-push-to-hub.json``; ``overwrite`` only ever deletes those files, and a folder that
holds or lies inside the training folder is refused.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from hub_scripts.hub.model_card import card_data, card_values, eval_results, render_card
from hub_scripts.hub.results import collect_results, deduplicate_rows, read_run, rows_from_metrics
from hub_scripts.loading import load_trained_model
from processing.dataset_registry import DATASETS, dataset_key, display_name
from processing.files import write_json

logger = logging.getLogger("mtcae.push_to_hub")

CONFIG_FILE = "config.json"
PROCESSOR_CONFIG_FILE = "video_preprocessor_config.json"
TRAINING_ARGS_FILE = "training_args.json"
MARKER_FILE = ".mtcae-push-to-hub.json"  # what this tool wrote into a repo folder: the only files it deletes
MODEL_CODE_FILES = ("configuration_mtcae.py", "modeling_mtcae.py")
PROCESSOR_CODE_FILES = ("video_processing_mtcae.py", "sampling_mtcae.py", "decoding_mtcae.py", "video_inputs_mtcae.py",
                        "face_labels_mtcae.py", "face_geometry_mtcae.py", "face_detection_mtcae.py", "frame_folders.py")
RESULT_FILES = ("all_results.json", "train_results.json", "eval_results.json", "test_results.json",
                "run_summary.json", "confusion_matrix.png")
AUTO_CLASSES = ("AutoConfig", "AutoModel", "AutoModelForVideoClassification")
OUR_PACKAGES = ("modeling_mtcae", "processing", "hub_scripts")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


# ------------------------------------------------------------------------------------------------
# The repo folder
# ------------------------------------------------------------------------------------------------
def prepare_repo_dir(source: Path, repo: Path, overwrite: bool) -> None:
    """Make ``repo`` an empty folder to build in, deleting only what an earlier build of this tool wrote there.

    Raises:
        ValueError: ``repo`` is, holds or lies inside ``source``.
        FileExistsError: ``repo`` is not empty and ``overwrite`` is off, or it holds files this tool did not write.
    """
    src, dst = source.resolve(), repo.resolve()
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        raise ValueError(f"the repo folder {repo} must be outside the training folder {source} (and not hold it)")
    if not repo.exists() or not any(repo.iterdir()):
        repo.mkdir(parents=True, exist_ok=True)
        return
    if not overwrite:
        raise FileExistsError(f"{repo} is not empty (pass overwrite=True / --overwrite)")
    marker = repo / MARKER_FILE
    written = set(json.loads(marker.read_text())["files"]) if marker.is_file() else set()
    present = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file() and p != marker}
    foreign = sorted(present - written) + sorted(p.relative_to(repo).as_posix() + "/" for p in repo.rglob("*")
                                                 if p.is_dir())
    if not marker.is_file() or foreign:
        what = ", ".join(foreign[:5]) if foreign else f"it has no {MARKER_FILE}"
        raise FileExistsError(f"{repo} holds files mtcae-push-to-hub did not write ({what}); --overwrite only "
                              "replaces a folder this tool built")
    for name in present:
        (repo / name).unlink()
    marker.unlink()


def read_hyperparameters(source: Path) -> dict:
    """The run's TrainingArguments from ``training_args.json``; ``training_args.bin`` (a pickle) is never read."""
    path = source / TRAINING_ARGS_FILE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    if (source / "training_args.bin").is_file():
        logger.info("%s has no %s; its training_args.bin is a pickle and is not read: the card lists no "
                    "hyperparameters.", source, TRAINING_ARGS_FILE)
    return {}


def _write_card(source: Path, repo: Path, model, processor, *, repo_id, model_name, dataset, results, metrics,
                template, license, base_model) -> None:
    run = read_run(source)
    summary = run["summary"]
    run_metrics = dict(metrics) if metrics is not None else run["metrics"]
    dataset = dataset_key(dataset) or dataset_key(summary.get("dataset"))
    rows = rows_from_metrics(run_metrics, dataset, summary.get("fold"), summary.get("test_subjects"), str(source))
    rows = deduplicate_rows(rows + collect_results(list(results), default_dataset=dataset))
    num_parameters = (sum(p.numel() for p in model.parameters()),
                      sum(p.numel() for p in model.parameters() if p.requires_grad))
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else source.resolve().name)
    values = card_values(model.config, processor, rows=rows, summary=summary, metrics=run_metrics,
                         hyperparameters=read_hyperparameters(source), num_parameters=num_parameters,
                         repo_id=repo_id, model_name=model_name, dataset=dataset)
    entry = DATASETS.get(dataset or "")
    datasets = sorted({display_name(r["dataset"]) for r in rows if r["dataset"] and r["dataset"] != "synthetic"})
    data = card_data(rows, model_name, license or (entry.license if entry else "other"),
                     base_model=base_model or summary.get("base_model"), datasets=datasets)
    if template is not None and not (isinstance(template, str) and "\n" in template):
        if not Path(template).is_file():
            raise FileNotFoundError(f"model card template {template} does not exist")
        template = Path(template).read_text(encoding="utf-8")
    render_card(values, data, template).save(repo / "README.md")


def build_repo_folder(source_dir: str | Path, repo_dir: str | Path, *, repo_id: str | None = None,
                      model_name: str | None = None, dataset: str | None = None, results=(),
                      metrics: dict | None = None, template: str | Path | None = None, license: str | None = None,
                      base_model: str | None = None, overwrite: bool = False) -> list[str]:
    """Build the self-contained repo folder from a training output (or checkpoint) folder.

    Args:
        source_dir: what ``Trainer.save_model`` / ``save_pretrained`` wrote (config, weights, processor).
        repo_dir: the folder to build (created; must be empty unless ``overwrite``, which replaces only a
            folder this function built; never the training folder, a folder inside it or one holding it).
        repo_id: the Hub repo, for the card's usage snippet.
        model_name: the card's title and model-index name (default: the repo name or the folder name).
        dataset: a key of ``processing.dataset_registry`` (default: ``run_summary.json``'s).
        results: more result sources for the card (other fold folders, cross-validation JSON).
        metrics: metrics to use instead of the folder's result files (a checkpoint in training).
        template: model card template: a path, or the text itself (a string with line breaks);
            default ``model_card.md``.
        license: the card's license tag (default: the data set's).
        base_model: the encoder checkpoint the model was fine-tuned from (card metadata).
        overwrite: replace an earlier build in ``repo_dir``.

    Returns:
        The relative paths of the files in ``repo_dir``, sorted.
    """
    source, repo = Path(source_dir), Path(repo_dir)
    if not (source / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{source} has no {CONFIG_FILE}: not a saved model folder")
    prepare_repo_dir(source, repo, overwrite)
    model, processor = load_trained_model(str(source))
    model.save_pretrained(str(repo))
    processor.save_pretrained(str(repo))
    if metrics is None:
        for name in RESULT_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, repo / name)
    _write_card(source, repo, model, processor, repo_id=repo_id, model_name=model_name, dataset=dataset,
                results=results, metrics=metrics, template=template, license=license, base_model=base_model)
    files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
    write_json(repo / MARKER_FILE, {"files": files}, indent=2)
    return verify_repo_folder(repo)


_OWN_IMPORT = re.compile(rf"^\s*(?:from|import)\s+({'|'.join(OUR_PACKAGES)})\b", flags=re.MULTILINE)


def _auto_map_problems(repo: Path, files: list[str]) -> list[str]:
    problems = []
    if CONFIG_FILE in files:
        auto_map = json.loads((repo / CONFIG_FILE).read_text()).get("auto_map", {})
        problems += [f"{CONFIG_FILE}: auto_map has no {name}" for name in AUTO_CLASSES if name not in auto_map]
        for target in auto_map.values():
            module = str(target).split("--")[-1].rsplit(".", 1)[0]
            if f"{module}.py" not in files:
                problems.append(f"{CONFIG_FILE}: auto_map names {target} but {module}.py is missing")
    if PROCESSOR_CONFIG_FILE in files:
        target = json.loads((repo / PROCESSOR_CONFIG_FILE).read_text()).get("auto_map", {}).get("AutoVideoProcessor")
        if target is None:
            problems.append(f"{PROCESSOR_CONFIG_FILE}: auto_map has no AutoVideoProcessor")
        elif f"{target.rsplit('.', 1)[0]}.py" not in files:
            problems.append(f"{PROCESSOR_CONFIG_FILE}: auto_map names {target} but its file is missing")
    return problems


def verify_repo_folder(repo_dir: str | Path) -> list[str]:
    """Check that ``repo_dir`` is a self-contained MTCAE-DFER repo; return its files (relative, sorted).

    Raises:
        ValueError: listing every problem (a missing file, an ``auto_map`` entry without its code file,
            code that imports this package, a pickle, a model card whose metadata does not parse).
    """
    repo = Path(repo_dir)
    files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file() and p.name != MARKER_FILE)
    problems = [] if {"model.safetensors", "model.safetensors.index.json"} & set(files) else ["no model.safetensors"]
    problems += [f"missing {name}" for name in (CONFIG_FILE, PROCESSOR_CONFIG_FILE, "README.md", *MODEL_CODE_FILES,
                                                *PROCESSOR_CODE_FILES) if name not in files]
    problems += _auto_map_problems(repo, files)
    for name in files:
        match = _OWN_IMPORT.search((repo / name).read_text(encoding="utf-8")) if name.endswith(".py") else None
        if match:
            problems.append(f"{name} imports {match.group(1)}, which a Hub user does not have")
        if name.endswith(PICKLE_SUFFIXES):
            problems.append(f"{name} is a pickle; only safetensors weights are uploaded")
        if "/" in name:
            problems.append(f"{name}: the repo must be one flat folder")
    if "README.md" in files:
        from huggingface_hub import ModelCard

        try:
            ModelCard((repo / "README.md").read_text(encoding="utf-8"), ignore_metadata_errors=False)
        except Exception as error:  # the card parser raises several kinds
            problems.append(f"README.md metadata does not parse: {error}")
    if problems:
        raise ValueError(f"{repo} is not a self-contained MTCAE-DFER repo:\n  " + "\n  ".join(problems))
    return files


# ------------------------------------------------------------------------------------------------
# Upload
# ------------------------------------------------------------------------------------------------
def push_folder(repo_dir: str | Path, repo_id: str, *, token: str | None = None, private: bool | None = None,
                revision: str | None = None, commit_message: str | None = None, create_pr: bool = False, api=None):
    """Create the repo (and the branch ``revision``) if needed and upload ``repo_dir`` in one commit.

    Returns the ``CommitInfo`` of ``HfApi.upload_folder``, with the full repo id in ``repo_id``
    (``create_repo`` adds the user's namespace to a bare name).
    """
    from huggingface_hub import HfApi

    verify_repo_folder(repo_dir)
    api = api or HfApi()
    url = api.create_repo(repo_id, token=token, private=private, repo_type="model", exist_ok=True)
    repo_id = url.repo_id  # with the namespace create_repo added to a bare name
    if revision and revision != "main" and not create_pr:
        api.create_branch(repo_id, branch=revision, token=token, repo_type="model", exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(repo_dir), repo_type="model", token=token,
                             commit_message=commit_message or "Upload MTCAE-DFER model", ignore_patterns=[MARKER_FILE],
                             revision=None if create_pr else revision, create_pr=create_pr)


def add_results_to_repo(repo_id: str, results: list, *, dataset: str | None = None, token: str | None = None,
                        revision: str | None = None, create_pr: bool = False, overwrite: bool = False) -> str:
    """Add result rows (fold folders, results JSON) to the ``model-index`` of a repo already on the Hub.

    Uses ``huggingface_hub.metadata_update``: rows the card has are kept; a new value for an existing
    row needs ``overwrite``. Returns the commit URL.
    """
    from huggingface_hub import metadata_update
    from huggingface_hub.repocard_data import eval_results_to_model_index

    rows = collect_results(list(results), default_dataset=dataset_key(dataset))
    if not rows:
        raise ValueError("--results gave no result rows to add")
    index = eval_results_to_model_index(repo_id.split("/")[-1], eval_results(rows))
    return metadata_update(repo_id, {"model-index": index}, repo_type="model", overwrite=overwrite, token=token,
                           revision=revision, create_pr=create_pr,
                           commit_message=f"Add {len(rows)} result row(s) to the model card")


__all__ = ["MARKER_FILE", "PROCESSOR_CODE_FILES", "TRAINING_ARGS_FILE", "add_results_to_repo", "build_repo_folder",
           "prepare_repo_dir", "push_folder", "read_hyperparameters", "verify_repo_folder"]

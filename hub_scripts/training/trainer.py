"""``MTCAETrainer``: transformers' Trainer whose Hub pushes upload the self-contained repo of
:mod:`hub_scripts.hub.repo`.

Built on Trainer's public hooks only: the pushes while training are a :class:`HubPushCallback`
(``on_save``), the final push is the public ``push_to_hub`` method, and ``save_model`` also writes
``training_args.json`` (the arguments as JSON, which the model card reads: ``training_args.bin`` is
a pickle and is never read back by this project).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy

from hub_scripts.hub.repo import TRAINING_ARGS_FILE, build_repo_folder, push_folder
from hub_scripts.loading import non_finite_parameters
from processing.files import StorageError, storage_error, write_json, write_text


def latest_eval_metrics(log_history: list[dict]) -> dict:
    """The validation metrics of the last evaluation in Trainer's ``state.log_history`` (merged)."""
    metrics: dict = {}
    for entry in log_history:
        if any(k.startswith("eval_") for k in entry):
            metrics.update(entry)
    return metrics


def _repo_id(args) -> str:
    """The Hub repo of a run: ``hub_model_id``, else the output folder's name (as Trainer chooses it)."""
    return args.hub_model_id or Path(args.output_dir).absolute().name


class HubPushCallback(TrainerCallback):
    """Upload the self-contained repo folder built from each checkpoint Trainer saves.

    Follows ``TrainingArguments.hub_strategy``: ``every_save`` uploads the repo folder (with the latest
    validation metrics in its card) after each save; ``checkpoint`` / ``all_checkpoints`` also upload
    the checkpoint folder itself, as ``last-checkpoint/`` or ``checkpoint-N/``, to resume from as
    Trainer does; ``end`` uploads nothing while training. Uploads finish before training goes on.

    Args:
        card_kwargs: forwarded to :func:`~hub_scripts.hub.repo.build_repo_folder` (``dataset``, ``license``,
            ``base_model``, ``results``, ``template``, ``model_name``).
        api: the ``huggingface_hub.HfApi`` to upload with (default: a new one).
    """

    def __init__(self, card_kwargs: dict | None = None, api=None):
        self.card_kwargs = dict(card_kwargs or {})
        self.api = api

    def on_save(self, args, state, control, **kwargs):
        strategy = HubStrategy(args.hub_strategy)
        if not state.is_world_process_zero or strategy == HubStrategy.END:
            return
        from huggingface_hub import HfApi

        api = self.api or HfApi()
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        unit = f"step {state.global_step}" if args.save_strategy == "steps" else f"epoch {int(state.epoch or 0)}"
        message = f"Training in progress, {unit}"
        with tempfile.TemporaryDirectory(prefix="mtcae-hub-") as staging:
            build_repo_folder(checkpoint, Path(staging) / "repo", repo_id=_repo_id(args),
                              metrics=latest_eval_metrics(state.log_history), **self.card_kwargs)
            info = push_folder(Path(staging) / "repo", _repo_id(args), token=args.hub_token,
                               private=args.hub_private_repo, revision=args.hub_revision, commit_message=message,
                               api=api)
        if strategy in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            api.upload_folder(repo_id=info.repo_url.repo_id, folder_path=str(checkpoint), token=args.hub_token,
                              path_in_repo="last-checkpoint" if strategy == HubStrategy.CHECKPOINT else checkpoint.name,
                              commit_message=f"{message}, checkpoint", revision=args.hub_revision)


class NonFiniteTrainingError(RuntimeError):
    """Training produced a NaN / infinite loss or gradient norm; nothing after it was saved."""


class NonFiniteLossCallback(TrainerCallback):
    """Stop training at the first logged loss or gradient norm that is NaN or infinite, before it is saved.

    Trainer's default ``logging_nan_inf_filter`` hides NaN losses from the logs (a diverged run then
    logs a loss of 0); :class:`MTCAETrainer` turns that filter off and adds this callback, so a
    diverged run stops with a message instead of saving, evaluating and pushing an all-NaN model.
    """

    def __init__(self):
        self.failure: str | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)) and self.failure is None:
                self.failure = f"the training {key} became {value} by step {state.global_step}"
                control.should_training_stop = True
                control.should_save = False
                control.should_evaluate = False
        return control


class MTCAETrainer(Trainer):
    """``transformers.Trainer`` whose Hub pushes upload the self-contained repo of :func:`build_repo_folder`.

    - With ``push_to_hub=True`` the pushes while training are a :class:`HubPushCallback` (Trainer's own
      uploads of the output folder are turned off in the Trainer's copy of the arguments): the same
      repo folder ``mtcae-push-to-hub`` builds, no ``training_args.bin``, no optimizer state.
    - ``push_to_hub()`` saves the model, builds the repo folder from ``output_dir`` (weights, config,
      code, processor, result files, the rendered model card) and uploads exactly that.
    - ``save_model()`` also writes ``training_args.json``; ``create_model_card()`` writes this project's
      card to ``output_dir/README.md``.
    - A NaN / infinite loss or gradient norm stops training (:class:`NonFiniteLossCallback`) and
      ``train()`` raises :class:`NonFiniteTrainingError` naming the step and the last checkpoint saved
      before it; ``save_model()`` refuses weights that are not finite.

    Args:
        hub_card_kwargs: forwarded to :func:`build_repo_folder` (``dataset``, ``license``, ``base_model``,
            ``results``, ``template``, ``model_name``).
        Everything else: as ``transformers.Trainer``.
    """

    def __init__(self, *args, hub_card_kwargs: dict | None = None, **kwargs):
        self.hub_card_kwargs = dict(hub_card_kwargs or {})
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        self.requested_args = training_args  # what the caller asked for, written to training_args.json
        if training_args is not None and training_args.push_to_hub:
            own_copy = copy.copy(training_args)
            own_copy.push_to_hub = False  # Trainer would upload output_dir as it is: the callback uploads instead
            if len(args) > 1:
                args = (args[0], own_copy, *args[2:])
            else:
                kwargs["args"] = own_copy
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), HubPushCallback(self.hub_card_kwargs)]
        self.non_finite = NonFiniteLossCallback()
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), self.non_finite]
        super().__init__(*args, **kwargs)
        self.args.logging_nan_inf_filter = False  # a NaN loss must reach the logs (and the callback)

    def training_step(self, model, inputs, num_items_in_batch=None):
        """Trainer's step, after checking that the batch is finite: a NaN or an infinity in the data stops training
        with a message that blames the data, not the learning rate."""
        bad = [name for name, value in inputs.items()
               if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]
        if bad:
            raise NonFiniteTrainingError(
                f"the batch of training step {self.state.global_step + 1} holds NaN or infinite {', '.join(bad)}: the "
                "data, not the learning rate, is at fault (face labels from the face-label cache are checked and such "
                "frames left out; check a data set or a transform of your own)")
        return super().training_step(model, inputs, num_items_in_batch)

    def train(self, *args, **kwargs):
        result = super().train(*args, **kwargs)
        if self.non_finite.failure:
            checkpoint = self.state.best_model_checkpoint or _last_checkpoint(self.args.output_dir)
            kept = f"the last checkpoint saved before it is {checkpoint}" if checkpoint else "no checkpoint was saved"
            raise NonFiniteTrainingError(
                f"Training diverged: {self.non_finite.failure}; training stopped and nothing after it was saved "
                f"({kept}). Lower --learning_rate (now {self.args.learning_rate:g}) or set --max_grad_norm.")
        return result

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        bad = non_finite_parameters(self.model)
        if bad:
            raise NonFiniteTrainingError(f"refusing to save a model with non-finite weights ({len(bad)} tensors, e.g. "
                                         f"{', '.join(bad[:3])})")
        folder = Path(output_dir or self.args.output_dir)
        try:
            super().save_model(output_dir, _internal_call)  # safetensors writes model.safetensors atomically
        except (OSError, RuntimeError) as error:
            said = storage_error(error, folder)
            if said is None:
                raise
            raise said from error
        if self.args.should_save:
            write_text(folder / TRAINING_ARGS_FILE, (self.requested_args or self.args).to_json_string())

    def _save_checkpoint(self, model, trial) -> None:
        """Trainer's checkpoint; a write refused for lack of space or permission removes the checkpoint folder it
        was writing (a resume would take it for complete) and raises a one-line :class:`StorageError` naming the
        last complete checkpoint."""
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        new = not folder.exists()
        try:
            super()._save_checkpoint(model, trial)
        except (OSError, RuntimeError) as error:
            said = storage_error(error, folder)
            if said is None:
                raise
            if new and self.args.should_save:
                shutil.rmtree(folder, ignore_errors=True)
            last = _last_checkpoint(self.args.output_dir)
            raise StorageError(f"{said} (the last complete checkpoint, to resume from: {last or 'none'})",
                               said.errno) from error

    def save_metrics(self, split: str, metrics: dict, combined: bool = True) -> None:
        """Trainer's ``{split}_results.json`` and ``all_results.json``, each written atomically."""
        if not self.is_world_process_zero():
            return
        folder = Path(self.args.output_dir)
        write_json(folder / f"{split}_results.json", metrics, indent=4, sort_keys=True)
        if combined:
            path = folder / "all_results.json"
            merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            write_json(path, {**merged, **metrics}, indent=4, sort_keys=True)

    def create_model_card(self, **kwargs) -> None:
        if not self.is_world_process_zero():
            return
        with tempfile.TemporaryDirectory() as staging:
            build_repo_folder(self.args.output_dir, Path(staging) / "repo", repo_id=_repo_id(self.args),
                              **self.hub_card_kwargs)
            (Path(self.args.output_dir) / "README.md").write_bytes((Path(staging) / "repo" / "README.md").read_bytes())

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None, **kwargs):
        """Save the model, build the self-contained repo folder from ``output_dir`` and upload it (blocking)."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        with tempfile.TemporaryDirectory(prefix="mtcae-hub-") as staging:
            build_repo_folder(self.args.output_dir, Path(staging) / "repo", repo_id=_repo_id(self.args),
                              **self.hub_card_kwargs)
            return push_folder(Path(staging) / "repo", _repo_id(self.args),
                               token=token if token is not None else self.args.hub_token,
                               private=self.args.hub_private_repo if private is None else private,
                               revision=revision if revision is not None else self.args.hub_revision,
                               commit_message=commit_message)


def _last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None


__all__ = ["HubPushCallback", "MTCAETrainer", "NonFiniteLossCallback", "NonFiniteTrainingError", "latest_eval_metrics"]

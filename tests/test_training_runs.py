"""End-to-end runs of the training scripts on a small synthetic set: resume, two processes, folds, ablation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

REPO_ROOT = Path(__file__).resolve().parents[1]

# Steps, not epochs: each run is a few optimiser steps of the tiny preset.
QUICK_ARGS = [
    "--synthetic_actors", "4", "--synthetic_clips_per_class", "1", "--num_folds", "2",
    "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
    "--eval_strategy", "steps", "--save_strategy", "steps", "--logging_steps", "1",
]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    from processing.synthetic import generate_synthetic_dfer

    root = tmp_path_factory.mktemp("synthetic") / "synth"
    # The settings train.py's synthetic loader asks for with QUICK_ARGS, so the runs find the set complete.
    generate_synthetic_dfer(root, num_actors=4, clips_per_class=1, num_workers=0, progress=False)
    return root


def _weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "model.safetensors"))


class StopAtStep(TrainerCallback):
    """Simulates a job killed right after the checkpoint of `step` was written."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


def test_resumed_training_ends_with_the_weights_of_an_uninterrupted_run(synthetic_root, tmp_path):
    from hub_scripts.train import parse_args, run

    common = ["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "4", "--save_steps", "2",
              "--eval_steps", "2", "--load_best_model_at_end", "False", "--seed", "7"]
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run(*parse_args(common + ["--output_dir", str(full_dir)]))

    run(*parse_args(common + ["--output_dir", str(cut_dir)]), callbacks=[StopAtStep(2)])
    assert (cut_dir / "checkpoint-2").is_dir() and not (cut_dir / "checkpoint-4").exists()
    interrupted = _weights(cut_dir)
    run(*parse_args(common + ["--output_dir", str(cut_dir), "--resume_from_checkpoint", str(cut_dir / "checkpoint-2")]))

    full, resumed = _weights(full_dir), _weights(cut_dir)
    assert full.keys() == resumed.keys()
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], rtol=0, atol=1e-6, msg=name)
    # The check can fail: the interrupted run's weights differ from the finished ones.
    assert any(not torch.equal(interrupted[name], full[name]) for name in full)


def test_best_checkpoint_reload_keeps_the_encoder_query_value_biases(synthetic_root, tmp_path):
    """load_best_model_at_end reloads with a plain load_state_dict: VideoMAE's q/v biases must survive."""
    from hub_scripts.train import parse_args, run

    output_dir = tmp_path / "best"
    run(*parse_args(["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "4", "--save_steps", "2",
                     "--eval_steps", "2", "--output_dir", str(output_dir)]))
    state = json.loads((output_dir / "checkpoint-4" / "trainer_state.json").read_text())
    best = Path(state["best_model_checkpoint"])
    summary = json.loads((output_dir / "run_summary.json").read_text())
    assert (summary["dataset"], summary["fold_scheme"], summary["fold"]) == ("synthetic", "subject_kfold", 1)
    # The arguments are kept as JSON next to the weights (the model card reads them; the pickle is never read).
    assert json.loads((output_dir / "training_args.json").read_text())["max_steps"] == 4
    final, best_weights = _weights(output_dir), _weights(output_dir / best.name)
    assert any(name.endswith("q_bias") for name in final)
    for name in best_weights:
        torch.testing.assert_close(final[name], best_weights[name], rtol=0, atol=0, msg=name)


def test_two_processes_on_an_empty_data_root_render_it_once_then_train_and_save(tmp_path):
    """Both processes start on an empty data root: the main one renders the set, the other waits for it."""
    output_dir, data_root = tmp_path / "ddp", tmp_path / "synth"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               "-m", "hub_scripts.train", "--data_root", str(data_root), *QUICK_ARGS, "--max_steps", "2",
               "--save_steps", "2", "--eval_steps", "2", "--ddp_backend", "gloo", "--output_dir", str(output_dir)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    failed_rank_lines = "\n".join(line for line in result.stderr.splitlines() if line.startswith("[rank1]"))
    assert result.returncode == 0, failed_rank_lines[-3000:] + result.stderr[-3000:]
    assert (data_root / "synthetic_info.json").is_file() and not list(data_root.rglob("*.tmp.*"))
    state = json.loads((output_dir / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    summary = json.loads((output_dir / "run_summary.json").read_text())
    assert summary["world_size"] == 2
    results = json.loads((output_dir / "all_results.json").read_text())
    assert 0.0 <= results["test_uar"] <= 1.0 and 0.0 <= results["test_war"] <= 1.0
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "config.json").is_file()


def test_cross_validation_and_ablation_tables(synthetic_root, tmp_path, capsys):
    from hub_scripts.ablate import main as ablate_main

    output_dir = tmp_path / "ablation"
    ablate_main(["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "1", "--save_steps", "1",
                 "--eval_steps", "1", "--modes", "single_task", "cascaded", "--output_dir", str(output_dir)])
    summaries = json.loads((output_dir / "ablation.json").read_text())
    printed = capsys.readouterr().out
    assert set(summaries) == {"single_task", "cascaded"}
    for mode, summary in summaries.items():
        folds = summary["folds"]
        assert [row["fold"] for row in folds] == [1, 2]
        # Every subject is tested exactly once over the folds.
        tested = [s for row in folds for s in row["test_subjects"]]
        assert sorted(tested) == ["01", "02", "03", "04"]
        uars = [row["test_uar"] for row in folds]
        assert summary["uar_mean"] == pytest.approx(sum(uars) / 2)
        assert summary["uar_std"] == pytest.approx(abs(uars[0] - uars[1]) / 2)
        table = (output_dir / mode / "cv_results.md").read_text()
        for row in folds:
            subjects = ", ".join(row["test_subjects"])
            assert (f"| Synthetic DFER | {row['fold']} | test | {subjects} | {row['num_test_clips']} | "
                    f"{100 * row['test_uar']:.2f} | {100 * row['test_war']:.2f} |") in table
        mean, std = 100 * summary["uar_mean"], 100 * summary["uar_std"]
        assert f"| **Synthetic DFER** | **mean ± std (2 folds)** | test | | | **{mean:.2f} ± {std:.2f}** |" in table
        assert json.loads((output_dir / mode / "cv_results.json").read_text())["num_folds_finished"] == 2
        assert (output_dir / mode / "cv_confusion_matrix.png").stat().st_size > 0
    ablation = (output_dir / "ablation.md").read_text()
    assert ablation.startswith("| Framework | Fold |")
    for title in ("single-task (expression decoder only) (`single_task`)", "cascaded MTL (MTCAE-DFER) (`cascaded`)"):
        assert f"| **{title}** | **mean ± std (2 folds)** |" in ablation
    assert "Framework ablation" in printed and ablation in printed


def test_pca_init_is_chosen_only_for_encoders_trained_from_scratch():
    from hub_scripts.training.arguments import ModelArguments
    from hub_scripts.training.model import build_model, uses_pca_init

    classes = ["a", "b"]
    scratch = build_model(ModelArguments(preset="tiny"), classes)
    frozen = build_model(ModelArguments(preset="tiny", freeze_encoder=True), classes)
    assert uses_pca_init(ModelArguments(), scratch)
    assert not uses_pca_init(ModelArguments(), frozen)  # a frozen random encoder gains nothing from it
    assert not uses_pca_init(ModelArguments(encoder="some/videomae"), scratch)  # never overwrite pretrained weights
    assert not uses_pca_init(ModelArguments(patch_embedding_init="random"), scratch)
    assert uses_pca_init(ModelArguments(patch_embedding_init="pca", encoder="some/videomae"), scratch)
    with pytest.raises(ValueError, match="patch_embedding_init"):
        ModelArguments(patch_embedding_init="xavier")  # refused when the arguments are made, before any data


def test_face_modes_without_a_face_label_cache_are_refused(tmp_path, clips_dir):
    from hub_scripts.train import main

    # A RAVDESS-layout set of real clips without a face-label cache: face_align cannot work, and says what to run.
    source = clips_dir / "single_face.mp4"
    for actor in range(1, 5):
        for emotion in ("01", "03"):
            folder = tmp_path / "data" / f"Actor_{actor:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"02-01-{emotion}-01-01-01-{actor:02d}.mp4").write_bytes(source.read_bytes())
    with pytest.raises(FileNotFoundError, match="mtcae-annotate"):
        main(["--dataset", "ravdess", "--data_root", str(tmp_path / "data"), "--fold_scheme", "subject_kfold",
              "--num_folds", "2", "--resize_mode", "face_align", "--output_dir", str(tmp_path / "out")])


def test_arguments_are_checked_before_any_data_is_loaded(tmp_path, capsys):
    from hub_scripts.train import main

    data_root = tmp_path / "never-rendered"
    common = ["--data_root", str(data_root), "--output_dir", str(tmp_path / "out")]
    cases = {
        ("--patch_embedding_init", "xavier"): "invalid choice: 'xavier'",
        ("--fold_scheme", str(tmp_path / "missing.json")): "cannot read the split file",
        ("--fold_scheme", "ravdess6", "--fold", "7"): "--fold 7 is out of range: ravdess6 has folds 1-6",
        ("--dataset", "mead", "--mead_views", "sideways"): "--mead_views must be one of",
        ("--encoder", "some/videomae", "--config", "config.json"): "--config and --encoder both say",
        ("--num_folds", "1"): "--num_folds must be >= 2",
    }
    for flags, message in cases.items():
        with pytest.raises(SystemExit) as info:
            main([*common, *flags])
        assert info.value.code == 2 and message in capsys.readouterr().err, flags
    assert not data_root.exists()  # nothing was rendered or loaded


def test_split_file_and_fold_errors_come_before_training(synthetic_root, tmp_path):
    from hub_scripts.train import parse_args, run

    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps({"a": {"train": ["01", "02"], "val": ["03"], "test": ["04", "66"]}}))
    cases = {
        ("--fold_scheme", str(split_file)): r"splits.json: fold 'a': test subjects \['66'\] are not in the data set",
        # The 4 synthetic actors are ravdess6's fold 1: fold 2 is refused by its number.
        ("--fold_scheme", "ravdess6", "--fold", "2"): r"fold 2 of ravdess6 \(subjects 5-8\) has no test subjects",
    }
    for flags, message in cases.items():
        output_dir = tmp_path / "out"
        with pytest.raises(ValueError, match=message):
            run(*parse_args(["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "1",
                             "--output_dir", str(output_dir), *flags]))
        assert not list(output_dir.iterdir()), "nothing trained or written"


def test_an_output_dir_that_cannot_be_written_is_refused_before_the_data_is_loaded(tmp_path):
    from hub_scripts.train import parse_args, run

    data_root, blocker = tmp_path / "synth", tmp_path / "a_file"
    blocker.write_text("not a folder")
    for output_dir, message in ((blocker, "--output_dir .*a_file is a file, not a folder"),
                                (blocker / "run", "--output_dir .*a_file/run cannot be written")):
        with pytest.raises(OSError, match=message):
            run(*parse_args(["--data_root", str(data_root), *QUICK_ARGS, "--max_steps", "1",
                             "--output_dir", str(output_dir)]))
    assert not data_root.exists() and blocker.read_text() == "not a folder"  # nothing rendered, nothing replaced


def test_processes_checking_one_output_dir_at_once_leave_no_probe_and_all_pass(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from processing.files import check_writable_folder

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: check_writable_folder(tmp_path / "out", "--output_dir"), range(64)))
    assert list((tmp_path / "out").iterdir()) == []

"""Training that goes wrong says so: a diverged run stops unsaved, a resume with other options is refused,
a video that breaks mid-clip is reported and the run goes on."""

from __future__ import annotations

import shutil

import pytest
from test_training_runs import QUICK_ARGS, synthetic_root  # noqa: F401  (the shared tiny synthetic set)


def test_a_diverging_run_stops_with_a_message_and_saves_no_nan_model(synthetic_root, tmp_path):  # noqa: F811
    from hub_scripts.train import parse_args, run
    from hub_scripts.training.trainer import NonFiniteTrainingError

    output_dir = tmp_path / "nan"
    args = parse_args(["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "6", "--save_steps", "3",
                       "--eval_steps", "3", "--learning_rate", "1e9", "--output_dir", str(output_dir)])
    with pytest.raises(NonFiniteTrainingError, match="Training diverged: the training (loss|grad_norm) became nan"):
        run(*args)
    assert not (output_dir / "model.safetensors").exists()  # no all-NaN model next to the run's results
    assert not (output_dir / "test_results.json").exists()


def test_resuming_with_another_decoder_mode_names_the_flag(synthetic_root, tmp_path):  # noqa: F811
    from hub_scripts.train import parse_args, run

    common = ["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "2", "--save_steps", "2",
              "--eval_steps", "2", "--output_dir", str(tmp_path / "run")]
    run(*parse_args(common))
    checkpoint = tmp_path / "run" / "checkpoint-2"
    with pytest.raises(ValueError, match=r"decoder_mode='cascaded'.*--decoder_mode"):
        run(*parse_args([*common, "--decoder_mode", "parallel", "--resume_from_checkpoint", str(checkpoint)]))


def test_a_video_truncated_mid_clip_is_reported_and_training_goes_on(synthetic_root, tmp_path):  # noqa: F811
    from hub_scripts.train import parse_args, run

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    victim = sorted(root.rglob("*.mp4"))[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # the header survives: frame 0 decodes, the tail does not
    result = run(*parse_args(["--data_root", str(root), *QUICK_ARGS, "--max_steps", "2", "--save_steps", "2",
                              "--eval_steps", "2", "--output_dir", str(tmp_path / "run")]))
    assert result["test_uar"] >= 0
    import json

    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert str(victim) in summary["unreadable_videos"]


def test_a_model_with_non_finite_weights_is_refused_by_push_and_predict(tmp_path):
    import torch
    from mtcae_test_utils import tiny_config

    from hub_scripts.hub.repo import build_repo_folder
    from hub_scripts.inference.windows import PredictError, load_model
    from modeling_mtcae import MTCAEForVideoClassification

    model = MTCAEForVideoClassification(tiny_config())
    with torch.no_grad():
        for parameter in model.expression_head.parameters():
            parameter.fill_(float("nan"))  # what a diverged run leaves
    model.save_pretrained(tmp_path / "run")
    with pytest.raises(ValueError, match="not finite"):
        build_repo_folder(tmp_path / "run", tmp_path / "repo")
    assert not (tmp_path / "repo" / "model.safetensors").exists()
    with pytest.raises(PredictError, match="not finite"):
        load_model(str(tmp_path / "run"))


def test_the_on_the_fly_probe_finds_a_video_truncated_after_its_first_frames(tmp_path):
    import av
    import numpy as np

    from processing.clip_transform import find_unreadable_videos
    from processing.video_processing_mtcae import read_video

    good = tmp_path / "good.mp4"
    with av.open(str(good), "w", options={"movflags": "faststart"}) as container:  # index first: frame 0 survives
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(40):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    victim = tmp_path / "truncated.mp4"
    data = good.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    read_video(victim, indices=[0])  # what the old probe decoded still works: the damage is further on
    assert list(find_unreadable_videos([str(good), str(victim)])) == [str(victim)]


def test_resuming_with_loader_workers_and_augmentation_says_it_is_not_exact(tmp_path, caplog):
    """0 workers resume bit for bit (test_training_runs); workers are seeded anew, so the run warns."""
    from hub_scripts.training.arguments import DataArguments, MTCAETrainingArguments
    from hub_scripts.training.model import warn_if_resume_redraws_augmentation

    def check(workers: int, **data) -> bool:
        args = MTCAETrainingArguments(output_dir=str(tmp_path), dataloader_num_workers=workers)
        return warn_if_resume_redraws_augmentation(DataArguments(**data), args)

    with caplog.at_level("WARNING", logger="mtcae.train"):
        assert check(2) and "--dataloader_num_workers 0 resumes exactly" in caplog.text
    assert check(1, temporal_jitter=False, random_flip=True)
    assert not check(0)
    assert not check(2, temporal_jitter=False)

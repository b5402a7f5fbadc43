"""The prepared-clip cache: same model inputs as the on-the-fly processor, resumable, never stale."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from processing.annotation_cache import AnnotationCache, attach_face_labels
from processing.datasets import load_ravdess
from processing.prepared_cache import PreparedClipCache
from processing.prepared_clips import ENTRY_COLUMN, PreparedClipTransform, attach_prepared_entries
from processing.sampling_mtcae import stored_frame_indices
from processing.video_processing_mtcae import MTCAEVideoProcessor, read_video

RESIZE_MODES = ("full_frame", "shortest_edge", "face_crop", "face_align")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    from processing.synthetic import generate_synthetic_dfer

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_dfer(root, num_actors=2, clips_per_class=1, num_frames=24, size=(96, 128), num_workers=1,
                            progress=False)
    return root


def _labels(root: Path) -> AnnotationCache:
    return AnnotationCache(root / "face_labels.parquet")


def _table(root: Path, limit: int = 4):
    table = load_ravdess(root, num_classes=7).select(range(limit))
    return attach_face_labels(table, _labels(root))


def _on_the_fly(processor, video, labels, indices, flip=False):
    """The processor's own path for explicit source frames: decode them, then process as __call__ does."""
    frames, indices, info = read_video(video, indices=indices)
    prepared = processor.prepare_frames(frames, indices, face_labels=labels,
                                        num_source_frames=info["num_source_frames"])
    labels_out = {k: prepared[k] for k in ("face_boxes", "face_landmarks", "face_mask") if k in prepared}
    return processor.finalize(prepared["frames"], flip=flip, **labels_out)


def test_stored_frames_are_every_frame_of_short_clips_and_cover_every_segment_of_long_ones():
    assert np.array_equal(stored_frame_indices(40, 16, 4), np.arange(40))
    stored = stored_frame_indices(300, 16, 4)
    assert len(stored) <= 16 * 6 and np.all(np.diff(stored) > 0)
    for i in range(16):  # every segment keeps its centre and at least four frames
        start, end = i * 300 // 16, (i + 1) * 300 // 16
        inside = stored[(stored >= start) & (stored < end)]
        assert len(inside) >= 4 and int(np.floor((i + 0.5) * 300 / 16)) in inside


@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
def test_cached_inputs_equal_the_on_the_fly_processor_in_every_resize_mode(synthetic, tmp_path, resize_mode):
    processor = MTCAEVideoProcessor(num_frames=8, size={"height": 48, "width": 48}, resize_mode=resize_mode)
    table = _table(synthetic, limit=3)
    cache = PreparedClipCache(tmp_path / "cache", processor)
    table, report = attach_prepared_entries(table, cache, _labels(synthetic), progress=False)
    assert report.prepared == 3 and not report.failed
    transform = PreparedClipTransform(cache)
    cached = transform(table[:])
    for row, video in enumerate(table["video"]):
        labels = _labels(synthetic).labels_of(table)[row]
        num_source = read_video(video, indices=[0])[2]["num_source_frames"]
        indices = np.floor((np.arange(8) + 0.5) * num_source / 8).astype(np.int64)
        reference = _on_the_fly(processor, video, labels, indices)
        torch.testing.assert_close(cached["pixel_values"][row], reference["pixel_values"], rtol=0, atol=0)
        for name in ("face_boxes", "face_landmarks", "face_mask"):
            torch.testing.assert_close(cached[name][row], reference[name], rtol=0, atol=0)


def test_cached_training_jitter_and_flip_give_the_processor_output_for_the_drawn_frames(synthetic, tmp_path):
    processor = MTCAEVideoProcessor(num_frames=8, size={"height": 48, "width": 48}, resize_mode="face_align")
    table = _table(synthetic, limit=2)
    cache = PreparedClipCache(tmp_path / "cache", processor)
    table, _ = attach_prepared_entries(table, cache, _labels(synthetic), progress=False)
    transform = PreparedClipTransform(cache, train=True, random_flip=True)
    labels = _labels(synthetic).labels_of(table)
    seen_flip = set()
    for seed in range(6):
        clip = transform.clip(table[0][ENTRY_COLUMN], np.random.default_rng(seed))
        indices = clip["frame_indices"].numpy()
        num_source = read_video(table[0]["video"], indices=[0])[2]["num_source_frames"]
        segments = (np.arange(8) * num_source) // 8
        assert np.all(indices >= segments) and np.all(indices < np.append(segments[1:], num_source))
        flipped = None
        for flip in (False, True):
            reference = _on_the_fly(processor, table[0]["video"], labels[0], indices, flip=flip)
            if torch.equal(reference["pixel_values"], clip["pixel_values"]):
                flipped = flip
                torch.testing.assert_close(clip["face_landmarks"], reference["face_landmarks"], rtol=0, atol=0)
        assert flipped is not None
        seen_flip.add(flipped)
    assert seen_flip == {False, True}


def test_the_real_clip_gives_the_same_inputs_from_the_cache(clips_dir, tmp_path):
    processor = MTCAEVideoProcessor(num_frames=16, size={"height": 64, "width": 64}, resize_mode="shortest_edge")
    video = str(clips_dir / "single_face.mp4")
    cache = PreparedClipCache(tmp_path / "cache", processor)
    assert cache.prepare([video], progress=False).prepared == 1
    entry = cache.load(video)
    expected = processor(video, return_tensors="pt")["pixel_values"][0]
    transform = PreparedClipTransform(cache)
    got = transform({ENTRY_COLUMN: [str(cache.entry_path(video))], "label": [0]})["pixel_values"][0]
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert entry["frames"].dtype == torch.uint8 and tuple(entry["frames"].shape[1:]) == (3, 64, 64)


def test_a_changed_video_label_or_setting_is_prepared_again_never_served_stale(synthetic, tmp_path):
    processor = MTCAEVideoProcessor(num_frames=8, size={"height": 32, "width": 32})
    source = sorted(synthetic.rglob("*.mp4"))[0]
    video = tmp_path / "clip.mp4"
    video.write_bytes(source.read_bytes())
    cache = PreparedClipCache(tmp_path / "cache", processor)
    assert cache.prepare([str(video)], progress=False).prepared == 1
    assert cache.prepare([str(video)], progress=False).reused == 1
    other = sorted(synthetic.rglob("*.mp4"))[1]
    video.write_bytes(other.read_bytes())  # replaced: another size / mtime
    os.utime(video, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert str(video) not in cache
    assert cache.prepare([str(video)], progress=False).prepared == 1
    torch.testing.assert_close(cache.load(str(video))["frames"][0],
                               processor.prepare_frames(read_video(other, indices=[0])[0], [0])["frames"][0])
    resized = PreparedClipCache(tmp_path / "cache", MTCAEVideoProcessor(num_frames=8, size={"height": 40, "width": 40}))
    assert str(video) not in resized
    labels = {"boxes": [[0.1, 0.1, 0.5, 0.5]], "landmarks": [[[0.2, 0.2]] * 5], "mask": [True], "frame_indices": [0]}
    assert (str(video), labels) not in cache


def test_an_unreadable_video_is_reported_and_the_others_are_prepared_by_the_workers(synthetic, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    good = [str(p) for p in sorted(synthetic.rglob("*.mp4"))[:2]]
    cache = PreparedClipCache(tmp_path / "cache", MTCAEVideoProcessor(num_frames=8, size={"height": 32, "width": 32}))
    report = cache.prepare([good[0], str(broken), good[1]], num_workers=2, progress=False)  # worker processes
    assert report.prepared == 2 and list(report.failed) == [str(broken)]
    assert "broken.mp4" in report.summary()


def test_an_unwritable_cache_folder_is_refused_before_any_decoding(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cache = PreparedClipCache(blocker / "cache", MTCAEVideoProcessor())
    with pytest.raises(PermissionError, match="cannot write the prepared-clip cache"):
        cache.prepare(["does-not-matter.mp4"], progress=False)


def test_a_killed_prepare_resumes_and_never_serves_a_half_written_entry(synthetic, tmp_path):
    cache_dir = tmp_path / "cache"
    command = [sys.executable, "-m", "hub_scripts.prepare", str(synthetic), "--dataset", "ravdess",
               "--cache_dir", str(cache_dir), "--resize_mode", "face_align", "--preset", "tiny"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache_dir.rglob("[0-9a-f]*.safetensors"))) < 2:
        time.sleep(0.05)
    child.kill()
    child.wait()
    done = len(list(cache_dir.rglob("[0-9a-f]*.safetensors")))
    assert done >= 2
    from safetensors.torch import load_file

    for entry in cache_dir.rglob("[0-9a-f]*.safetensors"):
        assert load_file(entry)["frames"].dtype == torch.uint8  # every visible entry is whole
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"{done} already in the cache" in finished.stdout or "already in the cache" in finished.stdout
    assert len(list(cache_dir.rglob("[0-9a-f]*.safetensors"))) == len(list(synthetic.rglob("*.mp4")))
    assert not list(cache_dir.rglob(".tmp-*"))  # no leftovers served or kept after a clean run


def test_training_on_cached_encoder_tokens_equals_the_full_model(synthetic, tmp_path):
    from mtcae_test_utils import tiny_config

    from modeling_mtcae import MTCAEForVideoClassification
    from processing.feature_cache import EncoderFeatureCache, EncoderFeatureTransform

    config = tiny_config(freeze_encoder=True, num_labels=7)
    for name in ("projection_dropout", "decoder_dropout", "decoder_attention_dropout", "head_dropout"):
        setattr(config, name, 0.0)
    model = MTCAEForVideoClassification(config)
    height, width = config.image_size
    processor = MTCAEVideoProcessor(num_frames=config.num_frames, size={"height": height, "width": width},
                                    resize_mode="face_align")
    table = _table(synthetic, limit=3)
    cache = PreparedClipCache(tmp_path / "cache", processor)
    table, _ = attach_prepared_entries(table, cache, _labels(synthetic), progress=False)
    inputs = PreparedClipTransform(cache)
    features = EncoderFeatureCache(tmp_path / "cache", model, dtype="float32")
    assert features.fill(table, inputs, batch_size=2, progress=False) == 3
    assert features.fill(table, inputs, batch_size=2, progress=False) == 0  # already there
    cached = EncoderFeatureTransform(features, inputs)(table[:])
    full = inputs(table[:])
    assert "pixel_values" not in cached and cached["encoder_outputs"].shape[1] == config.num_tokens
    model.train()
    losses, grads = [], []
    for batch in (full, cached):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[0], losses[1])
    assert grads[0].keys() == grads[1].keys() and any("decoders" in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)
    other = EncoderFeatureCache(tmp_path / "cache", model, dtype="bfloat16")
    assert other.folder != features.folder  # another dtype (or encoder) never reads these tokens


def test_the_feature_cache_refuses_augmented_inputs_and_a_trained_encoder():
    from hub_scripts.training.arguments import DataArguments

    with pytest.raises(ValueError, match="--temporal_jitter False"):
        DataArguments(cache_encoder_features=True)
    with pytest.raises(ValueError, match="random_flip"):
        DataArguments(cache_encoder_features=True, temporal_jitter=False, random_flip=True)
    DataArguments(cache_encoder_features=True, temporal_jitter=False)  # deterministic: accepted

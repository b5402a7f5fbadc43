"""One command for a GPU machine: the CUDA tests, ``bench_gpu`` on the ``paper`` preset and the inference benchmark on
CUDA, with one JSON and one Markdown table written into ``--output``. Planned to take at most 8 minutes on one H100.

Steps (each one's time, status and figures are recorded; a failing step does not stop the others):

1. ``pytest -m cuda tests/test_cuda.py``: a bf16 training step against fp32, the flash sdpa kernel against the math
   one, ``torch.compile``, the ``paper`` preset's forward and backward, two Trainer steps on the synthetic set.
2. ``bench_gpu``: the ``paper`` preset against VideoMAE, inference and training, bf16.
3. ``bench_inference`` on the device: the ``base`` preset on a 60-s clip.

``--smoke`` runs the same steps with tiny settings, on the CPU where there is no GPU (the suite runs it so).

Example::

    python -m hub_scripts.bench.device_check --output device_check/
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hub_scripts.bench import bench_gpu, bench_inference
from hub_scripts.bench.common import machine_summary, markdown_table
from processing.files import write_json, write_text

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="device_check", help="folder for device_check.json and .md")
    parser.add_argument("--smoke", action="store_true", help="tiny settings (a check of the script itself)")
    return parser.parse_args(argv)


def _steps(smoke: bool, device: str) -> dict[str, Any]:
    gpu = ["--device", device, "--preset", "tiny" if smoke else "paper", "--batch-sizes", *(["1"] if smoke else
           ["16", "32"]), "--repeats", "1" if smoke else "5", "--warmup", "0" if smoke else "2"]
    gpu += ["--dtype", "fp32", "--peak-tflops", "1"] if smoke else []
    inference = ["--device", device, "--preset", "tiny" if smoke else "base", "--seconds", "2" if smoke else "60",
                 "--paths", "fp32", *(["--size", "96", "64", "--framings", "full_frame"] if smoke else ["bf16"])]
    return {
        "cuda tests": lambda: _pytest(),
        "bench_gpu": lambda: bench_gpu.main(gpu),
        "bench_inference": lambda: bench_inference.main(inference),
    }


def _pytest() -> dict:
    """The CUDA tests in a child process: ``{"returncode", "summary"}`` (its last line)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py", "-p",
                           "no:cacheprovider"], cwd=REPO, capture_output=True, text=True, timeout=420)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode not in (0, 5) and "skipped" not in summary:
        raise RuntimeError(f"pytest exited {done.returncode}: {summary}")
    return {"returncode": done.returncode, "summary": summary}


def main(argv: list[str] | None = None) -> dict:
    """Run every step; write and return the report."""
    args = parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {"machine": machine_summary(), "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "smoke": args.smoke, "steps": {}}
    for name, step in _steps(args.smoke, device).items():
        start, printed = time.perf_counter(), io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                result, status = step(), "ok"
        except Exception as error:  # one step's failure is a finding, not the end of the check
            result, status = f"{type(error).__name__}: {error}", "failed"
        report["steps"][name] = {"status": status, "seconds": round(time.perf_counter() - start, 1),
                                 "result": result}
        print(f"device_check: {name}: {status} in {report['steps'][name]['seconds']} s", flush=True)
    folder = Path(args.output)
    write_json(folder / "device_check.json", report, indent=2, default=str)
    write_text(folder / "device_check.md", _markdown(report))
    print(f"device_check: wrote {folder / 'device_check.json'} and {folder / 'device_check.md'}")
    return report


def _markdown(report: dict) -> str:
    lines = [f"# Device check: {report['device']}", "", report["machine"], ""]
    lines.append(markdown_table([{"step": name, "status": step["status"], "seconds": step["seconds"]}
                                 for name, step in report["steps"].items()]))
    for name, step in report["steps"].items():
        if isinstance(step["result"], list) and step["result"]:
            lines += ["", f"## {name}", "", markdown_table(step["result"], digits=3)]
        elif step["result"]:
            lines += ["", f"## {name}", "", f"    {step['result']}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

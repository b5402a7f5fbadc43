"""The test helpers that stand for a Python without this package, or with only some distributions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from mtcae_test_utils import isolated_env, isolation_prelude, requirement_closure, run_with_only


def test_isolation_blocks_the_package_but_keeps_a_venv_inside_the_repo(tmp_path):
    # A checkout with its virtual environment inside it, as a newcomer makes one.
    root = tmp_path / "repo"
    (root / "modeling_mtcae").mkdir(parents=True)
    (root / "modeling_mtcae" / "__init__.py").write_text("")
    site = root / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "venv_only_probe.py").write_text("VALUE = 42\n")
    out = tmp_path / "paths.json"
    script = isolation_prelude() + textwrap.dedent(f"""
        import json
        import venv_only_probe  # a package installed in the venv inside the repo stays importable
        try:
            import modeling_mtcae
        except ImportError:
            blocked = True
        else:
            blocked = False
        json.dump({{"blocked": blocked, "value": venv_only_probe.VALUE, "path": sys.path}}, open({str(out)!r}, "w"))
        """)
    env = isolated_env(PYTHONPATH=os.pathsep.join([str(root), str(site)]))
    result = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(out.read_text())
    assert seen["blocked"] is True and seen["value"] == 42
    assert str(site) in seen["path"] and str(root) not in seen["path"]


def test_run_with_only_hides_every_distribution_not_required(tmp_path):
    closure = requirement_closure(["torchvision"])
    assert {"torchvision", "torch", "numpy", "pillow"} <= closure and "opencv-python-headless" not in closure
    result = run_with_only(["torchvision"], """
        import torchvision, numpy
        missing = []
        for name in ("cv2", "sklearn", "av", "transformers", "processing"):
            try:
                __import__(name)
            except ImportError:
                missing.append(name)
        print(",".join(missing))
        """, cwd=tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "cv2,sklearn,av,transformers,processing"
    with pytest.raises(Exception, match="not-a-real-distribution"):
        requirement_closure(["not-a-real-distribution"])

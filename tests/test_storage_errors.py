"""A save refused for lack of space or permission (ENOSPC, EDQUOT, EROFS, EACCES) ends the tool with one line naming
the path and the reason, and leaves nothing half-written where a resume or a loader would take it for complete.
(A checkpoint on a full disk used to end in ``RuntimeError: [enforce fail at inline_container.cc:672] . unexpected
pos``, with the cut checkpoint left beside the good one.)"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from test_training_runs import QUICK_ARGS, synthetic_root  # noqa: F401  (the shared tiny synthetic set)

from processing.files import StorageError, atomic_write, storage_error, write_json

FULL_DEVICE = "/dev/full"  # every write to it fails with ENOSPC: a full disk, for real, without filling one


def _fail_as_a_full_disk(obj, target) -> None:
    """What ``torch.save(obj, target)`` does on a full disk: part of the file lands, then the write fails with the
    error torch gives (written to /dev/full: torch's own message, not an imitation)."""
    import io

    buffer = io.BytesIO()
    _REAL_SAVE(obj, buffer)
    Path(target).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    if os.path.exists(FULL_DEVICE):
        _REAL_SAVE(obj, FULL_DEVICE)  # opened as a path by torch itself: no rename, nothing replaced
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


_REAL_SAVE = torch.save


def test_torch_and_os_errors_of_a_full_or_closed_disk_become_one_line(tmp_path):
    try:
        _REAL_SAVE({"a": torch.zeros(10_000)}, FULL_DEVICE)
        pytest.fail(f"writing {FULL_DEVICE} did not fail")
    except RuntimeError as error:
        said = storage_error(error, tmp_path / "checkpoint-4" / "optimizer.pt")
    assert said is not None and said.errno == errno.ENOSPC
    assert f"cannot write {tmp_path / 'checkpoint-4' / 'optimizer.pt'}: the write was cut short" in str(said)
    assert "MiB free" in str(said) and "\n" not in str(said)
    for code, reason in ((errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota"), (errno.EROFS, "read-only"),
                         (errno.EACCES, "permission denied")):
        said = storage_error(OSError(code, os.strerror(code)), tmp_path / "x.json")
        assert said.errno == code and reason in str(said) and str(tmp_path / "x.json") in str(said)
    assert storage_error(OSError(errno.ENOENT, "gone"), tmp_path) is None  # not a storage problem: raised as it is
    assert storage_error(RuntimeError("shapes do not match"), tmp_path) is None


def test_an_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    write_json(target, {"uar": 0.5})

    def write_to_a_full_disk(temporary: str) -> None:
        Path(temporary).write_text('{"uar": 0.')  # half of it
        with open(FULL_DEVICE, "wb") as full:  # a file object: the device itself is never renamed or replaced
            full.write(b"x" * 65536)
            full.flush()

    with pytest.raises(StorageError, match=f"cannot write {target}: no space left on the device"):
        atomic_write(target, write_to_a_full_disk)
    assert json.loads(target.read_text()) == {"uar": 0.5} and sorted(tmp_path.iterdir()) == [target]


def test_a_checkpoint_on_a_full_disk_is_removed_and_named_in_one_line(synthetic_root, tmp_path, monkeypatch,  # noqa: F811
                                                                      capsys):
    from hub_scripts import train

    output_dir = tmp_path / "run"

    def save(obj, target, *args, **kwargs):
        if "checkpoint-4" in str(target):  # the second checkpoint meets a full disk
            _fail_as_a_full_disk(obj, target)
        return _REAL_SAVE(obj, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(SystemExit) as ended:
        train.main(["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "6", "--save_steps", "2",
                    "--eval_steps", "2", "--output_dir", str(output_dir)])
    assert ended.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("mtcae-train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    cut = output_dir / "checkpoint-4"
    assert f"cannot write {cut}: the write was cut short (the disk is probably full)" in lines[0]
    assert f"the last complete checkpoint, to resume from: {output_dir / 'checkpoint-2'}" in lines[0]
    assert not (output_dir / "checkpoint-4").exists()  # a resume would take it for complete
    monkeypatch.setattr(torch, "save", _REAL_SAVE)
    from transformers.trainer_utils import get_last_checkpoint

    assert get_last_checkpoint(str(output_dir)) == str(output_dir / "checkpoint-2")
    resumed = train.main(["--data_root", str(synthetic_root), *QUICK_ARGS, "--max_steps", "6", "--save_steps", "2",
                          "--eval_steps", "2", "--output_dir", str(output_dir), "--resume_from_checkpoint",
                          str(output_dir / "checkpoint-2")])
    assert resumed is None and (output_dir / "checkpoint-6").is_dir()  # the earlier checkpoint was intact

"""Fixtures shared by the Hub and inference tests.

- ``trained_output_dir``: a real (tiny, one-epoch) run of ``hub_scripts/train.py`` on a small
  synthetic set, once per session: config, weights, code, processor and result files as the
  training job writes them.
- ``fake_hub``: every public ``huggingface_hub.HfApi`` method intercepted. ``create_repo``,
  ``create_branch`` and ``upload_folder`` act on an in-memory "Hub" (uploaded files are copied
  into a local folder per repo and branch); any other call fails the test. The model-card calls
  of ``huggingface_hub.metadata_update`` (``hf_hub_download`` / ``upload_file`` of the card, the
  Hub's YAML validation) go to the same "Hub". Nothing reaches the network.
"""

from __future__ import annotations

import shutil
from concurrent.futures import Future
from pathlib import Path

import pytest

TINY_TRAINING_ARGS = [
    "--synthetic_actors", "4", "--synthetic_clips_per_class", "1", "--num_folds", "4",
    "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
    "--save_strategy", "epoch", "--eval_strategy", "epoch",
]


@pytest.fixture(scope="session")
def trained_output_dir(tmp_path_factory) -> Path:
    """The output folder of a tiny real training run (``hub_scripts.train.main``)."""
    from hub_scripts.train import main

    root = tmp_path_factory.mktemp("trained")
    output_dir = root / "mtcae-tiny-synthetic"
    main(["--data_root", str(root / "synth"), "--output_dir", str(output_dir), *TINY_TRAINING_ARGS])
    return output_dir


class FakeHub:
    """A stand-in for the Hub behind ``HfApi``: records calls and keeps the uploaded files."""

    def __init__(self, storage: Path):
        self.storage = storage
        self.calls: list[tuple[str, dict]] = []
        self.repos: dict[str, dict] = {}  # repo_id -> {"private": bool, "branches": {name: folder}}
        self.commits: list[dict] = []

    # ---- helpers for the tests
    def folder(self, repo_id: str, revision: str = "main") -> Path:
        return self.repos[repo_id]["branches"][revision]

    def files(self, repo_id: str, revision: str = "main") -> list[str]:
        root = self.folder(repo_id, revision)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def calls_named(self, name: str) -> list[dict]:
        return [kwargs for call, kwargs in self.calls if call == name]

    # ---- HfApi methods
    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **kwargs):
        from huggingface_hub import RepoUrl

        self.calls.append(("create_repo", dict(repo_id=repo_id, private=private, repo_type=repo_type,
                                               exist_ok=exist_ok, **kwargs)))
        if "/" not in repo_id:
            repo_id = f"fake-user/{repo_id}"  # the Hub adds the token owner's namespace
        if repo_id in self.repos and not exist_ok:
            raise AssertionError(f"repo {repo_id} exists and exist_ok=False")
        if repo_id not in self.repos:
            main = self.storage / repo_id.replace("/", "__") / "main"
            main.mkdir(parents=True)
            self.repos[repo_id] = {"private": bool(private), "branches": {"main": main}}
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, *, branch, revision=None, token=None, repo_type=None, exist_ok=False, **kwargs):
        self.calls.append(("create_branch", dict(repo_id=repo_id, branch=branch, revision=revision, exist_ok=exist_ok)))
        repo = self.repos[repo_id]  # KeyError: branch of a repo that was never created
        if branch in repo["branches"]:
            if not exist_ok:
                raise AssertionError(f"branch {branch} exists")
            return
        target = repo["branches"]["main"].parent / branch
        shutil.copytree(repo["branches"][revision or "main"], target)
        repo["branches"][branch] = target

    def upload_folder(self, *, repo_id, folder_path, path_in_repo=None, commit_message=None,
                      commit_description=None, token=None, repo_type=None, revision=None, create_pr=None,
                      parent_commit=None, allow_patterns=None, ignore_patterns=None, delete_patterns=None,
                      run_as_future=False, **kwargs):
        from huggingface_hub import CommitInfo
        from huggingface_hub.utils import filter_repo_objects
        from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

        self.calls.append(("upload_folder", dict(repo_id=repo_id, folder_path=str(folder_path),
                                                 path_in_repo=path_in_repo, commit_message=commit_message,
                                                 revision=revision, create_pr=create_pr,
                                                 allow_patterns=allow_patterns, ignore_patterns=ignore_patterns,
                                                 run_as_future=run_as_future)))
        if repo_id not in self.repos:
            raise AssertionError(f"upload to {repo_id}, which was never created (404 on the Hub)")
        branch = "main" if create_pr else (revision or "main")
        if branch not in self.repos[repo_id]["branches"]:
            raise AssertionError(f"upload to branch {branch!r} of {repo_id}, which does not exist (404 on the Hub)")
        # The same selection as HfApi.upload_folder: every file, filtered by the patterns.
        folder = Path(folder_path)
        ignore = [ignore_patterns] if isinstance(ignore_patterns, str) else list(ignore_patterns or [])
        ignore += DEFAULT_IGNORE_PATTERNS
        relative = sorted(p.relative_to(folder).as_posix() for p in folder.glob("**/*") if p.is_file())
        selected = list(filter_repo_objects(relative, allow_patterns=allow_patterns, ignore_patterns=ignore))
        prefix = f"{path_in_repo.strip('/')}/" if path_in_repo else ""
        if "README.md" in selected and not prefix:
            from huggingface_hub import ModelCard

            ModelCard((folder / "README.md").read_text(encoding="utf-8"), ignore_metadata_errors=False)
        target = self.repos[repo_id]["branches"][branch]
        for name in selected:
            destination = target / (prefix + name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / name, destination)
        readme = (folder / "README.md").read_text(encoding="utf-8") if "README.md" in selected else None
        self.commits.append({"repo_id": repo_id, "branch": branch, "files": sorted(prefix + n for n in selected),
                             "commit_message": commit_message, "create_pr": bool(create_pr), "readme": readme})
        info = CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{len(self.commits):040x}",
                          commit_message=commit_message or "", commit_description="", oid=f"{len(self.commits):040x}")
        if run_as_future:
            future: Future = Future()
            future.set_result(info)
            return future
        return info


    # ---- the model-card functions of huggingface_hub.repocard (metadata_update)
    def download_card(self, repo_id, filename, *, repo_type=None, token=None, revision=None, **kwargs):
        from huggingface_hub.errors import EntryNotFoundError

        self.calls.append(("hf_hub_download", dict(repo_id=repo_id, filename=filename, revision=revision)))
        path = self.folder(repo_id, revision or "main") / filename
        if not path.is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(path)

    def upload_card(self, *, path_or_fileobj, path_in_repo, repo_id, commit_message=None, revision=None,
                    create_pr=None, **kwargs):
        from huggingface_hub import CommitInfo

        self.calls.append(("upload_file", dict(repo_id=repo_id, path_in_repo=path_in_repo, revision=revision)))
        branch = "main" if create_pr else (revision or "main")
        readme = Path(path_or_fileobj).read_text(encoding="utf-8")
        (self.folder(repo_id, branch) / path_in_repo).write_text(readme, encoding="utf-8")
        self.commits.append({"repo_id": repo_id, "branch": branch, "files": [path_in_repo],
                             "commit_message": commit_message, "create_pr": bool(create_pr), "readme": readme})
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{len(self.commits):040x}",
                          commit_message=commit_message or "", commit_description="", oid=f"{len(self.commits):040x}")


def _validate_card(card, repo_type=None):
    """What the Hub's YAML validation checks, offline: the metadata parses."""
    from huggingface_hub import ModelCard

    ModelCard(str(card), ignore_metadata_errors=False)


SUPPORTED_CALLS = ("create_repo", "create_branch", "upload_folder")


def _intercept(monkeypatch, storage: Path) -> FakeHub:
    from huggingface_hub import HfApi, constants

    hub = FakeHub(storage)
    for name in dir(HfApi):
        if name.startswith("_") or not callable(getattr(HfApi, name)) or name in SUPPORTED_CALLS:
            continue

        def refuse(self, *args, __name=name, **kwargs):
            raise AssertionError(f"unexpected Hub call HfApi.{__name}(args={args}, kwargs={kwargs})")

        monkeypatch.setattr(HfApi, name, refuse)
    for name in SUPPORTED_CALLS:
        method = getattr(hub, name)
        monkeypatch.setattr(HfApi, name, lambda self, *args, __method=method, **kwargs: __method(*args, **kwargs))
    from huggingface_hub import repocard

    monkeypatch.setattr(repocard, "hf_hub_download", hub.download_card)
    monkeypatch.setattr(repocard, "upload_file", hub.upload_card)
    monkeypatch.setattr(repocard.RepoCard, "validate", _validate_card)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # any other HTTP request fails
    return hub


@pytest.fixture
def fake_hub(monkeypatch, tmp_path) -> FakeHub:
    """HfApi intercepted for one test (see the module docstring)."""
    return _intercept(monkeypatch, tmp_path / "fake-hub")


@pytest.fixture(scope="session")
def pushed_repo(trained_output_dir, tmp_path_factory) -> tuple[FakeHub, str, str]:
    """The trained model pushed once with ``mtcae-push-to-hub`` (private, to a branch) to the fake Hub.

    Returns ``(hub, repo_id, revision)``.
    """
    from hub_scripts.push_to_hub import main

    repo_id, revision = "someone/mtcae-tiny-synthetic", "fold-1"
    with pytest.MonkeyPatch.context() as monkeypatch:
        hub = _intercept(monkeypatch, tmp_path_factory.mktemp("fake-hub"))
        code = main([str(trained_output_dir), "--repo_id", repo_id, "--private", "--revision", revision,
                     "--commit_message", "Tiny synthetic run, fold 1", "--dataset", "synthetic"])
    assert code == 0
    return hub, repo_id, revision

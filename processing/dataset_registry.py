"""One entry per data set: how to load it, its classes, its default folds and framing, its card text.

``mtcae-train``, ``mtcae-cross-validate``, ``mtcae-ablate`` and the model card of ``mtcae-push-to-hub``
read only this registry, so adding a data set is one :func:`register_dataset` call (or one entry
below)::

    entry = get_dataset("ravdess")
    table, report = entry.load(root, LoadOptions(num_classes=8), "ravdess6")  # a datasets.Dataset of paths
    entry.fold_scheme, entry.resize_mode                                     # "ravdess6", "full_frame"

:class:`LoadOptions` are the loaders' typed options (RAVDESS's classes, MEAD's views and levels, the
synthetic set's size); a fold scheme that needs its data loaded a certain way declares it
(:attr:`processing.folds.FoldScheme.load_filter`: ``ravdess_single`` loads the paper's 1,440 clips in 7 classes)
and :meth:`DatasetEntry.load` applies it, refusing an option that asks otherwise.

DFEW, FERV39k and MAFW (:mod:`processing.datasets_in_the_wild`) are clips given as folders of face
frames: every clip of their split files is loaded once, and their official folds (``dfew5``,
``ferv39k_official``, ``mafw5``) are picked by number (``--fold 3`` tests the clips of the official
``set_3`` test list). The frames are face crops already, so their framing is ``full_frame``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import datasets as adapters
from . import datasets_in_the_wild as in_the_wild
from .dataset_files import LoadReport
from .folds import get_fold_scheme
from .synthetic import generate_synthetic_dfer


@dataclass(frozen=True)
class LoadOptions:
    """What the loaders read, with the tools' defaults (``mtcae-train``'s data options are built from these).

    Args:
        num_classes: RAVDESS: 7 (calm merged into neutral) or 8.
        vocal: RAVDESS: "speech", "song" or "both".
        modalities: RAVDESS modality codes: "01" audio-video, "02" video-only.
        mead_views: MEAD camera views.
        mead_levels: MEAD intensity levels.
        synthetic_actors: synthetic subjects (RAVDESS has 24).
        synthetic_clips_per_class: synthetic clips per subject and class.
    """

    num_classes: int = 7
    vocal: str = "speech"
    modalities: tuple[str, ...] = ("01", "02")
    mead_views: tuple[str, ...] = ("front",)
    mead_levels: tuple[int, ...] = adapters.MEAD_LEVELS
    synthetic_actors: int = 24
    synthetic_clips_per_class: int = 6

    def for_scheme(self, scheme: str | os.PathLike | None) -> LoadOptions:
        """These options with ``scheme``'s load filter applied; an option changed from its default to another
        value than the filter's is refused, naming it."""
        if scheme is None:
            return self
        found = get_fold_scheme(scheme)
        defaults = LoadOptions()
        for name, value in found.load_filter.items():
            given = getattr(self, name)
            if given != value and given != getattr(defaults, name):
                raise ValueError(f"--fold_scheme {found.name} is {found.filter_reason}: drop --{name} {given}")
        return dataclasses.replace(self, **found.load_filter)


@dataclass(frozen=True)
class DatasetEntry:
    """What the tools need to know about one data set.

    Args:
        key: the name given to ``--dataset`` (and stored in ``run_summary.json``).
        name: the display name (model card, tables).
        loader: ``loader(root, options) -> (Dataset, LoadReport)``.
        class_names: the fixed label order (ids = positions); the default one where an option changes
            it (RAVDESS with 8 classes), ``None`` where the data names the classes (one folder per class).
        fold_scheme: the default subject-independent fold scheme (see :mod:`processing.folds`).
        resize_mode: the default input framing of ``MTCAEVideoProcessor``.
        license: the data set's license tag for the model card (Hub license identifiers).
        url: where the data set is described.
        description: the model card's "Training data" paragraph (markdown).
        citation: BibTeX of the data set, or "".
        default_root: the data root used when none is given (``None``: ``--data_root`` is required).
    """

    key: str
    name: str
    loader: Callable[[Path, LoadOptions], tuple[Any, LoadReport]]
    class_names: tuple[str, ...] | None
    fold_scheme: str
    resize_mode: str = "full_frame"
    license: str = "other"
    url: str = ""
    description: str = ""
    citation: str = ""
    default_root: str | None = None

    def resolve_root(self, root: str | os.PathLike | None) -> Path:
        """``root``, or the entry's default root; a clear error when the data set needs one."""
        if root is None and self.default_root is None:
            raise ValueError(f"--dataset {self.key} needs --data_root (the folder holding the {self.name} files)")
        return Path(root if root is not None else self.default_root)

    def load(self, root: str | os.PathLike, options: LoadOptions | None = None,
             fold_scheme: str | os.PathLike | None = None) -> tuple[Any, LoadReport]:
        """``(table, report)``: the data set under ``root``, loaded as ``fold_scheme`` needs it."""
        return self.loader(Path(root), (options or LoadOptions()).for_scheme(fold_scheme))


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Add (or replace) a data set in the registry; returns it."""
    DATASETS[entry.key] = entry
    return entry


def get_dataset(key: str) -> DatasetEntry:
    """The registry entry of ``key``; a ``ValueError`` naming the known data sets otherwise."""
    try:
        return DATASETS[key]
    except KeyError:
        raise ValueError(f"unknown data set {key!r}; known: {', '.join(DATASETS)}") from None


def dataset_key(name: str | None) -> str | None:
    """The registry key of a data set given by key or display name ("CREMA-D" -> "crema_d"); else ``name``."""
    if not name:
        return None
    text = str(name).strip()
    for entry in DATASETS.values():
        if text.lower() in (entry.key, entry.name.lower()) or text.lower().replace("-", "_") == entry.key:
            return entry.key
    return text


def display_name(key: str | None) -> str:
    """The display name of a data set key (the key itself when it is not registered)."""
    if key is None:
        return "an unnamed data set"
    return DATASETS[key].name if key in DATASETS else str(key)


# ------------------------------------------------------------------------------------------------
# Loaders: (root, options) -> (dataset, report)
# ------------------------------------------------------------------------------------------------
def _load_synthetic(root: Path, options: LoadOptions) -> tuple:
    generate_synthetic_dfer(root, num_actors=options.synthetic_actors,
                            clips_per_class=options.synthetic_clips_per_class)  # renders only what is missing
    return adapters.load_ravdess(root, num_classes=7, return_report=True)


def _load_ravdess(root: Path, options: LoadOptions) -> tuple:
    return adapters.load_ravdess(root, num_classes=options.num_classes, vocal=options.vocal,
                                 modalities=options.modalities, return_report=True)


def _load_mead(root: Path, options: LoadOptions) -> tuple:
    return adapters.load_mead(root, views=options.mead_views, levels=options.mead_levels, return_report=True)


def _root_only(load: Callable) -> Callable[[Path, LoadOptions], tuple]:
    """A loader of a data set that takes no option."""
    return lambda root, options: load(root, return_report=True)


# DatasetEntry(key, name, loader, class_names, fold_scheme, ...)
register_dataset(DatasetEntry(
    "synthetic", "Synthetic DFER", _load_synthetic, adapters.RAVDESS_7_CLASSES, "subject_kfold",
    resize_mode="face_align", license="apache-2.0",
    description=(
        "The synthetic DFER set rendered by `processing/synthetic.py` of `mtcae-dfer`: cartoon faces of "
        "synthetic 'actors' animating the 7 RAVDESS expressions, in the RAVDESS file layout, with exact face "
        "boxes and landmarks. It exists to test the training pipeline end to end. **A model trained on it has "
        "no value on real faces.**"
    ),
    default_root="data/synthetic_dfer",
))

register_dataset(DatasetEntry(
    "ravdess", "RAVDESS", _load_ravdess, adapters.RAVDESS_7_CLASSES, "ravdess6",
    license="cc-by-nc-sa-4.0", url="https://zenodo.org/records/1188976",
    description=(
        "[RAVDESS](https://zenodo.org/records/1188976) (Livingstone and Russo, 2018): 24 professional actors "
        "(12 female, 12 male) speaking two lexically matched statements in a neutral North American accent, "
        "filmed frontally in a studio. The paper's protocol (`ravdess_single`) takes the 1,440 audio-video speech "
        "clips and 7 classes (calm merged into neutral) in one split of 12 / 6 / 6 actors (train / validation / "
        "test); HiCMAE / MAE-DFER (`ravdess6`) use 8 classes and 6 subject-independent folds (fold k tests "
        "actors 4k-3 to 4k)."
    ),
    citation="""@article{livingstone2018ravdess,
  title   = {The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS)},
  author  = {Livingstone, Steven R. and Russo, Frank A.},
  journal = {PLoS ONE},
  volume  = {13}, number = {5}, pages = {e0196391}, year = {2018}
}""",
))

register_dataset(DatasetEntry(
    "crema_d", "CREMA-D", _root_only(adapters.load_crema_d), adapters.CREMA_D_CLASSES, "crema5",
    license="odbl", url="https://github.com/CheyneyComputerScience/CREMA-D",
    description=(
        "[CREMA-D](https://github.com/CheyneyComputerScience/CREMA-D) (Cao et al., 2014): 7,442 clips of 91 "
        "actors (48 male, 43 female, aged 20 to 74, several ethnic backgrounds) speaking 12 sentences with 6 "
        "emotions (anger, disgust, fear, happy, neutral, sad). Folds split the actors into 5 ranges (1001-1018, "
        "1019-1036, 1037-1054, 1055-1072, 1073-1091); four known broken files are left out."
    ),
    citation="""@article{cao2014cremad,
  title   = {CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset},
  author  = {Cao, Houwei and Cooper, David G. and Keutmann, Michael K. and Gur, Ruben C. and
             Nenkova, Ani and Verma, Ragini},
  journal = {IEEE Transactions on Affective Computing},
  volume  = {5}, number = {4}, pages = {377--390}, year = {2014}
}""",
))

register_dataset(DatasetEntry(
    "mead", "MEAD", _load_mead, adapters.MEAD_CLASSES, "subject_kfold",
    url="https://wywu.github.io/projects/MEAD/MEAD.html",
    description=(
        "[MEAD](https://wywu.github.io/projects/MEAD/MEAD.html) (Wang et al., 2020): talking-face videos of "
        "actors recorded from seven views with 8 emotions at three intensity levels (neutral at one level); "
        "folds are subject-independent."
    ),
    citation="""@inproceedings{wang2020mead,
  title     = {MEAD: A Large-scale Audio-visual Dataset for Emotional Talking-face Generation},
  author    = {Wang, Kaisiyuan and Wu, Qianyi and Song, Linsen and Yang, Zhuoqian and Wu, Wayne and
               Qian, Chen and He, Ran and Qiao, Yu and Loy, Chen Change},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2020}
}""",
))

register_dataset(DatasetEntry(
    "dfew", "DFEW", _root_only(in_the_wild.load_dfew), in_the_wild.DFEW_CLASSES, "dfew5",
    url="https://dfew-dataset.github.io/",
    description=(
        "[DFEW](https://dfew-dataset.github.io/) (Jiang et al., 2020): 16,372 clips from over 1,500 movies, "
        "given as folders of face-aligned frames; the 11,697 single-labelled clips in 7 classes (happy, sad, "
        "neutral, angry, surprise, disgust, fear) and the 5 official folds (about 9,356 training / 2,341 test "
        "clips each). The folds are clip-wise: DFEW publishes no subject ids."
    ),
    citation="""@inproceedings{jiang2020dfew,
  title     = {DFEW: A Large-Scale Database for Recognizing Dynamic Facial Expressions in the Wild},
  author    = {Jiang, Xingxun and Zong, Yuan and Zheng, Wenming and Tang, Chuangao and Xia, Wanchuang and
               Lu, Cheng and Liu, Jiateng},
  booktitle = {Proceedings of the 28th ACM International Conference on Multimedia},
  pages     = {2881--2889}, year = {2020}
}""",
))

register_dataset(DatasetEntry(
    "ferv39k", "FERV39k", _root_only(in_the_wild.load_ferv39k), in_the_wild.DFEW_CLASSES, "ferv39k_official",
    url="https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html",
    description=(
        "[FERV39k](https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html) (Wang et al., 2022): 38,935 "
        "clips of 22 scenes in 4 scenarios, given as folders of face frames, in 7 classes (labelled in DFEW's "
        "order, as MAE-DFER and HiCMAE map them); the official split, 31,088 training / 7,847 test clips."
    ),
    citation="""@inproceedings{wang2022ferv39k,
  title     = {FERV39k: A Large-Scale Multi-Scene Dataset for Facial Expression Recognition in Videos},
  author    = {Wang, Yan and Sun, Yixuan and Huang, Yiwen and Liu, Zhaoyu and Gao, Shuyong and Zhang, Wei and
               Ge, Weifeng and Zhang, Wenqiang},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {20922--20931}, year = {2022}
}""",
))

register_dataset(DatasetEntry(
    "mafw", "MAFW", _root_only(in_the_wild.load_mafw), in_the_wild.MAFW_CLASSES, "mafw5",
    url="https://mafw-database.github.io/MAFW/",
    description=(
        "[MAFW](https://mafw-database.github.io/MAFW/) (Liu et al., 2022): 10,045 clips in the wild, given as "
        "folders of face frames; the 9,172 single-labelled clips in 11 classes (anger, disgust, fear, happiness, "
        "neutral, sadness, surprise, contempt, anxiety, helplessness, disappointment) and the 5 official folds "
        "(about 7,333 training / 1,839 test clips each), clip-wise."
    ),
    citation="""@inproceedings{liu2022mafw,
  title     = {MAFW: A Large-scale, Multi-modal, Compound Affective Database for Dynamic Facial Expression
               Recognition in the Wild},
  author    = {Liu, Yuanyuan and Dai, Wei and Feng, Chuanxu and Wang, Wenbin and Yin, Guanghao and Zeng, Jiabei and
               Shan, Shiguang},
  booktitle = {Proceedings of the 30th ACM International Conference on Multimedia},
  pages     = {24--32}, year = {2022}
}""",
))

register_dataset(DatasetEntry(
    "folder", "Video folder", _root_only(adapters.load_video_folder), None, "subject_kfold",
    description="A class-per-folder video data set with subject-independent folds.",
))

__all__ = ["DATASETS", "DatasetEntry", "LoadOptions", "dataset_key", "display_name", "get_dataset", "register_dataset"]

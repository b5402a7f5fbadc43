"""A Hugging Face Space running the MTCAE-DFER demo app: copy this folder into a Gradio Space and set the variable
MTCAE_MODEL to the model's Hub id (its requirements.txt installs mtcae-dfer with the app extra)."""

import os

from hub_scripts.inference.app import build_app, load_for_app

build_app(*load_for_app(os.environ.get("MTCAE_MODEL", "you/mtcae-ravdess"))).launch()

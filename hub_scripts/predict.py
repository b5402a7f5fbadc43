"""``mtcae-predict``: what an MTCAE-DFER model sees in a video.

For one video it prints the expression probabilities of the whole clip (16 frames sampled over the
whole clip, exactly what the ``video-classification`` pipeline does) and, for a video longer than
one window, of sliding windows (default 2 s, every 1 s; each window is sampled the same way). It
writes:

- ``<name>.timeline.json``: every window's time span, probabilities, and the face box
  ``[x, y, w, h]`` and the five landmarks (eyes, nose, mouth corners) predicted for each sampled
  frame, normalised to the source frame;
- ``<name>.timeline.csv``: one row per window with the probability of each label;
- ``<name>.timeline.png``: the probabilities over time (a bar chart when there is one window);
- with ``--overlay out.mp4`` (or ``.mov``, ``.mkv``, ``.avi``, ``.webm``, ``.gif``): the video,
  every frame kept, with the box and the five points of the window that covers the frame
  (interpolated between its sampled frames) and a bar of the expression probabilities drawn on it.

Example::

    mtcae-predict clip.mp4 --model outputs/mtcae-tiny-synthetic --overlay clip.overlay.mp4
    mtcae-predict clip.mov --model you/mtcae-ravdess --window 3 --stride 0.5 --output_dir results/
    mtcae-predict a.mp4 b.mov --model M --test_temporal_views 2 --test_spatial_views 2

With ``--test_temporal_views V --test_spatial_views S`` (``--test_spatial_mode crops`` or ``flip``) the
whole-clip probabilities are averaged over ``V x S`` test views (``hub_scripts.inference.multiview``); the windows
stay single-view. The views used are printed and recorded in the timeline JSON (``views``).

How the model runs (``hub_scripts.inference.engines``): ``--dtype auto`` (the default) computes in bfloat16 where
the CPU does natively (AMX or AVX512-BF16; ``MTCAE_NATIVE_BF16=1|0`` overrides the detection) and in fp32
elsewhere; ``--dtype fp32|bf16`` forces one; ``--quantize dynamic`` runs the linear layers in int8; ``--compile``
compiles the model (worth it on long videos); ``--report_agreement`` also runs fp32 eager on the same windows and
reports top-1 agreement and the largest probability difference. Each video is decoded once, in one pass, for all
its windows, and ``--batch_size`` windows go through the model at a time.

The face outputs are regressions made for every sampled frame, with no face/no-face decision: on
frames without a face they are drawn anyway and mean nothing.
"""

from __future__ import annotations

import sys

from hub_scripts.cli import parse_arguments, reports_errors
from hub_scripts.inference.engines import EngineOptions
from hub_scripts.inference.multiview import MultiViewArguments
from hub_scripts.inference.runner import PredictArguments, predict_files


def parse_args(argv: list[str] | None = None) -> tuple[PredictArguments, MultiViewArguments, EngineOptions]:
    """The options, the test views and how the model runs; the leading unnamed arguments are the videos."""
    return parse_arguments((PredictArguments, MultiViewArguments, EngineOptions), argv, prog="mtcae-predict",
                           description=__doc__, positional="video")


@reports_errors("mtcae-predict")
def main(argv: list[str] | None = None) -> int:
    """Returns 0 when every video was predicted, 2 otherwise (each problem printed as one line).

    A bad option value exits with status 2 and a usage error before anything is read.
    """
    return predict_files(*parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

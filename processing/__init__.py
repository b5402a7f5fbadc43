"""Everything between a file on disk and the model's tensors: the video processor, frame sampling, face labels,
data sets and folds, caches and the synthetic renderer.

The video processor and the files it imports are saved next to the model as remote code (one flat folder,
third-party imports and each other only): ``video_processing_mtcae`` (the processor), ``sampling_mtcae``
(every frame-sampling rule), ``decoding_mtcae`` (PyAV / torchcodec decoding), ``video_inputs_mtcae``
(in-memory inputs), ``frame_folders`` (clips given as frame images), ``face_labels_mtcae`` (``FaceLabels``),
``face_geometry_mtcae`` (``FrameGeometry``: resize, crop, face alignment, label mapping) and
``face_detection_mtcae`` (MTCNN for raw videos). The other modules are the library the tools build on.
"""

# Heavy modules (torch, transformers, av) load on first use of a name below, so that
# `import processing.annotation_cache` stays cheap.
_LAZY_EXPORTS = {
    "MTCAEVideoProcessor": "video_processing_mtcae",
    "FrameGeometry": "face_geometry_mtcae",
    "FaceLabels": "face_labels_mtcae",
    "VideoDecodeError": "decoding_mtcae",
    "read_video": "decoding_mtcae",
    "sample_frame_indices": "sampling_mtcae",
    "VIDEO_EXTENSIONS": "decoding_mtcae",
    "annotate_video": "face_detectors",
    "get_detector": "face_detectors",
    "available_detectors": "face_detectors",
    "FaceDetector": "face_detectors",
    "AnnotationCache": "annotation_cache",
    "sampler_key": "annotation_cache",
}


def register_auto_classes() -> bool:
    """Map model_type "mtcae" to MTCAEVideoProcessor in AutoVideoProcessor (idempotent); returns True."""
    from transformers import AutoVideoProcessor

    from modeling_mtcae.configuration_mtcae import MTCAEConfig  # deferred: torch and transformers

    from .video_processing_mtcae import MTCAEVideoProcessor  # deferred: torch, torchvision and transformers

    AutoVideoProcessor.register(MTCAEConfig, MTCAEVideoProcessor, exist_ok=True)
    return True


def __getattr__(name):
    if name in _LAZY_EXPORTS:
        import importlib

        module = importlib.import_module(f".{_LAZY_EXPORTS[name]}", __name__)
        if name == "MTCAEVideoProcessor":
            register_auto_classes()
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

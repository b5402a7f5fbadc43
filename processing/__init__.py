"""Video decoding and processing, face labels and datasets for MTCAE-DFER.

The video processor and the files it imports are saved next to the model as remote code (one flat folder):
``video_processing_mtcae`` (the processor), ``decoding_mtcae`` (frame sampling, PyAV / torchcodec
decoding), ``video_inputs_mtcae`` (in-memory inputs), ``face_geometry_mtcae`` (``FrameGeometry``: resize,
crop, face alignment) and ``face_detection_mtcae`` (MTCNN for raw videos).
"""

# Heavy modules (torch, transformers, av) load on first use of a name below, so that
# `import processing.annotation_cache` stays cheap.
_LAZY_EXPORTS = {
    "MTCAEVideoProcessor": "video_processing_mtcae",
    "FrameGeometry": "face_geometry_mtcae",
    "VideoDecodeError": "decoding_mtcae",
    "read_video": "decoding_mtcae",
    "sample_frame_indices": "decoding_mtcae",
    "VIDEO_EXTENSIONS": "decoding_mtcae",
    "annotate_video": "face_labels",
    "get_detector": "face_labels",
    "available_detectors": "face_labels",
    "FaceDetector": "face_labels",
    "AnnotationCache": "annotation_cache",
    "FaceLabels": "annotation_cache",
    "sampler_key": "annotation_cache",
}


def register_auto_classes() -> bool:
    """Map model_type "mtcae" to MTCAEVideoProcessor in AutoVideoProcessor (idempotent).

    Returns False while the config class is not importable.
    """
    from transformers import AutoVideoProcessor

    from .video_processing_mtcae import MTCAEVideoProcessor

    try:
        from modeling_mtcae.configuration_mtcae import MTCAEConfig
    except ImportError:
        return False
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

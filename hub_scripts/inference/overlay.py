"""The overlay video of ``mtcae-predict``: every source frame with the box, the landmarks and the probabilities of
the window that covers it (interpolated between the window's sampled frames)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from hub_scripts.inference.windows import PredictError
from processing.decoding_mtcae import ffmpeg_path, frame_to_rgb
from processing.drawing import draw_face_labels
from processing.files import atomic_write

BAR_COLOR = (110, 170, 255)
TOP_BAR_COLOR = (255, 160, 40)
OVERLAY_CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mov": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".m4v": ("libx264", "yuv420p"),
    ".avi": ("mpeg4", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
    ".gif": ("gif", "rgb8"),
}


class FrameAnnotations:
    """Per source frame: the covering window's probabilities and its interpolated box and landmarks."""

    def __init__(self, result: dict):
        self.labels = result["labels"]
        self.windows = result["windows"]
        self.centres = np.array([(w["start_frame"] + w["end_frame"] - 1) / 2 for w in self.windows])
        self.starts = np.array([w["start_frame"] for w in self.windows])
        self.ends = np.array([w["end_frame"] for w in self.windows])
        self.tracks = []
        for window in self.windows:
            frames = window["frames"]
            if not frames or frames[0]["box"] is None:
                self.tracks.append(None)
                continue
            xs, keep = np.unique([f["frame"] for f in frames], return_index=True)
            boxes = np.array([frames[k]["box"] for k in keep], dtype=np.float64)
            points = np.array([frames[k]["landmarks"] for k in keep], dtype=np.float64).reshape(len(keep), -1)
            self.tracks.append((xs.astype(np.float64), boxes, points))

    def window_of(self, frame: int) -> int:
        inside = (self.starts <= frame) & (frame < self.ends)
        distance = np.abs(self.centres - frame) + np.where(inside, 0.0, 1e9)
        return int(distance.argmin())

    def at(self, frame: int):
        index = self.window_of(frame)
        window = self.windows[index]
        probabilities = np.array([window["probabilities"][label] for label in self.labels])
        track = self.tracks[index]
        if track is None:
            return window, probabilities, None, None
        xs, boxes, points = track
        box = np.array([np.interp(frame, xs, boxes[:, k]) for k in range(4)])
        flat = np.array([np.interp(frame, xs, points[:, k]) for k in range(points.shape[1])])
        return window, probabilities, box, flat.reshape(-1, 2)


def draw_frame(image: np.ndarray, labels: list[str], probabilities: np.ndarray, box: np.ndarray | None,
               landmarks: np.ndarray | None, caption: str = "") -> np.ndarray:
    """Draw the box, the five points and a probability bar chart on an RGB uint8 frame (in place)."""
    import cv2

    height, width = image.shape[:2]
    scale = max(0.5, min(height, width) / 400.0)
    thickness = max(1, int(round(2 * scale)))
    # Probability panel, top left, on a darkened background; the face is drawn over it.
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.42 * scale
    row = max(10, int(round(17 * scale)))
    name_width = max(cv2.getTextSize(label, font, font_scale, 1)[0][0] for label in labels) + int(8 * scale)
    bar_width = max(20, int(round(110 * scale)))
    panel_w = min(width, name_width + bar_width + int(52 * scale))
    panel_h = min(height, row * len(labels) + int(8 * scale) + (row if caption else 0))
    region = image[:panel_h, :panel_w]
    region[:] = (region.astype(np.float32) * 0.4).astype(np.uint8)
    top = int(np.argmax(probabilities))
    for i, (label, p) in enumerate(zip(labels, probabilities)):
        y = int(4 * scale) + i * row
        color = TOP_BAR_COLOR if i == top else BAR_COLOR
        cv2.putText(image, label, (int(4 * scale), y + int(row * 0.75)), font, font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
        x_bar = name_width
        cv2.rectangle(image, (x_bar, y + 2), (x_bar + int(round(float(p) * bar_width)), y + row - 3), color, -1)
        cv2.putText(image, f"{100 * float(p):.0f}%", (x_bar + bar_width + int(4 * scale), y + int(row * 0.75)), font,
                    font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    if caption:
        cv2.putText(image, caption, (int(4 * scale), int(4 * scale) + len(labels) * row + int(row * 0.75)), font,
                    font_scale * 0.9, (220, 220, 220), 1, cv2.LINE_AA)
    # The face last, so that the panel never hides it.
    draw_face_labels(image, box, landmarks, thickness, max(2, int(round(3 * scale))))
    return image


def _add_overlay_stream(target, suffix: str, in_stream, fps: float, size: tuple[int, int]):
    codec, pix_fmt = OVERLAY_CODECS[suffix]
    rate = Fraction(in_stream.average_rate).limit_denominator(1001) if in_stream.average_rate else \
        Fraction(fps).limit_denominator(1001)
    stream = target.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
    if codec == "libx264":
        stream.options = {"crf": "20", "preset": "veryfast"}
    elif codec in ("mpeg4", "libvpx-vp9"):
        stream.bit_rate = int(2_500_000 * max(1.0, size[0] * size[1] / (640 * 360)))
    return stream


def write_overlay(result: dict, out_path: str | Path, max_side: int | None = None) -> int:
    """Write the annotated video (every source frame, upright, same frame rate); returns the frames written.

    The frames come from the video stream the prediction used, with its display matrix applied, so the
    boxes (normalised to the shown frame) land on the face; captions give each frame's own timestamp.
    """
    import av
    import cv2
    from av.video.reformatter import VideoReformatter

    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in OVERLAY_CODECS:
        raise PredictError(f"--overlay {out_path}: unsupported extension {suffix!r}; "
                           f"use one of {sorted(OVERLAY_CODECS)}")
    annotations = FrameAnnotations(result)
    src_w, src_h = int(result["width"]), int(result["height"])
    factor = min(1.0, max_side / max(src_w, src_h)) if max_side else 1.0
    width, height = max(2, int(round(src_w * factor))), max(2, int(round(src_h * factor)))
    even = OVERLAY_CODECS[suffix][1] == "yuv420p"
    enc_w, enc_h = (width + width % 2, height + height % 2) if even else (width, height)
    fps, written = result["fps"], []

    def encode(temporary: str) -> None:
        first_time = None
        with av.open(ffmpeg_path(result["video"])) as source, av.open(ffmpeg_path(temporary), "w") as target:
            in_stream = source.streams[result.get("stream_index") or source.streams.video[0].index]
            stream = _add_overlay_stream(target, suffix, in_stream, fps, (enc_w, enc_h))
            reformatter = VideoReformatter()
            for index, frame in enumerate(source.decode(in_stream)):
                image = frame_to_rgb(frame, reformatter)
                if (image.shape[1], image.shape[0]) != (width, height):
                    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
                image = np.ascontiguousarray(image)
                first_time = frame.time if first_time is None else first_time
                seconds = frame.time - first_time if frame.time is not None and first_time is not None else index / fps
                window, probabilities, box, landmarks = annotations.at(index)
                caption = f"{seconds:5.2f} s  window {window['start_time']:.2f}-{window['end_time']:.2f} s"
                draw_frame(image, annotations.labels, probabilities, box, landmarks, caption)
                if (enc_w, enc_h) != (width, height):
                    image = np.pad(image, ((0, enc_h - height), (0, enc_w - width), (0, 0)), mode="edge")
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    target.mux(packet)
                written.append(index)
            for packet in stream.encode():
                target.mux(packet)

    atomic_write(out_path, encode)  # a cut or failed overlay never stands under its name
    return len(written)


__all__ = ["OVERLAY_CODECS", "FrameAnnotations", "draw_frame", "write_overlay"]

"""Face detectors: RetinaFace (the default on every platform), YuNet and Haar where installed, and the fallbacks."""

import importlib.util

import cv2
import numpy as np
import pytest

from faceparse_edge.errors import FaceparseError
from faceparse_edge.runtime import detectors
from faceparse_edge.runtime.detectors import HaarDetector, RetinaFaceDetector, make_detector
from faceparse_edge.runtime.tracker import iou
from faceparse_edge.runtime.pipeline import Parser

from .helpers import assert_one_line_error, cli

HAS_YUFACE = importlib.util.find_spec("yuface") is not None


def _video_frame(media, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(media / "short_hamilton_clip.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def test_the_default_detector_is_retinaface_with_landmarks_on_this_python(media):
    """What every user gets, on every Python and platform: not the Haar fallback."""
    pipeline = Parser(threads=2)
    assert pipeline.detector_name == "retinaface" and "detector retinaface" in pipeline.engine
    faces = pipeline.detector.detect(_video_frame(media, 150))
    assert len(faces) == 1 and faces[0].landmarks.shape == (5, 2)
    (x, y, w, h), points = faces[0]
    assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]  # image-left eye and mouth corner first
    assert (points[:2, 1] < points[2, 1]).all() and (points[2, 1] < points[3:, 1]).all()  # eyes, nose, mouth
    assert ((points >= [x, y]) & (points <= [x + w, y + h])).all()
    assert not np.allclose(points, points.round())  # decoded here: sub-pixel, not rounded to whole pixels


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_retinaface_finds_the_profile_face_that_haar_misses_on_either_backend(media, backend):
    profile = _video_frame(media, 40)  # the performer in profile, close up
    detector = RetinaFaceDetector(backend, threads=2)
    faces = detector.detect(profile)
    assert faces and not HaarDetector().detect(profile)
    x, y, w, h = faces[0].box  # the largest: the performer's head, in the right half of the frame
    assert x > 640 / 3 and w > 100
    frontal = _video_frame(media, 150)
    gray = detector.detect(cv2.cvtColor(frontal, cv2.COLOR_RGB2GRAY))  # single-channel frames are accepted
    assert len(gray) == 1 and iou(gray[0].box, detector.detect(frontal)[0].box) > 0.7
    for odd in (np.zeros((1, 1, 3), np.uint8), np.zeros((10, 10, 3), np.uint8), np.zeros((7, 300), np.uint8)):
        assert detector.detect(odd) == []


def test_both_backends_find_the_same_faces_and_landmarks(media):
    frame = _video_frame(media, 240)  # the audience: several small faces
    by_ort, by_openvino = (RetinaFaceDetector(b, threads=2).detect(frame) for b in ("onnxruntime", "openvino"))
    assert len(by_ort) == len(by_openvino) >= 3
    for a, b in zip(by_ort, by_openvino):
        assert iou(a.box, b.box) > 0.95 and np.abs(a.landmarks - b.landmarks).max() < 1.0


@pytest.mark.skipif(not HAS_YUFACE, reason="yuface has wheels only for CPython <= 3.11 on Linux x86_64 and Windows")
def test_retinaface_landmarks_agree_with_yunet(media):
    yunet, retinaface = make_detector("yunet"), make_detector("retinaface")
    frame = _video_frame(media, 150)
    a, b = retinaface.detect(frame)[0], yunet.detect(frame)[0]
    eyes = np.linalg.norm(b.landmarks[0] - b.landmarks[1])
    assert iou(a.box, b.box) > 0.5 and np.median(np.linalg.norm(a.landmarks - b.landmarks, axis=1)) < 0.3 * eyes


@pytest.mark.parametrize("content, fragment", [
    (None, "cannot read the RetinaFace weights"),
    (b"not an onnx graph", "sha256 mismatch"),
])
def test_a_missing_or_corrupted_retinaface_falls_back_with_one_warning(monkeypatch, capsys, tmp_path, content,
                                                                       fragment):
    weights = tmp_path / "retinaface-mobilenet0.25.onnx"  # a damaged install: the file gone, or other bytes
    if content is not None:
        weights.write_bytes(content)
    monkeypatch.setattr(detectors, "RETINAFACE_FILE", weights)
    with pytest.raises(FaceparseError, match=fragment):
        make_detector("retinaface")
    fallback = make_detector("auto")
    assert fallback.name == ("yunet" if HAS_YUFACE else "haar")
    warning = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("warning: ") and fragment in warning[0]
    assert f"falling back to the {fallback.name} detector" in warning[0]


@pytest.mark.parametrize("content, fragment", [
    (None, "cannot read the person segmenter weights"),
    (b"not an onnx graph", "sha256 mismatch"),
])
def test_a_missing_or_corrupted_person_segmenter_keeps_the_labels_in_the_views_with_one_warning(
        monkeypatch, capsys, tmp_path, media, content, fragment):
    from faceparse_edge.runtime import beyond_view
    from faceparse_edge.runtime.pipeline import Parser

    weights = tmp_path / "selfie-segmenter-landscape.onnx"
    if content is not None:
        weights.write_bytes(content)
    monkeypatch.setattr(beyond_view, "SEGMENTER_FILE", weights)
    parser = Parser(threads=2)
    warning = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("warning: ") and fragment in warning[0]
    assert not parser.follow_person and "+person" not in parser.engine
    result = parser.parse(media / "obama-720p.jpg")
    inside = np.zeros(result.labels.shape, bool)
    x0, y0, x1, y1 = result.faces[0].region
    inside[y0:y1, x0:x1] = True
    assert result.labels[inside].any() and not result.labels[~inside].any()


def test_without_yuface_auto_still_gets_landmarks_and_yunet_is_a_clear_error(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "yuface", None)  # import yuface now raises ImportError, as on Python 3.12+
    assert make_detector("auto").name == "retinaface" and capsys.readouterr().err == ""
    with pytest.raises(FaceparseError, match="needs the yuface package"):
        make_detector("yunet")
    with pytest.raises(FaceparseError, match="unknown detector 'mtcnn'"):
        make_detector("mtcnn")


@pytest.mark.skipif(HAS_YUFACE, reason="yuface is installed here")
def test_asking_for_yunet_where_it_cannot_install_is_a_one_line_error(media, tmp_path):
    assert_one_line_error(cli("image", media / "obama-720p.jpg", "--detector", "yunet", "--out", tmp_path),
                          "needs the yuface package")

"""The torch-free runtime on real photos and video, and flip TTA with a deliberately asymmetric model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from faceparse_edge.classes import CLASS_NAMES
from faceparse_edge.models import open_model
from faceparse_edge.parsing import labels_at, predict_probs, preprocess, softmax
from faceparse_edge.runtime.backends import CONFIG_KEY, PRECISION_KEY
from faceparse_edge.runtime.pipeline import Parser

from .helpers import assert_one_line_error, cli

PHOTOS = ("obama-720p.jpg", "biden.jpg", "lin-manuel-miranda.png")


def test_runtime_never_imports_torch(media, tmp_path):
    """The runtime runs where importing torch fails."""
    blocker = tmp_path / "block" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is not available in the runtime')\n")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['faceparse-edge', 'image', sys.argv[2], '--out', sys.argv[3]];"
        "from faceparse_edge.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "block"), str(media / "obama-720p.jpg"),
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "obama-720p.png").is_file()


def _centroid_x(labels, c):
    return np.nonzero(labels == c)[1].mean()


@pytest.mark.parametrize("photo", PHOTOS)
def test_photos_are_found_and_parsed_with_left_on_the_image_right(media, photo):
    image = np.asarray(Image.open(media / photo).convert("RGB"))
    result = Parser(threads=2)(image)
    assert len(result.faces) >= 1
    face = max(result.faces, key=lambda f: f.labels.size)
    inside = face.labels
    present = {CLASS_NAMES[c] for c in np.unique(inside)}
    assert {"skin", "nose", "hair", "u_lip", "l_lip"} <= present, present
    assert present & {"l_eye", "r_eye"} and present & {"l_brow", "r_brow"}, present
    for left, right in ((4, 5), (6, 7)):
        if (inside == left).any() and (inside == right).any():
            assert _centroid_x(inside, left) > _centroid_x(inside, right)  # subject's left = image right
    top = min(f.region[1] for f in result.faces)
    above = {CLASS_NAMES[c] for c in np.unique(result.labels[:top])}
    assert above <= {"background", "hair", "hat"}, above  # above the faces' crops only hair or a hat goes on


def _asymmetric_model(path: Path, size: int = 32) -> Path:
    """Ignores its input: l_eye (4) logits high on the image's right half, r_eye (5) on the left."""
    bias = np.zeros((1, 19, size, size), np.float32)
    bias[0, 4, :, size // 2:] = 5.0
    bias[0, 5, :, : size // 2] = 5.0
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["z", "bias"], ["logits"])]
    graph = helper.make_graph(
        nodes, "asymmetric", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 19, size, size])],
        [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
         helper.make_tensor("bias", TensorProto.FLOAT, bias.shape, bias.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in ((CONFIG_KEY, json.dumps({"input_size": size, "mean": [0.5] * 3, "std": [0.25] * 3})),
                       (PRECISION_KEY, "fp32")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_flip_tta_swaps_left_and_right_channels(tmp_path):
    backend = open_model(_asymmetric_model(tmp_path / "asym.onnx"))
    batch = preprocess([np.zeros((32, 32, 3), np.uint8)], 32, backend.info.mean, backend.info.std)
    plain = predict_probs(backend, batch, tta=False)
    merged = predict_probs(backend, batch, tta=True)
    # The model is left/right consistent, so a correct flip-and-swap reproduces it exactly;
    # a missing swap would put l_eye on both halves, a missing flip would tie the classes.
    assert np.allclose(merged, plain, atol=1e-6)
    labels = merged[0].argmax(0)
    assert (labels[:, 16:] == 4).all() and (labels[:, :16] == 5).all()


def test_labels_from_coarse_probabilities_are_the_argmax_of_upsampled_logits():
    rng = np.random.default_rng(0)
    coarse = cv2.GaussianBlur(rng.normal(0, 3, (16, 16, 19)).astype(np.float32), (5, 5), 1)  # smooth, like a model's
    upsampled = cv2.resize(coarse, (61, 64), interpolation=cv2.INTER_LINEAR).argmax(2)
    labels = labels_at(softmax(coarse.transpose(2, 0, 1)[None])[0], 64, 61)
    assert labels.shape == (64, 61) and (labels == upsampled).mean() > 0.999


def test_video_gives_an_output_with_the_same_frame_count(media, tmp_path):
    out = tmp_path / "out.mp4"
    result = cli("video", media / "short_hamilton_clip.mp4", "--out", out, "--no-show", "--json", tmp_path / "v.json")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "v.json").read_text())
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"] == 275
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 29.97) < 0.01
    assert summary["faces_per_frame"] > 0.5 and set(summary["ms"]) >= {"detect", "model", "paste", "person", "draw"}
    assert summary["follow_person"] is True and summary["ms"]["person"] > 0  # labels follow the person by default
    assert 0 < summary["model_fraction"] < 1
    assert summary["fps"] > 0 and 0 <= summary["flicker"] < 1
    assert summary["frames_by_faces"]["1"] > 50 and summary["fps_by_faces"]["1"] > 0
    # The landmark detector on every Python and platform (issue 26: Haar found a face in 152 frames on 3.13).
    assert summary["detector"] == "retinaface" and "detector retinaface" in result.stdout
    assert summary["frames_with_face"] >= 249


def test_runtime_path_without_detection_equals_evaluate(celeba_mini):
    from faceparse_edge.evaluation import evaluate_backend
    from faceparse_edge.metrics import SegmentationMetrics
    from faceparse_edge.toolkit.samples import list_samples, load_pair

    samples = list_samples(celeba_mini, "val")[:6]
    pipeline = Parser(tta=True, detect=False)
    metrics = SegmentationMetrics()
    for s in samples:
        image, mask = load_pair(s)
        metrics.update(pipeline(image).labels, mask)
    info = pipeline.info
    expected, _ = evaluate_backend(pipeline.backend, samples, load_pair, info.input_size, info.mean, info.std, tta=True,
                                   show_progress=False, context=info.context)
    assert metrics.result()["miou"] == pytest.approx(expected["miou"], abs=1e-6)


def test_image_command_outputs_and_bad_inputs(media, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 160, 3), 127, np.uint8)).save(blank)
    result = cli("image", media / "lin-manuel-miranda.png", blank, bad, "--out", tmp_path / "out", "--json", tmp_path / "i.json")
    assert_one_line_error(result, "1 of 3 images could not be read")
    records = json.loads((tmp_path / "i.json").read_text())
    assert [len(r["faces"]) for r in records] == [1, 0] and {r["detector"] for r in records} == {"retinaface"}
    assert {r["follow_person"] for r in records} == {True}
    assert f"({records[0]['backend']} {records[0]['precision']}, retinaface detector)" in result.stdout  # what ran
    labels = np.asarray(Image.open(tmp_path / "out" / "lin-manuel-miranda.png"))
    assert Image.open(tmp_path / "out" / "lin-manuel-miranda.png").mode == "P"
    assert labels.shape == (612, 704) and records[0]["faces"][0]["areas"]["skin"] > 1000
    assert (np.asarray(Image.open(tmp_path / "out" / "blank.png")) == 0).all()  # no face: all background
    assert_one_line_error(cli("image", tmp_path / "missing.jpg"), "input not found")
    assert_one_line_error(cli("video", tmp_path / "missing.mp4", "--no-show"), "video not found")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    assert_one_line_error(cli("video", tmp_path / "junk.mp4", "--no-show"), "junk.mp4")
    assert_one_line_error(cli("webcam", "--camera", "7", "--no-show"), "camera 7")
    if not os.environ.get("DISPLAY"):
        assert_one_line_error(cli("video", media / "short_hamilton_clip.mp4"), "use --no-show")
    assert_one_line_error(cli("image", blank, "--model", tmp_path / "m.tflite"), "model not found")


def test_detector_false_positives_are_dropped_by_the_parse():
    from faceparse_edge.runtime.pipeline import looks_like_a_face

    labels = np.full((32, 32), 13, np.uint8)  # all hair: a box on the back of a head
    assert not looks_like_a_face(labels)
    labels[8:24, 8:24] = 1
    assert not looks_like_a_face(labels)  # skin but no nose
    labels[14:18, 14:18] = 2
    assert looks_like_a_face(labels)


def test_corrupt_frames_are_skipped_counted_and_the_output_finalised(tmp_path):
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
    for _ in range(40):
        writer.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    writer.release()
    data = bytearray((tmp_path / "clip.avi").read_bytes())
    for offset in range(len(data) // 3, len(data) // 3 + 30000, 1000):  # damage frames in the middle
        data[offset : offset + 300] = bytes(300)
    (tmp_path / "bad.avi").write_bytes(bytes(data))
    result = cli("video", tmp_path / "bad.avi", "--no-show", "--out", tmp_path / "out.mp4", "--json", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["bad_frames"] >= 1 and summary["frames"] + summary["bad_frames"] == 40
    assert int(cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"]
    assert "skipped" in result.stderr


def test_face_motion_is_followed_and_probabilities_move_with_it():
    from faceparse_edge.runtime import align
    from faceparse_edge.runtime.motion import CropFlow, face_shift, warp_probs

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (240, 320), dtype=np.uint8), (0, 0), 2)
    before, now = texture[20:200, 20:300], texture[22:202, 17:297]  # the scene moved by (+3, -2) px
    square = align.square(60.0, 30.0, 128.0)
    flow, change = CropFlow()(before, now, square)
    assert change > 5 and CropFlow()(now, now, square)[1] == 0  # how much the face changed drives the smoothing
    dx, dy = align.frame_vector(square, face_shift(flow))
    assert abs(dx - 3) < 0.5 and abs(dy + 2) < 0.5

    probs = np.zeros((2, 64, 64), np.float32)
    probs[0] = 1
    probs[:, 20:40, 20:40] = [[[0]], [[1]]]  # class 1 on a square patch of the face
    moved = warp_probs(probs, square, square, flow)  # the crop stayed: the patch moves with the face
    ys, xs = np.nonzero(moved[1] > 0.5)
    assert abs(xs.mean() - (29.5 + 3 * 64 / 128)) < 0.5 and abs(ys.mean() - (29.5 - 2 * 64 / 128)) < 0.5
    followed = warp_probs(probs, square, align.square(60 + dx, 30 + dy, 128), flow)  # the crop followed
    assert np.abs(followed[:, 8:56, 8:56] - probs[:, 8:56, 8:56]).mean() < 0.02


def test_flicker_counts_label_changes_inside_both_crops_only():
    from faceparse_edge.runtime import align
    from faceparse_edge.runtime.pipeline import Face, FrameResult
    from faceparse_edge.runtime.steadiness import flicker

    def frame(labels, x0):
        return FrameResult(labels, [Face(align.square(x0, 0, 10), (x0, 0, 10, 10), 7, (x0, 0, x0 + 10, 10), labels[:, x0 : x0 + 10])])

    before, after = np.zeros((10, 20), np.uint8), np.zeros((10, 20), np.uint8)
    before[:, 0:5], before[:, 5:10] = 1, 2
    after[:, 2:7], after[:, 7:12] = 1, 2  # the face and its crop moved by 2 px
    assert flicker(frame(before, 0), frame(after, 2)) == pytest.approx(2 / 8)  # of columns 2..9, in both crops
    assert flicker(frame(before, 0), frame(after, 2), lambda a: np.roll(a, 2, axis=1)) == 0  # the motion explains it
    assert flicker(frame(before, 0), FrameResult(after, [])) is None  # the face left: not flicker


def test_cuts_in_the_video_start_new_tracks(media):
    from faceparse_edge.runtime.motion import is_cut

    cap, previous, cuts, ids = cv2.VideoCapture(str(media / "short_hamilton_clip.mp4")), None, [], []
    pipeline = Parser(threads=1)
    for index in range(214):
        ok, frame = cap.read()
        assert ok
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if previous is not None and is_cut(previous, gray):
            cuts.append(index)
        previous = gray
        if index >= 185:  # the performer's close-up, then a cut to the audience at 211
            ids.append({face.track_id for face in pipeline(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).faces})
    assert cuts == [20, 82, 211]  # the video's three cuts, and nothing else
    before, after, next_frame = ids[210 - 185 : 213 - 185]
    assert before and after and not before & after  # faces after the cut are new tracks
    assert after & next_frame  # and are tracked on from there


def test_the_runtime_needs_no_gui_and_asking_for_a_window_is_one_line(media, tmp_path):
    from faceparse_edge.runtime.video import GUI_FIX, has_windows

    # The install's OpenCV is the headless build: no X11/GL libraries on minimal systems (pyproject.toml).
    assert not has_windows()
    for command in (("video", media / "short_hamilton_clip.mp4", "--show"), ("webcam", "--camera", "0")):
        result = cli(*command, env={"DISPLAY": ":99"})
        assert_one_line_error(result, "cannot open windows")
        assert GUI_FIX in result.stderr and "--no-show" in result.stderr

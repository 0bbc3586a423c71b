"""Self-training data: real unlabelled faces parsed by the shipped model, beside a labelled set."""

import json
import os

import numpy as np

from faceparse_edge.fileio import read_label_png
from faceparse_edge.toolkit.samples import list_samples

from .conftest import make_dataset
from .helpers import assert_one_line_error, cli

FACES = 3


def _unlabelled(celeba_mini, folder):
    folder.mkdir()
    for path in sorted((celeba_mini / "unlabeled").iterdir())[:FACES]:
        os.symlink(path, folder / path.name)
    return folder


def test_pseudo_labels_extend_the_train_split_and_keep_the_others(celeba_mini, tmp_path):
    data = make_dataset(tmp_path / "data", n=6, splits={"train": range(4), "val": range(4, 6)})
    unlabelled = _unlabelled(celeba_mini, tmp_path / "unlabelled")
    out = tmp_path / "st"
    result = cli("data", "pseudo-label", data, unlabelled, out, "--model", "edge", "--json", tmp_path / "st.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "st.json").read_text())["pseudo_labelled"] == FACES

    train = list_samples(out, "train")
    assert [s.id for s in train[:4]] == ["s0", "s1", "s2", "s3"] and len(train) == 4 + FACES
    assert [s.id for s in list_samples(out, "val")] == ["s4", "s5"]
    for s in train[4:]:
        labels = read_label_png(s.mask)
        assert labels.shape == (512, 512)
        # An aligned face: skin, nose and both eyes are parsed, skin covering a good share
        assert {1, 2, 4, 5} <= set(np.unique(labels)) and (labels == 1).mean() > 0.1

    assert_one_line_error(cli("data", "pseudo-label", data, unlabelled, out, "--model", "edge"), "not empty")
    clash = tmp_path / "clash"
    clash.mkdir()
    os.symlink(data / "images" / "s0.jpg", clash / "s0.jpg")
    assert_one_line_error(cli("data", "pseudo-label", data, clash, tmp_path / "other", "--model", "edge"),
                          "share an id")


def test_a_failed_pseudo_labelling_leaves_no_output(celeba_mini, tmp_path):
    data = make_dataset(tmp_path / "data", n=4, splits={"train": range(2), "val": range(2, 4)})
    unlabelled = _unlabelled(celeba_mini, tmp_path / "unlabelled")
    (unlabelled / "zz_corrupt.jpg").write_bytes(b"not a jpeg")  # one image cannot be read
    result = cli("data", "pseudo-label", data, unlabelled, tmp_path / "runs" / "st", "--model", "edge")
    assert_one_line_error(result, "zz_corrupt.jpg")
    assert list((tmp_path / "runs").iterdir()) == []

import numpy as np
import pytest

from faceparse_edge.metrics import SegmentationMetrics


def test_dataset_level_miou_and_per_image_f_measure():
    m = SegmentationMetrics(num_classes=3)
    gt1 = np.array([[0, 0], [1, 1]])
    pr1 = np.array([[0, 1], [1, 1]])
    gt2 = np.array([[2, 2], [0, 0]])
    pr2 = np.array([[2, 0], [0, 0]])
    m.update(pr1, gt1)
    m.update(pr2, gt2)
    r = m.result()
    # class 0: TP 3, FP 1, FN 1 -> 0.6; class 1: TP 2, FP 1 -> 2/3; class 2: TP 1, FN 1 -> 0.5
    assert r["per_class_iou"]["background"] == pytest.approx(60.0)
    assert r["per_class_iou"]["skin"] == pytest.approx(200 / 3)
    assert r["per_class_iou"]["nose"] == pytest.approx(50.0)
    assert r["miou"] == pytest.approx((60 + 200 / 3 + 50) / 3)
    assert r["pixel_acc"] == pytest.approx(6 / 8 * 100)
    # image 1: F1(0)=2/3, F1(1)=0.8; image 2: F1(0)=0.8, F1(2)=2/3
    assert r["f_measure"] == pytest.approx((2 / 3 + 0.8) / 2 * 100)


def test_classes_absent_everywhere_do_not_count_and_shape_mismatch_fails():
    m = SegmentationMetrics(num_classes=19)
    m.update(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    r = m.result()
    assert r["miou"] == 100.0 and r["per_class_iou"]["cloth"] is None
    with pytest.raises(ValueError):
        m.update(np.zeros((4, 4)), np.zeros((4, 5)))

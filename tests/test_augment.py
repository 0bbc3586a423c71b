import numpy as np

from faceparse_edge.classes import FLIP_PERMUTATION, IGNORE, LEFT_RIGHT_PAIRS, NUM_CLASSES
from faceparse_edge.toolkit.augment import AugmentConfig, Augmenter, hflip
from faceparse_edge.toolkit.samples import fix_left_right, left_right_swapped, list_samples, load_pair


def test_flip_permutation_swaps_exactly_the_left_right_pairs_and_is_its_own_inverse():
    assert (FLIP_PERMUTATION[FLIP_PERMUTATION] == np.arange(NUM_CLASSES)).all()
    moved = {int(c) for c in np.nonzero(FLIP_PERMUTATION != np.arange(NUM_CLASSES))[0]}
    assert moved == {4, 5, 6, 7, 8, 9}
    for left, right in LEFT_RIGHT_PAIRS:
        assert FLIP_PERMUTATION[left] == right and FLIP_PERMUTATION[right] == left


def test_hflip_twice_is_identity():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)
    mask = rng.integers(0, NUM_CLASSES, (16, 20), dtype=np.uint8)
    again_image, again_mask = hflip(*hflip(image, mask))
    assert (again_image == image).all() and (again_mask == mask).all()


def _centroid_x(mask, label):
    return np.nonzero(mask == label)[1].mean()


def test_left_eye_stays_on_the_image_right_after_flip_on_real_data(celeba_mini):
    checked = 0
    for sample in list_samples(celeba_mini, "val"):
        _, mask = load_pair(sample)
        mask = fix_left_right(mask)  # a few real masks have left/right reversed
        if not ((mask == 4).any() and (mask == 5).any()):
            continue
        assert _centroid_x(mask, 4) > _centroid_x(mask, 5), sample.id
        _, flipped = hflip(np.zeros((*mask.shape, 3), np.uint8), mask)
        assert _centroid_x(flipped, 4) > _centroid_x(flipped, 5), sample.id
        checked += 1
    assert checked >= 60


def test_few_real_masks_have_left_right_reversed_and_fixing_them_is_idempotent(celeba_mini):
    masks = [load_pair(s)[1] for s in list_samples(celeba_mini, "val")]
    reversed_ = [m for m in masks if left_right_swapped(m)]
    assert 0 < len(reversed_) < 0.15 * len(masks)
    for m in reversed_:
        fixed = fix_left_right(m)
        assert not left_right_swapped(fixed) and (fix_left_right(fixed) == fixed).all()


def test_augmenter_keeps_shapes_types_and_labels(tiny_dataset):
    image, mask = load_pair(list_samples(tiny_dataset)[0])
    rng = np.random.default_rng(1)
    augment = Augmenter(AugmentConfig(flip_p=1.0, rotate_deg=5, scale=(0.95, 1.05), translate=0.02))
    out_image, out_mask = augment(image, mask, rng)
    assert out_image.shape == image.shape and out_image.dtype == np.uint8
    assert out_mask.shape == mask.shape and out_mask.dtype == np.uint8
    # beyond the image (zoomed out, shifted or turned) no class is known
    assert set(np.unique(out_mask)) <= set(np.unique(FLIP_PERMUTATION[mask])) | {IGNORE}
    # mirrored (the hair band moved to the right) yet the subject's left eye stays on the image's right
    assert _centroid_x(out_mask, 13) > 32 > _centroid_x(mask, 13)
    assert _centroid_x(out_mask, 4) > _centroid_x(out_mask, 5)


def test_context_frames_the_image_in_the_middle_of_the_view_and_ignores_the_ring(tiny_dataset):
    image, mask = load_pair(list_samples(tiny_dataset)[0])
    still = AugmentConfig(flip_p=0, scale=(1, 1), rotate_deg=0, translate=0, hue=0, saturation=0, value=0,
                          brightness=0, contrast=0)
    out_image, out_mask = Augmenter(still, context=2.0)(image, mask, np.random.default_rng(0))
    q = mask.shape[0] // 4  # the image fills the middle half of the view
    for ring in (out_mask[: q - 1], out_mask[-q + 1 :], out_mask[:, : q - 1], out_mask[:, -q + 1 :]):
        assert (ring == IGNORE).all()
    middle = out_mask[q + 1 : -q - 1, q + 1 : -q - 1]
    assert IGNORE not in middle and set(np.unique(middle)) <= set(np.unique(mask))
    # the image's edge pixels repeat into the ring, as the runtime's crops repeat a frame's edge
    assert (out_image[: q - 1] == out_image[0]).all() and (out_image[0] != 0).any()

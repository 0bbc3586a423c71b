
import pytest
import torch

from faceparse_edge.errors import FaceparseError
from faceparse_edge.toolkit.losses import (
    CombinedLoss, LovaszSoftmax, SoftOverlap, class_weights, lovasz_softmax_flat, parse_loss_spec,
)


def brute_force_lovasz(probs, labels):
    """The Lovasz extension of the Jaccard loss, evaluating the set function on every prefix."""
    losses = []
    for c in range(probs.shape[1]):
        fg = labels == c
        if not fg.any():
            continue
        errors = (fg.float() - probs[:, c]).abs()
        order = sorted(range(len(errors)), key=lambda i: -float(errors[i]))
        total, previous = 0.0, 0.0
        for k in range(1, len(order) + 1):
            wrong = set(order[:k])  # pixels counted as mistakes: drop them from fg, add them as false positives
            predicted = {i for i in range(len(fg)) if (fg[i] and i not in wrong) or (not fg[i] and i in wrong)}
            truth = {i for i in range(len(fg)) if fg[i]}
            jaccard_loss = 1 - len(predicted & truth) / len(predicted | truth)
            total += float(errors[order[k - 1]]) * (jaccard_loss - previous)
            previous = jaccard_loss
        losses.append(total)
    return sum(losses) / len(losses)


@pytest.mark.parametrize("seed", range(5))
def test_lovasz_softmax_matches_brute_force_on_tiny_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(9, 4, generator=g).softmax(1)
    labels = torch.randint(0, 4, (9,), generator=g)
    assert lovasz_softmax_flat(probs, labels).item() == pytest.approx(brute_force_lovasz(probs, labels), abs=1e-5)


def test_lovasz_on_hard_predictions_is_one_minus_iou():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 2])
    probs = torch.nn.functional.one_hot(pred, 3).float()
    ious = []
    for c in range(3):
        inter = ((labels == c) & (pred == c)).sum().item()
        union = ((labels == c) | (pred == c)).sum().item()
        ious.append(inter / union)
    expected = sum(1 - i for i in ious) / 3
    assert lovasz_softmax_flat(probs, labels).item() == pytest.approx(expected)


def test_lovasz_subsample_is_close_to_full_resolution():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 64, 64, generator=g)
    target = torch.randint(0, 5, (2, 64, 64), generator=g)
    full = LovaszSoftmax(max_pixels=0)(logits, target).item()
    sampled = LovaszSoftmax(max_pixels=4096)(logits, target).item()
    assert sampled == pytest.approx(full, rel=0.05)


@pytest.mark.parametrize("kind", ["dice", "jaccard"])
def test_overlap_losses_are_near_zero_for_perfect_and_high_for_wrong_predictions(kind):
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    wrong = torch.nn.functional.one_hot((target + 1) % 3, 3).permute(0, 3, 1, 2).float() * 50
    loss = SoftOverlap(kind)
    assert loss(perfect, target).item() < 0.01
    assert loss(wrong, target).item() > 0.9


def test_loss_spec_and_combined_loss():
    assert parse_loss_spec("ce:1,lovasz:0.5") == {"ce": 1.0, "lovasz": 0.5}
    assert parse_loss_spec("dice") == {"dice": 1.0}
    for bad in ("focal", "ce:x"):
        with pytest.raises(FaceparseError):
            parse_loss_spec(bad)
    logits = torch.randn(2, 19, 8, 8, requires_grad=True)
    target = torch.randint(0, 19, (2, 8, 8))
    counts = torch.bincount(target.flatten(), minlength=19) + 1
    loss = CombinedLoss("ce:1,wce:1,lovasz:0.5,dice:0.2,jaccard:0.2", counts)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
    ce = CombinedLoss("ce")(logits, target)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, target).item())


def test_class_weights_favour_rare_classes():
    weights = class_weights([1000, 10, 1])
    assert weights[2] > weights[1] > weights[0]
    assert weights.mean().item() == pytest.approx(1.0)


@pytest.mark.parametrize("spec", ["ce", "wce", "lovasz", "dice", "jaccard"])
def test_pixels_labelled_ignore_count_in_no_loss(spec):
    from faceparse_edge.classes import IGNORE

    torch.manual_seed(0)
    logits, target = torch.randn(2, 19, 8, 8), torch.randint(0, 19, (2, 8, 8))
    loss = CombinedLoss(spec, class_pixel_counts=torch.ones(19), lovasz_pixels=0)
    ignored = target.clone()
    ignored[:, :, :3] = IGNORE  # beyond the labelled image: whatever the logits say there costs nothing
    changed = logits.clone()
    changed[:, :, :, :3] = torch.randn(2, 19, 8, 3) * 10
    assert loss(changed, ignored).item() == pytest.approx(loss(logits, ignored).item(), rel=1e-5)
    assert loss(changed, target).item() != pytest.approx(loss(logits, target).item(), rel=1e-4)  # not ignored: it does

import json
from dataclasses import replace

import numpy as np
import pytest

from faceparse_edge.errors import FaceparseError
from faceparse_edge.toolkit.checkpoint import load_checkpoint, load_model, save_weights
from faceparse_edge.toolkit.model import build_model, count_parameters
from faceparse_edge.toolkit.model_config import PRESETS
from faceparse_edge.toolkit.schedule import WarmupSchedule
from faceparse_edge.toolkit.train import TrainConfig, load_init, train

from .conftest import make_dataset

TINY = replace(PRESETS["edge"], width=0.5, aspp_channels=16, decoder_channels=16, low_level_channels=8, input_size=32)


def _val_faces(celeba_mini, size: int, n: int):
    """The first n val faces at size x size as an NCHW float tensor in 0..1."""
    import torch

    from faceparse_edge.toolkit.samples import list_samples, load_pair, resize_pair

    faces = [resize_pair(*load_pair(s), size)[0] for s in list_samples(celeba_mini, "val")[:n]]
    return torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float() / 255


def _normalised(pixels, mean, std):
    import torch

    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _cfg(data, out, **kw):
    settings = {"epochs": 2, "batch_size": 2, "lr": 1e-2, "warmup_epochs": 0.5, "workers": 0, **kw}  # workers: test_scale_out
    return TrainConfig(data=str(data), out=str(out), **settings)


def test_training_writes_checkpoints_metrics_and_curves(tiny_dataset, tmp_path):
    summary = train(_cfg(tiny_dataset, tmp_path / "run", loss="ce:1,lovasz:0.5,dice:0.1"), TINY)
    run = tmp_path / "run"
    for name in ("last.pt", "best.safetensors", "metrics.csv", "metrics.json", "curves.png"):
        assert (run / name).is_file(), name
    history = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert summary["best_miou"] == pytest.approx(max(h["val_miou"] for h in history), abs=1e-3)
    assert load_model(run / "best.safetensors").config == TINY
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_after_a_stop_continues_exactly(tiny_dataset, tmp_path, monkeypatch, ema):
    import shutil

    from faceparse_edge.toolkit import train as train_module

    saved = train_module.save_checkpoint

    def save_and_keep_epoch_1(path, state):  # what a stop after epoch 1 would leave behind
        saved(path, state)
        if state["epoch"] == 1:
            shutil.copy(path, tmp_path / "epoch1.pt")

    monkeypatch.setattr(train_module, "save_checkpoint", save_and_keep_epoch_1)
    cfg = _cfg(tiny_dataset, tmp_path / "straight", epochs=3, ema=ema)
    train(cfg, TINY)
    with pytest.raises(FaceparseError, match="already holds a run"):
        train(cfg, TINY)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(tmp_path / "epoch1.pt", resumed / "last.pt")
    train(replace(cfg, out=str(resumed), epochs=0), None, resume=True)  # epochs 0: the saved count
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(resumed / "last.pt")
    assert b["epoch"] == 3
    for key, tensor in a["model"].items():
        assert np.allclose(tensor.numpy(), b["model"][key].numpy(), atol=1e-6), key
    for key, tensor in (a["ema"] or {}).items():  # the weight average continues too
        assert np.allclose(tensor.numpy(), b["ema"][key].numpy(), atol=1e-6), key
    shorter = tmp_path / "shorter"  # --epochs with --resume is the run's new total, smaller ones too
    shorter.mkdir()
    shutil.copy(tmp_path / "epoch1.pt", shorter / "last.pt")
    train(replace(cfg, out=str(shorter), epochs=2), None, resume=True)
    assert load_checkpoint(shorter / "last.pt")["epoch"] == 2
    with pytest.raises(FaceparseError, match="has trained 3 epochs already"):
        train(replace(cfg, epochs=2), None, resume=True)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_ema_scores_and_saves_the_averaged_weights(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    summary = train(_cfg(tiny_dataset, run, epochs=1, ema=0.5), TINY)
    history = json.loads((run / "metrics.json").read_text())
    assert {"val_miou", "val_miou_raw"} <= set(history[0]) and summary["best_miou"] == pytest.approx(history[0]["val_miou"], abs=1e-3)
    state = load_checkpoint(run / "last.pt")
    best = load_model(run / "best.safetensors").state_dict()
    averaged = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    assert averaged.keys() == best.keys() == state["model"].keys()
    for key, tensor in best.items():
        assert np.allclose(tensor.numpy(), averaged[key].numpy()), key
    assert not np.allclose(best["classifier.weight"].numpy(), state["model"]["classifier.weight"].numpy())
    with pytest.raises(FaceparseError, match="--ema must be a decay"):
        train(_cfg(tiny_dataset, tmp_path / "bad", ema=1.0), TINY)


def test_training_learns_the_synthetic_task(tmp_path):
    data = make_dataset(tmp_path / "ds", n=24, splits={"train": range(20), "val": range(20, 24)})
    summary = train(_cfg(data, tmp_path / "learn", epochs=8, batch_size=4), replace(TINY, input_size=64))
    assert summary["best_miou"] > 35  # from ~5 at random init: background, skin, hair, two eyes


def test_resume_without_a_run_and_bad_settings_are_clear_errors(tiny_dataset, tmp_path):
    with pytest.raises(FaceparseError, match="checkpoint not found"):
        train(_cfg(tiny_dataset, tmp_path / "none"), None, resume=True)
    with pytest.raises(FaceparseError, match="unknown optimizer"):
        train(_cfg(tiny_dataset, tmp_path / "opt", optimizer="sgd"), TINY)
    with pytest.raises(FaceparseError, match="fewer than one batch of --batch 64: use --batch 6 or less"):
        train(replace(_cfg(tiny_dataset, tmp_path / "batch"), batch_size=64), TINY)


def test_warmup_then_cosine_and_plateau_schedules():
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    schedule = WarmupSchedule(opt, "cosine", total_steps=100, warmup_steps=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        schedule.step_batch()
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0, abs=1e-3)
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[-1] < 0.05
    opt = torch.optim.SGD([param], lr=1.0)
    plateau = WarmupSchedule(opt, "plateau", total_steps=100, warmup_steps=0, plateau_patience=1)
    for metric in (50, 50, 50):
        plateau.step_epoch(metric)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    with pytest.raises(FaceparseError):
        WarmupSchedule(opt, "step", 10, 0)


def test_early_stopping_ends_a_run_that_stops_improving(tiny_dataset, tmp_path, monkeypatch):
    from faceparse_edge.toolkit import train as train_module

    scores = iter([30.0, 50.0, 45.0, 49.0, 60.0, 70.0])  # best at epoch 2, then two worse epochs
    monkeypatch.setattr(train_module, "evaluate_torch", lambda *a, **k: (
        {"miou": next(scores), "f_measure": 0.0, "pixel_acc": 0.0}, None))
    summary = train(_cfg(tiny_dataset, tmp_path / "stop", epochs=6, patience=2), TINY)
    assert summary["epochs"] == 4 and summary["best_miou"] == 50.0


def test_repeat_factors_draw_images_with_rare_classes_more_often():
    from faceparse_edge.toolkit.loader import EpochSampler, repeat_factors

    present = np.zeros((10, 3), bool)
    present[:, 0] = True  # in every image
    present[:5, 1] = True  # in half
    present[0, 2] = True  # in one image of ten
    factors = repeat_factors(present, threshold=0.4)
    assert factors[0] == pytest.approx(2.0) and factors[1] == 1.0 and factors[9] == 1.0  # sqrt(0.4 / 0.1); 0.5 > 0.4
    assert np.array_equal(repeat_factors(present, 0.0), np.ones(10))

    def draws(rank=0, world=1, epoch=0):
        sampler = EpochSampler(list(range(10)), factors, num_replicas=world, rank=rank, seed=1, drop_last=True)
        sampler.set_epoch(epoch)
        return [index for _, index in sampler]

    counts = np.bincount([i for epoch in range(2000) for i in draws(epoch=epoch)], minlength=10)
    assert counts.sum() == 20_000  # an epoch is as long as a plain one
    assert counts[0] / counts[1:].mean() == pytest.approx(2.0, rel=0.1)
    assert draws(epoch=3) == draws(epoch=3) != draws(epoch=4)  # seeded by the epoch
    halves = draws(0, 2, 5), draws(1, 2, 5)
    assert len(halves[0]) == len(halves[1]) == 5 and sorted(halves[0] + halves[1]) == sorted(draws(epoch=5))


def test_balanced_training_runs_and_init_starts_from_trained_weights(tiny_dataset, tmp_path):
    train(_cfg(tiny_dataset, tmp_path / "first", epochs=1, balance=0.5), TINY)
    first = load_model(tmp_path / "first" / "best.safetensors")
    # A larger input size from the same weights: with no learning rate, the weights stay as they were
    train(_cfg(tiny_dataset, tmp_path / "bigger", epochs=1, lr=1e-12, weight_decay=0,
               init=str(tmp_path / "first" / "best.safetensors")), replace(TINY, input_size=64))
    bigger = load_model(tmp_path / "bigger" / "best.safetensors")
    assert bigger.config.input_size == 64
    conv = "classifier.weight"
    assert np.allclose(bigger.state_dict()[conv].numpy(), first.state_dict()[conv].numpy(), atol=1e-6)
    with pytest.raises(FaceparseError, match="another architecture"):
        train(_cfg(tiny_dataset, tmp_path / "other", init=str(tmp_path / "first" / "best.safetensors")),
              replace(TINY, aspp_channels=24))


def test_a_grown_model_starts_as_the_trained_one(celeba_mini, tmp_path):
    """Extra blocks start as the identity and new decoder channels are ignored until trained:
    shipped edge grown both ways parses a real face as edge does; weights with more extra
    blocks or decoder channels than the run's are refused."""
    import torch

    edge = load_model("edge").eval()
    grown = build_model(replace(edge.config, extra_blocks=2, decoder_channels=2 * edge.config.decoder_channels))
    load_init(grown, "edge")
    grown.eval()
    assert count_parameters(grown) > count_parameters(edge) + 10_000
    c = edge.config
    x = _normalised(_val_faces(celeba_mini, c.input_size, 1), c.mean, c.std)
    with torch.no_grad():
        assert torch.allclose(grown.coarse_logits(x), edge.coarse_logits(x), atol=1e-4)
    save_weights(tmp_path / "grown.safetensors", grown)
    with pytest.raises(FaceparseError, match="may only grow"):
        load_init(build_model(replace(grown.config, extra_blocks=0)), str(tmp_path / "grown.safetensors"))
    with pytest.raises(FaceparseError, match="may only grow"):
        load_init(build_model(edge.config), str(tmp_path / "grown.safetensors"))


def test_extra_blocks_take_their_own_learning_rate(tiny_dataset, tmp_path):
    """--extra-blocks-lr puts exactly the appended blocks' parameters in a group of their own, and
    is refused for a model without them."""
    from faceparse_edge.toolkit.train import param_groups

    grown = build_model(replace(TINY, extra_blocks=2))
    rest, extra = param_groups(grown, 1e-3, 10.0)
    appended = {id(p) for block in grown.encoder.layers[-2:] for p in block.parameters()}
    assert {id(p) for p in extra["params"]} == appended and extra["lr"] == pytest.approx(1e-2)
    assert rest["lr"] == 1e-3 and len(rest["params"]) + len(extra["params"]) == len(list(grown.parameters()))
    assert [g["lr"] for g in param_groups(build_model(TINY), 1e-3, 10.0)] == [1e-3]
    with pytest.raises(FaceparseError, match="this model has none"):
        train(_cfg(tiny_dataset, tmp_path / "run", extra_blocks_lr=10.0), TINY)


def test_tta_teacher_is_mirror_consistent_and_renormalises_for_its_own_statistics(celeba_mini):
    import torch

    from faceparse_edge.classes import FLIP_PERMUTATION
    from faceparse_edge.toolkit.distill import TTATeacher, soft_cross_entropy

    model = load_model("edge")  # a trained teacher, on two real val faces
    pixels = _val_faces(celeba_mini, 128, 2)

    def normalised(mean, std):
        return _normalised(pixels, mean, std)

    c = model.config
    probs = TTATeacher(model, c.mean, c.std)(normalised(c.mean, c.std))
    assert probs.shape == (2, 19, 32, 32)  # at the decoder's stride
    assert torch.allclose(probs.sum(1), torch.ones(2, 32, 32), atol=1e-5) and probs.max() > 0.9
    other_mean, other_std = (0.45, 0.45, 0.45), (0.2, 0.2, 0.2)  # a student normalising differently
    assert torch.allclose(TTATeacher(model, other_mean, other_std)(normalised(other_mean, other_std)), probs, atol=1e-4)
    # the parse of the mirrored face is the mirrored parse with left and right swapped
    mirrored = TTATeacher(model, c.mean, c.std)(normalised(c.mean, c.std).flip(3))
    assert torch.allclose(mirrored, probs[:, torch.as_tensor(FLIP_PERMUTATION)].flip(3), atol=1e-5)
    # soft cross-entropy is smallest at the targets' own log-probabilities
    coarse, full = torch.ones(2, 32, 32, dtype=torch.bool), torch.ones(2, 128, 128, dtype=torch.bool)
    assert soft_cross_entropy(probs.log(), probs, coarse) < soft_cross_entropy(probs.flip(3).log(), probs, coarse)
    fine = probs.log().repeat_interleave(4, 2).repeat_interleave(4, 3)  # student logits at the input size
    assert soft_cross_entropy(fine, probs, full) == pytest.approx(soft_cross_entropy(probs.log(), probs, coarse).item(),
                                                                   abs=1e-5)
    # pixels beyond the labelled image count for nothing: a student wrong only there loses nothing
    wrong_outside, known = probs.log().clone(), coarse.clone()
    wrong_outside[:, :, :, :4], known[:, :, :4] = probs.flip(3).log()[:, :, :, :4], False
    assert soft_cross_entropy(wrong_outside, probs, known) == pytest.approx(
        soft_cross_entropy(probs.log(), probs, known).item(), abs=1e-6)


def test_tta_teacher_averages_scales_on_the_grid_of_scale_one(celeba_mini):
    import torch

    from faceparse_edge.classes import FLIP_PERMUTATION
    from faceparse_edge.toolkit.distill import TTATeacher

    model = load_model("edge")
    c = model.config
    x = _normalised(_val_faces(celeba_mini, 256, 2), c.mean, c.std)
    single = TTATeacher(model, c.mean, c.std)(x)
    multi = TTATeacher(model, c.mean, c.std, (0.75, 1.0, 1.25))(x)
    assert multi.shape == single.shape == (2, 19, 64, 64)
    assert torch.allclose(multi.sum(1), torch.ones(2, 64, 64), atol=1e-5)
    # the other scales change the targets, but a trained model mostly agrees with itself across them
    agreement = (multi.argmax(1) == single.argmax(1)).float().mean().item()
    assert 0.9 < agreement < 1.0
    # resizing is mirror-symmetric, so the averaged parse stays mirror-consistent
    mirrored = TTATeacher(model, c.mean, c.std, (0.75, 1.0, 1.25))(x.flip(3))
    assert torch.allclose(mirrored, multi[:, torch.as_tensor(FLIP_PERMUTATION)].flip(3), atol=1e-4)


def test_distillation_trains_toward_a_teacher(tiny_dataset, tmp_path):
    train(_cfg(tiny_dataset, tmp_path / "teacher", epochs=1), TINY)
    teacher = str(tmp_path / "teacher" / "best.safetensors")
    summary = train(_cfg(tiny_dataset, tmp_path / "student", epochs=1, distill=teacher, distill_weight=2.0), TINY)
    assert summary["epochs"] == 1 and (tmp_path / "student" / "best.safetensors").is_file()
    with pytest.raises(FaceparseError, match="weights not found"):
        train(_cfg(tiny_dataset, tmp_path / "missing", distill=str(tmp_path / "nope.safetensors")), TINY)


def test_train_run_is_the_train_command_as_a_function(tiny_dataset, tmp_path, monkeypatch):
    """Settings by name (the rest at the schema's defaults) -> a checked (once), trained run with its config.yaml;
    a folder that holds a run is refused before its settings file is touched."""
    import yaml

    from faceparse_edge.toolkit import run_config, train as train_module
    from faceparse_edge.toolkit.run_config import train_run
    from faceparse_edge.toolkit.settings import DEFAULTS

    checks, check_trainable = [], train_module.check_trainable

    def counted(*args, **kwargs):
        checks.append(args)
        return check_trainable(*args, **kwargs)

    for module in (run_config, train_module):
        monkeypatch.setattr(module, "check_trainable", counted)
    run = tmp_path / "run"
    settings = {"data": str(tiny_dataset), "out_dir": str(run), "epochs": 1, "batch": 2, "imgsz": 32, "width": "0.5",
                "aspp_channels": 16, "decoder_channels": 16, "low_level_channels": 8}
    summary = train_run(settings)
    assert len(checks) == 1  # plan_run's check; train() does not repeat it
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["lr"] == DEFAULTS["lr"] and saved["preset"] == DEFAULTS["preset"]  # defaults
    assert load_model(run / "best.safetensors").config.aspp_channels == 16 and "best_miou" in summary
    before = (run / "config.yaml").read_text()
    with pytest.raises(FaceparseError, match="already holds a run"):
        train_run({**settings, "lr": 1e-2})
    assert (run / "config.yaml").read_text() == before
    with pytest.raises(FaceparseError, match="unknown training settings: batch_size "):
        train_run({**settings, "batch_size": 4})

from dataclasses import replace

import pytest
import torch

from faceparse_edge.errors import FaceparseError
from faceparse_edge.toolkit.model import PARAM_BUDGET, FaceParser, build_model, count_parameters, fit_width
from faceparse_edge.toolkit.model_config import PRESETS, ModelConfig


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_under_the_parameter_budget_and_keeps_the_input_size(name):
    model = build_model(PRESETS[name]).eval()
    assert count_parameters(model) < PARAM_BUDGET
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 128))
    assert out.shape == (2, 19, 96, 128)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_width_auto_fills_but_never_exceeds_the_budget(name):
    config = fit_width(PRESETS[name])
    n = count_parameters(FaceParser(config))
    assert 0.95 * PARAM_BUDGET < n <= PARAM_BUDGET
    assert count_parameters(FaceParser(replace(config, width=config.width + 0.05))) > n


def test_a_budget_that_cannot_be_met_is_a_clear_error():
    with pytest.raises(FaceparseError, match="cannot fit"):
        fit_width(PRESETS["seed"], budget=10_000)
    with pytest.raises(FaceparseError, match="over the budget"):
        build_model(replace(PRESETS["seed"], width=4.0))


def test_seed_preset_is_the_reference_design():
    model = FaceParser(PRESETS["seed"])
    assert len(model.encoder.layers) == 7
    assert model.encoder.out_channels == 40  # stride 16 after 7 layers
    rates = [b[0][0].dilation[0] for b in model.aspp.branches[2:]]
    assert rates == [5, 10, 15, 20, 25, 30]
    assert model.aspp.project[1].p == 0.2
    with torch.no_grad():
        low, high = model.encoder(torch.randn(1, 3, 128, 128))
    assert low.shape[-1] == 32 and high.shape[-1] == 8


def test_output_stride_8_dilates_instead_of_downsampling():
    model = FaceParser(replace(PRESETS["seed"], output_stride=8)).eval()
    with torch.no_grad():
        _, high = model.encoder(torch.randn(1, 3, 128, 128))
    assert high.shape[-1] == 16


def test_config_round_trips_through_a_dict():
    config = replace(PRESETS["edge"], mean=(0.1, 0.2, 0.3), width=1.5)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(FaceparseError, match="unknown model config"):
        ModelConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_coarse_logits_are_the_forward_output_before_its_upsampling():
    model = build_model(PRESETS["edge"]).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        coarse, full = model.coarse_logits(x), model(x)
    assert coarse.shape == (1, 19, 16, 16)  # the decoder works at stride 4
    upsampled = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(upsampled, full, atol=1e-5)

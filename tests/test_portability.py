"""Right answers on every x86 CPU: explicit execution precision, CPU-aware INT8, machine info with results.

Some behaviour depends on the CPU (BF16, VNNI). Each such test covers both branches: the
decision logic with faked CPU capabilities, and the real branch this machine takes.
"""

import json
from pathlib import Path

import numpy as np
import onnx
import openvino as ov
import pytest
from onnx import numpy_helper

from faceparse_edge.errors import FaceparseError
from faceparse_edge.export.format_benchmark import benchmark
from faceparse_edge.export.calibration import calibration_batches, pick_stratified
from faceparse_edge.export.quantize import quantize_onnx, resolve_int8_target
from faceparse_edge.runtime.backends import check_execution_precision, precision_ran
from faceparse_edge.sysinfo import (cpu_class, cpu_times, describe, has_vnni, inference_flags, machine_info,
                                     steal_percent)
from faceparse_edge.toolkit.samples import list_samples, resolve_split
from faceparse_edge.models import model_dir, open_model, resolve_model

from .conftest import make_dataset
from .helpers import assert_one_line_error, cli

DEFAULT_ONNX = resolve_model("edge", "onnxruntime")
FP32_IR = resolve_model("edge", "openvino")
CAPABILITIES = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def test_reduced_precision_is_refused_where_the_cpu_or_backend_cannot_run_it():
    avx2, avx512_bf16 = ["FP32", "INT8", "BIN"], ["FP32", "BF16", "INT8", "BIN"]
    check_execution_precision("f32", "onnxruntime", [])
    check_execution_precision("f32", "openvino", avx2)
    check_execution_precision("bf16", "openvino", avx512_bf16)
    with pytest.raises(FaceparseError, match="this CPU cannot run bf16"):
        check_execution_precision("bf16", "openvino", avx2)
    with pytest.raises(FaceparseError, match="this CPU cannot run f16"):
        check_execution_precision("f16", "openvino", avx512_bf16)
    with pytest.raises(FaceparseError, match="onnxruntime runs f32 only"):
        check_execution_precision("bf16", "onnxruntime", avx512_bf16)
    with pytest.raises(FaceparseError, match="unknown precision 'fp8'"):
        check_execution_precision("fp8", "openvino", avx512_bf16)


def test_fp32_ir_runs_in_f32_and_matches_onnx_runtime_on_this_cpu():
    """The bug on BF16 CPUs: OpenVINO's default hint ran the "FP32" IR in bfloat16 (max diff 0.27)."""
    ir, reference = open_model(FP32_IR), open_model(DEFAULT_ONNX)
    assert ir.execution_precision == "f32" and precision_ran(ir) == "f32"
    batch = np.random.default_rng(0).standard_normal((2, 3, ir.info.input_size, ir.info.input_size)).astype(np.float32)
    assert np.abs(ir(batch) - reference(batch)).max() < 1e-3


def test_bf16_runs_where_the_cpu_has_it_and_is_refused_where_not():
    if "BF16" in CAPABILITIES:
        backend = open_model(FP32_IR, precision="bf16")
        assert backend.execution_precision == "bf16" and precision_ran(backend) == "bf16"
        batch = np.zeros((1, 3, backend.info.input_size, backend.info.input_size), np.float32)
        assert (backend(batch).argmax(1) == open_model(FP32_IR)(batch).argmax(1)).mean() > 0.95
    else:
        with pytest.raises(FaceparseError, match="this CPU cannot run bf16"):
            open_model(FP32_IR, precision="bf16")


def test_cpu_steal_is_the_hypervisors_share_of_the_time_between_two_readings(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 50 0 25 400 5 0 0 20 0 0\n")
    start = cpu_times(stat)
    stat.write_text("cpu  160 0 70 860 10 0 0 100 0 0\n")
    assert start == (40, 1000) and cpu_times(stat) == (100, 1200)
    assert steal_percent(start, cpu_times(stat)) == 30.0  # 60 of 200 ticks
    assert cpu_times(tmp_path / "missing") is None and steal_percent(None, start) is None


def test_cpu_flags_decide_the_int8_target():
    assert has_vnni({"avx2", "avx512f", "avx512_vnni"}) and has_vnni({"avx2", "avx_vnni"})
    assert not has_vnni({"avx2", "fma", "avx512f"})
    assert inference_flags({"sse2", "avx512_bf16", "avx2"}) == ["avx2", "avx512_bf16"]
    assert [cpu_class(f) for f in ({"avx2", "fma"}, {"avx2", "avx512_vnni"}, {"avx512_vnni", "amx_int8"})] == \
        ["avx2", "vnni", "amx"]


def test_int8_targets_use_7_bit_weights_without_vnni_and_8_bit_with_it(celeba_mini, tmp_path):
    """Both export targets, whatever this CPU is: the weight range is what tells them apart."""
    from faceparse_edge.export.onnx_export import export_onnx
    from faceparse_edge.toolkit.checkpoint import load_model

    model = load_model()
    c = model.config
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    images = [s.image for s in pick_stratified(list_samples(celeba_mini, "train"), 8)]
    calibration = calibration_batches(images, c.input_size, c.mean, c.std)
    for target, limit in (("avx2", 64), ("vnni", 127)):
        proto = onnx.load(str(quantize_onnx(fp32, tmp_path / f"{target}.onnx", calibration, target)))
        assert {p.key: p.value for p in proto.metadata_props}["faceparse_edge.int8_target"] == target
        weights = [numpy_helper.to_array(t) for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
        peak = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
        assert peak <= limit and (target == "avx2" or peak > 64), (target, peak)
    with pytest.raises(FaceparseError, match="unknown INT8 target 'arm'"):
        quantize_onnx(fp32, tmp_path / "arm.onnx", calibration, "arm")
    assert not (tmp_path / "arm.onnx").exists()
    assert resolve_int8_target("avx2") == "avx2" and resolve_int8_target("auto") in ("avx2", "vnni")


def test_int8_activation_ranges_ignore_rare_outliers(celeba_mini, tmp_path):
    """One extreme input value sets the input's 8-bit step under min/max calibration, not under
    the default percentile calibration."""
    from faceparse_edge.export.onnx_export import export_onnx
    from faceparse_edge.toolkit.checkpoint import load_model

    model = load_model()
    c = model.config
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    images = [s.image for s in pick_stratified(list_samples(celeba_mini, "train"), 8)]
    calibration = calibration_batches(images, c.input_size, c.mean, c.std)
    calibration[0][0, 0, 0, 0] = 1000.0

    def input_scale(path: Path) -> float:
        proto = onnx.load(str(path))
        inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        first = next(n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == proto.graph.input[0].name)
        return float(inits[first.input[1]])

    clipped = input_scale(quantize_onnx(fp32, tmp_path / "pct.onnx", calibration, "avx2"))
    stretched = input_scale(quantize_onnx(fp32, tmp_path / "minmax.onnx", calibration, "avx2", percentile=100))
    assert stretched > 1000 / 255 * 0.99 and clipped < 10 / 255, (clipped, stretched)


def test_precision_is_reported_in_info_and_stream_json(tmp_path):
    result = cli("info", "--model", resolve_model("edge-int8", "openvino"), "--json", tmp_path / "i.json")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "i.json").read_text())
    assert (summary["format"], summary["model_precision"], summary["runs_in"]) == ("openvino", "int8", "int8+f32")
    assert summary["params"] == 463_275 and summary["machine"]["cpu_flags"] == inference_flags()
    assert_one_line_error(cli("info", "--weights", DEFAULT_ONNX, "--precision", "bf16"), "onnxruntime runs f32 only")


def test_check_evaluate_and_benchmark_use_all_pairs_of_a_dataset_without_splits(tmp_path):
    data = make_dataset(tmp_path / "nosplits", n=3)
    assert resolve_split(data, None) is None and resolve_split(data, "all") is None
    result = cli("check", "--data", data, "--json", tmp_path / "c.json", "--max-drop", "100")
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "c.json").read_text())
    assert [r["ran"] for r in rows] == ["f32", "int8+f32", "int8+f32"]
    result = cli("evaluate", "--data", data, "--weights", DEFAULT_ONNX, "--json", tmp_path / "e.json",
                 "--confusion", tmp_path / "c.png")
    assert result.returncode == 0 and json.loads((tmp_path / "e.json").read_text())["images"] == 3
    assert_one_line_error(cli("check", "--data", data, "--split", "val"), "split 'val' not found")


def test_benchmark_rows_name_their_execution_precision_and_the_table_its_cpu(tmp_path):
    data = make_dataset(tmp_path / "d", n=2)
    rows = benchmark([("edge", resolve_model("edge"), model_dir())], str(data), None, threads=1, runs=2, rounds=1,
                     warmup=1, executions=("f32", "bf16"))
    assert {r["model"] for r in rows} == {"edge"}
    assert [(r["format"], r["precision"], r["execution"]) for r in rows] == [
        ("PyTorch eager", "fp32", "f32"), ("ONNX Runtime", "fp32", "f32"), ("ONNX Runtime", "int8", "f32"),
        ("OpenVINO", "fp32", "f32"), ("OpenVINO", "int8", "f32"), ("OpenVINO", "fp32", "bf16"),
        ("OpenVINO", "int8", "bf16")]
    assert all(r["status"] == "ok" and r["p50_ms"] > 0 for r in rows[:5])
    for r in rows[5:]:
        assert r["status"] == ("ok" if "BF16" in CAPABILITIES else "skipped: this CPU cannot run bf16 "
                               f"(OpenVINO CPU capabilities: {', '.join(CAPABILITIES)})")
    result = cli("benchmark", "--data", data, "--runs", "2", "--rounds", "1", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "out" / "benchmark.md").read_text()
    assert f"flags: {' '.join(inference_flags())};" in table and describe(machine_info()).split(";")[0] in table
    saved = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert saved["machine"]["cpu_flags"] == inference_flags() and "openvino" in saved["machine"]["libraries"]
    assert 0 <= saved["machine"]["cpu_steal_percent"] <= 100 and "CPU steal during the run" in table
    assert {r["execution"] for r in saved["rows"]} == {"f32", "bf16", "f16"}
    header, rule, *lines = table.strip().splitlines()[-len(saved["rows"]) - 2:]  # one table line per row
    assert rule == "|" + "---|" * header.count(" | ") + "---|" and all(line.startswith("| edge | ") for line in lines)

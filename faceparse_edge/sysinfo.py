"""The machine a number was measured on: CPU model, inference-relevant CPU flags, library versions.

Every benchmark table carries this, because the same model runs differently on the CPUs this
project meets: AVX2 without VNNI (INT8 no faster than FP32, U8S8 saturates), AVX-512 with
VNNI (fast INT8) and BF16/AMX (OpenVINO can run in bfloat16).
"""

import os
import platform
from importlib import metadata

# The flags that change how (and how fast) the backends run a model, in /proc/cpuinfo spelling.
INFERENCE_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                   "amx_tile", "amx_int8", "amx_bf16")
LIBRARIES = ("numpy", "opencv-python", "onnxruntime", "openvino", "nncf", "onnx", "torch")


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":")[0].strip() == name), None)
    except OSError:
        return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """All flags of the first CPU in /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    return set((_cpuinfo_field("flags") or "").split())


def inference_flags(flags: set[str] | None = None) -> list[str]:
    flags = cpu_flags() if flags is None else flags
    return [f for f in INFERENCE_FLAGS if f in flags]


def has_vnni(flags: set[str] | None = None) -> bool:
    """True where INT8 dot products run in one instruction (AVX512-VNNI or AVX-VNNI)."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


def cpu_class(flags: set[str] | None = None) -> str:
    """The kind of x86 CPU a result belongs to, for naming per-CPU result folders: amx, vnni or avx2."""
    flags = cpu_flags() if flags is None else flags
    if {"amx_int8", "amx_bf16"} & flags:
        return "amx"
    return "vnni" if has_vnni(flags) else "avx2"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def cpu_times(stat: str | os.PathLike = "/proc/stat") -> tuple[int, int] | None:
    """(steal, total) CPU time in ticks since boot, from Linux's /proc/stat; None elsewhere."""
    try:
        with open(stat) as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (ticks[7] if len(ticks) > 7 else 0), sum(ticks[:8])


def steal_percent(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """Share of CPU time the hypervisor gave to other guests between two cpu_times() readings.

    On a shared VM this is one measurable cause of slow runs: a benchmark that ran under 20%
    steal measured a busy host, not the model. (A host can also be slow without steal.)
    """
    if start is None or end is None or end[1] <= start[1]:
        return None
    return round(100 * (end[0] - start[0]) / (end[1] - start[1]), 1)


def machine_info(threads: int | None = None, since: tuple[int, int] | None = None) -> dict:
    """The machine; with `since` (a cpu_times() reading at the start of the run), the CPU steal since then."""
    info = {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "cpu_flags": inference_flags(),
            "platform": platform.platform(), "libraries": library_versions()}
    if threads is not None:
        info["inference_threads"] = threads
    if since is not None:
        info["cpu_steal_percent"] = steal_percent(since, cpu_times())
    return info


def describe(info: dict) -> str:
    """One line for the top of a table."""
    threads = f"; {info['inference_threads']} inference threads" if "inference_threads" in info else ""
    steal = info.get("cpu_steal_percent")
    steal = "" if steal is None else f"; CPU steal during the run {steal}% (time the host gave to other VMs)"
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
    return (f"{info['cpu']}; {info['logical_cores']} logical cores{threads}{steal}; "
            f"flags: {' '.join(info['cpu_flags']) or 'none of ' + '/'.join(INFERENCE_FLAGS[:4])}; "
            f"{info['platform']}; {libs}")

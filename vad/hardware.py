"""What the machine computes natively, and how a result was computed: the one answer every layer
asks (scoring, training, benches) and the record each output carries (`arithmetic`)."""
from __future__ import annotations

import platform
from functools import cache

import torch

# The /proc/cpuinfo flags that change which kernels oneDNN runs, and so the last bits of a result.
ARITHMETIC_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")
# the --device help of every command that runs a network
DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N."


def native_bf16(device: torch.device) -> bool:
    """Whether `device` does bf16 matrix work in hardware: a CUDA GPU that supports it, or a CPU
    with AMX tiles or AVX512-BF16 dot products. Elsewhere oneDNN emulates bf16: on plain AVX-512
    it gains little, on AVX2 it is many times slower than fp32 (minutes per I3D clip on 2 cores)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


@cache
def cpu_description() -> dict:
    """The CPU's model name and its arithmetic flags, from /proc/cpuinfo (Linux), else platform."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():  # the end of the first processor's block: every core says the same
                    break
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "cpu_flags": [flag for flag in ARITHMETIC_FLAGS if flag in flags],
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def arithmetic(device: torch.device, **precision: str) -> dict:
    """How a result was computed: the device (GPU name, or CPU model and flags), the precision of
    each stage named in `precision` (e.g. backbone="bf16", detector="fp32"), torch and threads.
    Two runs that differ here may differ in their last digits, and a bf16 run in more."""
    record = {"device": device.type, **cpu_description()}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return {**record, "precision": precision, "torch": str(torch.__version__), "threads": torch.get_num_threads()}

"""What the machine computes natively: the one answer every layer asks (scoring, training, benches)."""
from __future__ import annotations

import torch


def native_bf16(device: torch.device) -> bool:
    """Whether `device` does bf16 matrix work in hardware: a CUDA GPU that supports it, or a CPU
    with AMX tiles or AVX512-BF16 dot products. Elsewhere oneDNN emulates bf16: on plain AVX-512
    it gains little, on AVX2 it is many times slower than fp32 (minutes per I3D clip on 2 cores)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())

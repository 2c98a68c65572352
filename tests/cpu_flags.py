"""Pretend to be another CPU: every flag vad.hardware.native_bf16 reads, patched together.

Tests of hardware choice use this, never the host's flags, so they pass alike on AVX2, AVX-512
and AMX machines (the host's AVX512-BF16 flag once made an AMX-only patch see bf16 anyway).
"""
from __future__ import annotations

import pytest
import torch

CPUS = {  # what torch.cpu reports on each kind of machine we meet
    "avx2": {"amx": False, "avx512_bf16": False},
    "avx512": {"amx": False, "avx512_bf16": False},
    "avx512-bf16": {"amx": False, "avx512_bf16": True},
    "amx": {"amx": True, "avx512_bf16": True},
}


def pretend_cpu(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    flags = CPUS[kind]
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: flags["amx"])
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: flags["avx512_bf16"])

"""The runtimes that run vad's networks: PyTorch (the default), onnxruntime and OpenVINO.

`vad export` writes the backbone and the detector as files of one format (pipeline/export.py);
a runtime loads such a file into a function from float32 arrays to float32 arrays, and
`RuntimeNetwork` wraps that function as a torch module, so the extraction engine and the
detector's scoring run an exported network exactly where they run a torch one.

onnxruntime and OpenVINO are optional extras (`pip install 'vad[onnx]'`, `'vad[openvino]'`);
without them a runtime answers with the line that installs it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vad.errors import ConfigError
from vad.registry import Registry

Run = Callable[[np.ndarray], np.ndarray]


class RuntimeMissing(ConfigError):
    """A runtime whose Python package is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Runtime:
    name: str
    package: str  # the Python package it needs
    extra: str  # vad's pip extra that installs it
    formats: tuple[str, ...]  # the export formats it loads (pipeline/export.py), its own first
    load: Callable[[Path, torch.device, int], Run] | None  # (file, device, threads) -> run; None: torch itself
    summary: str

    def require(self):
        """The runtime's package, or RuntimeMissing with the install line."""
        try:
            return importlib.import_module(self.package)
        except ImportError:
            raise RuntimeMissing(f"--runtime {self.name} needs the {self.package} package, which is not installed: "
                                 f"pip install 'vad[{self.extra}]'") from None


RUNTIMES: Registry[Runtime] = Registry("runtime")


def _onnxruntime(path: Path, device: torch.device, threads: int) -> Run:
    ort = RUNTIMES["onnxruntime"].require()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeMissing("--runtime onnxruntime --device cuda needs onnxruntime's CUDA provider: "
                                 "pip uninstall onnxruntime && pip install onnxruntime-gpu")
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    session = ort.InferenceSession(str(path), options, providers=providers)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _openvino(path: Path, device: torch.device, threads: int) -> Run:
    ov = RUNTIMES["openvino"].require()
    if device.type != "cpu":
        raise ConfigError(f"--runtime openvino runs on the CPU; pass --device cpu (not {device})")
    # f32, not OpenVINO's default: on CPUs with AMX it would run float layers in bf16, which moves
    # mid-range scores by up to 0.05 (bench/PRECISION.md); int8 layers of a quantized model stay int8.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads})
    output = compiled.output(0)
    return lambda x: compiled(x)[output]


RUNTIMES.add("torch", Runtime("torch", "torch", "", (), None, "PyTorch: the model.pt as trained (the default)"))
RUNTIMES.add("onnxruntime", Runtime("onnxruntime", "onnxruntime", "onnx", ("onnx",), _onnxruntime,
                                    "onnxruntime on an ONNX export (CPU, or CUDA with onnxruntime-gpu)"))
RUNTIMES.add("openvino", Runtime("openvino", "openvino", "openvino", ("openvino", "onnx"), _openvino,
                                 "OpenVINO on an OpenVINO export (int8 backbones too) or an ONNX one, on the CPU"))


def runtime_names() -> list[str]:
    return list(RUNTIMES)


class RuntimeNetwork(nn.Module):
    """An exported network as a torch module: float32 tensors in, float32 tensors out (on the
    input's device). It holds no parameters; `device` says where its inputs may live."""

    def __init__(self, run: Run, runtime: str, path: Path, device: torch.device):
        super().__init__()
        self.run, self.runtime, self.path, self.device = run, runtime, path, device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.run(np.ascontiguousarray(x.detach().float().cpu().numpy()))
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)

    def extra_repr(self) -> str:
        return f"{self.runtime}: {self.path}"


def load_network(runtime: str, path: Path, device: torch.device) -> RuntimeNetwork:
    """The network in `path` run by `runtime` (one of its formats), on `device`, with torch's thread count."""
    entry = RUNTIMES[runtime]
    if entry.load is None:
        raise ConfigError(f"{path}: an exported network runs with --runtime onnxruntime or openvino, not {runtime}")
    return RuntimeNetwork(entry.load(Path(path), device, torch.get_num_threads()), runtime, Path(path), device)


def module_device(model: nn.Module) -> torch.device:
    """Where a network's inputs go: its parameters' device, or an exported network's own."""
    parameter = next(model.parameters(), None)
    if parameter is not None:
        return parameter.device
    return getattr(model, "device", torch.device("cpu"))

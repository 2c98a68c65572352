"""`vad export` (pipeline/export.py) and the runtimes that score with its folders (vad/runtimes.py).

The model is the cheap one of the watch tests (tests/cheap_model.py: generated i3d-r50 weights at
112-pixel crops, an untrained no-attention detector); each format is exported once for the module.
An export must score a clip as `vad score --runtime torch` does (1e-4), from vad's own commands and
from a script that imports nothing of vad and follows only vad-export.json.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from vad.pipeline import export as export_module
from vad.pipeline.cli import main
from vad.pipeline.export import EXPORT_FILE, read_export
from vad.weights import sha256_file

from cheap_model import write_cheap_r50_model
from paths import GOLDEN_R50
from videos import pattern_frames, write_lossless

TOLERANCE = 1e-4
NETWORK_FILES = {"onnx": ["backbone.onnx", "correction.onnx", "detector.onnx", EXPORT_FILE],
                 "openvino": ["backbone.bin", "backbone.xml", "correction.bin", "correction.xml", "detector.bin", "detector.xml",
                              EXPORT_FILE]}


def vad(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def score_json(clip, *args) -> dict:
    result = vad("score", clip, *args, "--device", "cpu", "--format", "json", "-q")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_same_scores(got: dict, expected: dict):
    for key in ("scores", "snippet_scores"):
        assert len(got[key]) == len(expected[key]) > 0
        assert np.abs(np.subtract(got[key], expected[key])).max() < TOLERANCE, (key, got[key], expected[key])
    assert abs(got["video_score"] - expected["video_score"]) < TOLERANCE


@pytest.fixture(scope="module")
def model(tmp_path_factory, r50_weights_path) -> Path:
    return write_cheap_r50_model(tmp_path_factory.mktemp("model") / "model.pt", r50_weights_path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """40 frames of 83x70: 3 snippets, the last one padded by 8 frames. Resized to 151x128 (128 * 83 / 70 =
    151.77, truncated), so the centre crop's left edge is round(39 / 2) = 20 (half to even), its top 8."""
    return write_lossless(tmp_path_factory.mktemp("clip") / "clip.mp4", pattern_frames(40, width=83, height=70, seed=3), fps=25)


@pytest.fixture(scope="module")
def torch_scores(clip, model, r50_weights_path) -> dict:
    scores = score_json(clip, "--model", model, "--weights", r50_weights_path, "--runtime", "torch")
    assert scores["runtime"] == "torch" and scores["n_snippets"] == 3 and scores["n_frames"] == 40
    return scores


def _export(tmp_path_factory, model, weights, fmt):
    out = tmp_path_factory.mktemp(f"export-{fmt}") / "out"
    result = vad("export", model, "--out", out, "--format", fmt, "--weights", weights, "-q")
    return out, result


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """3 clips of 4 snippets to calibrate int8 on: the 12 snippets the int8 export asks for."""
    folder = tmp_path_factory.mktemp("footage")
    for i in range(3):
        write_lossless(folder / f"c{i}.mp4", pattern_frames(64, seed=10 + i), fps=25)
    return folder


@pytest.fixture(scope="module")
def both_exports(tmp_path_factory, model, r50_weights_path, footage):
    """The ONNX export, made in this process, and the OpenVINO export with its backbone quantized to int8, which runs the
    whole OpenVINO path (fp32 IR, its check against PyTorch, then NNCF), made at the same time in a process of its own:
    once an int8 export has run in a process, a SIGTERM to that process crashes it (SIGSEGV; docs/export.md, "int8"), and
    tests/test_faults_streams.py sends SIGTERM to the pytest process. The fp32 IR of the parity tests is `exports`'."""
    out = tmp_path_factory.mktemp("export-openvino") / "out"
    int8 = subprocess.Popen([sys.executable, "-c", "from vad.pipeline.cli import main; main()", "export", str(model), "--out", str(out),
                             "--format", "openvino", "--int8", "--calibrate", str(footage), "--snippets", "8", "--held-out", "4",
                             "--seed", "1", "--weights", str(r50_weights_path), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        onnx = _export(tmp_path_factory, model, r50_weights_path, "onnx")
        stdout, stderr = int8.communicate(timeout=600)
    finally:
        int8.kill()
    return {"onnx": onnx, "openvino": (out, SimpleNamespace(exit_code=int8.returncode, output=stderr, stdout=stdout))}


@pytest.fixture(scope="module")
def onnx_export(both_exports):
    return both_exports["onnx"]


@pytest.fixture(scope="module")
def openvino_export(both_exports):
    return both_exports["openvino"]


@pytest.fixture(scope="module")
def exports(onnx_export, openvino_export, tmp_path_factory) -> dict[str, Path]:
    """{"onnx": the ONNX export, "openvino": the fp32 OpenVINO one, "int8": the int8 OpenVINO one}. The fp32 IR is the
    ONNX export's networks converted by OpenVINO, as `vad export --format openvino` converts them (an export costs tens
    of seconds; the int8 export runs that conversion itself)."""
    import openvino as ov

    folders = {}
    for fmt, (out, result) in {"onnx": onnx_export, "int8": openvino_export}.items():
        assert result.exit_code == 0, result.output
        folders[fmt] = out
    fp32 = tmp_path_factory.mktemp("export-openvino-fp32") / "out"
    fp32.mkdir()
    manifest = json.loads((folders["onnx"] / EXPORT_FILE).read_text())
    for entry in manifest["networks"].values():
        xml = fp32 / entry["file"].replace(".onnx", ".xml")
        ov.save_model(ov.convert_model(folders["onnx"] / entry["file"]), xml, compress_to_fp16=False)
        entry.update(file=xml.name, sha256=export_module._file_digest(xml))
    (fp32 / EXPORT_FILE).write_text(json.dumps({**manifest, "format": "openvino"}))
    folders["openvino"] = fp32
    return folders


# -- 1. the export folder --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_export_writes_the_networks_and_the_manifest(fmt, exports, onnx_export, openvino_export, model, r50_weights_path):
    out, result = {"onnx": onnx_export, "openvino": openvino_export}[fmt]
    summary = json.loads(result.stdout)  # stdout: one JSON line
    backbone_precision = {"onnx": "fp32", "openvino": "int8"}[fmt]
    assert summary["format"] == fmt and summary["precision"] == backbone_precision and summary["files"] == NETWORK_FILES[fmt]
    assert sorted(p.name for p in out.iterdir()) == NETWORK_FILES[fmt]
    assert not [p for p in out.parent.iterdir() if p != out], "a temporary folder was left beside the export"
    manifest = json.loads((out / EXPORT_FILE).read_text())
    assert manifest["kind"] == "vad-export" and manifest["format"] == fmt
    assert manifest["backbone"]["name"] == "i3d-r50" and manifest["backbone"]["form"] in ("fast", "exact")
    assert manifest["backbone"]["weights_sha256"] == sha256_file(r50_weights_path) == manifest["feature"]["weights_sha256"]
    assert manifest["model"]["sha256"] == sha256_file(model)
    pre = manifest["preprocessing"]
    assert (pre["clip_len"], pre["short_side"], pre["crop_size"], pre["crops"], pre["jpeg_quality"]) == (16, 128, 112, 1, None)
    scale, offset = pre["normalisation"]["scale"], pre["normalisation"]["offset"]
    assert abs(114.75 * scale + offset) < 1e-6 and abs(scale * 57.375 - 1) < 1e-6  # i3d-r50: (v - 114.75) / 57.375
    runtime = {"onnx": "onnxruntime", "openvino": "openvino"}[fmt]
    for name in ("backbone", "detector", "correction"):
        entry = manifest["networks"][name]
        assert (out / entry["file"]).is_file() and entry["precision"] == (backbone_precision if name == "backbone" else "fp32")
        # the float network against PyTorch, checked before any quantization
        assert entry["check"]["runtime"] == runtime and 0 <= entry["check"]["relative"] < 1e-4, entry["check"]
        assert entry["check"]["max_ref"] > 0
    assert manifest["networks"]["backbone"]["inputs"] == {"clips": ["n", 3, 16, 112, 112]}
    assert manifest["networks"]["backbone"]["outputs"] == {"features": ["n", 2048]}
    assert list(manifest["networks"]["correction"]["outputs"]) == ["corrected", "video_score"]
    assert read_export(out).format == fmt  # the sha256s it records are the files'


def test_int8_export_records_its_calibration_and_deviation(exports, footage):
    backbone = json.loads((exports["int8"] / EXPORT_FILE).read_text())["networks"]["backbone"]
    assert backbone["precision"] == "int8" and backbone["quantization"]["tool"].startswith("nncf")
    calibration, deviation = backbone["calibration"], backbone["deviation"]
    assert sorted(Path(v).name for v in calibration["videos"]) == ["c0.mp4", "c1.mp4", "c2.mp4"]
    assert calibration["snippets"] + calibration["held_out"] == 12 and calibration["snippets"] >= 8
    assert calibration["held_out"] >= 1 and deviation["snippets"] == calibration["held_out"] and calibration["seed"] == 1
    assert 1 <= calibration["per_video_snippets"] <= 4
    assert -1 <= deviation["feature_cosine_min"] <= deviation["feature_cosine_mean"] <= 1
    assert deviation["feature_max_abs"] >= 0 and 0 <= deviation["score_max_abs"] <= 1
    assert abs(deviation["score_mean_shift"]) <= deviation["score_max_abs"] and deviation["feature_norm_ratio_mean"] > 0


# -- 2. an export runs without vad -----------------------------------------------------------------
STANDALONE = r'''
import json, sys
import av
import numpy as np
from PIL import Image

folder, video, runtime = sys.argv[1:4]
manifest = json.load(open(folder + "/vad-export.json"))
pre = manifest["preprocessing"]
assert pre["jpeg_quality"] is None and pre["crops"] == 1, pre

def network(name):
    entry = manifest["networks"][name]
    path = folder + "/" + entry["file"]
    inputs, outputs = list(entry["inputs"]), list(entry["outputs"])
    if runtime == "onnxruntime":
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda x: session.run(outputs, {inputs[0]: x})
    import openvino
    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda x: [compiled({inputs[0]: x})[compiled.output(o)] for o in outputs]

with av.open(video) as container:
    frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
n, length = len(frames), pre["clip_len"]
snippets = -(-n // length)
frames += [frames[-1]] * (snippets * length - n)

def crop(frame):
    image = Image.fromarray(frame)
    w, h, s = image.width, image.height, pre["short_side"]
    size = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    image = image.resize(size, Image.BILINEAR)
    c = pre["crop_size"]
    top, left = round((image.height - c) / 2), round((image.width - c) / 2)
    return np.asarray(image)[top:top + c, left:left + c]

norm = pre["normalisation"]
pixels = np.stack([crop(f) for f in frames]).astype(np.float32) * np.float32(norm["scale"]) + np.float32(norm["offset"])
c = pre["crop_size"]
clips = np.ascontiguousarray(pixels.reshape(snippets, length, c, c, 3).transpose(0, 4, 1, 2, 3), dtype=np.float32)
features = network("backbone")(clips)[0]                                   # [T, D]: one crop
per_crop = network("detector")(np.ascontiguousarray(features[None]))[0]    # [crops=1, T]
raw = per_crop.mean(0).astype(np.float32)
corrected, video_score = network("correction")(raw)
scores = np.repeat(corrected, length)[:n]
assert "vad" not in sys.modules and not [m for m in sys.modules if m.startswith("vad.")], "vad was imported"
print(json.dumps({"snippet_scores": corrected.tolist(), "scores": scores.tolist(), "video_score": float(video_score),
                  "raw": raw.tolist(), "torch_imported": "torch" in sys.modules}))
'''


@pytest.mark.parametrize("fmt, runtime", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_an_export_scores_without_vad_from_its_manifest_alone(fmt, runtime, exports, clip, torch_scores, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VAD_"))}
    done = subprocess.run([sys.executable, "-I", "-c", STANDALONE, str(exports[fmt]), str(clip), runtime], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.splitlines()[-1])
    assert len(got["scores"]) == 40 and len(got["snippet_scores"]) == 3 and got["torch_imported"] is False
    assert_same_scores(got, torch_scores)
    # a real check: the snippets differ, so a wrong crop or normalisation would move them
    assert np.ptp(got["raw"]) > 10 * TOLERANCE, got["raw"]


# -- 3. vad score with the runtimes ----------------------------------------------------------------
@pytest.mark.parametrize("fmt, runtime", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_score_with_an_export_folder_matches_torch(fmt, runtime, exports, clip, torch_scores):
    got = score_json(clip, "--model", exports[fmt])  # --runtime auto: the export's own runtime
    assert got["runtime"] == runtime and got["precision"] == "fp32" and got["backbone"] == "i3d-r50"
    assert_same_scores(got, torch_scores)


def test_score_an_onnx_export_with_openvino(exports, clip, torch_scores, r50_weights_path):
    result = vad("score", clip, "--model", exports["onnx"], "--runtime", "openvino", "--weights", r50_weights_path, "--device", "cpu",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["runtime"] == "openvino"
    assert_same_scores(got, torch_scores)
    assert "--weights is not read" in result.stderr  # the export holds the backbone's weights


def copying_exporter(monkeypatch, sources: dict[str, Path], calls: list):
    """export_model replaced by a copy of an export made by `vad export` of the same model (the same
    networks; an export costs tens of seconds): records its calls."""
    def fake(model, out, config, progress=True):
        calls.append((Path(model), Path(out), config.format, config.overwrite))
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(sources[config.format], out)
        return read_export(out)
    monkeypatch.setattr(export_module, "export_model", fake)


@pytest.mark.parametrize("fmt, runtime", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_score_a_model_file_with_a_runtime_matches_torch(fmt, runtime, exports, clip, model, r50_weights_path, torch_scores,
                                                         monkeypatch):
    calls = []
    copying_exporter(monkeypatch, {fmt: exports[fmt]}, calls)
    result = vad("score", clip, "--model", model, "--weights", r50_weights_path, "--runtime", runtime, "--device", "cpu",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["runtime"] == runtime and got["precision"] == "fp32" and got["model"] == str(model)
    assert_same_scores(got, torch_scores)
    assert len(calls) == 1 and calls[0][0] == model and calls[0][2] == fmt and calls[0][3] is True
    assert calls[0][1].parent == Path(os.environ["VAD_HOME"]) / "exports" and calls[0][1].name.endswith(f"-{fmt}")
    assert "exporting" in result.stderr and "is not read" not in result.stderr  # the one-time export is said


# -- 7. the data folder's exports of a model file --------------------------------------------------
def test_a_model_file_is_exported_once_and_a_damaged_export_is_made_again(exports, clip, model, r50_weights_path, torch_scores,
                                                                          monkeypatch, tmp_path):
    monkeypatch.setenv("VAD_HOME", str(tmp_path / "home"))
    calls = []
    copying_exporter(monkeypatch, {"onnx": exports["onnx"]}, calls)
    args = ["--model", model, "--weights", r50_weights_path, "--runtime", "onnxruntime"]
    assert_same_scores(score_json(clip, *args), torch_scores)
    (folder,) = (tmp_path / "home" / "exports").iterdir()
    assert len(calls) == 1 and calls[0][1] == folder
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert_same_scores(score_json(clip, *args), torch_scores)
    assert len(calls) == 1 and {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamp  # not exported again
    # the weights the model records, named by --weights or found where vad looks: one export (here none is installed,
    # so the export in the data folder is all that scores)
    assert_same_scores(score_json(clip, "--model", model, "--runtime", "onnxruntime"), torch_scores)
    assert len(calls) == 1 and [p.name for p in (tmp_path / "home" / "exports").iterdir()] == [folder.name]
    # a damaged file: its sha256 no longer matches, so the export is made again, with a warning
    with open(folder / "detector.onnx", "ab") as f:
        f.write(b"\0")
    result = vad("score", clip, *args, "--device", "cpu", "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(calls) == 2 and calls[1][1] == folder and "exporting again" in result.stderr
    assert_same_scores(json.loads(result.stdout), torch_scores)
    assert read_export(folder).format == "onnx"
    # another model file is another export
    other = tmp_path / "other.pt"
    shutil.copy(model, other)
    with open(other, "ab") as f:
        f.write(b"\0")
    assert score_json(clip, "--model", other, *args[2:])["runtime"] == "onnxruntime"
    assert len(calls) == 3 and calls[2][1] != folder and len(list((tmp_path / "home" / "exports").iterdir())) == 2


# -- 4. vad watch ----------------------------------------------------------------------------------
def watch_rows(clip, *args) -> list[dict]:
    result = vad("watch", clip, *args, "--device", "cpu", "--threshold", "1.0", "-q")
    assert result.exit_code == 0, result.output
    return [r for r in map(json.loads, result.stdout.splitlines()) if "event" not in r]


def test_watch_with_onnxruntime_matches_torch(exports, clip, model, r50_weights_path):
    expected = watch_rows(clip, "--model", model, "--weights", r50_weights_path, "--runtime", "torch")
    got = watch_rows(clip, "--model", exports["onnx"], "--runtime", "onnxruntime")
    assert [(r["frame_start"], r["frame_end"]) for r in got] == [(r["frame_start"], r["frame_end"]) for r in expected] \
        == [(0, 16), (16, 32), (32, 40)]
    for key in ("raw", "score"):
        assert np.abs(np.subtract([r[key] for r in got], [r[key] for r in expected])).max() < TOLERANCE, key


# -- 5. errors -------------------------------------------------------------------------------------
def test_a_missing_runtime_package_says_how_to_install_it(exports, clip, tmp_path):
    code = ("import sys; sys.modules['onnxruntime'] = None; from vad.pipeline.cli import main; "
            f"sys.argv = ['vad', 'score', {str(clip)!r}, '--model', {str(exports['onnx'])!r}, '--device', 'cpu', '-q']; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "pip install 'vad[onnx]'" in done.stderr and "Traceback" not in done.stderr


def test_export_without_the_runtime_package_exits_2(model, r50_weights_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    result = vad("export", model, "--out", tmp_path / "ov", "--format", "openvino", "--weights", r50_weights_path, "-q")
    assert result.exit_code == 2 and "pip install 'vad[openvino]'" in result.stderr, result.output
    assert not (tmp_path / "ov").exists()


@pytest.mark.parametrize("args, message", [
    (["--int8", "--calibrate", "."], "--format openvino"),
    (["--format", "openvino", "--int8"], "--calibrate"),
])
def test_int8_needs_openvino_and_footage(model, r50_weights_path, tmp_path, args, message):
    result = vad("export", model, "--out", tmp_path / "out", "--weights", r50_weights_path, *args, "-q")
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_empty_is_kept_without_overwrite(model, r50_weights_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = vad("export", model, "--out", out, "--weights", r50_weights_path, "-q")
    assert result.exit_code == 2 and "--overwrite" in result.stderr, result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.fixture()
def onnx_copy(exports, tmp_path) -> Path:
    return Path(shutil.copytree(exports["onnx"], tmp_path / "copy"))


def test_a_changed_network_file_is_refused(onnx_copy, clip):
    with open(onnx_copy / "detector.onnx", "ab") as f:
        f.write(b"\0")
    result = vad("score", clip, "--model", onnx_copy, "--device", "cpu", "-q")
    assert result.exit_code == 2 and "detector.onnx" in result.stderr and "sha256" in result.stderr, result.output


@pytest.mark.parametrize("name", ["../x.onnx", "/etc/passwd", "sub/detector.onnx", ".."])
def test_a_manifest_cannot_name_files_outside_its_folder(onnx_copy, clip, name):
    manifest = json.loads((onnx_copy / EXPORT_FILE).read_text())
    manifest["networks"]["detector"]["file"] = name
    (onnx_copy / EXPORT_FILE).write_text(json.dumps(manifest))
    result = vad("score", clip, "--model", onnx_copy, "--device", "cpu", "-q")
    assert result.exit_code == 2 and "names no file inside the folder" in result.stderr, result.output


@pytest.mark.parametrize("args, message", [
    (["--runtime", "torch"], "not torch"),
    (["--runtime", "onnxruntime", "--precision", "bf16"], "--precision bf16"),
])
def test_options_an_export_cannot_honour_exit_2(exports, clip, args, message):
    result = vad("score", clip, "--model", exports["onnx"], "--device", "cpu", *args, "-q")
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_an_openvino_export_is_not_run_by_onnxruntime(exports, clip):
    result = vad("score", clip, "--model", exports["openvino"], "--runtime", "onnxruntime", "--device", "cpu", "-q")
    assert result.exit_code == 2 and "--runtime openvino" in result.stderr, result.output


def test_precision_bf16_with_a_model_file_and_onnxruntime_exits_2_before_exporting(clip, model, r50_weights_path, monkeypatch):
    calls = []
    copying_exporter(monkeypatch, {}, calls)
    result = vad("score", clip, "--model", model, "--weights", r50_weights_path, "--runtime", "onnxruntime", "--precision", "bf16",
                 "--device", "cpu", "-q")
    assert result.exit_code == 2 and "--precision bf16" in result.stderr and calls == [], result.output


def test_a_model_file_that_is_missing_or_not_a_model_is_one_line_with_a_runtime(clip, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("junk")
    for model, message in ((tmp_path / "nope.pt", "no such model file"), (junk, "not a loadable model file")):
        result = vad("score", clip, "--model", model, "--runtime", "onnxruntime", "--device", "cpu", "-q")
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_a_folder_without_a_manifest_is_refused(clip, tmp_path):
    (tmp_path / "backbone.onnx").write_bytes(b"")
    for args in ([], ["--runtime", "onnxruntime"]):
        result = vad("score", clip, "--model", tmp_path, "--device", "cpu", *args, "-q")
        assert result.exit_code == 2 and EXPORT_FILE in result.stderr, result.output


# -- 6. an int8 backbone ---------------------------------------------------------------------------
def test_an_int8_export_scores_with_openvino(exports, clip, torch_scores):
    got = score_json(clip, "--model", exports["int8"])
    assert got["precision"] == "int8" and got["runtime"] == "openvino" and len(got["scores"]) == 40
    assert all(0 <= s <= 1 for s in got["scores"])
    assert got["scores"] != torch_scores["scores"]  # int8 features: a curve of its own


# -- the real Inception backbone -------------------------------------------------------------------
@pytest.mark.slow  # needs the real weights (make weights)
def test_inception_export_scores_the_golden_and_a_demo_clip_as_torch_does(tmp_path, inception_weights_path):
    import torch

    from vad.extract.backbones import get_backbone
    from vad.extract.runner import ExtractConfig, cache_config
    from vad.models.detector import build_detector
    from vad.models.io import save_model

    spec = get_backbone("i3d-inception")
    torch.manual_seed(0)
    detector = build_detector(feature_dim=spec.feature_dim, hidden_dim=64, fc_dim=8, attention=False)
    with torch.no_grad():
        detector.fc2.weight.mul_(0.02)
    feature = cache_config(spec, ExtractConfig(backbone="i3d-inception", crops=1), sha256_file(inception_weights_path))
    model = tmp_path / "inception.pt"
    save_model(model, detector, feature=feature, phase="untrained")
    clip = GOLDEN_R50 / "clip40.mp4"
    expected = score_json(clip, "--model", model, "--weights", inception_weights_path)
    result = vad("export", model, "--out", tmp_path / "onnx", "--weights", inception_weights_path, "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "onnx" / EXPORT_FILE).read_text())
    assert manifest["backbone"]["name"] == "i3d-inception" and manifest["networks"]["backbone"]["check"]["relative"] < 1e-4
    got = score_json(clip, "--model", tmp_path / "onnx")
    assert got["runtime"] == "onnxruntime" and got["backbone"] == "i3d-inception"
    assert_same_scores(got, expected)
    # a clip of the demo's generated footage (vad.synth, as `vad demo` renders it), with H.264 and a real anomaly
    from vad.synth import make_dataset

    make_dataset(tmp_path / "demo", 0, 1, n_frames=40, kinds=("fall",))
    (demo_clip,) = (tmp_path / "demo" / "videos" / "abnormal").iterdir()
    assert_same_scores(score_json(demo_clip, "--model", tmp_path / "onnx"),
                       score_json(demo_clip, "--model", model, "--weights", inception_weights_path))


# -- the Python API --------------------------------------------------------------------------------
def test_the_api_loads_an_export_and_checks_export_settings(exports, clip, torch_scores, model, tmp_path):
    import vad as api
    from vad.errors import ConfigError

    curve = api.load_scorer(exports["onnx"], device="cpu").score(clip)
    assert np.abs(curve.frame_scores - np.array(torch_scores["scores"])).max() < TOLERANCE
    with pytest.raises(ConfigError, match=r"format.*'tflite' is not one of onnx, openvino"):
        api.export(model, tmp_path / "out", format="tflite")
    with pytest.raises(ConfigError, match="--int8 quantizes with NNCF for OpenVINO"):
        api.export(model, tmp_path / "out", int8=True, calibrate=tmp_path)
    assert not (tmp_path / "out").exists()

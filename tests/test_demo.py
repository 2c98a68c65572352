"""`vad demo --quick`: the whole pipeline end to end on generated footage, real Inception weights."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vad.pipeline.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory, inception_weights_path):
    """(the `vad demo --quick` output folder, its CLI result), run once with its own data folder."""
    tmp_path = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAD_HOME", str(tmp_path / "home"))
        result = CliRunner().invoke(main, ["demo", "--quick", "--out", str(tmp_path / "demo"), "--device", "cpu", "-q"])
        yield tmp_path, result


def test_quick_demo_runs_every_step(demo, monkeypatch):
    tmp_path, result = demo
    monkeypatch.setenv("VAD_HOME", str(tmp_path / "home"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo/summary.json").read_text())
    assert 0.0 <= summary["auc"] <= 1.0 and summary["test_videos"] == 4
    assert summary["supervised_probe_auc"] is None or 0.0 <= summary["supervised_probe_auc"] <= 1.0
    assert set(summary["seconds"]) == {"generate", "extract", "train", "eval", "score", "total"}
    metrics = json.loads((tmp_path / "demo/run/metrics.json").read_text())
    assert [it["phase"] for it in metrics["iterations"]] == ["bst", "ham", "as"]
    assert metrics["config"]["attention"] is False  # the conv + MLP detector unless --attention
    for scored in summary["scored"]:
        rows = list(csv.DictReader(open(scored["csv"])))
        assert rows and all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
        assert open(scored["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        page = Path(scored["html"])  # the HTML report of the clip, its proxy video beside it
        assert page.parent == tmp_path / "demo/report" and 'id="vad-data"' in page.read_text()
        assert page.with_name(f"{page.stem}.proxy.mp4").stat().st_size > 0
    index = (tmp_path / "demo/report/index.html").read_text()
    assert summary["report"] == str(tmp_path / "demo/report/index.html")
    assert all(f'href="{Path(s["html"]).name}"' in index for s in summary["scored"])
    assert "demo: frame-level AUC" in result.stderr
    # The one file outside --out: the record of the default model, in the data folder (the last line says so).
    pointer = json.loads((tmp_path / "home/default_model.json").read_text())
    assert pointer["model"] == str((tmp_path / "demo/run/model.pt").resolve())
    assert summary["default_model_record"] == str(tmp_path / "home/default_model.json")
    assert str(tmp_path / "home/default_model.json") in result.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["default_model.json"]
    # The default model says what it is: one warning line, and its provenance in the JSON.
    clip = summary["scored"][0]
    scored = CliRunner().invoke(main, ["score", str(tmp_path / "demo/data/test/videos" / f"{clip['video']}.mp4"),
                                       "--format", "json", "--device", "cpu", "-q"])
    assert scored.exit_code == 0, scored.output
    assert scored.stderr.count("trained by `vad demo` on generated cartoon footage") == 1
    assert "vad train --cache" in scored.stderr
    provenance = json.loads(scored.stdout)["provenance"]
    assert provenance["generated_footage"] is True and provenance["train_videos"] == {"normal": 3, "abnormal": 3, "total": 6}
    assert provenance["backbone"] == "i3d-inception" and provenance["command"].startswith("vad demo")


def test_demo_clip_scores_at_the_default_precision_are_fp32s_on_a_cpu(demo):
    """`vad score` runs fp32 on every CPU (so auto gives fp32's scores bit for bit, whatever the
    CPU's bf16 hardware) and fp16 on CUDA, within its measured 0.003 of fp32 (engine.scoring_precision)."""
    tmp_path, result = demo
    assert result.exit_code == 0, result.output
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    summary = json.loads((tmp_path / "demo/summary.json").read_text())
    video = tmp_path / "demo/data/test/videos" / f"{summary['scored'][0]['video']}.mp4"
    scores = {}
    for precision in ("fp32", "auto"):
        scored = CliRunner().invoke(main, ["score", str(video), "--model", str(tmp_path / "demo/run/model.pt"), "--format", "json",
                                           "--device", device.type, "--precision", precision, "-q"])
        assert scored.exit_code == 0, scored.output
        out = json.loads(scored.stdout)
        assert out["precision"] == out["arithmetic"]["precision"]["backbone"] == ("fp16" if precision == "auto" and device.type == "cuda" else "fp32")
        scores[precision] = np.array(out["snippet_scores"])
    if device.type == "cpu":
        np.testing.assert_array_equal(scores["auto"], scores["fp32"])
    else:
        assert np.abs(scores["auto"] - scores["fp32"]).max() <= 0.005

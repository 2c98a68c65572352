"""Settings defined once (vad.settings): every config field reaches its command's --help with its
default, registries reach the choices, only typed options override presets, and no function of
the package takes more than six positional parameters."""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from vad import settings
from vad.extract.backbones import BACKBONES, get_backbone
from vad.extract.runner import ExtractConfig
from vad.models.config import TrainConfig
from vad.models.detector import DetectorConfig
from vad.models.losses import LOSSES, VideoLoss
from vad.models.phases import PHASES, get_phase
from vad.pipeline.cli import main
from vad.pipeline.export import ExportConfig
from vad.pipeline.score import ScoreConfig
from vad.pipeline.watch import WatchConfig

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"train": (TrainConfig, DetectorConfig), "extract": (ExtractConfig,), "score": (ScoreConfig,), "watch": (WatchConfig,),
            "export": (ExportConfig,)}


def help_text(command: str) -> str:
    """The Options section of `vad COMMAND --help`, whitespace collapsed."""
    return " ".join(help_entries(command).values())


def help_entries(command: str) -> dict[str, str]:
    """Option name -> its entry in `vad COMMAND --help` (metavar, help, default), whitespace collapsed."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    options = result.output.split("\nOptions:\n", 1)[1]
    entries = re.findall(r"^  (-.*?)(?=^  -|\Z)", options, re.M | re.S)
    return {re.match(r"(?:-\w, )?(--[\w-]+)", entry).group(1): " ".join(entry.split()) for entry in entries}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_setting_is_in_its_commands_help_with_its_default(command):
    entries = help_entries(command)
    seen = 0
    for cls in COMMANDS[command]:
        for f, declared, _ in settings.fields_of(cls):
            if not declared.cli or dataclasses.is_dataclass(f.type) or f.name == "detector":
                continue
            flag = declared.option_name(f.name)
            shown = settings.default_text(f, declared)
            assert flag in entries, f"{flag} missing from `vad {command} --help`"
            match = re.search(r"^--[\w-]+\s(.*?)\[default: (.*?)\]", entries[flag])
            assert match, f"{flag}: no default in {entries[flag]!r}"
            assert " ".join(match.group(2).split()) == " ".join(shown.split()), f"{flag}: help shows {match.group(2)!r}, the field {shown!r}"
            assert " ".join(declared.help.split())[:40] in match.group(1)
            seen += 1
    assert seen == {"train": 28, "extract": 15, "score": 11, "watch": 21, "export": 9}[command]


def test_some_defaults_as_a_user_reads_them():
    train, score, watch = help_text("train"), help_text("score"), help_text("watch")
    assert re.search(r"--lr FLOAT RANGE .*?\[default: 0\.0001\]", train)
    assert re.search(r"--phases \[bst\|ham\|as\]\[,\.\.\.\] .*?\[default: bst,ham,as\]", train)
    assert re.search(r"--no-attention .*?\[default: attention on\]", train)
    assert re.search(r"--batch-size INTEGER RANGE .*?\[default: 4\]", score)
    assert re.search(r"--window INTEGER RANGE .*?\[default: 32\]", watch)


@pytest.fixture()
def dummies(monkeypatch):
    """A registered phase, loss and backbone, removed again after the test."""
    monkeypatch.setitem(PHASES._entries, "dummyphase", dataclasses.replace(get_phase("ham"), name="dummyphase"))
    monkeypatch.setitem(LOSSES._entries, "dummyloss", VideoLoss("dummyloss", lambda a, n: (a.mean() - n.mean()) ** 2))
    monkeypatch.setitem(BACKBONES._entries, "dummy-backbone", dataclasses.replace(get_backbone("i3d-inception"), name="dummy-backbone"))


def test_registered_names_reach_help_and_the_command_line(dummies, monkeypatch):
    assert "dummyphase" in help_text("train") and "dummyloss" in help_text("train") and "dummy-backbone" in help_text("extract")
    called = {}
    monkeypatch.setattr("vad.pipeline.api.train", lambda *args, **kw: called.setdefault("train", kw) and (_ for _ in ()).throw(SystemExit(0)))
    monkeypatch.setattr("vad.pipeline.api.extract_features", lambda *args, **kw: called.setdefault("extract", kw) and (_ for _ in ()).throw(SystemExit(0)))
    runner = CliRunner()
    runner.invoke(main, ["train", "--cache", "c", "--labels", "l.csv", "--phases", "bst,dummyphase", "--schedule", "traditional",
                         "--loss", "dummyloss"])
    runner.invoke(main, ["extract", "v.mp4", "--backbone", "dummy-backbone", "--crops", "1"])
    assert called["train"]["phases"] == ("bst", "dummyphase") and called["train"]["loss"] == "dummyloss"
    assert called["extract"]["backbone"] == "dummy-backbone" and called["extract"]["crops"] == 1
    refused = runner.invoke(main, ["train", "--cache", "c", "--labels", "l.csv", "--phases", "bst,nosuch"])
    assert refused.exit_code == 2 and "'nosuch' is not one of bst, ham, as, dummyphase" in refused.output


def test_only_typed_options_are_passed_so_presets_and_defaults_apply(monkeypatch):
    captured = []
    monkeypatch.setattr("vad.pipeline.api.train", lambda *args, **kw: captured.append(kw) or (_ for _ in ()).throw(SystemExit(0)))
    runner = CliRunner()
    runner.invoke(main, ["train", "--cache", "c", "--labels", "l.csv", "--preset", "sh", "--epochs", "7", "--no-attention", "--dropout", "0.5"])
    kw = captured[-1]
    assert kw["preset"] == "sh" and kw["epochs"] == 7 and "lr" not in kw and "lambda_small" not in kw
    assert kw["detector"] == {"attention": False, "dropout": 0.5}
    from vad.models.config import make_config

    config = make_config(kw["preset"], **{k: v for k, v in kw.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    assert config.lr == 1e-3 and config.epochs == 7 and config.detector.attention is False and config.detector.hidden_dim == 1024


def test_config_checks_name_the_setting_and_what_it_accepts():
    with pytest.raises(settings.ConfigError, match=r"watch: setting 'rtsp_transport' \(--rtsp-transport\): 'http' is not one of tcp, udp"):
        settings.build(WatchConfig, {"rtsp_transport": "http"}, "watch")
    with pytest.raises(settings.ConfigError, match=r"setting 'crops' \(--crops\) takes an integer, got '10' \(str\)"):
        settings.check(ExtractConfig(crops="10"))
    with pytest.raises(settings.ConfigError, match=r"setting 'shard' \(--shard\) takes a tuple or None, got \[0, 2\]|shard"):
        settings.check(ExtractConfig(shard="0/2"))
    with pytest.raises(settings.ConfigError, match=r"no setting 'windows'; the settings are .*window"):
        settings.build(WatchConfig, {"windows": 3}, "watch")
    assert settings.check(ExtractConfig(shard=(0, 2), crops=1)).crops == 1


def positional_parameters() -> list[str]:
    found = []
    for folder in ("vad", "extract", "models", "weights", "pipeline"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    names = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
                    if len(names) > 6:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({len(names)})")
    return found


def test_no_function_takes_more_than_six_positional_parameters():
    assert positional_parameters() == []

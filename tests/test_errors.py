"""Errors become exit codes in one place (pipeline/cli.py): a VadError is its one line and its
exit code; anything else is a bug, exit 1, never "bad input", with the traceback under -v."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from vad.errors import ConfigError, RunFailure, VadError
from vad.extract.cache import CacheError, CacheWriteError
from vad.extract.decode import DecodeError
from vad.extract.inputs import InputError
from vad.extract.ray_backend import RayUnavailable
from vad.home import DataFolderError
from vad.models.io import ModelFileError
from vad.pipeline.cli import main
from vad.pipeline.importers import ImportError_
from vad.pipeline.score import ScoreInputError
from vad.registry import UnknownName
from vad.tables import TableError
from vad.weights import WeightsError
from vad.weights.safe_pickle import RefusedGlobal

from paths import VIDEOS


def test_every_error_vad_reports_has_the_one_base_and_the_right_exit_code():
    bad_input = [VadError, ConfigError, CacheError, InputError, RayUnavailable, ModelFileError, ImportError_, ScoreInputError,
                 TableError, UnknownName, WeightsError, RefusedGlobal]
    failures = [RunFailure, CacheWriteError, DecodeError, DataFolderError]
    assert all(issubclass(cls, VadError) and cls.exit_code == 2 for cls in bad_input)
    assert all(issubclass(cls, VadError) and cls.exit_code == 1 for cls in failures)
    assert not issubclass(TableError, ValueError)  # a bug's ValueError can no longer pass for bad input


def failing_eval(exc: BaseException):
    def evaluate(*args, **kwargs):
        raise exc

    return evaluate


@pytest.mark.parametrize("exc,code,line", [
    (TableError("labels.csv:3: label 'maybe' is not 0/1"), 2, "vad: error: labels.csv:3: label 'maybe' is not 0/1"),
    (RunFailure("disk full"), 1, "vad: error: disk full"),
    (ZeroDivisionError("float division by zero"), 1,
     "vad: internal error (a bug in vad, please report it): ZeroDivisionError: float division by zero; rerun with -v for the traceback"),
])
def test_errors_map_to_one_line_and_their_exit_code(monkeypatch, exc, code, line):
    monkeypatch.setattr("vad.pipeline.api.evaluate", failing_eval(exc))
    result = CliRunner().invoke(main, ["eval", "--model", "m.pt", "--cache", "c", "--labels", "l.csv", "--gt", "g.csv"])
    assert result.exit_code == code
    assert result.stderr.strip().splitlines() == [line]


def test_a_bug_shows_its_traceback_under_verbose(monkeypatch):
    monkeypatch.setattr("vad.pipeline.api.evaluate", failing_eval(KeyError("oops")))
    result = CliRunner().invoke(main, ["eval", "--model", "m.pt", "--cache", "c", "--labels", "l.csv", "--gt", "g.csv", "-v"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr and "KeyError: 'oops'" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "vad: internal error (a bug in vad, please report it): KeyError: 'oops'"


def test_usage_errors_stay_clicks_exit_2():
    result = CliRunner().invoke(main, ["eval", "--nope"])
    assert result.exit_code == 2 and "No such option '--nope'" in result.stderr


def test_classify_refuses_a_backbone_without_class_names():
    video = str(VIDEOS / "bikes.mp4")
    result = CliRunner().invoke(main, ["classify", video, "--backbone", "i3d-r50"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "vad: error: --backbone i3d-r50: its entry names no classes; choose one of i3d-inception"
    unknown = CliRunner().invoke(main, ["classify", video, "--backbone", "nope"])
    assert unknown.exit_code == 2 and unknown.stderr.strip() == "vad: error: unknown backbone 'nope'; choose one of: i3d-r50, i3d-inception"

"""The one registry shape behind backbones, training phases and synthetic anomaly kinds."""
from __future__ import annotations

import pytest

from vad.errors import VadError
from vad.extract.backbones import BACKBONES, get_backbone
from vad.models.phases import PHASES, get_phase
from vad.registry import Registry, UnknownName
from vad.synth import ANOMALIES


def test_add_refuses_a_name_twice_and_unknown_names_list_the_known_ones():
    registry: Registry[int] = Registry("colour")
    assert registry.add("red", 1) == 1 and registry.add("blue", 2) == 2
    assert list(registry) == ["red", "blue"] and len(registry) == 2 and "red" in registry and "green" not in registry
    with pytest.raises(ValueError, match="colour 'red' registered twice"):
        registry.add("red", 3)
    with pytest.raises(UnknownName) as caught:
        registry["green"]
    assert str(caught.value) == "unknown colour 'green'; choose one of: red, blue"  # not quoted as KeyError would
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, VadError) and caught.value.exit_code == 2


def test_the_three_registries_use_it():
    assert get_backbone("i3d-r50") is BACKBONES["i3d-r50"] and set(BACKBONES) == {"i3d-r50", "i3d-inception"}
    assert get_phase("ham") is PHASES["ham"]
    assert {"running", "fight", "fall"} <= set(ANOMALIES)
    with pytest.raises(KeyError, match="unknown backbone 'c3d'; choose one of: "):
        get_backbone("c3d")


def test_progress_bars_redraw_rarely_into_log_files(tmp_path):
    import io

    from vad.progress import LOG_INTERVAL_S, progress_bar

    with open(tmp_path / "job.log", "w") as log_file:
        bar = progress_bar(range(3), file=log_file, mininterval=1.0)
        assert bar.mininterval == LOG_INTERVAL_S
        bar.close()

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    bar = progress_bar(range(3), file=Terminal(), mininterval=1.0)
    assert bar.mininterval == 1.0
    bar.close()

"""The registry of anomaly kinds: each name a `ClipSpec` may ask for, bound to the builder that stages it.

The bottom of the package, so that `ClipSpec` can check a name against it; the builders
(vad.synth.anomalies) register themselves when the package is imported.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vad.registry import Registry

if TYPE_CHECKING:  # for the annotations only: these modules sit above this one
    from vad.synth.anomalies import Event
    from vad.synth.config import ClipSpec
    from vad.synth.geometry import Scene

AnomalyBuilder = Callable[[np.random.Generator, "Scene", "ClipSpec"], "Event"]
ANOMALIES: Registry[AnomalyBuilder] = Registry("anomaly")


def register_anomaly(name: str) -> Callable[[AnomalyBuilder], AnomalyBuilder]:
    return lambda builder: ANOMALIES.add(name, builder)

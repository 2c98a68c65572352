"""Synthetic surveillance footage: a fixed camera over a textured scene, walkers, and anomalies with frame GT.

A scene (`SceneConfig`) is a camera looking down on a ground plane: sky and buildings above the
horizon, walkways, trees, benches and lamp posts below, all laid out from `scene_id` and painted
once. A clip (`ClipSpec`) puts people walking along the walkways at normal speed (some pause,
some stand and talk) and, in an abnormal clip, one event from `ANOMALIES`: running, fighting, a
vehicle crossing the walkways, a fall, objects thrown. Everything follows from the seeds, so
the same spec always renders the same frames.

Perspective is the one piece of geometry: a person standing at image row y is `Scene.body_height(y)`
pixels tall, and all speeds are in body heights per second, so far people move fewer pixels.
Walking is ~0.8 body heights/s (1.4 m/s); running 3-3.8; the vehicle 4-6.5.

Modules, each importing only those above it: kinds (the ANOMALIES registry), config (the specs),
geometry (walkways, perspective), scene (layout and background painting), actors (people,
vehicles, normal walkers), anomalies (the event builders), plan (tracks and GT of a clip),
render (frames), encode (mp4), dataset (a folder of clips with labels and GT).
"""
# Importing the builders registers them in ANOMALIES, before any spec can name one.
from vad.synth.anomalies import Event
from vad.synth.config import ClipSpec, SceneConfig
from vad.synth.dataset import ClipRecord, DatasetInfo, make_dataset
from vad.synth.encode import CODECS, write_clip
from vad.synth.geometry import Scene
from vad.synth.kinds import ANOMALIES, AnomalyBuilder, register_anomaly
from vad.synth.plan import ClipPlan, plan_clip
from vad.synth.render import render_clip, render_plan
from vad.synth.scene import build_scene

__all__ = [
    "ANOMALIES", "CODECS", "AnomalyBuilder", "ClipPlan", "ClipRecord", "ClipSpec", "DatasetInfo", "Event", "Scene",
    "SceneConfig", "build_scene", "make_dataset", "plan_clip", "register_anomaly", "render_clip", "render_plan",
    "write_clip",
]

"""The training settings: TrainConfig (each field declares its type, default, help and range,
from which `vad train`'s options and the API's checks are generated), the paper's presets,
and make_config, which layers defaults, a preset and overrides."""
from __future__ import annotations

from dataclasses import dataclass, fields

from vad.errors import ConfigError
from vad.hardware import DEVICE_HELP
from vad.models.detector import DetectorConfig
from vad.models.losses import LOSSES
from vad.models.phases import PHASES, SCHEDULES, get_phase
from vad.models.pooling import N_SEGMENTS
from vad.settings import build, check, setting

CROP_BAGS = ("mean", "each")
PRECISIONS = ("auto", "fp32", "bf16")
# Floor on optimiser steps per iteration (bench/RESULTS.md, "Steps"): 40 epochs of the demo's 28
# clips are 40 steps, after which 72% of the 32-wide layer's units are still dead (28% live after
# HAM; 72% with 100 steps). More is not better: the worlds' 160 steps already leave no dead unit,
# and 500 lowered ARMS's AUC_A there by 0.024 (5 seeds).
MIN_STEPS = 100


def _ratio(help_text: str, default: float | None = None, **declared):
    return setting(default, help_text, minimum=0, min_open=True, maximum=1, **declared)


@dataclass(frozen=True)
class TrainConfig:
    schedule: str = setting("arms", "arms: multi-phase self-training (Algorithm 1); traditional: the baseline, one loss, pseudo "
                                    "labels from the previous iteration.", choices=lambda: list(SCHEDULES))
    phases: tuple[str, ...] = setting(("bst", "ham", "as"), "ARMS phases in order (an ordered subset of the registered phases); "
                                                            "the last one repeats up to --iterations.", choices=lambda: list(PHASES))
    iterations: int | None = setting(None, "Self-training iterations K.", minimum=1,
                                     default_text="6 when the last phase self-trains (ham, as, or --schedule traditional), else one per phase")
    loss: str = setting("ar", "Video-level loss of --schedule traditional: ar (AR-MIL, eq. 4), ms-top1 (eq. 1) or ms-topk (eq. 2).",
                        choices=lambda: list(LOSSES))
    topk: int = setting(3, "k of MS-MIL top-k (RTFM's k, Sec. IV-C).", minimum=1)
    epochs: int = setting(50, "Epochs per iteration (an epoch: every video of the larger class once); a --preset sets it.", minimum=1)
    min_steps: int = setting(MIN_STEPS, "Floor on optimiser steps per iteration: an iteration runs max(epochs x steps per epoch, this), "
                                        "so small sets are trained enough.", minimum=0)
    crop_bags: str = setting("mean", "mean: a video's snippet scores are averaged over its crops before the loss (RTFM); each: every "
                                     "crop is a bag of its own.", choices=CROP_BAGS)
    lr: float = setting(1e-4, "Adam learning rate; a --preset sets it.", minimum=0, min_open=True)
    weight_decay: float = setting(5e-4, "Adam weight decay (Sec. IV-B).", minimum=0)
    batch_videos: int = setting(30, "Videos per class per mini-batch (30 normal + 30 abnormal).", minimum=1)
    lambda_small: float = _ratio("Bootstrapping abnormal ratio (Sec. IV-B); a --preset sets it.", 0.1)
    lambda_large: float = _ratio("Hard-anomaly-mining abnormal ratio (Sec. IV-B); a --preset sets it.", 0.4)
    lambda_fixed: float | None = _ratio("Abnormal ratio of --schedule traditional --loss ar.", default_text="--lambda-small")
    lambda_max: float = _ratio("Cap on adaptive-self-training ratios (eq. 6); 1.0 = no cap, as the paper (a flat model drives "
                               "eq. 6 to 1).", 1.0)
    beta: float = setting(0.5, "Weight of the pseudo-label BCE (eq. 5).", minimum=0)
    segments: int = setting(N_SEGMENTS, "Pooled segments per training bag (RTFM's 32).", minimum=1)
    # The detector every iteration initialises afresh (models/detector.py); its feature_dim is not
    # a setting: training takes it from the features.
    detector: DetectorConfig = setting(default_factory=DetectorConfig, help="The detector's settings.")
    seed: int = setting(0, "Seeds initialisation, dropout and sampling of every iteration: a CPU run repeats exactly.")
    device: str = setting("auto", DEVICE_HELP)
    precision: str = setting("auto", "Arithmetic of the training steps (scoring and evaluation stay fp32). auto: fp32 on every "
                                     "device, so one seed trains the same model on every CPU; bf16: autocast to bfloat16, native on "
                                     "CUDA and AMX CPUs, emulated elsewhere, and it moves held-out AUC (bench/PRECISION.md, "
                                     "\"Training\"). metrics.json records what each iteration used.", choices=PRECISIONS)

    def validate(self) -> TrainConfig:
        """Every field's type, range and choices (vad.settings), then what holds between fields."""
        check(self, "train")
        seen = set()
        for name in self.phases:
            get_phase(name)
            if name in seen:
                raise ConfigError(f"phase {name!r} listed twice")
            seen.add(name)
        if not self.phases:
            raise ConfigError("no phases given")
        SCHEDULES[self.schedule].check(self)
        if self.detector.attention and self.detector.hidden_dim % self.detector.heads:
            raise ConfigError(f"hidden_dim must be a multiple of the {self.detector.heads} attention heads")
        return self

    def plan(self) -> list[str]:
        """The phase (or 'traditional') of each iteration k = 1..K."""
        return SCHEDULES[self.schedule].plan(self)

    def to_dict(self) -> dict:
        """Plain data, flat: the detector's fields (less feature_dim) sit among the training
        settings under their own names, where model files and metrics.json have always had
        dropout, hidden_dim, attention and init."""
        data: dict = {}
        for f in fields(self):
            if f.name == "detector":
                data.update((key, value) for key, value in self.detector.to_dict().items() if key != "feature_dim")
            else:
                data[f.name] = getattr(self, f.name)
        data["phases"] = list(self.phases)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The inverse of to_dict. Files written before TrainConfig held a DetectorConfig store
        only its dropout, hidden_dim, attention and init; they trained with the defaults of the
        other fields, which is what the missing keys read as."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name != "detector" and f.name in data}
        if "phases" in values:
            values["phases"] = tuple(values["phases"])
        return cls(**values, detector=DetectorConfig.from_dict(data))


# The paper's hyper-parameters (Sec. IV-B); presets are data, flags override them.
PRESETS: dict[str, dict] = {
    "sh": {"lr": 1e-3, "epochs": 300, "lambda_small": 0.1, "lambda_large": 0.42, "weight_decay": 5e-4, "beta": 0.5},
    "ucf": {"lr": 1e-4, "epochs": 50, "lambda_small": 0.22, "lambda_large": 0.4, "weight_decay": 5e-4, "beta": 0.5},
    "xd": {"lr": 1e-4, "epochs": 50, "lambda_small": 0.1, "lambda_large": 0.4, "weight_decay": 5e-4, "beta": 0.5},
}


def make_config(preset: str | None = None, *, detector: DetectorConfig | dict | None = None, **overrides) -> TrainConfig:
    """Defaults, then the preset, then every override that is not None; validated once.

    detector: a DetectorConfig, or overrides of the default detector's fields (again, None
    values keep the default), e.g. {"hidden_dim": 128, "attention": False}.
    """
    values: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    for key, value in overrides.items():
        if key in DetectorConfig.__dataclass_fields__ and key not in TrainConfig.__dataclass_fields__:
            raise ConfigError(f"TrainConfig has no field {key!r} (a detector field: pass detector={{{key!r}: ...}})")
        if value is not None:
            values[key] = tuple(value) if key == "phases" and isinstance(value, list) else value
    if isinstance(detector, dict):
        detector = build(DetectorConfig, {key: value for key, value in detector.items() if value is not None}, "detector")
    if detector is not None:
        values["detector"] = detector
    return build(TrainConfig, values, "train").validate()


def training_precision(config: TrainConfig) -> str:
    """config.precision with auto resolved: fp32 on every device, AMX CPUs included.

    bf16 is an opt-in. Paired runs (5 seeds, bench/PRECISION.md, "Training") moved the held-out
    AUC of two demos by -0.063 to +0.023 per seed and of the worlds by up to 0.020, well past the
    0.005 a default must keep to fp32, while training the demo 1.8x faster on an AMX Xeon. With
    fp32, one seed trains one model on every CPU up to float rounding."""
    return "fp32" if config.precision == "auto" else config.precision

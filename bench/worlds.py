"""Synthetic weakly-labelled feature worlds where the truth about every snippet is known.

A world is a feature cache (extract/cache.py) of train and test videos, their `video,label`
CSVs and frame GT CSVs, built so that the claims of ARMS (Tables IV-VI, Fig. 7) can be tested
without the real datasets: abnormal events have an *easy* part that any MIL loss finds and a
*hard* part that only a loss asking for more than the top snippet (AR-MIL with a large ratio)
has a reason to learn.

    python bench/worlds.py --out DIR --preset easy|hard|short|long|unusual [--seed N]

writes DIR/cache/, DIR/{train,test}.csv, DIR/{train,test}_gt.csv and DIR/world.json.

Every snippet feature of video v (before crops) is

    x_t = scene_v + A a_t + n_t + [easy / hard / unusual event signal]_t,   x in R^D

- scene_v: one of `n_scenes` per-camera offsets (ShanghaiTech has 13 cameras). Scenes carry no
  label information but are large and random in all D directions, so they also leak into the
  anomaly directions: a detector has to judge a snippet relative to its scene, not absolutely.
- A a_t: normal activity (people walking) in a `normal_dims`-dimensional subspace, AR(1) in
  time. A big nuisance variance that a good detector must learn to ignore.
- n_t: isotropic noise, AR(1) along T with correlation `rho`: consecutive I3D snippets overlap
  in content, so noise is not independent per snippet and pooling/temporal convolution help
  less than they would on white noise.
- Normal-but-unusual events (`unusual_*`): strong bursts in their own subspace, in normal AND
  abnormal videos at the same rate. They make "anything that deviates is abnormal" wrong, and
  they raise the top score of normal videos, which MS-MIL's max over the normal bag sees.
- Abnormal event (one per abnormal video, covering `abnormal_ratio` of its snippets): an easy
  core (`easy_share` of the event, amplitude `easy_amp` along the event type's easy direction)
  preceded (and sometimes followed) by a hard part: amplitude `hard_amp` along a direction of a
  *different*, orthogonal subspace (a precursor: the approach before a fight, the loitering
  before a theft). The GT covers the whole event. Once the easy core scores 1, MS-MIL's hinge
  is satisfied and gives the hard part no gradient; AR-MIL with lambda_large > easy share
  keeps pushing until the video's mean score reaches lambda, and the cheapest snippets to raise
  without raising normal videos are the hard ones.
- Hard-only abnormal videos (`hard_only_share`): events without an easy core, like the subtle
  anomalies of UCF-Crime. They give every loss some signal about the hard directions (MS-MIL's
  top snippet in such a video is a hard one), so the world does not hand ARMS a free win.
- Crops: C copies of the snippet with small independent noise (`crop_noise`), as 10-crop I3D
  features of one snippet differ a little from crop to crop.

Every random draw follows from the seed: the world structure from (seed, 0), each video from
(seed, split, index), so the same seed writes the same bytes. Amplitudes are in units of the
per-dimension noise standard deviation `noise`.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vad.extract.cache import FeatureCache
from vad.files import atomic_write_json

log = logging.getLogger("vad")

CLIP_LEN = 16
SPLITS = ("train", "test")
KIND_NORMAL, KIND_EASY, KIND_HARD, KIND_UNUSUAL = 0, 1, 2, 3  # per-snippet truth stored in the metadata


@dataclass(frozen=True)
class WorldConfig:
    feature_dim: int = 64  # D (smaller than the training videos: see PRESETS)
    crops: int = 1  # C: copies of each snippet with independent crop noise
    crop_noise: float = 0.1  # per-dimension std of the crop noise
    n_train: tuple[int, int] = (100, 100)  # (normal, abnormal) training videos
    n_test: tuple[int, int] = (50, 50)  # (normal, abnormal) test videos
    t_range: tuple[int, int] = (32, 128)  # snippets per video, uniform inclusive
    n_scenes: int = 8  # cameras; each video is filmed by one
    scene_std: float = 0.5  # per-dimension std of the scene offsets
    noise: float = 1.0  # per-dimension std of the snippet noise
    rho: float = 0.6  # AR(1) correlation of noise and activity between consecutive snippets
    normal_dims: int = 16  # rank of the normal-activity subspace
    normal_std: float = 2.0  # std of the activity coordinates
    anomaly_dims: int = 4  # rank of the easy subspace and (separately) of the hard subspace
    n_types: int = 3  # anomaly types; each has one easy and one hard direction
    abnormal_ratio: tuple[float, float] = (0.15, 0.5)  # share of an abnormal video's snippets inside its event
    easy_share: tuple[float, float] = (0.15, 0.35)  # share of the event that is the easy core
    easy_amp: float = 8.0  # amplitude of the easy core along its direction
    hard_amp: float = 2.5  # amplitude of the hard part along its direction
    hard_only_share: float = 0.25  # abnormal videos whose event has no easy core
    unusual_dims: int = 4  # rank of the normal-but-unusual subspace
    unusual_rate: float = 0.4  # probability that a video (any label) holds one unusual event
    unusual_len: tuple[float, float] = (0.05, 0.15)  # its share of the video
    unusual_amp: float = 6.0  # its amplitude
    # (lo, hi): every video (any label) holds lo..hi unusual bursts, each along its own direction,
    # instead of one with probability unusual_rate; None keeps unusual_rate
    unusual_count: tuple[int, int] | None = None
    # The read-out: what a feature extractor hands on. rectify: ReLU, as I3D features after their
    # last ReLU are non-negative; then x * scale + offset; l2_rows: every crop's snippet feature
    # divided by its L2 norm, as the released C3D features are.
    rectify: bool = False
    scale: float = 1.0
    offset: float = 0.0
    l2_rows: bool = False

    def validate(self) -> WorldConfig:
        used = 2 * self.anomaly_dims + self.unusual_dims + self.normal_dims
        if used > self.feature_dim:
            raise ValueError(f"feature_dim {self.feature_dim} is smaller than the {used} dimensions the subspaces need")
        if not 1 <= self.t_range[0] <= self.t_range[1]:
            raise ValueError(f"t_range {self.t_range} must be 1 <= low <= high")
        for name in ("abnormal_ratio", "easy_share", "unusual_len"):
            low, high = getattr(self, name)
            if not 0 < low <= high <= 1:
                raise ValueError(f"{name} {low, high} must satisfy 0 < low <= high <= 1")
        if not 0 <= self.hard_only_share <= 1 or not 0 <= self.unusual_rate <= 1:
            raise ValueError("hard_only_share and unusual_rate are probabilities")
        if self.unusual_count is not None and not 0 <= self.unusual_count[0] <= self.unusual_count[1]:
            raise ValueError(f"unusual_count {self.unusual_count} must satisfy 0 <= low <= high")
        if self.scale <= 0:
            raise ValueError(f"scale {self.scale} must be positive")
        if not 0 <= self.rho < 1:
            raise ValueError("rho must be in [0, 1)")
        if self.crops < 1 or min(*self.n_train, *self.n_test) < 1 or self.n_scenes < 1 or self.n_types < 1:
            raise ValueError("crops, scenes, types and every split/class need at least one")
        return self


# Presets are data: each names what it changes from the defaults and why.
PRESETS: dict[str, dict] = {
    # Hard parts strong enough that every loss finds them: the control world.
    "easy": {"hard_amp": 4.0, "hard_only_share": 0.25},
    # Hard parts weak, and few hard-only videos: the world built to reward hard-anomaly mining.
    "hard": {"hard_amp": 2.5, "hard_only_share": 0.1},
    # Short events (UCF-Crime-like low abnormal ratio): lambda_large 0.4 asks for more than exists.
    "short": {"hard_amp": 2.5, "hard_only_share": 0.1, "abnormal_ratio": (0.05, 0.2)},
    # Long events (ShanghaiTech-like): the abnormal ratio often exceeds lambda_large.
    "long": {"hard_amp": 2.5, "hard_only_share": 0.1, "abnormal_ratio": (0.4, 0.8)},
    # Many strong normal-but-unusual events: punishes detectors of "any deviation".
    "unusual": {"hard_amp": 2.5, "hard_only_share": 0.1, "unusual_rate": 0.9, "unusual_amp": 8.0},
    # The family where ARMS's bootstrap ended flat and self-training anti-localised (issue 25):
    # 0-2 unusual-but-normal bursts in every video, events of 10-45% with a weak lead-in before a
    # strong core and 30% weak-only, 160+80 / 80+40 videos of 40-160 snippets, D = 256
    # non-negative features (ReLU read-out; half the values 0, mean 0.69, std 1.01) whose rows
    # have an L2 norm of about 19.5, as real I3D's (18 at D = 2048).
    "bursty": {"feature_dim": 256, "n_train": (160, 80), "n_test": (80, 40), "t_range": (40, 160), "abnormal_ratio": (0.10, 0.45),
               "hard_amp": 2.5, "easy_amp": 8.0, "hard_only_share": 0.3, "unusual_count": (0, 2), "unusual_amp": 6.0,
               "normal_dims": 32, "rectify": True, "scale": 1.3},
}


def make_world_config(preset: str = "hard", **overrides) -> WorldConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown world preset {preset!r}; choose from {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return WorldConfig(**values).validate()


@dataclass
class Structure:
    """What all videos of a world share: scenes and the directions of every kind of content."""

    scenes: np.ndarray  # [n_scenes, D]
    normal_basis: np.ndarray  # [normal_dims, D] orthonormal rows
    easy_dirs: np.ndarray  # [n_types, D] unit vectors in the easy subspace
    hard_dirs: np.ndarray  # [n_types, D] unit vectors in the hard subspace
    unusual_dirs: np.ndarray  # [n_types, D] unit vectors in the unusual subspace


def build_structure(config: WorldConfig, seed: int) -> Structure:
    rng = np.random.default_rng([seed, 0])
    d = config.feature_dim
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))  # columns: an orthonormal basis of R^D
    basis = basis.T
    a, u = config.anomaly_dims, config.unusual_dims
    easy_sub, hard_sub = basis[:a], basis[a:2 * a]
    unusual_sub, normal_sub = basis[2 * a:2 * a + u], basis[2 * a + u:2 * a + u + config.normal_dims]

    def directions(subspace: np.ndarray) -> np.ndarray:
        coeffs = rng.normal(size=(config.n_types, subspace.shape[0]))
        coeffs /= np.linalg.norm(coeffs, axis=1, keepdims=True)
        return coeffs @ subspace

    return Structure(
        scenes=rng.normal(scale=config.scene_std, size=(config.n_scenes, d)),
        normal_basis=normal_sub,
        easy_dirs=directions(easy_sub),
        hard_dirs=directions(hard_sub),
        unusual_dirs=directions(unusual_sub),
    )


def ar1(rng: np.random.Generator, n: int, dim: int, rho: float, std: float) -> np.ndarray:
    """Stationary AR(1) along axis 0: x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, marginal std `std`."""
    out = np.empty((n, dim))
    out[0] = rng.normal(scale=std, size=dim)
    innovation = rng.normal(scale=std * np.sqrt(1 - rho ** 2), size=(n, dim))
    for t in range(1, n):
        out[t] = rho * out[t - 1] + innovation[t]
    return out


@dataclass
class Video:
    video_id: str
    label: int
    features: np.ndarray  # [T, C, D] float32
    n_frames: int
    kinds: np.ndarray  # [T] KIND_* of every snippet
    info: dict = field(default_factory=dict)  # scene, type, intervals in snippets (for the metadata)

    @property
    def gt_intervals(self) -> list[tuple[int, int]]:
        """Frame intervals [start, end) of the abnormal event (easy and hard parts), cut to n_frames."""
        abnormal = np.isin(self.kinds, (KIND_EASY, KIND_HARD)).astype(np.int8)
        edges = np.diff(np.concatenate([[0], abnormal, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [(CLIP_LEN * int(s), min(CLIP_LEN * int(e), self.n_frames)) for s, e in zip(starts, ends)]


def _span(rng: np.random.Generator, total: int, share: tuple[float, float]) -> int:
    return int(np.clip(round(rng.uniform(*share) * total), 1, total))


def read_out(config: WorldConfig, x: np.ndarray) -> np.ndarray:
    """The features a detector sees: rectified, scaled and offset, and L2-normalised per row as configured."""
    if config.rectify:
        x = np.maximum(x, 0.0)
    x = x * config.scale + config.offset
    if config.l2_rows:
        x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return x


def make_video(config: WorldConfig, structure: Structure, seed: int, split: str, label: int, index: int) -> Video:
    rng = np.random.default_rng([seed, 1 + SPLITS.index(split), label, index])
    d = config.feature_dim
    n = int(rng.integers(config.t_range[0], config.t_range[1] + 1))
    scene = int(rng.integers(config.n_scenes))
    activity = ar1(rng, n, config.normal_dims, config.rho, config.normal_std) @ structure.normal_basis
    base = structure.scenes[scene] + activity + ar1(rng, n, d, config.rho, config.noise)
    kinds = np.full(n, KIND_NORMAL, dtype=np.int8)
    info: dict = {"scene": scene}

    if label == 1:
        anomaly = int(rng.integers(config.n_types))
        length = _span(rng, n, config.abnormal_ratio)
        start = int(rng.integers(0, n - length + 1))
        hard_only = bool(rng.random() < config.hard_only_share)
        core = 0 if hard_only or length < 2 else min(length - 1, _span(rng, length, config.easy_share))
        # The hard part mostly precedes the core (a precursor); the rest follows it.
        before = int(round(rng.uniform(0.5, 1.0) * (length - core)))
        event = np.arange(start, start + length)
        core_idx = event[before:before + core]
        hard_idx = np.setdiff1d(event, core_idx)
        base[hard_idx] += config.hard_amp * structure.hard_dirs[anomaly]
        base[core_idx] += config.easy_amp * structure.easy_dirs[anomaly]
        kinds[hard_idx], kinds[core_idx] = KIND_HARD, KIND_EASY
        info.update(type=anomaly, hard_only=hard_only, event=[start, start + length],
                    easy=[int(core_idx[0]), int(core_idx[-1]) + 1] if core else None)

    if config.unusual_count is None:
        bursts = int(rng.random() < config.unusual_rate)
    else:
        bursts = int(rng.integers(config.unusual_count[0], config.unusual_count[1] + 1))
    for _ in range(bursts):
        length = _span(rng, n, config.unusual_len)
        start = int(rng.integers(0, n - length + 1))
        # Where it overlaps the abnormal event the event wins, so every snippet has one truth.
        rows = np.arange(start, start + length)
        rows = rows[kinds[rows] == KIND_NORMAL]
        base[rows] += config.unusual_amp * structure.unusual_dirs[int(rng.integers(config.n_types))]
        kinds[rows] = KIND_UNUSUAL
        info.setdefault("unusual", []).append([start, start + length])

    crops = read_out(config, base[:, None, :] + rng.normal(scale=config.crop_noise, size=(n, config.crops, d)))
    n_frames = CLIP_LEN * n - int(rng.integers(0, CLIP_LEN))  # the last snippet is padded
    prefix = "a" if label else "n"
    return Video(f"{split}_{prefix}{index:03d}", label, crops.astype(np.float32), n_frames, kinds, info)


def generate(config: WorldConfig, seed: int) -> tuple[Structure, dict[str, list[Video]]]:
    """Every video of both splits (normal first, then abnormal)."""
    config.validate()
    structure = build_structure(config, seed)
    videos = {}
    for split, (n_normal, n_abnormal) in zip(SPLITS, (config.n_train, config.n_test)):
        videos[split] = [make_video(config, structure, seed, split, 0, i) for i in range(n_normal)] + \
                        [make_video(config, structure, seed, split, 1, i) for i in range(n_abnormal)]
    return structure, videos


@dataclass(frozen=True)
class WorldPaths:
    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def labels(self, split: str) -> Path:
        return self.root / f"{split}.csv"

    def gt(self, split: str) -> Path:
        return self.root / f"{split}_gt.csv"

    @property
    def manifest(self) -> Path:
        return self.root / "world.json"


def write_world(out: str | Path, config: WorldConfig, seed: int, preset: str | None = None) -> WorldPaths:
    """Generate the world and write cache, labels, GT and world.json under `out`."""
    paths = WorldPaths(Path(out))
    _, videos = generate(config, seed)
    cache = FeatureCache(paths.cache)
    cache.ensure_config({"backbone": f"synthetic-world-{seed}", "feature_dim": config.feature_dim,
                         "crops": config.crops, "clip_len": CLIP_LEN})
    for split, items in videos.items():
        for video in items:
            cache.write(video.video_id, video.features, {
                "source": "bench/worlds.py", "n_frames": video.n_frames, "partial": False,
                "label": video.label, "world": {**video.info, "kinds": video.kinds.tolist()},
            })
        _write_csv(paths.labels(split), ["video", "label"], [(v.video_id, v.label) for v in items])
        _write_csv(paths.gt(split), ["video", "start_frame", "end_frame"],
                   [(v.video_id, s, e) for v in items for s, e in v.gt_intervals])
    config_dict = asdict(config)
    atomic_write_json(paths.manifest, {"preset": preset, "seed": seed, "config": config_dict,
                                       "videos": {split: len(items) for split, items in videos.items()}})
    return paths


def snippet_kinds(cache: FeatureCache, video_id: str) -> np.ndarray:
    """The KIND_* truth of every snippet of a world video, from its cache metadata."""
    return np.asarray(cache.meta(video_id)["world"]["kinds"], dtype=np.int8)


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _pair(text: str, kind=float) -> tuple:
    low, high = (kind(v) for v in text.split(","))
    return low, high


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (cache/, CSVs, world.json)")
    parser.add_argument("--preset", default="hard", choices=sorted(PRESETS), help="world preset (default: hard)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole world (default: 0)")
    parser.add_argument("--dim", type=int, default=None, help="feature dimension D (default: 64)")
    parser.add_argument("--crops", type=int, default=None, help="crops per snippet (default: 1)")
    parser.add_argument("--train", type=lambda s: _pair(s, int), default=None, metavar="N,A", help="normal,abnormal training videos (default: 100,100)")
    parser.add_argument("--test", type=lambda s: _pair(s, int), default=None, metavar="N,A", help="normal,abnormal test videos (default: 50,50)")
    parser.add_argument("--t-range", type=lambda s: _pair(s, int), default=None, metavar="LO,HI", help="snippets per video (default: 32,128)")
    parser.add_argument("--abnormal-ratio", type=_pair, default=None, metavar="LO,HI", help="event share of an abnormal video (default: per preset)")
    parser.add_argument("--hard-amp", type=float, default=None, help="hard-part amplitude in noise units (default: per preset)")
    parser.add_argument("--easy-amp", type=float, default=None, help="easy-core amplitude (default: 6)")
    parser.add_argument("--noise", type=float, default=None, help="per-dimension noise std (default: 1)")
    parser.add_argument("--scale", type=float, default=None, help="multiply every feature by this (default: 1)")
    parser.add_argument("--offset", type=float, default=None, help="then add this (default: 0)")
    parser.add_argument("--l2-rows", action="store_true", default=None, help="L2-normalise every snippet feature, as released C3D")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        config = make_world_config(args.preset, feature_dim=args.dim, crops=args.crops, n_train=args.train, n_test=args.test,
                                   t_range=args.t_range, abnormal_ratio=args.abnormal_ratio, hard_amp=args.hard_amp,
                                   easy_amp=args.easy_amp, noise=args.noise, scale=args.scale, offset=args.offset, l2_rows=args.l2_rows)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    paths = write_world(args.out, config, args.seed, args.preset)
    print(json.dumps({"out": str(paths.root), "preset": args.preset, "seed": args.seed, **asdict(config)}))


if __name__ == "__main__":
    main()

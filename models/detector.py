"""The ARMS detector of Fig. 5: snippet features [B, T, D] -> scores [B, T].

    x [B,T,D] -> Conv1d(D->1024, k=3, p=1) -> ReLU                     h: the per-snippet path
              -> h + BN(MHSA(h))      8 heads; BN's weight and bias start at zero (the gate)
              -> Dropout -> Linear(1024->32) -> ReLU -> Dropout -> Linear(32->1) -> sigmoid

Choices the paper leaves open, taken from RTFM (Tian et al., ICCV 2021), whose features,
32-segment training and "standard" attention block ARMS builds on:
- The attention branch joins the per-snippet path through a BatchNorm whose weight and bias
  start at zero, as RTFM's non-local block (`W = Sequential(Conv1d, BatchNorm1d)` with
  `constant_(W[1].weight, 0)`, then `z = W_y + x`). At initialisation the detector is exactly its
  per-snippet path (conv -> MLP), and training opens the gate only as far as it lowers the loss.
  A branch at full strength from the start (a post-norm `LayerNorm(h + MHSA(h))`) grows until
  every snippet carries its video's representation: AR-MIL only constrains a video's mean score
  (eq. 4), so the cheapest solution is to lift whole abnormal videos, and the curves go flat
  (docs/method.md, section "The detector"). The BatchNorm's 2,048 parameters keep the count at
  10,525,761 for D=2048, the 10.53M of Table VII.
- Dropout 0.7 after the aggregation (conv + attention) and between the fully connected layers,
  where RTFM puts it; none inside the attention block.
- Xavier-uniform weights and zero biases for every convolution and linear layer (RTFM's
  `weight_init`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from vad.errors import ConfigError
from vad.settings import setting

INITS = ("xavier", "torch")


@dataclass(frozen=True)
class DetectorConfig:
    feature_dim: int = setting(2048, "D: input feature size; training takes it from the features.", minimum=1, cli=False)
    hidden_dim: int = setting(1024, "Detector width: temporal convolution output and attention width (Fig. 5); smaller trains "
                                    "much faster on a CPU.", minimum=8)
    heads: int = setting(8, "Self-attention heads (Sec. IV-B); hidden-dim must be a multiple of it.", minimum=1)
    kernel_size: int = setting(3, "Temporal convolution kernel, in snippets (Sec. IV-B).", minimum=1)
    fc_dim: int = setting(32, "Width of the first fully connected layer (Sec. IV-B).", minimum=1)
    dropout: float = setting(0.7, "Dropout after the aggregation and between the fully connected layers (RTFM's places).",
                             minimum=0, maximum=1, max_open=True)
    attention_dropout: float = setting(0.0, "Dropout on the attention weights (none, as RTFM's non-local block).",
                                       minimum=0, maximum=1, max_open=True)
    init: str = setting("xavier", "Weights of the convolution and linear layers at the start of each iteration: xavier "
                                  "(RTFM's weight_init) or torch (PyTorch's default, smaller); the attention gate starts "
                                  "closed either way.", choices=INITS)
    attention: bool = setting(True, "Drop the self-attention block (conv + MLP): each score then sees only its neighbouring "
                                    "snippets and cannot be lifted video-wide (bench/RESULTS.md compares both).", negate=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DetectorConfig:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class ARMSDetector(nn.Module):
    def __init__(self, config: DetectorConfig):
        super().__init__()
        self.config = config
        self.conv = nn.Conv1d(config.feature_dim, config.hidden_dim, config.kernel_size, padding=config.kernel_size // 2)
        if config.attention:
            self.attention = nn.MultiheadAttention(config.hidden_dim, config.heads, dropout=config.attention_dropout, batch_first=True)
            self.gate = nn.BatchNorm1d(config.hidden_dim)
        self.fc1 = nn.Linear(config.hidden_dim, config.fc_dim)
        self.fc2 = nn.Linear(config.fc_dim, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """RTFM's initialisation (xavier-uniform weights, zero biases) unless config.init is torch;
        the attention gate closed."""
        if self.config.init not in INITS:
            raise ConfigError(f"init {self.config.init!r}: choose from {', '.join(INITS)}")
        for module in self.modules():
            if self.config.init == "xavier" and isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if self.config.attention:
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    def snippet_path(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, D] -> h [B, T, hidden]: the temporal convolution, three snippets wide."""
        return torch.relu(self.conv(features.transpose(1, 2))).transpose(1, 2)

    def attention_branch(self, h: torch.Tensor) -> torch.Tensor:
        """BN(MHSA(h)) [B, T, hidden]: what self-attention adds to each snippet, through the gate."""
        attended, _ = self.attention(h, h, h, need_weights=False)
        return self.gate(attended.transpose(1, 2)).transpose(1, 2)

    def aggregate(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, D] -> [B, T, hidden]: the per-snippet path plus the gated attention branch."""
        h = self.snippet_path(features)
        return h + self.attention_branch(h) if self.config.attention else h

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, D] -> pre-sigmoid snippet scores [B, T] (saturation shows here)."""
        h = self.dropout(self.aggregate(features))
        h = self.dropout(torch.relu(self.fc1(h)))
        return self.fc2(h).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, D] -> snippet scores in [0, 1], [B, T]."""
        return torch.sigmoid(self.logits(features))


def build_detector(**fields) -> ARMSDetector:
    """The detector of Fig. 5 with any DetectorConfig field as a keyword (the others: its defaults)."""
    return ARMSDetector(DetectorConfig(**fields))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

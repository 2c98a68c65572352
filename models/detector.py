"""The ARMS detector of Fig. 5 (METHOD.md §3): snippet features [B, T, D] -> scores [B, T].

    x [B,T,D] -> Conv1d(D->1024, k=3, p=1) -> ReLU -> Dropout
              -> h = LayerNorm(h + Dropout(MHSA(h)))        8 heads, post-norm residual
              -> Linear(1024->32) -> ReLU -> Dropout -> Linear(32->1) -> sigmoid -> s [B,T]

Choices the paper leaves open (recorded here and in every model file's config):
- Normalisation: one LayerNorm after the residual sum (the "standard multi-head self-attention
  block" of a Transformer encoder, post-norm as in Vaswani et al.). LayerNorm normalises each
  snippet on its own, so it neither mixes snippets of a video nor depends on the batch mix
  (BatchNorm would, and training batches of 30+30 videos differ from one-video inference). Its
  2,048 parameters keep the count at 10.53M for D=2048, the figure of Table VII.
- Dropout: 0.7 after the convolution and after the 32-d layer, the rate of RTFM's classifier
  head (ARMS reuses RTFM's features and 32-segment training). The residual keeps each snippet's
  own convolutional feature next to the attention's video-wide mixture, which is what lets
  scores vary inside a video (METHOD.md §10 monitors whether they do).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DetectorConfig:
    feature_dim: int = 2048  # D: input feature size, taken from the cache
    hidden_dim: int = 1024  # temporal convolution output and attention width (Fig. 5)
    heads: int = 8  # self-attention heads (Sec. IV-B)
    kernel_size: int = 3  # temporal convolution kernel (Sec. IV-B)
    fc_dim: int = 32  # first fully connected layer (Sec. IV-B)
    dropout: float = 0.7  # see the module docstring
    attention_dropout: float = 0.0  # dropout on attention weights; none, as RTFM's non-local block
    # False drops the self-attention block (conv -> MLP): every score then sees only its 3
    # neighbouring snippets, which cannot spread a video-level cue over the whole video
    # (METHOD.md §10; bench/RESULTS.md finding 4).
    attention: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DetectorConfig":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class ARMSDetector(nn.Module):
    def __init__(self, config: DetectorConfig):
        super().__init__()
        self.config = config
        self.conv = nn.Conv1d(config.feature_dim, config.hidden_dim, config.kernel_size, padding=config.kernel_size // 2)
        if config.attention:
            self.attention = nn.MultiheadAttention(config.hidden_dim, config.heads, dropout=config.attention_dropout, batch_first=True)
            self.norm = nn.LayerNorm(config.hidden_dim)
        self.fc1 = nn.Linear(config.hidden_dim, config.fc_dim)
        self.fc2 = nn.Linear(config.fc_dim, 1)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, D] -> snippet scores in [0, 1], [B, T]."""
        h = torch.relu(self.conv(features.transpose(1, 2))).transpose(1, 2)
        h = self.dropout(h)
        if self.config.attention:
            attended, _ = self.attention(h, h, h, need_weights=False)
            h = self.norm(h + self.dropout(attended))
        h = self.dropout(torch.relu(self.fc1(h)))
        return torch.sigmoid(self.fc2(h)).squeeze(-1)


def build_detector(*, feature_dim: int = 2048, hidden_dim: int = 1024, heads: int = 8, kernel_size: int = 3,
                   fc_dim: int = 32, dropout: float = 0.7, attention_dropout: float = 0.0, attention: bool = True) -> ARMSDetector:
    """The detector of Fig. 5 with every architectural choice as a keyword."""
    return ARMSDetector(DetectorConfig(feature_dim=feature_dim, hidden_dim=hidden_dim, heads=heads, kernel_size=kernel_size,
                                       fc_dim=fc_dim, dropout=dropout, attention_dropout=attention_dropout, attention=attention))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""Named registries (backbones, phases, synthetic anomaly kinds): one shape for all of them.

Backbones (vad.extract.backbones), training phases (vad.models.phases) and the synthetic
generator's anomaly kinds (vad.synth) each register by name; a registry refuses a name
twice and answers an unknown name with the names it knows.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from vad.errors import VadError

T = TypeVar("T")


class UnknownName(VadError, KeyError):
    """A lookup of a name nobody registered: bad input for vad, a KeyError for mappings."""


class Registry(Generic[T]):
    """Insertion-ordered name -> entry; iterating yields the names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._entries)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

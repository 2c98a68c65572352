"""Extraction: decode videos, cut 16-frame snippets, run a pretrained backbone, cache features.

Imported as `vad.extract`, this package is also the API function `vad.extract(videos, cache,
**config)`: vad/__init__.py makes it callable (see there why).
"""

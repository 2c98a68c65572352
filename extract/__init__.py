"""Feature extraction: decode videos, cut 16-frame snippets, crop, run an I3D backbone, cache."""

"""The `vad` command line and the flows that tie extraction, training, scoring and evaluation together."""

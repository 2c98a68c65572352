"""vad: weakly-supervised video anomaly detection."""

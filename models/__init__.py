"""The ARMS detector, its losses, the multi-phase self-training and score correction."""

"""``mutual-seg-export``: the data a run reads, written in another tool's format (nnU-Net raw) with our folds."""

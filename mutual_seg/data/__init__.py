"""Data side: layouts find subjects, preprocess normalizes and caches, slices/datamodule feed Lightning."""

"""Errors that users can fix: one line each, mapped to exit code 2 by the command-line entry points.

Messages say what was expected, what was found, which subject and file, and the next step
(the nnU-Net ``verify_dataset_integrity`` convention), so no traceback is needed to act on them.
"""

from __future__ import annotations

from pathlib import Path


class MutualSegError(Exception):
    """Base class for user-facing errors; ``str(err)`` is a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # guarantee one line


class DataError(MutualSegError):
    """A data set, subject or file is missing or malformed."""


class ConfigError(MutualSegError):
    """A configuration value is unknown or inconsistent (e.g. a modality name)."""


class CheckpointError(MutualSegError):
    """A checkpoint cannot be used with the requested configuration."""


class OutputError(MutualSegError):
    """An output cannot be written (disk full, read-only folder, permissions) or would overwrite a result."""


class ResultsError(MutualSegError):
    """Run folders cannot be read or reported (nothing finished, mixed tasks, a corrupt results file)."""


def subject_error(subject_id: str, path: str | Path | None, problem: str, fix: str) -> DataError:
    """Build the standard one-line data error: ``subject <id>, file <path>: <problem>; <fix>``."""
    where = f"subject {subject_id}" + (f", file {path}" if path is not None else "")
    return DataError(f"{where}: {problem}; {fix}")

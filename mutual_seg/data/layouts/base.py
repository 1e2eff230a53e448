"""What every layout reader shares: the scan result, missing-file wording, and the folder-per-subject scan.

Readers only call ``Path.is_file``: scanning 500 subjects stays instant, and a missing file is reported
before hours of preprocessing rather than during them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mutual_seg.data.subject import Subject
from mutual_seg.errors import DataError, subject_error
from mutual_seg.modalities import check_modalities

SYNTHETIC_COMMAND = "python -m mutual_seg.data.synthetic --out {root} --subjects 35"


class LayoutWarning(UserWarning):
    """A data set quirk the reader worked around (skipped subject, missing bias-corrected file)."""


@dataclass
class _Found:
    """A subject as scanned: the files found, and (what, expected path) for each one missing."""

    subject: Subject
    missing: list[tuple[str, Path | None]] = field(default_factory=list)


def _require_dir(root: Path, layout: str) -> Path:
    if not root.exists():
        command = SYNTHETIC_COMMAND.format(root=root)
        raise DataError(
            f"{layout} data root {root} does not exist; make the synthetic set with "
            f"`{command}` (UCSF-PDGM layout, then data=synthetic) or point data.layout.root "
            "at real data"
        )
    if not root.is_dir():
        raise DataError(
            f"{layout} data root {root} is a file, not a folder; set data.layout.root to the folder"
        )
    return root


def _names(ids: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def describe_missing(what: str, path: Path | None) -> str:
    """``"flair image not found"`` / ``"label not given (empty cell)"``: one wording for every reader."""
    return f"{what} {'not given (empty cell)' if path is None else 'not found'}"


def _keep_complete(found: list[_Found], skip_incomplete: bool, layout: str) -> list[Subject]:
    """Raise on (or skip, with a warning) subjects missing a requested file; sort by id."""
    found = sorted(found, key=lambda f: f.subject.id)  # report the same first problem every run
    incomplete = [f for f in found if f.missing]
    if incomplete and not skip_incomplete:
        first = incomplete[0]
        what, path = first.missing[0]
        n_more = sum(len(f.missing) for f in incomplete) - 1
        more = (
            f" ({n_more} more missing file(s) in {len(incomplete)} subject(s): "
            f"{_names([f.subject.id for f in incomplete])})"
            if n_more
            else ""
        )
        raise subject_error(
            first.subject.id,
            path,
            f"{describe_missing(what, path)}{more}",
            "add the file(s), drop the modality, or skip such subjects: data.skip_incomplete=true",
        )
    if incomplete:
        detail = [f"{f.subject.id} (no {', '.join(w for w, _ in f.missing)})" for f in incomplete]
        warnings.warn(
            f"{layout}: skipping {len(incomplete)} of {len(found)} subject(s) with missing files: "
            f"{_names(detail)}",
            LayoutWarning,
            stacklevel=3,
        )
    complete = [f.subject for f in found if not f.missing]
    if not complete:
        raise DataError(
            f"{layout}: all {len(found)} subject(s) lack a requested file, nothing is left; "
            "check the modalities or the data set"
        )
    return complete


class _FolderLayout:
    """Shared scan for layouts with one folder per subject directly under ``root``."""

    name: ClassVar[str]
    example: ClassVar[str]  # a subject folder name, for messages
    modalities: ClassVar[tuple[str, ...]]
    _dir_pattern: ClassVar[re.Pattern[str]]

    def __init__(self, root: str | Path) -> None:
        # Absolute, so that subject paths survive a working-directory change (Hydra's chdir).
        self._root = Path(root).expanduser().absolute()

    @property
    def root(self) -> Path:
        """Folder holding the subject folders."""
        return self._root

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"

    def find(
        self, modalities: Sequence[str], skip_incomplete: bool = False, require_label: bool = True
    ) -> list[Subject]:
        """Find every subject with the requested modalities and a label.

        Args:
            modalities: lower-case names, e.g. ``["flair", "t2w"]``.
            skip_incomplete: skip (with a ``LayoutWarning``) subjects missing a file instead of
                raising.
            require_label: False for new patients (``predict``): a missing label is no problem.

        Returns:
            Subjects sorted by id; ``images`` holds exactly the requested modalities.

        Raises:
            ConfigError: unknown modality, or one this layout does not have.
            DataError: missing root, no subjects, or a missing file (one line naming it).
        """
        wanted = check_modalities(modalities, self.modalities, self.name)
        found = self._scan(self._subject_dirs(), wanted)
        return _keep_complete(_label_optional(found, require_label), skip_incomplete, self.name)

    def scan(self, modalities: Sequence[str]) -> list[tuple[Subject, list[tuple[str, Path | None]]]]:
        """Every subject with the files found and (what, expected path) of each one missing; raises for none."""
        wanted = check_modalities(modalities, self.modalities, self.name)
        return [(f.subject, f.missing) for f in self._scan(self._subject_dirs(), wanted)]

    def _scan(
        self, dirs: list[tuple[re.Match[str], Path]], wanted: tuple[str, ...]
    ) -> list[_Found]:
        raise NotImplementedError

    def _subject_dirs(self) -> list[tuple[re.Match[str], Path]]:
        root = _require_dir(self.root, self.name)
        dirs = [(m, p) for p in sorted(root.iterdir()) if (m := self._matching_dir(p))]
        if not dirs:
            raise DataError(
                f"{self.name}: no subject folders like {self.example}/ in {root}"
                f"{self._nested_hint()}; point data.layout.root at the folder that holds them"
            )
        return dirs

    def _matching_dir(self, path: Path) -> re.Match[str] | None:
        return self._dir_pattern.match(path.name) if path.is_dir() else None

    def _nested_hint(self) -> str:
        # Downloads often unpack one level deeper (e.g. root/UCSF-PDGM-v3/...): name that folder.
        for child in sorted(p for p in self.root.iterdir() if p.is_dir()):
            try:
                if any(self._matching_dir(p) for p in child.iterdir()):
                    return f" (but {child} has them: did you mean data.layout.root={child}?)"
            except OSError:  # an unreadable folder only costs the hint
                continue
        return ""


def _probe(
    sid: str, images: Mapping[str, Path | None], label: Path | None, **extra: object
) -> _Found:
    """Check that each expected file exists; ``extra`` goes to ``Subject`` (masks, metadata).

    A None path stands for a file the index leaves blank (an empty manifest cell).
    """
    expected = {**{f"{m} image": p for m, p in images.items()}, "label": label}
    missing = [(what, p) for what, p in expected.items() if p is None or not p.is_file()]
    found = {m: p for m, p in images.items() if p is not None and p.is_file()}
    ok_label = label if label is not None and label.is_file() else None
    return _Found(Subject(sid, found, ok_label, **extra), missing)  # type: ignore[arg-type]


def _label_optional(found: list[_Found], require_label: bool) -> list[_Found]:
    """Without ``require_label`` a missing label is not a missing file (the subject has label None)."""
    if not require_label:
        for f in found:
            f.missing = [(what, path) for what, path in f.missing if what != "label"]
    return found


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None

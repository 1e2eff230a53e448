"""BIDS trees: ``sub-XX/[ses-YY/]anat/sub-XX[_ses-YY]_{FLAIR,T2w,T1w}.nii.gz``, labels under ``derivatives/``.

A subject is one session (id ``sub-01_ses-02``, patient ``sub-01``: folds keep a patient's sessions together).
``T1w`` with a contrast entity (``sub-01_ce-gadolinium_T1w.nii.gz``) is ``t1c``. Labels and masks are found with
glob patterns relative to the root (``data.layout.label`` etc.), in which ``{subject}`` is ``sub-01``,
``{session}`` the session folder with its slash (``ses-02/``, or empty) and ``{prefix}`` the file prefix
(``sub-01_ses-02``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from mutual_seg.data.layouts.base import (
    _Found,
    _keep_complete,
    _label_optional,
    _probe,
    _require_dir,
)
from mutual_seg.data.subject import Subject
from mutual_seg.errors import DataError, subject_error
from mutual_seg.modalities import BIDS_SUFFIXES, check_modalities

_FILE = re.compile(r"^(?P<entities>sub-[A-Za-z0-9]+(?:_[A-Za-z]+-[A-Za-z0-9]+)*)_(?P<suffix>[A-Za-z0-9]+)\.nii(\.gz)?$")


def bids_modality(name: str, contrast_entity: str) -> str | None:
    """The modality of an ``anat/`` file name, or None (another suffix, or not a BIDS name)."""
    found = _FILE.match(name)
    if not found:
        return None
    by_suffix = {s.lower(): m for m, s in BIDS_SUFFIXES.items()}
    modality = by_suffix.get(found["suffix"].lower())
    keys = {e.split("-", 1)[0] for e in found["entities"].split("_")}
    return "t1c" if modality == "t1" and contrast_entity in keys else modality


class BIDSLayout:
    """A BIDS raw data set and the derivatives holding its labels and masks.

    Args:
        root: the BIDS root (holding ``sub-*/`` and ``derivatives/``).
        label: glob pattern of a session's label, e.g. ``derivatives/*/{subject}/{session}anat/{prefix}*_dseg.nii.gz``.
        brain_mask: glob pattern of its brain mask (normalization), or null.
        parenchyma_mask: glob pattern of its parenchyma mask (preferred for normalization), or null.
        contrast_entity: the entity that marks a contrast-enhanced T1w (BIDS: ``ce``).
    """

    name = "BIDS"
    modalities = ("t1", "t1c", "t2w", "flair")

    def __init__(self, root: str | Path, label: str | None, brain_mask: str | None, parenchyma_mask: str | None,
                 contrast_entity: str) -> None:
        self._root = Path(root).expanduser().absolute()
        self.patterns = {"label": label, "brain mask": brain_mask, "parenchyma mask": parenchyma_mask}
        self.contrast_entity = str(contrast_entity)

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"BIDSLayout(root={str(self.root)!r})"

    def find(self, modalities: Sequence[str], skip_incomplete: bool = False,
             require_label: bool = True) -> list[Subject]:
        """Every session with the requested modalities (and a label); same contract as the other readers."""
        found = self._scan(modalities, self.sessions())
        return _keep_complete(_label_optional(found, require_label), skip_incomplete, self.name)

    def scan(self, modalities: Sequence[str], require_label: bool = True
             ) -> list[tuple[Subject, list[tuple[str, Path | None]]]]:
        """Every session with the files found and (what, expected path) of each one missing."""
        found = _label_optional(self._scan(modalities, self.sessions()), require_label)
        return [(f.subject, f.missing) for f in found]

    def scan_sessions(self, modalities: Sequence[str], sessions: list[tuple[str, str]]
                      ) -> list[tuple[Subject, list[tuple[str, Path | None]]]]:
        """``scan`` of some sessions only (``predict --input sub-01/``); a missing label is no problem."""
        return [(f.subject, f.missing) for f in _label_optional(self._scan(modalities, sessions), False)]

    def sessions(self, subject: str | None = None) -> list[tuple[str, str]]:
        """(``sub-XX``, ``ses-YY/`` or ``""``) of every session in the tree, or of one subject."""
        root = _require_dir(self.root, self.name)
        subjects = [p for p in sorted(root.glob("sub-*")) if p.is_dir() and (subject is None or p.name == subject)]
        if not subjects:
            raise DataError(f"BIDS: no sub-* folder in {root}; point data.layout.root at the BIDS root")
        found = []
        for folder in subjects:
            sessions = [p.name + "/" for p in sorted(folder.glob("ses-*")) if p.is_dir()]
            found += [(folder.name, s) for s in sessions or [""]]
        return found

    def _scan(self, modalities: Sequence[str], sessions: list[tuple[str, str]]) -> list[_Found]:
        wanted = check_modalities(modalities, self.modalities, self.name)
        return [self._session(sub, ses, wanted) for sub, ses in sessions]

    def _session(self, sub: str, ses: str, wanted: tuple[str, ...]) -> _Found:
        prefix = sub + (f"_{ses.rstrip('/')}" if ses else "")
        anat = self.root / sub / ses / "anat"
        images: dict[str, Path | None] = {}
        if anat.is_dir():
            for path in sorted(anat.iterdir()):
                modality = bids_modality(path.name, self.contrast_entity)
                if modality not in wanted or not path.is_file():
                    continue
                if modality in images:
                    raise subject_error(prefix, path, f"two {modality} images ({images[modality].name} and "
                                        f"{path.name})", "keep one per session, or move the other out of anat/")
                images[modality] = path
        for m in wanted:
            suffix = "ce-<agent>_T1w" if m == "t1c" else BIDS_SUFFIXES[m]
            images.setdefault(m, anat / f"{prefix}_{suffix}.nii.gz")  # absent: the name it should have
        extra = {what: self._derived(what, sub, ses, prefix) for what in ("label", "brain mask", "parenchyma mask")}
        found = _probe(prefix, images, extra["label"], brain_mask=extra["brain mask"],
                       parenchyma_mask=extra["parenchyma mask"], patient_id=sub)
        return found

    def _derived(self, what: str, sub: str, ses: str, prefix: str) -> Path | None:
        """The one file matching ``what``'s pattern (None: no pattern, or no match for a mask)."""
        pattern = self.patterns[what]
        if not pattern:
            return None
        relative = pattern.format(subject=sub, session=ses, prefix=prefix)
        matches = sorted(p for p in self.root.glob(relative) if p.is_file())
        if len(matches) > 1:
            raise subject_error(prefix, matches[0], f"{len(matches)} files match the {what} pattern {relative} "
                                f"({', '.join(p.name for p in matches[:4])})",
                                f"make data.layout.{what.replace(' ', '_')} match one file")
        if matches:
            return matches[0]
        return self.root / relative if what == "label" else None  # a missing label is named by its pattern

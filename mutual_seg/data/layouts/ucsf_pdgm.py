"""UCSF-PDGM: one ``<id>_nifti/`` folder per scan, and the metadata CSV that selects cohorts."""

from __future__ import annotations

import csv
import fnmatch
import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from mutual_seg.data.layouts.base import (
    LayoutWarning,
    _FolderLayout,
    _Found,
    _names,
    _optional,
    _probe,
    _require_dir,
)
from mutual_seg.errors import ConfigError, DataError
from mutual_seg.modalities import (
    MODALITIES,
    UCSF_PDGM_BRAIN,
    UCSF_PDGM_LABEL,
    UCSF_PDGM_PARENCHYMA,
    UCSF_PDGM_SUFFIXES,
)

log = logging.getLogger(__name__)

_UCSF_NUMBER = re.compile(r"UCSF-PDGM-(\d+)", re.IGNORECASE)
_CSV_GLOB = "UCSF-PDGM-metadata*.csv"


def _latest_metadata_csv(root: Path) -> Path | None:
    """The highest-version ``UCSF-PDGM-metadata*.csv`` in root (v5 beats v2), or None."""

    def version(path: Path) -> tuple[int, str]:
        found = re.search(r"v(\d+)", path.name[len("UCSF-PDGM-metadata") :], re.IGNORECASE)
        return (int(found.group(1)) if found else -1, path.name)

    candidates = sorted((p for p in root.glob(_CSV_GLOB) if p.is_file()), key=version)
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        log.debug("metadata CSVs in %s: %s; using %s", root, names, candidates[-1].name)
    return candidates[-1] if candidates else None


def _read_metadata(path: Path) -> tuple[list[str], dict[int, dict[str, str]]]:
    """Columns, and rows keyed by patient number (``UCSF-PDGM-004`` and ``-0004`` are both 4)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: Excel writes a BOM
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"metadata CSV {path} cannot be read ({err}); fix or remove it") from err
    if "ID" not in columns:
        listed = ", ".join(columns)
        raise DataError(f"metadata CSV {path} has no ID column (columns: {listed}); fix it")
    rows: dict[int, dict[str, str]] = {}
    for entry in raw:
        # A short row gives None values, a long one a None key holding a list: drop both oddities.
        row = {k.strip(): (v or "").strip() for k, v in entry.items() if k is not None}
        number = _UCSF_NUMBER.fullmatch(row.get("ID", ""))
        if number is None:
            log.debug("metadata CSV %s: ignoring row with ID %r", path.name, row.get("ID"))
            continue
        rows.setdefault(int(number.group(1)), row)
    return columns, rows


def _normalise_cohort(cohort: Mapping[str, object] | None) -> dict[str, tuple[str, ...]]:
    """Column -> lower-case fnmatch patterns; YAML scalars (``2``) become strings."""
    if cohort is None:
        return {}
    if not isinstance(cohort, Mapping):
        raise ConfigError(f"cohort must map a metadata column to accepted value(s), got {cohort!r}")
    result = {}
    for column, accepted in cohort.items():
        values = [accepted] if isinstance(accepted, (str, int, float)) else accepted
        if not isinstance(values, Sequence) or not values:
            raise ConfigError(f"cohort[{column!r}] must be a value or a non-empty list")
        result[str(column).strip()] = tuple(str(v).strip().lower() for v in values)
    return result


class UCSFPDGMLayout(_FolderLayout):
    """UCSF-PDGM: ``UCSF-PDGM-0004_nifti/UCSF-PDGM-0004_FLAIR.nii.gz`` plus the metadata CSV.

    Also what the synthetic generator writes. Follow-up scans (``UCSF-PDGM-0429_FU003d_nifti``)
    are subjects of their own whose ``patient_id`` is the patient, so folds keep them together;
    they carry their patient's metadata. Masks are None where absent.

    Args:
        root: folder holding the ``*_nifti`` folders and ``UCSF-PDGM-metadata*.csv``.
        bias_corrected: prefer ``_<SEQ>_bias.nii.gz``; falls back to the plain file with a
            ``LayoutWarning`` (the release has _bias variants for some sequences only).
        cohort: metadata column -> accepted value(s), matched case-insensitively with fnmatch
            wildcards, e.g. ``{"Final pathologic diagnosis (WHO 2021)": "Astrocytoma*"}``;
            None keeps every subject. Subjects without a CSV row are then left out.
        include_followups: keep follow-up scans.
    """

    name = "UCSF-PDGM"
    example = "UCSF-PDGM-0004_nifti"
    modalities = MODALITIES
    _dir_pattern = re.compile(
        r"^(?P<patient>UCSF-PDGM-(?P<number>\d+))(?P<followup>_FU[0-9A-Za-z]+)?_nifti$"
    )

    def __init__(
        self,
        root: str | Path,
        bias_corrected: bool,
        cohort: Mapping[str, str | list[str]] | None,
        include_followups: bool,
    ) -> None:
        super().__init__(root)
        self.bias_corrected = bool(bias_corrected)
        self.cohort = _normalise_cohort(cohort)
        self.include_followups = bool(include_followups)

    def _scan(
        self, dirs: list[tuple[re.Match[str], Path]], wanted: tuple[str, ...]
    ) -> list[_Found]:
        csv_path = _latest_metadata_csv(self.root)
        columns, rows = _read_metadata(csv_path) if csv_path else ([], {})
        # (folder, patient id, metadata row or None); follow-ups share their patient's row
        scans = [
            (folder, m["patient"], rows.get(int(m["number"])))
            for m, folder in dirs
            if self.include_followups or not m["followup"]
        ]
        if self.cohort:
            scans = self._select_cohort(scans, csv_path, columns)
        fallbacks: dict[str, list[str]] = {}
        found = []
        for folder, patient, row in scans:
            sid = folder.name.removesuffix("_nifti")
            images = {m: self._image(folder, sid, UCSF_PDGM_SUFFIXES[m], fallbacks) for m in wanted}
            found.append(
                _probe(
                    sid,
                    images,
                    folder / f"{sid}_{UCSF_PDGM_LABEL}.nii.gz",
                    parenchyma_mask=_optional(
                        folder / f"{sid}_{UCSF_PDGM_PARENCHYMA}.nii.gz"
                    ),
                    brain_mask=_optional(folder / f"{sid}_{UCSF_PDGM_BRAIN}.nii.gz"),
                    patient_id=patient,
                    metadata=dict(row or {}),
                )
            )
        for seq, ids in fallbacks.items():
            warnings.warn(
                f"UCSF-PDGM: no bias-corrected {seq} (_{seq}_bias.nii.gz) for {len(ids)} of "
                f"{len(scans)} subject(s) ({_names(ids)}); using the plain _{seq}.nii.gz there",
                LayoutWarning,
                stacklevel=3,
            )
        return found

    def metadata(self) -> tuple[Path | None, dict[int, dict[str, str]]]:
        """The metadata CSV in use (None if there is none) and its rows keyed by patient number."""
        csv_path = _latest_metadata_csv(_require_dir(self.root, self.name))
        return csv_path, (_read_metadata(csv_path)[1] if csv_path else {})

    def metadata_coverage(self) -> tuple[Path | None, list[str], list[str]]:
        """The metadata CSV (None if there is none), the subject folders without a row, the rows without a folder.

        Follow-up folders count as their patient's; ids are the folder's subject id and the row's ``ID``.
        """
        csv_path, rows = self.metadata()
        if csv_path is None:
            return None, [], []
        dirs = self._subject_dirs()
        numbers = {int(m["number"]) for m, _ in dirs}
        no_row = [p.name.removesuffix("_nifti") for m, p in dirs if int(m["number"]) not in rows]
        no_folder = [row.get("ID", str(n)) for n, row in sorted(rows.items()) if n not in numbers]
        return csv_path, no_row, no_folder

    def _image(self, folder: Path, sid: str, seq: str, fallbacks: dict[str, list[str]]) -> Path:
        """The _bias file when wanted and present, else the plain one (expected, maybe absent)."""
        plain = folder / f"{sid}_{seq}.nii.gz"
        if not self.bias_corrected:
            return plain
        biased = folder / f"{sid}_{seq}_bias.nii.gz"
        if biased.is_file():
            return biased
        if plain.is_file():
            fallbacks.setdefault(seq, []).append(sid)
        return plain

    def _select_cohort(
        self,
        scans: list[tuple[Path, str, dict[str, str] | None]],
        csv_path: Path | None,
        columns: list[str],
    ) -> list[tuple[Path, str, dict[str, str] | None]]:
        """Keep the scans whose metadata row matches every cohort column (any of its values)."""
        cohort_text = ", ".join(f"{c}={'|'.join(v)}" for c, v in self.cohort.items())
        if csv_path is None:
            raise DataError(
                f"UCSF-PDGM: a cohort is set ({cohort_text}) but there is no {_CSV_GLOB} in "
                f"{self.root}; put the metadata CSV there or set data.layout.cohort=null"
            )
        by_lower = {c.lower(): c for c in columns}
        for column in self.cohort:
            if column.lower() not in by_lower:
                raise DataError(
                    f"UCSF-PDGM: cohort column {column!r} is not in metadata CSV {csv_path}; "
                    f"its columns are: {', '.join(columns)}; fix data.layout.cohort"
                )
        absent = [folder.name for folder, _, row in scans if row is None]
        if absent:
            warnings.warn(
                f"UCSF-PDGM: {len(absent)} subject folder(s) have no row in {csv_path.name} and "
                f"are left out of the cohort: {_names(absent)}",
                LayoutWarning,
                stacklevel=4,
            )
        listed = [(folder, patient, row) for folder, patient, row in scans if row is not None]

        def value(row: dict[str, str], column: str) -> str:
            return row.get(by_lower[column.lower()], "")

        kept = [
            scan
            for scan in listed
            if all(
                any(fnmatch.fnmatchcase(value(scan[2], col).lower(), pat) for pat in pats)
                for col, pats in self.cohort.items()
            )
        ]
        if not kept:
            seen = "; ".join(
                f"{col}: " + " | ".join(sorted({value(row, col) for _, _, row in listed})[:8])
                for col in self.cohort
            )
            raise DataError(
                f"UCSF-PDGM: none of the {len(listed)} subject(s) in {csv_path.name} matches "
                f"cohort {cohort_text} (values found: {seen}); fix data.layout.cohort"
            )
        return kept

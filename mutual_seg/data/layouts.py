"""Layout readers: find subjects and their files in a data set tree, without loading pixels.

Each reader is built by Hydra from ``conf/data/*.yaml`` (``_target_`` plus kwargs) and answers one
question, ``find(modalities) -> list[Subject]``, so preprocessing, folds and prediction are the same
whichever data set is on disk. Readers only call ``Path.is_file``: scanning 500 subjects stays
instant, and a missing file is reported before hours of preprocessing rather than during them.

Examples::

    layout = UCSFPDGMLayout("data/ucsf", bias_corrected=True, include_followups=False,
                            cohort={"Final pathologic diagnosis (WHO 2021)": "Astrocytoma*"})
    subjects = layout.find(["flair", "t2w"])        # sorted by id
"""

from __future__ import annotations

import csv
import fnmatch
import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mutual_seg.data.subject import Subject
from mutual_seg.errors import ConfigError, DataError, subject_error
from mutual_seg.modalities import (
    BRATS2021_SUFFIXES,
    BRATS2023_SUFFIXES,
    BRATS_LABEL,
    MODALITIES,
    UCSF_PDGM_BRAIN,
    UCSF_PDGM_LABEL,
    UCSF_PDGM_PARENCHYMA,
    UCSF_PDGM_SUFFIXES,
    check_modalities,
)

log = logging.getLogger(__name__)

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
    label_values: ClassVar[tuple[int, ...]]
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


# --------------------------------------------------------------------------------------- UCSF-PDGM

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
    label_values = (0, 1, 2, 4)
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


# ------------------------------------------------------------------------------------------ BraTS


class _BraTSLayout(_FolderLayout):
    """BraTS: ``<id>/<id><sep><suffix>.nii.gz``; no masks, no metadata."""

    _suffixes: ClassVar[Mapping[str, str]]  # modality -> file suffix
    _sep: ClassVar[str]

    def _scan(
        self, dirs: list[tuple[re.Match[str], Path]], wanted: tuple[str, ...]
    ) -> list[_Found]:
        found = []
        for match, folder in dirs:
            stem = f"{folder.name}{self._sep}"
            images = {m: folder / f"{stem}{self._suffixes[m]}.nii.gz" for m in wanted}
            label = folder / f"{stem}{BRATS_LABEL}.nii.gz"
            found.append(_probe(folder.name, images, label, patient_id=match["patient"]))
        return found


class BraTS2021Layout(_BraTSLayout):
    """BraTS 2021: ``BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz``.

    Args:
        root: folder holding the ``BraTS2021_XXXXX`` folders.
    """

    name = "BraTS 2021"
    example = "BraTS2021_00000"
    label_values = (0, 1, 2, 4)
    modalities = tuple(BRATS2021_SUFFIXES)
    _suffixes: ClassVar[Mapping[str, str]] = BRATS2021_SUFFIXES
    _sep = "_"
    _dir_pattern = re.compile(r"^(?P<patient>BraTS2021_\d{5})$")


class BraTS2023Layout(_BraTSLayout):
    """BraTS 2023 glioma: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz``.

    The last three digits are the timepoint, so ``patient_id`` is ``BraTS-GLI-00000``.

    Args:
        root: folder holding the ``BraTS-GLI-XXXXX-XXX`` folders.
    """

    name = "BraTS 2023"
    example = "BraTS-GLI-00000-000"
    label_values = (0, 1, 2, 3)
    modalities = tuple(BRATS2023_SUFFIXES)
    _suffixes: ClassVar[Mapping[str, str]] = BRATS2023_SUFFIXES
    _sep = "-"
    _dir_pattern = re.compile(r"^(?P<patient>BraTS-GLI-\d{5})-\d{3}$")


# --------------------------------------------------------------------------------------- manifest


class ManifestLayout:
    """Any data set, listed in a CSV: one row per subject.

    Columns: ``id``, one per modality (lower-case names, e.g. ``flair``), ``label``, optional
    ``mask`` (parenchyma or brain mask, used for normalization) and optional ``patient_id``; any
    other column goes into ``Subject.metadata``. Column names are matched case-insensitively.

    Args:
        csv_path: the manifest CSV.
        root: folder that relative paths resolve against; None means the CSV's folder.
    """

    name = "manifest"
    label_values: ClassVar[tuple[int, ...] | None] = None  # unknown: any non-zero voxel is tumour
    modalities = MODALITIES
    _reserved = ("id", "label", "mask", "patient_id", *MODALITIES)

    def __init__(self, csv_path: str | Path, root: str | Path | None = None) -> None:
        self.csv_path = Path(csv_path).expanduser().absolute()
        self._explicit_root = root not in (None, "")
        self._root = (
            Path(root).expanduser().absolute() if self._explicit_root else self.csv_path.parent
        )

    @property
    def root(self) -> Path:
        """Folder that relative paths in the CSV resolve against."""
        return self._root

    def __repr__(self) -> str:
        return f"ManifestLayout(csv_path={str(self.csv_path)!r}, root={str(self.root)!r})"

    def find(
        self, modalities: Sequence[str], skip_incomplete: bool = False, require_label: bool = True
    ) -> list[Subject]:
        """Find the subjects listed in the CSV; same contract as ``UCSFPDGMLayout.find``."""
        wanted, rows = self._rows(modalities, require_label)
        found, seen = [], set()
        for number, row in rows:
            sid = row.get("id", "")
            if not sid:
                raise DataError(
                    f"manifest CSV {self.csv_path}, row {number}: empty id; fill it or drop the row"
                )
            if sid in seen:
                raise DataError(
                    f"manifest CSV {self.csv_path}, row {number}: id {sid} is listed twice; "
                    "keep one row per subject"
                )
            seen.add(sid)
            found.append(self._subject(sid, row, wanted))
        if not found:
            raise DataError(
                f"manifest CSV {self.csv_path} lists no subjects; add one row per subject"
            )
        return _keep_complete(_label_optional(found, require_label), skip_incomplete, self.name)

    def scan(
        self, modalities: Sequence[str], require_label: bool = True
    ) -> list[tuple[Subject, list[tuple[str, Path | None]]]]:
        """Every row as a subject (duplicates and empty ids kept) with the files missing.

        For ``data.check`` and ``predict`` (``require_label=False``: no label column needed, a
        missing label is not a missing file), which report each bad row and go on.
        """
        wanted, rows = self._rows(modalities, require_label)
        found = [self._subject(row.get("id", ""), row, wanted) for _, row in rows]
        return [(f.subject, f.missing) for f in _label_optional(found, require_label)]

    def _rows(
        self, modalities: Sequence[str], require_label: bool = True
    ) -> tuple[tuple[str, ...], list[tuple[int, dict[str, str]]]]:
        """The checked modalities and the CSV's rows, once the needed columns are known to exist."""
        wanted = check_modalities(modalities, self.modalities, self.name)
        if self._explicit_root:
            _require_dir(self.root, self.name)
        columns, rows = self._read()
        needed = ("id", *wanted, "label") if require_label else ("id", *wanted)
        absent = [c for c in needed if c not in columns]
        if absent:
            raise DataError(
                f"manifest CSV {self.csv_path} has no column {', '.join(absent)} (columns: "
                f"{', '.join(columns)}); add it or change the modalities"
            )
        return wanted, rows

    def _read(self) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
        """Lower-case columns, and (line number, row) for each non-blank row."""
        if not self.csv_path.is_file():
            command = SYNTHETIC_COMMAND.format(root="<root>")
            raise DataError(
                f"manifest CSV {self.csv_path} does not exist; write one (columns id, "
                f"<modalities>, label, optional mask and patient_id) or make the synthetic set "
                f"with `{command}`"
            )
        try:
            with self.csv_path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                columns = [c.strip().lower() for c in reader.fieldnames or []]
                rows = [
                    (
                        reader.line_num,
                        {k.strip().lower(): (v or "").strip() for k, v in r.items() if k},
                    )
                    for r in reader
                ]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"manifest CSV {self.csv_path} cannot be read ({err}); fix it") from err
        return columns, [(n, r) for n, r in rows if any(r.values())]  # blank lines: no subject

    def _resolve(self, cell: str) -> Path | None:
        if not cell:
            return None
        path = Path(cell).expanduser()
        return path if path.is_absolute() else self.root / path

    def _subject(self, sid: str, row: dict[str, str], wanted: tuple[str, ...]) -> _Found:
        mask = self._resolve(row.get("mask", ""))
        found = _probe(
            sid,
            {m: self._resolve(row[m]) for m in wanted},
            self._resolve(row.get("label", "")),
            parenchyma_mask=_optional(mask) if mask is not None else None,
            patient_id=row.get("patient_id", ""),
            metadata={k: v for k, v in row.items() if k not in self._reserved},
        )
        if mask is not None and not mask.is_file():
            found.missing.append(("mask", mask))  # named in the CSV, so its absence is an error
        return found


LAYOUTS: dict[str, type] = {
    "ucsf_pdgm": UCSFPDGMLayout,
    "brats2021": BraTS2021Layout,
    "brats2023": BraTS2023Layout,
    "manifest": ManifestLayout,
}

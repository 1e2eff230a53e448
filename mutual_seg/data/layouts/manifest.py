"""Any data set listed in a CSV: one row per subject, one column per modality."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from mutual_seg.data.layouts.base import (
    SYNTHETIC_COMMAND,
    _Found,
    _keep_complete,
    _label_optional,
    _optional,
    _probe,
    _require_dir,
)
from mutual_seg.data.subject import Subject
from mutual_seg.errors import DataError
from mutual_seg.modalities import MODALITIES, check_modalities


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

    def listed_modalities(self) -> list[str]:
        """The modalities the CSV has a column for, in canonical order."""
        columns = self._read()[0]
        return [m for m in self.modalities if m in columns]

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

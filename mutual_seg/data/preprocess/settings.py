"""Preprocessing settings: everything preprocessing depends on besides the files.

Built once by Hydra from ``data.preprocessing`` (``conf/data/base.yaml``), they key the cache and are saved in
every checkpoint, so that ``predict`` preprocesses a new patient exactly as training did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from mutual_seg.errors import ConfigError

NORMALIZATIONS: tuple[str, ...] = ("minmax", "zscore")


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything preprocessing depends on besides the files; stored in checkpoints for ``predict``.

    Args:
        normalization: ``"minmax"`` (paper eq. 1) or ``"zscore"`` (for comparison).
        alpha: lower bound of eq. 1 (value of the mask minimum).
        beta: upper bound of eq. 1 (value of the mask maximum).
        label_outputs: one list of label values per output channel (O lists).
        label_allowed: every value a label file may contain; anything else is a data error.
    """

    normalization: str
    alpha: float
    beta: float
    label_outputs: tuple[tuple[int, ...], ...]
    label_allowed: tuple[int, ...]

    def __post_init__(self) -> None:
        # Hydra hands over ListConfig objects; freeze them into plain hashable, JSON-able tuples.
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "beta", float(self.beta))
        object.__setattr__(
            self, "label_outputs", tuple(tuple(int(v) for v in o) for o in self.label_outputs)
        )
        object.__setattr__(self, "label_allowed", tuple(int(v) for v in self.label_allowed))
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"unknown normalization {self.normalization!r}; expected one of {list(NORMALIZATIONS)}"
            )
        if not self.alpha < self.beta:
            raise ConfigError(
                f"normalization bounds need alpha < beta, found alpha={self.alpha}, beta={self.beta}"
            )
        if not self.label_outputs or any(len(o) == 0 for o in self.label_outputs):
            raise ConfigError(
                f"data.preprocessing.label_outputs must be a non-empty list of non-empty value lists, found {self.label_outputs}"
            )
        unknown = sorted({v for o in self.label_outputs for v in o} - set(self.label_allowed))
        if unknown:
            raise ConfigError(
                f"data.preprocessing.label_outputs uses values {unknown} that are not in data.preprocessing.label_allowed "
                f"{list(self.label_allowed)}; add them to label_allowed or drop them from label_outputs"
            )

    def as_dict(self) -> dict:
        """Plain JSON-able dict (for checkpoints and cache keys); :meth:`from_config` inverts it."""
        d = asdict(self)
        d["label_outputs"] = [list(o) for o in self.label_outputs]
        d["label_allowed"] = list(self.label_allowed)
        return d

    @classmethod
    def from_config(cls, node: PreprocessSettings | Mapping[str, Any]) -> PreprocessSettings:
        """The settings of a ``data.preprocessing`` node, a checkpoint's plain dict, or themselves.

        Hydra keys such as ``_target_`` are ignored; a missing or unknown field is a ConfigError
        naming it (e.g. a checkpoint written by another version).
        """
        if isinstance(node, cls):
            return node
        given = {str(k): v for k, v in node.items() if not str(k).startswith("_")}
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in given]
        unknown = sorted(set(given) - set(names))
        if missing or unknown:
            raise ConfigError(
                f"preprocessing settings: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}; "
                f"expected exactly {names}"
            )
        return cls(**given)

"""The data module of a run, built from a ``data=`` choice and overrides as ``mutual-seg-run`` would build it.

For commands that read a run's data without training (``mutual-seg-export``, ``mutual-seg-evaluate``).
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig

from mutual_seg.cli import user_error
from mutual_seg.data.datamodule import SegDataModule
from mutual_seg.runtime.overrides import check_group_overrides, check_overrides


def compose_run(data: str, overrides: Sequence[str]) -> DictConfig:
    """The checked run config of ``data=<data> <overrides>``.

    Raises:
        ConfigError: an unknown choice or key, or a value of the wrong type (one line).
    """
    args = [f"data={data}", *overrides]
    check_group_overrides(args)
    return check_overrides(args)


def build_data(cfg: DictConfig) -> SegDataModule:
    """The ``SegDataModule`` of a composed run config (nothing read yet but configuration files, e.g. dataset.json)."""
    try:
        return instantiate(cfg.data)
    except Exception as err:
        found = user_error(err)
        if found is None:
            raise
        raise found from None

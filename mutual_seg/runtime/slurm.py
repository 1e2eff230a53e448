"""SLURM through hydra-submitit-launcher, with rank 0 alone writing the job's ``.hydra/`` and ``run.log``.

With ``tasks_per_node = 2`` (``conf/hydra/launcher/slurm.yaml``) SLURM starts the job's function in two processes,
and each runs Hydra's job wrapper, which saves ``.hydra/`` and opens the log file before the run starts: both
ranks would write them. This launcher hands Hydra's job wrapper the overrides a DDP child gets
(``runtime.ddp.RANK_ZERO_ONLY_OUTPUTS``) in every task but the first (``SLURM_PROCID`` > 0).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as _SubmititSlurmLauncher,
)

from mutual_seg.runtime.ddp import RANK_ZERO_ONLY_OUTPUTS


def task_overrides(sweep_overrides: Sequence[str], rank: int) -> list[str]:
    """The job's overrides for the SLURM task of global ``rank``: rank > 0 writes no ``.hydra/`` and no log file."""
    return [*sweep_overrides, *(RANK_ZERO_ONLY_OUTPUTS if rank > 0 else ())]


def slurm_rank(environ: dict[str, str] | None = None) -> int:
    """The global rank SLURM gives this task (``SLURM_PROCID``; 0 outside SLURM)."""
    value = (os.environ if environ is None else environ).get("SLURM_PROCID", "0")
    return int(value) if value.isdigit() else 0


class SlurmLauncher(_SubmititSlurmLauncher):
    """hydra-submitit-launcher's ``SlurmLauncher``; in each task, the overrides of :func:`task_overrides`."""

    def __call__(self, sweep_overrides: list[str], job_dir_key: str, job_num: int, job_id: str,
                 singleton_state: dict[type, Any]) -> Any:
        return super().__call__(task_overrides(sweep_overrides, slurm_rank()), job_dir_key, job_num, job_id,
                                singleton_state)

"""What ``python -m mutual_seg.run`` checks before handing the command line to Hydra.

Hydra creates the run folder (and rewrites its ``.hydra/``) before the run starts, so refusals that protect an
earlier run must come first: here the overrides are checked (``runtime/overrides.py``), ``resume=true`` finds the
folder to continue, and a folder holding earlier results is refused unless ``resume=true`` or ``overwrite=true``
(``results.RunFolder.guard``; the job itself applies the same guard in ``resume.plan_run``, where ``overwrite=true``
removes the earlier files and a failed job's summary is taken over, and where ``train(cfg)`` called from Python is
guarded too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from mutual_seg.results import RunFolder
from mutual_seg.runtime.overrides import check_overrides
from mutual_seg.runtime.resume import locate_run_dir

MULTIRUN_FLAGS = ("-m", "--multirun")


def preflight(args: Sequence[str]) -> list[str]:
    """Check ``args`` (``sys.argv[1:]``); return them, plus the folder to resume when ``resume=true`` needs one.

    Raises:
        ConfigError: a bad override (unknown key, wrong type, impossible value).
        OutputError: the run folder holds an earlier run's results and neither switch was passed.
    """
    return preflight_config(args)[0]


def preflight_config(args: Sequence[str]) -> tuple[list[str], DictConfig | None]:
    """:func:`preflight`, and the composed config of the (first) job; None where nothing was checked (Hydra's own
    modes such as ``--cfg``, or a DDP child of rank > 0)."""
    args = list(args)
    if getattr(rank_zero_only, "rank", 0) != 0:
        return args, None  # a DDP process Lightning started for rank > 0: rank 0 checked this command (and wrote there)
    if any(a.startswith("-") and a not in MULTIRUN_FLAGS for a in args):
        return args, None  # --cfg, --help, --config-name ...: Hydra's own modes
    multirun = any(a in MULTIRUN_FLAGS for a in args)
    cfg = check_overrides([a for a in args if a not in MULTIRUN_FLAGS])
    resume, overwrite = bool(cfg.get("resume", False)), bool(cfg.get("overwrite", False))
    node = "sweep" if multirun else "run"
    if resume:
        found = locate_run_dir(cfg, multirun)
        if found is not None:
            # -m first, then the overrides: Hydra's argparse takes no flag between overrides
            return [*(a for a in args if a in MULTIRUN_FLAGS), *(a for a in args if a not in MULTIRUN_FLAGS),
                    f"hydra.{node}.dir='{found}'"], cfg
        return args, cfg
    if not overwrite:
        folder = Path(str(cfg.hydra[node].dir))
        for job in ([p for p in folder.iterdir() if p.is_dir()] if multirun and folder.is_dir() else [folder]):
            RunFolder(job).guard(resume=False, overwrite=False, remove=False)
    return args, cfg

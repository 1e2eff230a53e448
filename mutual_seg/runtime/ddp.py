"""DDP inside Hydra multiruns: Lightning's ``DDPStrategy`` with a launcher that relaunches rank > 0 into its own job.

Lightning's subprocess launcher rebuilds the child command from ``sys.argv`` as typed (sweep lists and ``-m``
included) and only appends ``hydra.run.dir``: with ``-m`` last Hydra rejects the child's arguments, with ``-m``
first every child runs a whole sweep of its own. It also leaves ``LOCAL_RANK``/``MASTER_PORT`` in the environment,
so the next job of the sweep believes it was started by a launcher and starts no child. Here:

- :class:`JobSubprocessLauncher` starts rank > 0 as ``python -m mutual_seg.run <this job's task overrides>``
  in run mode, writing into this job's folder (``hydra.run.dir``), with no ``.hydra`` folder and no log file;
- :func:`ddp_job` wraps one job: afterwards it destroys the process group, waits for (or ends) the children and
  restores the distributed environment variables, so job 2 starts its own children on a fresh port.

On SLURM (``hydra/launcher=slurm``) Lightning's SLURM environment reports the processes as created externally,
so this launcher starts none.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from mutual_seg.errors import ConfigError

log = logging.getLogger(__name__)

# What a launcher (Lightning's, torchrun's) leaves in os.environ; restored after every job.
DIST_ENV_VARS = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "RANK", "GLOBAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                 "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")
# Hydra overrides a child must not inherit: it runs one job in run mode, in the folder given here.
_PARENT_ONLY = ("hydra.mode", "hydra.run", "hydra.sweep", "hydra.sweeper", "hydra/sweeper", "hydra.launcher",
                "hydra/launcher", "hydra.output_subdir", "hydra.job.name", "hydra/job_logging", "hydra.callbacks",
                "hydra/callbacks")
_CHILD_EXIT_TIMEOUT_S = 120.0
# What a process of rank > 0 adds to its Hydra job: rank 0 alone writes .hydra/ and the log file (run.log);
# the others log to their console only. Used by the DDP children here and by SLURM tasks (runtime/slurm.py).
RANK_ZERO_ONLY_OUTPUTS = ("hydra.output_subdir=null", "hydra/job_logging=stdout")
_LAUNCHED: list[JobSubprocessLauncher] = []  # launchers that started children during the current job


class DeviceError(ConfigError):
    """The machine lacks the devices the trainer asks for: no job of a sweep can run, so the sweep stops."""


def _quote(value: str) -> str:
    """A Hydra override value that stays one string whatever it holds (``=``, ``,`` in job folder names)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def job_command(local_rank: int, hydra_cfg: Any | None = None) -> list[str]:
    """The command that replays exactly the current Hydra job as process ``local_rank`` (run mode, same folder)."""
    import __main__

    hydra_cfg = hydra_cfg or HydraConfig.get()
    spec = getattr(__main__, "__spec__", None)
    command = [sys.executable, "-m", spec.name] if spec is not None else [sys.executable, os.path.abspath(sys.argv[0])]
    task = [str(o) for o in hydra_cfg.overrides.task]
    inherited = [str(o) for o in hydra_cfg.overrides.hydra if not str(o).lstrip("+~").startswith(_PARENT_ONLY)]
    return [*command, *task, *inherited,
            f"hydra.run.dir={_quote(str(hydra_cfg.runtime.output_dir))}",
            f"hydra.job.name=ddp_rank{local_rank}",
            *RANK_ZERO_ONLY_OUTPUTS]          # rank 0 alone writes .hydra/ and the log file


class JobSubprocessLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher, relaunching rank > 0 into this Hydra job (not ``sys.argv``).

    No process observer: Lightning's would SIGKILL this process (the whole sweep) when a child fails. Instead a
    failed child makes rank 0's next collective fail (gloo: at once; NCCL: after the strategy's ``timeout``), that
    job alone fails, and :func:`ddp_job` ends the remaining children.
    """

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def _call_children_scripts(self) -> None:
        if not HydraConfig.initialized():
            super()._call_children_scripts()  # not a Hydra run: Lightning's own command is right
            _LAUNCHED.append(self)
            return
        self._check_can_spawn_children()
        env = self.cluster_environment
        os.environ.update(MASTER_ADDR=env.main_address, MASTER_PORT=str(env.main_port), NODE_RANK=str(env.node_rank()),
                          LOCAL_RANK=str(env.local_rank()), WORLD_SIZE=str(self.num_processes * self.num_nodes))
        from hydra.utils import get_original_cwd

        for local_rank in range(1, self.num_processes):
            child_env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            command = job_command(local_rank)
            log.debug("starting rank %d: %s", local_rank, " ".join(command))
            self.procs.append(subprocess.Popen(command, env=child_env, cwd=get_original_cwd()))
        _LAUNCHED.append(self)

    def finish(self, ok: bool) -> list[int]:
        """Wait for the children (end them at once when the job failed); return their exit codes."""
        codes = []
        for proc in self.procs:
            if not ok and proc.poll() is None:
                proc.kill()
            try:
                codes.append(proc.wait(timeout=_CHILD_EXIT_TIMEOUT_S))
            except subprocess.TimeoutExpired:
                log.warning("rank process %d still running %.0f s after its job ended: killed", proc.pid,
                            _CHILD_EXIT_TIMEOUT_S)
                proc.kill()
                codes.append(proc.wait())
        return codes


class JobDDPStrategy(DDPStrategy):
    """``DDPStrategy`` (``start_method="popen"``) whose launcher relaunches rank > 0 into exactly this job."""

    strategy_name = "mutual_seg_ddp"

    def _configure_launcher(self) -> None:
        assert self.cluster_environment is not None
        self._launcher = JobSubprocessLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


def check_devices(trainer_cfg: Mapping[str, Any]) -> None:
    """Refuse a GPU trainer on a machine with fewer GPUs than ``devices``, in one line.

    Raises:
        DeviceError: naming what was found and the CPU or single-device alternatives.
    """
    if trainer_cfg.get("accelerator") not in ("gpu", "cuda"):
        return
    wanted, found = trainer_cfg.get("devices"), torch.cuda.device_count()
    count = wanted if isinstance(wanted, int) else len(wanted) if isinstance(wanted, (list, tuple)) else None
    if wanted == -1 or wanted == "auto":
        count = 1
    if count is not None and found < count:
        raise DeviceError(
            f"trainer asks for {count} GPU(s) (accelerator={trainer_cfg.get('accelerator')}, devices={wanted}) but "
            f"this machine has {found} (torch.cuda.device_count()); use trainer=ddp_cpu (2 CPU processes) or "
            f"trainer.devices={max(found, 1)}" + ("" if found else " with trainer=cpu"))


def is_global_zero() -> bool:
    """Whether this process is global rank 0 (Lightning's view; right after the Trainer is built, and before it)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def in_multirun() -> bool:
    """Whether this process runs one job of a Hydra multirun (a DDP child runs in run mode: False)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def ddp_job() -> Iterator[None]:
    """One job's distributed lifecycle: afterwards no process group, no children, no launcher variables."""
    saved = {key: os.environ.get(key) for key in DIST_ENV_VARS}
    ok = False
    try:
        yield
        ok = True
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        while _LAUNCHED:
            codes = _LAUNCHED.pop().finish(ok)
            if ok and any(codes):
                log.warning("a rank process of this job exited with code(s) %s", codes)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from lightning_fabric.utilities.rank_zero import rank_zero_only

        rank_zero_only.rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)

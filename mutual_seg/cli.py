"""The one convention of every console script: user errors are one ``error: ...`` line and exit code 2.

Every entry point (``mutual-seg-predict``, ``-report``, ``-check``, ``-synthetic``, ``python -m mutual_seg.run``) parses
its command line with :class:`ArgumentParser` (a usage error is a :class:`~mutual_seg.errors.ConfigError` like any
other) and runs its work inside :func:`run_main`, the one place that turns a user error into that line. A user
error is a :class:`~mutual_seg.errors.MutualSegError` anywhere in the chain of causes (:func:`user_error`): Hydra
wraps whatever a ``_target_`` raises, and torch or Lightning raise a plain ``ValueError`` for an impossible value of
what the config names (:func:`user_error` then names the config key). Anything else is a bug: its traceback stays.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from mutual_seg.errors import ConfigError, MutualSegError


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors raise :class:`ConfigError` (one line, exit 2 through :func:`run_main`)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def user_error(err: BaseException) -> MutualSegError | None:
    """The user error behind ``err``, if any.

    Hydra wraps whatever a ``_target_`` raises in an ``InstantiationException`` (once per nesting level, e.g. the
    network inside the LightningModule, each ``raise ... from``), so a user error raised while building an object
    sits in the ``__cause__`` chain. (Not ``__context__``: a bug hit while handling a user error is a bug.) The one
    exception is OmegaConf's ``InterpolationResolutionError``, which wraps an error raised by a resolver (e.g.
    ``${budget_widths:...}``) without ``from``: there the resolver's error is the ``__context__``. A ``ValueError``
    that a library raised while Hydra built a config node (its message ends with ``full_key: <key>``) becomes a
    :class:`ConfigError` naming that key.
    """
    from omegaconf.errors import InterpolationResolutionError

    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, MutualSegError):
        built = _instantiation_value_error(seen)
        if built is not None:
            return built
        seen = seen.__context__ if isinstance(seen, InterpolationResolutionError) else seen.__cause__
    return seen


def _instantiation_value_error(err: BaseException) -> ConfigError | None:
    """``ConfigError("<key>: <message>")`` for Hydra's wrapper of a ``ValueError`` raised by a ``_target_``."""
    from hydra.errors import InstantiationException

    cause = err.__cause__
    key = re.search(r"full_key: (\S+)", str(err)) if isinstance(err, InstantiationException) else None
    if key is None or type(cause) is not ValueError:  # subclasses (e.g. OmegaConf's own) are not settings
        return None
    return ConfigError(f"{key.group(1)}: {_first_line(cause)}; change that setting")


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def report(err: MutualSegError) -> int:
    """Print ``error: <message>`` (one line) on stderr; return exit code 2."""
    print(f"error: {err}", file=sys.stderr)
    return 2


def run_main(work: Callable[[], int | None]) -> int:
    """``work()``'s exit code (None: 0); a user error anywhere in it is one ``error:`` line and exit code 2."""
    try:
        return work() or 0
    except Exception as err:
        found = user_error(err)
        if found is None:
            raise
        return report(found)

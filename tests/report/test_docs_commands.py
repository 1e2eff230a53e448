"""Every command the README and docs/ show is a command that works today.

Each line of a ```bash / ```sh / ```console block (and each `command` cell of a table) that calls ``python -m mutual_seg...``, a ``mutual-seg-*`` script
or ``make`` is collected and checked the way its program would take it:

- ``python -m mutual_seg.run`` / ``mutual-seg-run``: the overrides go through the checks ``run`` itself makes before
  Hydra (group choices, every sweep value included, then Hydra's compose API with the first job of a sweep: unknown
  keys, wrong types); an experiment's own sweep (``hydra.sweeper.params``) has its group choices checked too;
- other scripts: their real argparse parser (``build_parser()`` or ``parse_args()`` of the script's module);
- ``make``: the target exists (``make -n``), every ``VAR=`` is a variable the Makefile reads, and the Hydra
  overrides a ``reproduce-*`` target passes through ``ARGS`` compose with its experiment.

A short list of commands also runs end to end on the tiny synthetic set. Commands that need a GPU or SLURM are only
composed. ``<...>`` placeholders in a command stand for any value.
"""

from __future__ import annotations

import functools
import importlib
import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mutual_seg.errors import MutualSegError
from mutual_seg.runtime.overrides import check_group_overrides, check_overrides

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELLS = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^(\s*)```+\s*([\w+-]*)")
HYDRA_MODULES = ("mutual_seg.run",)
HYDRA_FLAGS = {"--cfg": 1, "-c": 1, "--package": 1, "-p": 1, "--resolve": 0, "--info": 0}
MULTIRUN = ("-m", "--multirun")
_SCRIPTS_TABLE = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
SCRIPTS = dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.]+):\w+"', _SCRIPTS_TABLE, re.MULTILINE))  # script -> module


@dataclass(frozen=True)
class Command:
    """One documented shell command: where it is written, and its words as the shell splits them."""

    where: str
    text: str

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.text, comments=True)
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):  # VAR=value before the command
            words.pop(0)
        if words and words[-1] == "&":
            words.pop()
        return [re.sub(r"<[^<>]*>", "X", w) for w in words]  # <time>, <run>, <tmp>: any value


def _is_ours(argv: list[str]) -> bool:
    if not argv:
        return False
    if argv[0] in ("python", "python3") and len(argv) > 2 and argv[1] == "-m":
        return argv[2].split(".")[0] == "mutual_seg"
    return argv[0] == "make" or argv[0].startswith("mutual-seg-")


def extract(markdown: str, name: str) -> list[Command]:
    """The commands of the shell blocks in ``markdown`` (continuation lines joined, ``$ `` prompts dropped)."""
    found, block, pending, start = [], None, "", 0
    for number, line in enumerate(markdown.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            block = (fence.group(2).lower() in SHELLS) if block is None else None
            continue
        if block is None and line.lstrip().startswith("|"):  # a table row: its `command` cells count too
            for span in re.findall(r"`([^`]+)`", line):
                command = Command(f"{name}:{number}", span)
                try:
                    if len(command.argv) > 1 and _is_ours(command.argv):
                        found.append(command)
                except ValueError:  # not a shell line (an apostrophe in a name)
                    continue
            continue
        if not block:
            continue
        text = line.strip()
        if not pending:
            text = text.removeprefix("$ ")
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        text, pending = pending + text, ""
        try:
            command = Command(f"{name}:{start}", text)
            if _is_ours(command.argv):
                found.append(command)
        except ValueError:  # not a shell line (e.g. output in a console block)
            continue
    return found


def collect() -> list[Command]:
    return [c for path in DOCS for c in extract(path.read_text(), str(path.relative_to(ROOT)))]


# ------------------------------------------------------------------------------------------------ checkers

def check_hydra(args: list[str]) -> None:
    """What ``python -m mutual_seg.run ARGS`` checks before Hydra starts, plus the experiment's own sweep."""
    overrides, skip = [], 0
    for arg in args:
        if skip:
            skip -= 1
        elif arg in HYDRA_FLAGS:
            skip = HYDRA_FLAGS[arg]
        elif arg not in MULTIRUN:
            overrides.append(arg)
    check_group_overrides(overrides)
    cfg = check_overrides(overrides)
    params = cfg.hydra.sweeper.get("params") or {}
    check_group_overrides([f"{key}={value}" for key, value in params.items() if isinstance(value, str)])


def _module_parser(module: str) -> Callable[[list[str]], object]:
    for name in (module, f"{module}.cli"):
        try:
            found = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        if callable(getattr(found, "parse_args", None)):
            return found.parse_args
        if callable(getattr(found, "build_parser", None)):
            return lambda argv, found=found: found.build_parser().parse_intermixed_args(argv)  # as export, evaluate
    raise AssertionError(f"{module}: no such command module, or it has no build_parser() to check its options")


def check_script(module: str, args: list[str]) -> None:
    if module in HYDRA_MODULES:
        check_hydra(args)
        return
    parse = _module_parser(module)
    try:
        parse(args)
    except SystemExit as exit_:  # argparse's error: it printed the reason to stderr
        if exit_.code not in (0, None):
            raise AssertionError(f"{module} refuses {args}") from None


MAKEFILE_VARS = set(re.findall(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]", (ROOT / "Makefile").read_text()))


def check_make(args: list[str]) -> None:
    variables = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = sorted(set(variables) - MAKEFILE_VARS)
    assert not unknown, f"make variables the Makefile never reads: {unknown}"
    done = subprocess.run(["make", "-n", "-C", str(ROOT), *args], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"make -n {' '.join(args)}: {done.stderr.strip()}"
    for target in (a for a in args if "=" not in a and a.startswith("reproduce-")):
        experiment = target.removeprefix("reproduce-") + ("_quick" if variables.get("QUICK") else "")
        check_hydra([f"experiment={experiment}", *shlex.split(variables.get("ARGS", ""))])


def check(command: Command) -> None:
    """Raise when the command would not be accepted by the program it calls."""
    _check_words(tuple(command.argv))


@functools.cache  # the README repeats some docs commands: check each once (passes are cached)
def _check_words(words: tuple[str, ...]) -> None:
    argv = list(words)
    if argv[0] == "make":
        check_make(argv[1:])
    elif argv[0].startswith("mutual-seg-"):
        assert argv[0] in SCRIPTS, f"{argv[0]} is not a console script of pyproject.toml"
        check_script(SCRIPTS[argv[0]], argv[1:])
    else:
        check_script(argv[2], argv[3:])


# --------------------------------------------------------------------------------------------------- tests

COMMANDS = collect()


def test_the_docs_have_commands_of_every_kind():
    kinds = {c.argv[0] if c.argv[0] != "python" else c.argv[2] for c in COMMANDS}
    assert {"make", "mutual_seg.run", "mutual-seg-predict", "mutual-seg-check", "mutual-seg-report"} <= kinds


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command_is_accepted(command):
    check(command)


WRONG = [
    "python -m mutual_seg.run trainer.max_epoch=1",                       # a renamed key
    "python -m mutual_seg.run modality=flair,flair_t3 fold=0,1 -m",       # a sweep value no config has
    "python -m mutual_seg.run data.batch_size=abc",                       # a value of the wrong type
    "mutual-seg-predict --checkpoint a.ckpt --inputs x --output y",       # a renamed option
    "mutual-seg-predict --checkpoint a.ckpt --output y",                  # no input at all
    "mutual-seg-check /data --layout brats2025",                          # a choice that does not exist
    "mutual-seg-report outputs/x --compare flair",                        # too few values
    "mutual-seg-nope --help",                                              # no such script
    "python -m mutual_seg.nope --out x",                                  # no such module
    "make reproduce-table3 QUICK=1",                                      # no such target
    "make demo DEMO_SUBJECT=3",                                           # a variable the Makefile never reads
    'make reproduce-table2 QUICK=1 ARGS="trainer.max_epoch=1"',           # a bad override passed through ARGS
]


@pytest.mark.parametrize("text", WRONG)
def test_a_wrong_command_fails_the_check(text):
    (command,) = extract(f"```bash\n{text}\n```\n", "wrong.md")
    with pytest.raises((AssertionError, MutualSegError)):
        check(command)


def test_extract_joins_lines_and_skips_what_is_not_ours():
    markdown = """```console
$ mutual-seg-check /data \\
    --layout brats2023   # comment
0 problem(s)
```
```python
make demo
```
```bash
CUDA_VISIBLE_DEVICES=1 python -m mutual_seg.run fold=1 &
wandb sync x
source .venv/bin/activate
```"""
    found = extract(markdown, "x.md")
    assert [c.argv for c in found] == [["mutual-seg-check", "/data", "--layout", "brats2023"],
                                       ["python", "-m", "mutual_seg.run", "fold=1"]]
    assert [c.where for c in found] == ["x.md:2", "x.md:10"]


# ----------------------------------------------------------------------------------- a few, end to end

def _documented(text: str) -> Command:
    matches = [c for c in COMMANDS if c.text == text]
    assert matches, f"the docs no longer show {text!r}: update this test's list"
    return matches[0]


def test_check_command_runs_on_the_tiny_set(tiny_data):
    from mutual_seg.data.check import main

    argv = _documented("mutual-seg-check /data/UCSF-PDGM").argv
    assert main([str(tiny_data) if a == "/data/UCSF-PDGM" else a for a in argv[1:]]) == 0


def test_predict_command_runs_on_the_tiny_set(tiny_data, run, tmp_path):
    from mutual_seg.predict import main

    text = ("mutual-seg-predict --checkpoint outputs/demo/runs/flair_t2w_fold0_<time>/checkpoints/"
            "best.ckpt --input /data/UCSF-PDGM-0004_nifti --output seg/")
    subject = min(tiny_data.glob("*_nifti"))
    swap = {"--checkpoint": str(run / "checkpoints" / "best.ckpt"), "--input": str(subject),
            "--output": str(tmp_path / "seg")}
    argv = _documented(text).argv[1:]
    argv = [swap.get(argv[i - 1], a) if i else a for i, a in enumerate(argv)]
    assert main(argv) == 0
    assert (tmp_path / "seg" / f"{subject.name.removesuffix('_nifti')}_seg.nii.gz").is_file()
    assert (tmp_path / "seg" / "predict.json").is_file()


def test_documented_refusal_messages_are_in_the_code():
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    table = page[page.index("<!-- refusals:start -->"):page.index("<!-- refusals:end -->")]
    fragments = [row.split("|")[3].strip().strip("`") for row in table.strip().splitlines()[3:]]
    code = "\n".join(p.read_text() for p in (ROOT / "mutual_seg").rglob("*.py"))
    assert len(fragments) >= 20
    assert [f for f in fragments if f not in code] == []

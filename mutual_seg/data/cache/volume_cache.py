"""VolumeCache: make sure every subject of a run is cached (in parallel, with a progress bar), once.

A subject whose planned files all exist is read back without loading anything; the others are built by
``build.build_subject`` in worker processes; every bad subject is reported at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from rich.progress import Progress

from mutual_seg.data.cache.build import build_subject, read_meta
from mutual_seg.data.cache.entry import CachedSubject
from mutual_seg.data.cache.plan import CachePlan, plan_subject
from mutual_seg.data.preprocess import PreprocessSettings
from mutual_seg.data.subject import Subject
from mutual_seg.errors import ConfigError, DataError, subject_error

log = logging.getLogger(__name__)



class VolumeCache:
    """Preprocess subjects once and cache them as slice-first ``.npy`` files.

    Args:
        cache_dir: cache root; must not lie inside a subject's data folder.
        settings: normalization and label settings (part of every entry's key).
        num_workers: processes for :meth:`prepare`; 0 or 1 runs in this process.
    """

    def __init__(self, cache_dir: str | Path, settings: PreprocessSettings, num_workers: int) -> None:
        self.cache_dir = Path(cache_dir).absolute()
        if not isinstance(settings, PreprocessSettings):
            raise TypeError(f"settings must be PreprocessSettings, got {type(settings).__name__}")
        self.settings = settings
        if int(num_workers) < 0:
            raise ConfigError(f"num_workers must be >= 0, found {num_workers}")
        self.num_workers = int(num_workers)

    def prepare(
        self, subjects: Sequence[Subject], modalities: Sequence[str], progress: bool = True
    ) -> list[CachedSubject]:
        """Make sure every subject is cached for ``modalities``; return them in input order.

        Cached subjects are recognized by their keyed files and skipped without loading anything.
        All subjects are attempted before failing, then one DataError reports the first problem
        and how many more there were. A failing subject leaves no entry for its keys.

        Raises:
            DataError: any subject's input is missing or invalid, or the cache lies inside the data.
        """
        modalities = list(modalities)
        if not modalities:
            raise ConfigError(
                "no modalities requested; set the modality group (e.g. modality=flair)"
            )
        for s in subjects:
            self._check_location(s)
        plans = [plan_subject(self.cache_dir, self.settings, s, modalities) for s in subjects]
        _warn_fallbacks(subjects, plans)
        results: list[CachedSubject | None] = [None] * len(subjects)
        todo = []
        for i, plan in enumerate(plans):
            if all(p.exists() for p in plan.paths):
                results[i] = read_meta(subjects[i], plan)
            else:
                todo.append(i)

        errors: list[str] = []
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"caching {len(todo)} of {len(subjects)} subjects", total=len(todo))
            if self.num_workers > 1 and len(todo) > 1:
                with ProcessPoolExecutor(max_workers=min(self.num_workers, len(todo))) as pool:
                    futures = {
                        pool.submit(build_subject, subjects[i], modalities, self.settings, plans[i]): i
                        for i in todo
                    }
                    for fut in as_completed(futures):
                        results[futures[fut]], err = fut.result()
                        errors += [err] if err else []
                        bar.advance(task)
            else:
                for i in todo:
                    results[i], err = build_subject(subjects[i], modalities, self.settings, plans[i])
                    errors += [err] if err else []
                    bar.advance(task)
        log.info(
            "volume cache %s: %d subjects, %d newly preprocessed, %d failed",
            self.cache_dir,
            len(subjects),
            len(todo) - len(errors),
            len(errors),
        )
        if errors:
            more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
            raise DataError(errors[0] + more)
        return [r for r in results if r is not None]

    def _check_location(self, subject: Subject) -> None:
        """Refuse a cache inside a subject's folder: the cache must never write next to raw data."""
        if subject.id in ("", ".", "..") or "/" in subject.id or "\\" in subject.id:
            raise subject_error(
                subject.id,
                None,
                "the subject id cannot be used as a cache folder name",
                "give subjects ids without path separators",
            )
        files = [
            *subject.images.values(),
            subject.label,
            subject.parenchyma_mask,
            subject.brain_mask,
        ]
        for f in files:
            if f is None:
                continue
            folder = Path(f).resolve().parent  # resolve: a symlinked cache must not sneak in
            cache = self.cache_dir.resolve()
            if cache == folder or folder in cache.parents:
                raise subject_error(
                    subject.id,
                    f,
                    f"cache_dir {self.cache_dir} lies inside the subject's data folder {folder}",
                    "set the cache directory outside the data tree (e.g. paths.cache_dir)",
                )

def _warn_fallbacks(subjects: Sequence[Subject], plans: list[CachePlan]) -> None:
    """One warning per mask fallback, naming the subjects, instead of one line per subject."""
    fallbacks = (
        ("brain", "no parenchyma mask", "the brain mask"),
        ("nonzero", "no parenchyma or brain mask", "the non-zero voxels of each image"),
    )
    for source, missing, what in fallbacks:
        ids = [s.id for s, p in zip(subjects, plans) if p.mask_source == source]
        if ids:
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            log.warning(
                "%s for %d subject(s) (%s): normalizing inside %s", missing, len(ids), shown, what
            )



"""The ablation table (`mutual-seg-report STUDY --ablation`): every cell's mean test metrics, paired tests.

Reads every job folder under the study folder (``experiments/ablation.py`` writes it) with
``mutual_seg.results.find_runs`` (the run-folder reader; the model choice from summary.json, or Hydra's record of
the job for older folders; the fusion as the network names it, ``SegNet.fusion_name``). A cell is (generator variant, modality set, model, modality dropout); its
test rows are keyed by (subject, seed): each seed draws other folds, and 5-fold cross-validation tests every
subject once per seed. Two cells are compared on the keys they share by the Wilcoxon signed-rank test on Dice
(:func:`mutual_seg.report.stats.paired_comparison`, two-sided; p is NaN when no pair differs); "FLAIR alone" is
the single-track network on FLAIR, "early fusion" is ``model=unet`` on the same inputs and dropout, "best single"
is the single-input cell with the highest mean Dice on that generator. Failed jobs are counted.

The rule that picks the default (fixed before the study ran, README "The ablation study"): among the multi-input
configurations run on every generator, the one whose WORST paired Dice difference against the best single input
(over the generators) is highest; ties go to the higher mean Dice.

Steadiness (:func:`steadiness`): per cell, the mean Dice of each seed and their spread (max - min) against FLAIR
alone's, and the "collapses": test subjects of a seed where the cell's precision falls below 0.6 while FLAIR alone
(same subject, same seed) stays above 0.8 (over-segmentation that FLAIR alone does not make).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev

from mutual_seg.atomic import atomic_write_text
from mutual_seg.errors import MutualSegError
from mutual_seg.modalities import MODALITIES
from mutual_seg.models.fusion import MutualAttentionFusion
from mutual_seg.models.network import fusion_name_of
from mutual_seg.report.stats import paired_comparison
from mutual_seg.results import Run, find_runs

Cell = tuple[str, str, str, float]  # variant, modality set, model, modality dropout
COLLAPSE_PRECISION, FLAIR_PRECISION = 0.6, 0.8  # a collapse: precision below the first where FLAIR alone is above the second


def cell_of(run: Run, study: Path) -> Cell:
    """A job's cell: the variant is its first folder under the study; the model is the Hydra choice name."""
    net = (run.config.get("model") or {}).get("net") or {}
    dropout = float(net.get("modality_dropout", 0.0))
    fusion = net.get("fusion") or {}
    name = str(run.model)
    fusion_name = run.summary.get("fusion") or (fusion_name_of(net) if net else "")  # unfinished: from its config
    if str(fusion_name).split("_")[0] == MutualAttentionFusion.name:
        # mutual attention's output path (models/fusion.py): folders from before the setting computed "residual"
        output = fusion.get("output", "residual")
        name += f"-{output}" if output != "paper" and not name.endswith(output) else ""  # mutual_residual says it
        temperature = float(fusion.get("temperature", 1.0))
        name += f"-T{temperature:g}" if temperature != 1.0 else ""  # the attention's temperature
    aux = float(net.get("aux_weight") or 0.0)
    name += f"+aux{aux:g}" if aux > 0 else ""  # per-track auxiliary heads (models/network.py)
    return run.path.relative_to(study).parts[0], str(run.modality_set), name, dropout


def read_study(study: Path) -> tuple[dict[Cell, dict[tuple[str, int], dict[str, float]]], dict[Cell, int]]:
    """``{cell: {(subject, seed): metrics}}`` and ``{cell: jobs not ok (failed, unfinished)}`` (results.find_runs)."""
    cells: dict[Cell, dict[tuple[str, int], dict[str, float]]] = defaultdict(dict)
    failed: dict[Cell, int] = defaultdict(int)
    for run in find_runs(study):
        cell = cell_of(run, study)
        if not run.ok:
            failed[cell] += 1
            continue
        for row in run.rows:
            cells[cell][(str(row["subject"]), int(run.seed or 0))] = row
    return dict(cells), dict(failed)


def paired(a: dict[tuple[str, int], dict[str, float]], b: dict[tuple[str, int], dict[str, float]]) -> tuple[float, float, int]:
    """(mean Dice difference a - b, two-sided Wilcoxon p, pairs) on the (subject, seed) keys both cells have."""
    keys = sorted(set(a) & set(b))
    if not keys:
        return float("nan"), float("nan"), 0
    test = paired_comparison("Dc", [b[k]["Dc"] for k in keys], [a[k]["Dc"] for k in keys])
    return test.mean_diff, test.p_value, test.n_pairs


def _fmt_test(test: tuple[float, float, int]) -> str:
    diff, p, n = test
    return "–" if n == 0 else f"{diff:+.3f} (p={p:.2g}, n={n})"


def is_single(cell: Cell) -> bool:
    """A single-input cell: one modality (its set is named by the modality). Any model on one input is the
    single-track network (a fusion of one track passes it through), so the demo recipe's ``modality=flair`` counts."""
    return cell[1] in MODALITIES


def flair_alone(cells: dict[Cell, dict], variant: str) -> Cell | None:
    """The FLAIR-alone cell of ``variant`` (the single-track U-Net when several FLAIR cells ran), None if none."""
    found = sorted((c for c in cells if c[0] == variant and c[1] == "flair" and c[3] == 0.0), key=lambda c: c[2] != "unet")
    return found[0] if found else None


def best_single(cells: dict[Cell, dict], variant: str) -> Cell | None:
    """The single-input cell with the highest mean Dice on ``variant`` (None if none ran there)."""
    singles = [c for c in cells if c[0] == variant and is_single(c) and cells[c]]
    return max(singles, key=lambda c: mean(r["Dc"] for r in cells[c].values()), default=None)


def table(cells: dict[Cell, dict], failed: dict[Cell, int]) -> str:
    """The Markdown table, one row per cell, sorted by variant, modality set, model, dropout."""
    lines = [("| data | inputs | model | dropout | n | Dice | Re | Pr | vs FLAIR alone | vs early fusion | vs best single "
             "| failed |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    variants = {c[0] for c in set(cells) | set(failed)}
    bests = {variant: best_single(cells, variant) for variant in variants}
    references = {variant: flair_alone(cells, variant) for variant in variants}
    for cell in sorted(set(cells) | set(failed)):
        variant, modality, model, dropout = cell
        rows = cells.get(cell, {})
        dice = [r["Dc"] for r in rows.values()]
        reference = references[variant]
        flair = cells.get(reference, {})
        early = cells.get((variant, modality, "unet", dropout), {})
        best = bests[variant]
        vs_flair = _fmt_test(paired(rows, flair)) if cell != reference else "ref."
        vs_early = _fmt_test(paired(rows, early)) if model != "unet" else "ref."
        vs_best = "ref." if cell == best else ("–" if best is None else _fmt_test(paired(rows, cells[best])))
        stats = (f"{mean(dice):.3f} ± {stdev(dice) if len(dice) > 1 else 0:.3f} | {mean(r['Re'] for r in rows.values()):.3f} | "
                 f"{mean(r['Pr'] for r in rows.values()):.3f}") if dice else "– | – | –"
        lines.append(f"| {variant} | {modality} | {model} | {dropout:g} | {len(dice)} | {stats} | {vs_flair} | "
                     f"{vs_early} | {vs_best} | {failed.get(cell, 0)} |")
    return "\n".join(lines) + "\n" + rule(cells) + steadiness(cells)


def rule(cells: dict[Cell, dict]) -> str:
    """The default-picking rule as a Markdown section: per multi-input configuration run on every generator, the
    paired Dice difference against each generator's best single input, the worst of them and the mean Dice;
    ranked by the worst difference (then the mean Dice). Empty when fewer than one such configuration ran."""
    variants = sorted({c[0] for c in cells})
    configs = sorted({c[1:] for c in cells if not is_single(c)})
    ranked = []
    for config in configs:
        diffs = {}
        for variant in variants:
            best = best_single(cells, variant)
            rows = cells.get((variant, *config), {})
            if best is None or not rows:
                break
            diffs[variant] = paired(rows, cells[best])[0]
        else:
            dice = [r["Dc"] for v in variants for r in cells[(v, *config)].values()]
            ranked.append((min(diffs.values()), mean(dice), config, diffs))
    if not ranked:
        return ""
    ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
    lines = ["", "## The rule: worst paired Dice difference against the best single input", "",
             "| rank | inputs | model | dropout | " + " | ".join(f"{v} vs best single" for v in variants)
             + " | worst | mean Dice |",
             "|---|---|---|---|" + "---|" * len(variants) + "---|---|"]
    for rank, (worst, dice, (modality, model, dropout), diffs) in enumerate(ranked, 1):
        lines.append(f"| {rank} | {modality} | {model} | {dropout:g} | "
                     + " | ".join(f"{diffs[v]:+.3f}" for v in variants) + f" | {worst:+.3f} | {dice:.3f} |")
    return "\n".join(lines) + "\n"


def seed_means(rows: dict[tuple[str, int], dict[str, float]]) -> dict[int, float]:
    """``{seed: mean Dice over that seed's test subjects}``."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for (_, seed), row in rows.items():
        by_seed[seed].append(row["Dc"])
    return {seed: mean(values) for seed, values in sorted(by_seed.items())}


def _spread(means: dict[int, float]) -> float:
    """Max - min of the per-seed means."""
    return max(means.values()) - min(means.values())


def collapses(rows: dict[tuple[str, int], dict[str, float]], flair: dict[tuple[str, int], dict[str, float]]) -> list[tuple[str, int, float, float]]:
    """(subject, seed, precision, FLAIR alone's precision) where the cell over-segments and FLAIR alone does not."""
    return [(k[0], k[1], rows[k]["Pr"], flair[k]["Pr"]) for k in sorted(set(rows) & set(flair))
            if rows[k]["Pr"] < COLLAPSE_PRECISION and flair[k]["Pr"] > FLAIR_PRECISION]


def steadiness(cells: dict[Cell, dict]) -> str:
    """The steadiness section (Markdown): per cell, mean Dice per seed, spread, ratio to FLAIR alone's, collapses."""
    title = (f"## Steady across seeds: spread of the per-seed mean Dice (max - min), and test subjects at precision "
             f"< {COLLAPSE_PRECISION} where FLAIR alone is > {FLAIR_PRECISION}")
    lines = ["", title, "",
             "| data | inputs | model | dropout | mean Dice per seed | spread | / FLAIR alone's | collapses |",
             "|---|---|---|---|---|---|---|---|"]
    flairs = {variant: cells.get(flair_alone(cells, variant), {}) for variant in {c[0] for c in cells}}
    flair_spreads = {variant: _spread(seed_means(rows)) if rows else float("nan") for variant, rows in flairs.items()}
    for cell in sorted(cells):
        variant, modality, model, dropout = cell
        means = seed_means(cells[cell])
        spread, flair, flair_spread = _spread(means), flairs[variant], flair_spreads[variant]
        ratio = f"{spread / flair_spread:.1f}x" if flair_spread > 0 else "–"
        found = collapses(cells[cell], flair) if modality != "flair" else []
        listed = ", ".join(f"{s} seed {seed} ({p:.2f} vs {fp:.2f})" for s, seed, p, fp in found[:3])
        listed += f" and {len(found) - 3} more" if len(found) > 3 else ""
        lines.append(f"| {variant} | {modality} | {model} | {dropout:g} | "
                     + " ".join(f"{m:.3f}" for m in means.values()) + f" | {spread:.3f} | {ratio} | "
                     + (f"{len(found)}: {listed}" if found else "0") + " |")
    return "\n".join(lines) + "\n"


def write_ablation_table(study: Path, out: Path | None, overwrite: bool) -> str:
    """Write ``<out or study>/table.md`` and return its text.

    Raises:
        MutualSegError: no job folder under ``study``, or a table already there without ``overwrite``.
    """
    if not study.is_dir():
        raise MutualSegError(f"ablation study folder {study} does not exist; pass the folder experiments/ablation.py "
                             "wrote (outputs/ablation/<time>)")
    target = (out or study) / "table.md"
    if target.exists() and not overwrite:
        raise MutualSegError(f"{target} exists; pass --overwrite to replace it or --out to write elsewhere")
    cells, failed = read_study(study)
    if not cells and not failed:
        raise MutualSegError(f"no job folders (summary.json + config.yaml) under {study}; run the study first "
                             "(make ablation) or point at its folder")
    text = table(cells, failed)
    atomic_write_text(target, text)  # a table cut short by a crash never replaces a whole one
    return text

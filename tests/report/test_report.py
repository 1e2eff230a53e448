"""mutual-seg-report over hand-made run folders: Table 2 averages, paired statistics, Fig. 5, bad input."""

from __future__ import annotations

import csv
import struct

import numpy as np
import pytest
from scipy import stats as sps
from test_results import rows_for, write_run

from mutual_seg.metrics import METRIC_NAMES
from mutual_seg.report.cli import main
from mutual_seg.report.figures import DPI, FIG5_SIZE_IN
from mutual_seg.report.stats import paired_comparison

SETS = ("flair", "flair_t2w")


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def sweep(tmp_path):
    """Two modality sets x 3 folds x 4 subjects with random metrics, plus one failed job; returns (dir, values)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "sweep"
    root.mkdir()
    (root / "multirun.yaml").write_text("{}\n")
    values = {}  # (set, fold) -> list of rows
    for fold in range(3):
        subjects = [f"UCSF-PDGM-{fold * 4 + i:04d}" for i in range(4)]
        for s in SETS:
            rows = [{"subject": subj, **{m: float(rng.uniform(0.3, 1.0)) for m in METRIC_NAMES}} for subj in subjects]
            values[(s, fold)] = rows
            write_run(root / f"modality={s},fold={fold}", s, fold, rows)
    write_run(root / "modality=flair_t2w,fold=3", "flair_t2w", 3, None, error="RuntimeError: boom")
    return root, values


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_table2_rows_and_averages_match_an_independent_computation(sweep, capsys):
    root, values = sweep
    out = root.parent / "report"
    assert main([str(root), "--out", str(out), "--exclude", "UCSF-PDGM-0005", "--overlays", "0"]) == 0
    table = read_csv(out / "table2.csv")
    got = {(r["Fold"], r["Modality"]): r for r in table}
    names = {"flair": "FLAIR", "flair_t2w": "FLAIR + T2w"}
    for s in SETS:
        fold_means = [np.mean([[r[m] for m in METRIC_NAMES] for r in values[(s, f)]], axis=0) for f in range(3)]
        kept = [np.mean([[r[m] for m in METRIC_NAMES] for r in values[(s, f)] if r["subject"] != "UCSF-PDGM-0005"],
                        axis=0) for f in range(3)]
        for f in range(3):
            row = got[(f"Fold-{f + 1}", names[s])]
            assert [float(row[m]) for m in METRIC_NAMES] == pytest.approx(fold_means[f].tolist())
        assert [float(got[("Average", names[s])][m]) for m in METRIC_NAMES] == pytest.approx(
            np.mean(fold_means, axis=0).tolist())
        assert [float(got[("Average*", names[s])][m]) for m in METRIC_NAMES] == pytest.approx(
            np.mean(kept, axis=0).tolist())
        assert got[("Average*", names[s])]["n"] == "11"
    # Table 1 pools every test subject of a set
    t1 = {r["Modality"]: r for r in read_csv(out / "table1.csv")}
    pooled = [r["Dc"] for f in range(3) for r in values[("flair", f)]]
    assert float(t1["FLAIR"]["Dc"]) == pytest.approx(np.mean(pooled))
    # the failed job is listed, the tables are printed and in report.md, Fig. 5 has its documented size
    text = (out / "report.md").read_text()
    assert "modality=flair_t2w,fold=3 | failed | RuntimeError: boom" in text
    printed = capsys.readouterr().out
    assert "Table 2" in printed and "Average*" in printed and "failed" in printed
    assert png_size(out / "fig5_boxplots.png") == (int(FIG5_SIZE_IN[0] * DPI), int(FIG5_SIZE_IN[1] * DPI))
    assert (out / "fig5_boxplots.png").stat().st_size > 10_000
    # the statistics pair the 12 subjects tested in both arms
    st = {r["Metric"]: r for r in read_csv(out / "stats.csv")}
    a = [r["Dc"] for f in range(3) for r in values[("flair", f)]]
    b = [r["Dc"] for f in range(3) for r in values[("flair_t2w", f)]]
    assert st["Dc"]["pairs"] == "12"
    assert float(st["Dc"]["Wilcoxon p"]) == pytest.approx(sps.wilcoxon(b, a).pvalue)
    assert float(st["Dc"]["mean diff"]) == pytest.approx(np.mean(np.subtract(b, a)))


def test_wilcoxon_and_bootstrap_match_scipy_on_known_pairs():
    a = np.array([0.61, 0.70, 0.72, 0.55, 0.80, 0.66, 0.74, 0.59, 0.68, 0.77])
    diff = np.array([0.05, 0.12, -0.02, 0.08, 0.03, 0.10, 0.07, -0.04, 0.09, 0.06])
    got = paired_comparison("Dc", a, a + diff, seed=7)
    # Known answer: 8 of 10 differences positive, exact two-sided signed-rank test.
    ranks = sps.rankdata(np.abs(diff))
    assert got.statistic == pytest.approx(min(ranks[diff > 0].sum(), ranks[diff < 0].sum()))
    assert got.p_value == pytest.approx(sps.wilcoxon(a + diff, a).pvalue)
    # W = 1 + 3 (the two negative differences' ranks); 7 of the 2^10 sign patterns have W <= 4: p = 2 * 7 / 1024
    assert got.p_value == pytest.approx(2 * 7 / 1024)
    ci = sps.bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=9999,
                       random_state=np.random.default_rng(7)).confidence_interval
    assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high))
    assert got.mean_diff == pytest.approx(diff.mean())
    assert got.ci_low < got.mean_diff < got.ci_high
    assert got.n_pairs == 10
    # nothing to test: one pair, or no difference at all
    assert np.isnan(paired_comparison("Dc", [0.5], [0.7]).p_value)
    assert np.isnan(paired_comparison("Dc", [0.5, 0.6], [0.5, 0.6]).ci_low)


def test_subjects_in_only_one_arm_are_left_out_and_counted(tmp_path, capsys):
    root = tmp_path / "runs"
    write_run(root / "a", "flair", 0, rows_for(["S1", "S2", "S3", "S4"], 0.5))
    write_run(root / "b", "flair_t2w", 0, rows_for(["S2", "S3", "S4", "S5", "S6"], 0.6))
    assert main([str(root), "--compare", "flair", "flair_t2w", "--overlays", "0"]) == 0
    st = read_csv(root / "report" / "stats.csv")
    assert st[0]["pairs"] == "3"
    assert "1 only in flair, 2 only in flair_t2w" in (root / "report" / "stats.md").read_text()


@pytest.mark.parametrize("case, expected", [
    ("empty", "found no run under"),
    ("failed", "none finished (2 failed)"),
    ("mixed", "found runs of 2 tasks"),
    ("compare", "--compare needs two modality sets of these runs"),
    ("twice", "found two runs of flair fold 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, expected):
    root = tmp_path / "runs"
    root.mkdir()
    if case == "failed":
        write_run(root / "j0", "flair", 0, None, error="ValueError: x")
        write_run(root / "j1", "flair", 1, None, error="ValueError: y")
    if case in ("mixed", "compare", "twice"):
        write_run(root / "j0", "flair", 0, rows_for(["A"], 0.5), task="table1")
        write_run(root / "j1", "flair", 0 if case == "twice" else 1, rows_for(["A"], 0.5),
                  task="table2" if case == "mixed" else "table1")
    argv = [str(root)] + (["--compare", "flair", "t2w"] if case == "compare" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1
    assert not (root / "report").exists()


def test_unknown_exclude_warns_and_an_existing_report_is_kept(sweep, capsys):
    root, _ = sweep
    assert main([str(root), "--exclude", "UCSF-PDGM-9999", "--overlays", "0"]) == 0
    assert "--exclude UCSF-PDGM-9999: no such subject" in capsys.readouterr().out
    before = (root / "report" / "table2.csv").read_text()
    assert main([str(root), "--overlays", "0"]) == 2  # refuses to overwrite silently
    assert "--overwrite" in capsys.readouterr().err
    assert (root / "report" / "table2.csv").read_text() == before
    assert main([str(root), "--overlays", "0", "--overwrite"]) == 0

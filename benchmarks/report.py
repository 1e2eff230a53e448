"""bench.json -> RESULTS.md: the tables, ours/peer ratios and the issue's targets, each with its hardware."""

from __future__ import annotations

from typing import Any

AUGMENT = {"off": "off", "loader": "per slice in the loader", "device": "batched after the loader, on the device",
           False: "off", True: "per slice in the loader"}
TARGETS = {"train_ratio": 1.5, "inference_s": 5.0, "peak_share": 0.40}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _find(rows: list[dict], **keys: Any) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in keys.items()) and "error" not in r), None)


def machine_lines(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    gpu = m["gpu"] or "none (no GPU machine was available for this run; GPU figures are still to be recorded)"
    where = result.get("device", "cpu")
    return [
        (f"- model figures (training, inference, matmul peak) measured on: {where}"
         + (f" ({m['gpu']})" if where == "cuda" else "") + "; loader and cohort figures on the CPU"
         + (", batched augmentation on the GPU" if where == "cuda" else "")),
        f"- date: {m['date']}; mode: `{result['mode']}`; wall time {result.get('wall_s', 'n/a')} s"
        + ("" if result.get("complete", True) else " (PARTIAL: the run stopped before every model was measured)"),
        (f"- CPU: {m['cpu']}, {m['cores']} usable cores ({m['logical_cpus']} logical), torch threads "
        f"{m['torch_threads']}; torch {m['torch']}, Python {m['python']}"),
        f"- GPU: {gpu}",
        (f"- load average (1, 5, 15 min) at start {result['load_average_start']}, at end "
        f"{result.get('load_average_end')}: a load above the core count means the CPU was shared with other "
        "work, and every speed below is then a lower bound"),
        (f"- measured float32 matmul peak: {result['matmul_peak']['gflops']} GFLOP/s "
        f"([{result['matmul_peak']['size']}]^2 products)"),
    ]


def model_table(result: dict[str, Any]) -> list[str]:
    peak = result["matmul_peak"]["gflops"]
    lines = [("| model | width | features | fast path | training slice | params | GFLOPs/slice (fwd) | "
             "train slices/s (batch 8) | train GFLOP/s | % of matmul peak | inference s/subject | peak RSS MB |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["models"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['width']} | {r['features']} | {r['fast_path']} | failed: "
                         f"{r['error']} ||||||||")
            continue
        share = r["train_gflops_per_s"] / peak if peak else None
        lines.append(
            f"| {r['model']} | {r['width']} | {r['features']} | {r['fast_path']} | "
            f"{' x '.join(map(str, r.get('slice', [])))} | {r['parameters']:,} | "
            f"{r['flops_per_slice'] / 1e9:.2f} | {_fmt(r['slices_per_s'])} | {_fmt(r['train_gflops_per_s'], 1)} | "
            f"{_fmt(100 * share, 1) if share is not None else 'n/a'} | {_fmt(r.get('s_per_subject'))} | "
            f"{_fmt(r['peak_rss_mb'], 0)} |")
    return lines


def ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Ours (dual mutual attention) over the peer, per width and fast path, where both were measured."""
    out = []
    for ours in (r for r in result["models"] if r["model"] == "mutual" and "error" not in r):
        peer = _find(result["models"], model="monai_basicunet", width=ours["width"], fast_path=ours["fast_path"])
        if peer is None:
            continue
        out.append({
            "width": ours["width"], "fast_path": ours["fast_path"],
            "params": ours["parameters"] / peer["parameters"],
            "flops": ours["flops_per_slice"] / peer["flops_per_slice"],
            "train_speed": ours["slices_per_s"] / peer["slices_per_s"],
            "inference_time": (ours["s_per_subject"] / peer["s_per_subject"]
                               if ours.get("s_per_subject") and peer.get("s_per_subject") else None),
            "peak_rss": ours["peak_rss_mb"] / peer["peak_rss_mb"],
        })
    return out


def ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [("| width | fast path (both) | params | FLOPs/slice | train slices/s (>1: ours faster) | "
             "inference s/subject (<1: ours faster) | peak RSS |"), "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['width']} | {r['fast_path']} | {r['params']:.2f} | {r['flops']:.2f} | {r['train_speed']:.2f} | "
              f"{_fmt(r['inference_time'])} | {r['peak_rss']:.2f} |" for r in rows]
    return lines


def targets(result: dict[str, Any]) -> list[str]:
    """The issue's three targets on this machine, each reached or not.

    Training throughput is read four ways, each labelled: both as conf/ ships them (whole 240 x 240 slices,
    float32, the same layout switches), both on the plain NCHW path, each network at its fastest measured path,
    and ours at its fastest against the peer as a MONAI user runs it (NCHW, float32). Only the first three compare
    like with like. Inference: the default model as shipped (float32), and the fastest measured path if another.
    """
    ours = [r for r in result["models"] if r["model"] == "mutual" and r["width"] == "default" and "error" not in r]
    peers = [r for r in result["models"] if r["model"] == "monai_basicunet" and r["width"] == "default"
             and "error" not in r]
    if not ours or not peers:
        return ["- targets: not evaluated (the default-width models were not measured in this mode)"]
    best = max(ours, key=lambda r: r["slices_per_s"])
    best_peer = max(peers, key=lambda r: r["slices_per_s"])
    fastest_inf = min((r for r in ours if r.get("s_per_subject")), key=lambda r: r["s_per_subject"], default=None)
    share = best["train_gflops_per_s"] / result["matmul_peak"]["gflops"]
    goal = TARGETS["train_ratio"]

    def mark(ok: bool) -> str:
        return "reached" if ok else "NOT reached"

    def ratio_line(label: str, a: dict, b: dict) -> str:
        ratio = a["slices_per_s"] / b["slices_per_s"]
        return f"- training throughput, {label}: {ratio:.2f}x (target >= {goal}x): {mark(ratio >= goal)}"

    lines = [("- training throughput of the dual mutual-attention model over the peer at matched parameters, "
              "default width:")]
    default_ours, default_peer = _find(ours, fast_path="default"), _find(peers, fast_path="default")
    nchw_ours, nchw_peer = _find(ours, fast_path="nchw"), _find(peers, fast_path="nchw")
    if default_ours and default_peer:
        lines.append("  " + ratio_line("as shipped, same input (both conf/ defaults: whole 240 x 240 slices, float32, "
                                       "channels_last)", default_ours, default_peer))
    if nchw_ours and nchw_peer:
        lines.append("  " + ratio_line("plain path (both NCHW: whole 240 x 240 slices, float32)", nchw_ours, nchw_peer))
    lines.append("  " + ratio_line(f"each at its fastest measured path (ours {best['fast_path']}, peer "
                                   f"{best_peer['fast_path']})", best, best_peer))
    as_monai = nchw_peer or default_peer
    if as_monai:
        lines.append("  " + ratio_line(f"ours at its fastest ({best['fast_path']}) over the peer as a MONAI user runs "
                                       f"it ({as_monai['fast_path']}; not like with like)", best, as_monai))
    shipped_inf = default_ours if default_ours and default_ours.get("s_per_subject") else None
    inference = [("as shipped (default, float32)", shipped_inf)]
    if fastest_inf is not None and fastest_inf is not shipped_inf:
        inference.append((f"fastest measured ({fastest_inf['fast_path']})", fastest_inf))
    for label, row in inference:
        if row is None:
            continue
        s = row["s_per_subject"]
        lines.append(f"- inference per 240x240x155 subject, default model, {label}: {s:.2f} s "
                     f"(target <= {TARGETS['inference_s']} s): {mark(s <= TARGETS['inference_s'])}")
    lines.append(f"- training at {100 * share:.1f} % of the measured matmul peak ({best['fast_path']}; target >= "
                 f"{100 * TARGETS['peak_share']:.0f} %): {mark(share >= TARGETS['peak_share'])}")
    return lines


def data_lines(data: dict[str, Any]) -> list[str]:
    p = data["preprocessing"]
    crop = data.get("brain_crop")
    crop_line = ([(f"Brain crop (`data.slices.brain_crop`): training windows of {crop['window'][0]} x "
                   f"{crop['window'][1]} instead of {crop['slice'][0]} x {crop['slice'][1]} slices, "
                   f"{100 * crop['pixel_share']:.0f} % of the pixels (the box of this run's {crop['train_subjects']} "
                   "synthetic training subjects; a real cohort's window is set by its largest brain)."), ""]
                 if crop else [])
    lines = [(f"Preprocessing (load NIfTI, eq. 1 normalization, write the cache), one process: {p['s_per_subject']} s "
             f"and {p['cache_mb_per_subject']} MB of cache per subject ({p['subjects']} subjects)."), "", *crop_line,
             "| loader workers | augmentation | slices/s | slice [I, H, W] | batch |", "|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {AUGMENT.get(r['augment'], r['augment'])}"
              f"{' (' + r.get('device', 'cpu') + ')' if r['augment'] == 'device' else ''} | {r['slices_per_s']} | "
              f"{r['slice_shape']} | {r['batch_size']} |" for r in data["loader"]]
    lines += ["", (f"Cohort scale (subjects of {data['scale_subject_shape']} voxels): the run's training loader "
              "(memory-mapped cache, loader workers, at most `max_open_subjects` maps open per process) reads "
              "batches drawn across the whole cohort; resident memory (RSS) is summed over the main process and "
              "its workers while they are alive. Flat against cohort size means bounded memory; the row without "
              "a cap shows what the cap bounds."), "",
              ("| cohort | open maps per process | subjects read | slices read | RSS after imports MB | "
              "main RSS after reading MB | workers RSS MB | loader RSS MB (main + workers) | "
              "preprocessing s/subject | cache MB/subject |"),
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["scale"]:
        if "error" in r:
            lines.append(f"| {r['cohort']} | failed: {r['error']} |||||||||")
            continue
        cap = "no cap" if r.get("uncapped") else r.get("max_open_subjects", "all (before the cap)")
        workers = r.get("workers_rss_mb", [])
        prep = ("(cached)", "(cached)") if r.get("uncapped") else (r["preprocess_s_per_subject"],
                                                                  r["cache_mb_per_subject"])
        lines.append(f"| {r['cohort']} | {cap} | {r['subjects_read']} | {r['slices_read']} | "
                     f"{r['rss_after_imports_mb']} | {r['rss_after_loading_mb']} | "
                     f"{' + '.join(map(str, workers)) or 'none'} | {r.get('loader_rss_mb', r['rss_after_loading_mb'])} | "
                     f"{prep[0]} | {prep[1]} |")
    return lines


def ddp_lines(ddp: dict[str, Any] | None) -> list[str]:
    """The 2-process DDP comparison (bench.py runs it on machines with 2 GPUs, and in the smoke mode)."""
    if not ddp:
        return [("Not measured: it needs a machine with 2 GPUs (2 processes on the CPU cores one process already "
                 "uses measure nothing).")]
    if "error" in ddp:
        return [f"Failed: {ddp['error']}"]
    n1, n2 = ddp["batches"]
    lines = [(f"`python -m mutual_seg.run` for {n1} and {n2} training batches of {ddp['batch_per_process']} per "
              "process (one epoch, no test); the difference of the two wall times is the training time of the "
              "extra steps."), "",
             f"| trainer | processes | wall s ({n1} batches) | wall s ({n2} batches) | samples/s |", "|---|---|---|---|---|"]
    for key in ("single", "ddp"):
        r = ddp[key]
        lines.append(f"| {r['trainer']} | {r['processes']} | {r['seconds'][0]} | {r['seconds'][1]} | "
                     f"{_fmt(r['samples_per_s'])} |")
    speedup = ddp["speedup"]
    lines += ["", f"Speed-up of 2-process DDP over one process: {speedup}x" if speedup is not None else
              "Speed-up: not measurable here (the extra steps cost less than the start-up's jitter)."]
    return lines


def render(result: dict[str, Any]) -> str:
    """The whole RESULTS.md for one benchmark result."""
    lines = ["# Benchmark results", "",
             "Written by `make bench` (`benchmarks/bench.py`); the raw figures are in `benchmarks/results/bench.json`.",
             ("Our models are built from `conf/` as a run builds them; the peer is MONAI's `BasicUNet` (2D) at the "
             "parameter count of our dual mutual-attention model, run through the same `SegModule` and the same "
             "whole-volume inference, with the same `module.fast_path` switches as ours (its instance norm has no "
             "BatchNorm to fold). Rows `default`: conf/ as "
             "shipped (channels_last, BatchNorm folded at inference, float32); `nchw`: the plain path (NCHW, "
             "BatchNorm kept). Training: forward, Dice loss, backward and Adam step on random 240 x 240 "
             "slices, batch 8 (`brain_crop` rows: on the brain-box window given under Data, training only). "
             "Inference: one cached 240 x 240 x 155 subject through the project's whole-volume "
             "inference (brain-box crop, batches, threshold). FLOPs: `torch.utils.flop_counter` "
             "(convolutions, matrix products; elementwise work is not counted)."), "", "## Machine", "",
             *machine_lines(result), *[f"- note: {n}" for n in result.get("notes", [])], "", "## Models", "", *model_table(result), "",
             "## Ours / peer (dual mutual attention / MONAI BasicUNet at matched parameters)", "",
             *ratio_table(ratios(result)), "", "## Targets (issue 10) on this machine", "", *targets(result), "",
             "## Data", "", *data_lines(result["data"]), "",
             "## DDP: 2 processes against 1", "", *ddp_lines(result.get("ddp")), ""]
    return "\n".join(lines)


if __name__ == "__main__":  # re-render: python benchmarks/report.py bench.json RESULTS.md
    import json
    import sys
    from pathlib import Path

    from mutual_seg.atomic import atomic_write_text

    atomic_write_text(sys.argv[2], render(json.loads(Path(sys.argv[1]).read_text())))

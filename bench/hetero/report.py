#!/usr/bin/env python3
"""Heterogeneous side by side from bench/hetero/device_run.sh: reads hetero.jsonl, prints a
markdown table (heterollm with a VRAM cap vs llama.cpp -ngl holding the same bytes, the
host-bandwidth bound, the solver's predicted vs measured decode time) and writes hetero.md and
hetero.png (gnuplot; tokens/s against the VRAM budget, decode and prefill).

usage: report.py HETERO_JSONL [OUTDIR] [--no-chart] [--pooled-gbs X] [--llama-from JSONL]

--llama-from: llama.cpp's numbers for records that have none (a run that did not rebuild
llama.cpp) from an earlier run's records of the same model, type and -ngl; the table says so.

Bounds, per cap (host bytes = weights besides token_embd that are not in VRAM):
  decode  tok/s <= pooled host read GB/s / host bytes, pooled = the profile's
          cpu.concurrent_host_gbs + cuda.concurrent_host_gbs (or --pooled-gbs);
          no cap: HBM read (cuda.read_gbs) / all weights
  prefill tok/s <= n_prompt x PCIe h2d GB/s (cuda.h2d_gbs) / host bytes (streaming the host
          weights to the GPU once per prompt); no cap: none
"""
import argparse, json, os, subprocess, sys

ap = argparse.ArgumentParser(description="heterogeneous side by side report (see the module doc)")
ap.add_argument("jsonl")
ap.add_argument("outdir", nargs="?", help="where hetero.md / hetero.png go (default: next to the jsonl)")
ap.add_argument("--no-chart", action="store_true")
ap.add_argument("--pooled-gbs", type=float, help="pooled CPU+GPU host read GB/s for the decode bound")
ap.add_argument("--llama-from", help="earlier hetero.jsonl to take llama.cpp numbers from where a record has none")
opt = ap.parse_args()
src = opt.jsonl
out = opt.outdir or os.path.dirname(os.path.abspath(src))
pooled_override = opt.pooled_gbs

# one record per (preset, type, ngl): a later run of the same cap replaces an earlier one
recs = {}
for n, line in enumerate(open(src), 1):
    line = line.strip()
    if not line:
        continue
    try:
        r = json.loads(line)
    except ValueError as e:
        print(f"{src}:{n}: skipped ({e})", file=sys.stderr)
        continue
    recs[(r["preset"], r["type"], r["ngl"])] = r
borrowed = 0
if opt.llama_from:
    earlier = {}
    for line in open(opt.llama_from):
        line = line.strip()
        if line:
            e = json.loads(line)
            earlier[(e["preset"], e["type"], e["ngl"])] = e
    for k, r in recs.items():
        e = earlier.get(k)
        if r.get("llama_tg") is None and e and e.get("llama_tg") is not None:
            for f_ in ("llama_pp", "llama_pp_sd", "llama_tg", "llama_tg_sd"):
                r[f_] = e.get(f_)
            r["llama_date"] = e.get("date")
            borrowed += 1
rows = sorted(recs.values(), key=lambda r: (r["preset"], r["type"], r["cap_bytes"]))
if not rows:
    sys.exit(f"{src}: no records")

GiB = 1024.0 ** 3


def derive(r):
    """Adds cap label, host bytes, bounds, fractions and the prediction error to r."""
    capped = r["ngl"] < r["n_layer"]
    r["capped"] = capped
    r["cap_label"] = ("%d%% (-ngl %d)" % (round(100.0 * r["ngl"] / r["n_layer"]), r["ngl"]) if capped
                      else "none (-ngl %d)" % r["ngl"])
    r["vram_gib"] = r["cap_bytes"] / GiB
    host = max(r["weights_bytes"] - r["cap_bytes"], 0) if capped else 0
    r["host_bytes"] = host
    pooled = pooled_override
    if pooled is None and r.get("cpu_host_gbs") is not None and r.get("gpu_host_gbs") is not None:
        pooled = r["cpu_host_gbs"] + r["gpu_host_gbs"]
    r["pooled_gbs"] = pooled
    r["bound_tg"] = r["bound_pp"] = None
    if host > 0:
        if pooled:
            r["bound_tg"] = pooled * 1e9 / host
        if r.get("h2d_gbs"):
            r["bound_pp"] = r["pp"] * r["h2d_gbs"] * 1e9 / host
    elif r.get("hbm_gbs"):
        r["bound_tg"] = r["hbm_gbs"] * 1e9 / r["weights_bytes"]
    r["meas_ms"] = 1000.0 / r["hllm_tg"] if r.get("hllm_tg") else None
    pd = r.get("pred_decode_ms")
    r["pred_err"] = r["meas_ms"] / pd - 1 if r["meas_ms"] and pd else None
    return r


rows = [derive(r) for r in rows]


def f(x, fmt="%.1f"):
    return fmt % x if x is not None else "n/a"


def ts(r, k):
    return f"{r[k]:.1f} ± {r[k + '_sd']:.1f}" if r.get(k) is not None else "n/a"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def pct(a, b):
    return f"{100 * a / b:.0f}%" if a and b else "n/a"


r0 = rows[0]
pooled = sorted({r["pooled_gbs"] for r in rows if r["pooled_gbs"]})
h2d = sorted({r["h2d_gbs"] for r in rows if r.get("h2d_gbs")})
hbm = sorted({r["hbm_gbs"] for r in rows if r.get("hbm_gbs")})
bwr = sorted({r["cpu_bw_read_gbs"] for r in rows if r.get("cpu_bw_read_gbs")})
lines = [
    f"heterollm (`hllm bench --gpu-mem BYTES --profile P`; no cap: `--proc cuda`) vs llama.cpp CUDA "
    f"`llama-bench -ngl N`, {r0['threads']} threads, pp{r0['pp']} / tg{r0['tg']}, {r0['reps']} reps; "
    f"commit {r0.get('commit', '?')}, {r0.get('date', '?')[:10]}.",
    "VRAM cap = the bytes of the N layers llama.cpp offloads (all `blk.I.*` tensors; output and token_embd "
    "stay in host memory below -ngl n_layer+1); heterollm gets that many bytes as --gpu-mem.",
    "Bounds: decode <= pooled host read bandwidth / host-resident bytes (pooled = profile "
    "cpu.concurrent_host_gbs + cuda.concurrent_host_gbs" + (f", overridden: {pooled_override} GB/s" if pooled_override else "")
    + "; no cap: HBM read / all weights); prefill <= prompt tokens x PCIe h2d / host bytes.",
    "Measured: pooled " + (", ".join("%.1f" % x for x in pooled) or "n/a") + " GB/s, h2d "
    + (", ".join("%.1f" % x for x in h2d) or "n/a") + " GB/s, HBM " + (", ".join("%.0f" % x for x in hbm) or "n/a")
    + " GB/s, CPU alone (bw_read) " + (", ".join("%.1f" % x for x in bwr) or "n/a") + " GB/s.",
    "",
    "| model | type | cap | VRAM GiB | heterollm tg | llama.cpp tg | tg ratio | heterollm pp | llama.cpp pp | pp ratio "
    "| bound tg | heterollm % | llama.cpp % | bound pp | heterollm % pp | predicted ms/tok | measured ms/tok | error |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for r in rows:
    err = r["pred_err"]
    errs = "n/a" if err is None else f"{100 * err:+.0f}%{'' if abs(err) <= 0.15 else ' (!)'}"
    lines.append(
        f"| {r['preset']} | {r['type']} | {r['cap_label']} | {r['vram_gib']:.2f} | {ts(r, 'hllm_tg')} | {ts(r, 'llama_tg')} "
        f"| {ratio(r.get('hllm_tg'), r.get('llama_tg'))} | {ts(r, 'hllm_pp')} | {ts(r, 'llama_pp')} "
        f"| {ratio(r.get('hllm_pp'), r.get('llama_pp'))} | {f(r['bound_tg'])}{'' if r['capped'] else ' (HBM)'} "
        f"| {pct(r.get('hllm_tg'), r['bound_tg'])} | {pct(r.get('llama_tg'), r['bound_tg'])} | {f(r['bound_pp'], '%.0f')} "
        f"| {pct(r.get('hllm_pp'), r['bound_pp'])} | {f(r.get('pred_decode_ms'), '%.2f')} | {f(r['meas_ms'], '%.2f')} | {errs} |")
over = [f"{r['type']} {r['cap_label']}" for r in rows if r["bound_tg"] and r["capped"]
        and max(r.get("hllm_tg") or 0, r.get("llama_tg") or 0) > r["bound_tg"]]
if over:
    lines.append("")
    lines.append("Decode above the bound at " + ", ".join(over) + ": the profile's pooled host bandwidth is below what "
                 "the engines drew; rerun with --pooled-gbs (DESIGN.md measured 132-137 GB/s pooled).")
if borrowed:
    dates = sorted({r["llama_date"][:16] for r in rows if r.get("llama_date")})
    lines.append("")
    lines.append(f"llama.cpp numbers of {borrowed} rows are from an earlier call on the same files and machine type "
                 f"({', '.join(dates)}; --llama-from {os.path.basename(opt.llama_from)}): not the same call.")
lines.append("")
lines.append("error = measured / predicted - 1 (target within 15%; (!) beyond). Plans chosen by the solver:")
for r in rows:
    lines.append(f"- {r['type']} {r['cap_label']}: {r.get('plan') or 'n/a'}"
                 + ("" if not r.get("hllm_rc") else f" (hllm bench rc {r['hllm_rc']})")
                 + ("" if r.get("llama_rc") in ("0", 0) else f" (llama-bench: {r.get('llama_rc')})"))
table = "\n".join(lines)
print(table)
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "hetero.md"), "w").write(table + "\n")
if opt.no_chart:
    sys.exit(0)

# chart: one row of two panels per (model, type): decode and prefill tokens/s against VRAM GiB
groups = sorted({(r["preset"], r["type"]) for r in rows})
dats = []
for g in groups:
    dat = os.path.join(out, "hetero_%s_%s.dat" % g)
    with open(dat, "w") as fh:
        fh.write("# vram_gib hllm_tg llama_tg bound_tg hllm_pp llama_pp bound_pp\n")
        for r in rows:
            if (r["preset"], r["type"]) == g:
                vals = [r["vram_gib"], r.get("hllm_tg"), r.get("llama_tg"), r["bound_tg"],
                        r.get("hllm_pp"), r.get("llama_pp"), r["bound_pp"]]
                fh.write(" ".join("NaN" if v is None else "%.6g" % v for v in vals) + "\n")
    dats.append((g, dat))
png = os.path.join(out, "hetero.png")
s = [f"set terminal pngcairo size 1400,{480 * len(groups)} noenhanced font ',11'", f"set output '{png}'",
     "set grid", "set key top left", "set logscale y",
     "set xlabel 'VRAM for weights (GiB)'", "set ylabel 'tokens/s'",
     f"set multiplot layout {len(groups)},2 title 'CPU + GPU with a VRAM cap: heterollm vs llama.cpp "
     f"(-t {r0['threads']}, commit {r0.get('commit', '?')})'"]
for (preset, typ), dat in dats:
    s += [f"set title '{preset} {typ}: decode (tg{r0['tg']})'",
          f"plot '{dat}' using 1:2 with linespoints lw 2 pt 7 title 'heterollm', "
          f"'' using 1:3 with linespoints lw 2 pt 5 title 'llama.cpp', "
          f"'' using 1:4 with linespoints lw 1 dt 2 pt 1 lc rgb 'black' title 'bound (host bw; HBM at no cap)'",
          f"set title '{preset} {typ}: prefill (pp{r0['pp']})'",
          f"plot '{dat}' using 1:5 with linespoints lw 2 pt 7 title 'heterollm', "
          f"'' using 1:6 with linespoints lw 2 pt 5 title 'llama.cpp', "
          f"'' using 1:7 with linespoints lw 1 dt 2 pt 1 lc rgb 'black' title 'bound (PCIe h2d)'"]
s.append("unset multiplot")
try:
    subprocess.run(["gnuplot"], input="\n".join(s).encode(), check=True)
    print(f"\nchart: {png}", file=sys.stderr)
except (OSError, subprocess.CalledProcessError) as e:
    print(f"no chart (gnuplot: {e}); apt-get install -y gnuplot-nox", file=sys.stderr)

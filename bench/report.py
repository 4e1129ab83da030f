#!/usr/bin/env python3
"""Turns bench/out/raw/*.json into the side-by-side markdown table, JSON and PNG chart."""
import glob, json, os, subprocess, sys

out, machine = sys.argv[1], sys.argv[2]
bw = {}
for line in open(os.path.join(out, "raw", "bandwidth.txt")):
    t, g = line.split()
    bw[int(t)] = float(g)

rows = []
for h in sorted(glob.glob(os.path.join(out, "raw", "*.hllm.json"))):
    name = os.path.basename(h)[: -len(".hllm.json")]
    preset, typ = name.rsplit("-", 1)
    try:
        ours = json.load(open(h))
        theirs = json.load(open(h.replace(".hllm.json", ".llama.json")))["results"]
    except (OSError, ValueError, KeyError) as e:  # a run that did not finish
        print(f"skipping {name}: {e}", file=sys.stderr)
        continue
    for r in ours:
        test = ("pp%d" % r["n_prompt"]) if r["n_prompt"] else ("tg%d" % r["n_gen"])
        peer = next((x for x in theirs if x["test"] == test and x["threads"] == r["n_threads"]), None)
        row = {"model": preset, "type": typ, "threads": r["n_threads"], "test": test,
               "hllm_ts": r["avg_ts"], "hllm_sd": r["stddev_ts"], "size": r["model_size"],
               "llama_ts": peer["avg_ts"] if peer else None, "llama_sd": peer["stddev_ts"] if peer else None}
        if test.startswith("tg") and r["n_threads"] in bw:
            # decode reads every weight once per token
            row["hllm_bw"] = r["avg_ts"] * r["model_size"] / 1e9 / bw[r["n_threads"]]
            if peer:
                row["llama_bw"] = peer["avg_ts"] * r["model_size"] / 1e9 / bw[r["n_threads"]]
        rows.append(row)

lines = [f"Machine: {machine}. DRAM read bandwidth (bench/bw_read.c): " +
         ", ".join(f"{t} thread{'s' if t > 1 else ''} {g:.1f} GB/s" for t, g in sorted(bw.items())), "",
         "| model | type | threads | test | heterollm t/s | llama.cpp t/s | ratio | heterollm % of BW | llama.cpp % of BW |",
         "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
for r in rows:
    ratio = f"{r['hllm_ts'] / r['llama_ts']:.2f}x" if r["llama_ts"] else "n/a"
    lt = f"{r['llama_ts']:.2f} ± {r['llama_sd']:.2f}" if r["llama_ts"] else "n/a"
    hb = f"{100 * r['hllm_bw']:.0f}%" if "hllm_bw" in r else ""
    lb = f"{100 * r['llama_bw']:.0f}%" if "llama_bw" in r else ""
    lines.append(f"| {r['model']} | {r['type']} | {r['threads']} | {r['test']} | {r['hllm_ts']:.2f} ± {r['hllm_sd']:.2f} "
                 f"| {lt} | {ratio} | {hb} | {lb} |")
table = "\n".join(lines)
print(table)
open(os.path.join(out, "cpu.md"), "w").write(table + "\n")
json.dump(rows, open(os.path.join(out, "cpu.json"), "w"), indent=1)

# chart: ratio heterollm / llama.cpp per model-type-threads, pp and tg side by side
dat = os.path.join(out, "cpu_chart.dat")
with open(dat, "w") as f:
    keys = sorted({(r["model"], r["type"], r["threads"]) for r in rows})
    for k in keys:
        pp = next((r for r in rows if (r["model"], r["type"], r["threads"]) == k and r["test"].startswith("pp")), None)
        tg = next((r for r in rows if (r["model"], r["type"], r["threads"]) == k and r["test"].startswith("tg")), None)
        f.write('"%s %s t%d" %.3f %.3f\n' % (k[0], k[1], k[2],
                (pp["hllm_ts"] / pp["llama_ts"]) if pp and pp["llama_ts"] else 0,
                (tg["hllm_ts"] / tg["llama_ts"]) if tg and tg["llama_ts"] else 0))
png = os.path.join(out, "cpu.png")
script = f"""set terminal pngcairo size 1200,600 noenhanced
set output '{png}'
set title 'heterollm / llama.cpp speed ratio (CPU, {machine})'
set style data histograms
set style fill solid 0.8
set boxwidth 0.9
set ylabel 'ratio (>1: heterollm faster)'
set xtics rotate by -30
set yrange [0:*]
set grid ytics
plot '{dat}' using 2:xtic(1) title 'prefill', '' using 3 title 'decode', 1 with lines lc rgb 'black' notitle
"""
try:
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    print(f"\nchart: {png}", file=sys.stderr)
except (OSError, subprocess.CalledProcessError) as e:
    print(f"no chart (gnuplot: {e}); install it with apt-get install gnuplot", file=sys.stderr)

#!/usr/bin/env python3
"""Splits the growth of runs of bench/scripts/growth-share.sh into the input covariance and the rest, one
Markdown row per label (means over its seeds):
    bench/scripts/input-covariance-breakdown.py LABEL [LABEL ...]
- input covariance (s): from the run's log line `Input covariance of junction …`: S2 + factor + write + hash
  when computed, read + hash when read from the cache;
- factor (s) and rank: the factorisation alone, and the rank it kept;
- rest of growth (s): growth_seconds minus the input covariance;
- last epoch (s): the last epoch's seconds (metrics.jsonl `epoch` lines are cumulative);
- share of the full run: growth / (run + (epochs − run's epochs) × last epoch) with `--full EPOCHS` given
  (CIFAR-dense runs cut to their 5 growth epochs: the 30-epoch run, in which growth ends after epoch 5),
  growth / run otherwise."""
import glob, json, re, statistics, sys

args = sys.argv[1:]
full = None
if args[:1] == ["--full"]:
    full, args = int(args[1]), args[2:]

number = r"([0-9.]+)"
computed = re.compile(rf"S2 on \d+ samples in {number} s, whitening by (.*?) in {number} s; (?:written to the cache \S+ in {number} s|not cached)[^()]*(?:\(inputs hashed in {number} s\))?")
read = re.compile(rf"read from the cache \S+ in {number} s \(inputs hashed in {number} s\)")
rank = re.compile(r"rank (\d+) of")

def runs(label):
    out = []
    for path in sorted(glob.glob(f"runs/growth-share/{label}-s*/metrics.jsonl")):
        lines = [json.loads(l) for l in open(path)]
        final = [l for l in lines if l.get("event") == "final"]
        if not final:
            continue
        epochs = [l["seconds"] for l in lines if l.get("event") == "epoch"]
        log = open(path.replace("/metrics.jsonl", ".log")).read()
        cov = factor = 0.0
        kept = ""
        m = computed.search(log)
        if m:
            s2, path_text, factor = float(m[1]), m[2], float(m[3])
            cov = s2 + factor + float(m[4] or 0) + float(m[5] or 0)
            r = rank.search(path_text)
            kept = r[1] if r else "full"
        else:
            m = read.search(log)
            if m:
                cov = float(m[1]) + float(m[2])
                r = re.search(r"computed there from .*?rank (\d+) of", log)
                kept = r[1] if r else "full"
        f = final[0]
        last = epochs[-1] - epochs[-2] if len(epochs) > 1 else epochs[-1]
        total = f["seconds"] + ((full - len(epochs)) * last if full else 0.0)
        out.append(dict(run=f["seconds"], growth=f["growth_seconds"], cov=cov, factor=factor, rank=kept,
                        rest=f["growth_seconds"] - cov, last=last, share=100 * f["growth_seconds"] / total))
    return out

def ms(xs, fmt):
    return fmt % xs[0] if len(xs) < 2 else (fmt + " ± " + fmt) % (statistics.mean(xs), statistics.stdev(xs))

print("| variant | seeds | run (s) | growth (s) | input covariance (s) | factor (s) | rank kept | rest of growth (s) | last epoch (s) | share of the full run |")
print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
for label in args:
    r = runs(label)
    if not r:
        print(f"| {label} | 0 | (no finished runs) | | | | | | | |")
        continue
    mean = lambda k: statistics.mean(x[k] for x in r)
    note = f" ({full} epochs, estimated)" if full else ""
    print(f"| {label} | {len(r)} | {mean('run'):.1f} | {mean('growth'):.2f} | {mean('cov'):.2f} | {mean('factor'):.2f} "
          f"| {', '.join(x['rank'] for x in r)} | {mean('rest'):.2f} | {mean('last'):.2f} | {ms([x['share'] for x in r], '%.1f')} %{note} |")

#!/usr/bin/env python3
"""Tabulates runs of bench/scripts/growth-share.sh: one Markdown row per label (mean ± std over its
seeds). Growth share = growth_seconds / seconds of each run's `final` line, averaged over seeds.
    bench/scripts/growth-share.py LABEL [LABEL ...]   (reads runs/growth-share/LABEL-s*/metrics.jsonl)"""
import glob, json, statistics, sys

def summary(label):
    runs = []
    for path in sorted(glob.glob(f"runs/growth-share/{label}-s*/metrics.jsonl")):
        lines = [json.loads(l) for l in open(path)]
        # docs/metrics.md: the first line declares the format (none: version 0); a newer one may mean other fields.
        if lines and lines[0].get("event") == "schema" and lines[0].get("schema") not in (1,):
            sys.exit(f"{path}: metrics.jsonl schema {lines[0].get('schema')}, which this script does not read (schemas 0 and 1; docs/metrics.md)")
        final = [l for l in lines if l.get("event") == "final"]
        if not final:
            continue
        growth = [l for l in lines if l.get("event") == "growth"]
        after = [l["train_loss"] for l in lines if l.get("event") == "after_growth"]
        f = final[0]
        runs.append(dict(acc=100 * f["test_accuracy"], widths="/".join(map(str, f["widths"])), params=f["parameters"],
                         seconds=f["seconds"], growth=f["growth_seconds"], share=100 * f["growth_seconds"] / f["seconds"],
                         evaluations=sum(g["loss_evaluations"] for g in growth), after=sum(after) / max(1, len(after))))
    return runs

def ms(xs, fmt):
    if len(xs) < 2:
        return fmt % xs[0]
    return (fmt + " ± " + fmt) % (statistics.mean(xs), statistics.stdev(xs))

print("| variant | seeds | test accuracy | widths | parameters | run (s) | growth (s) | growth share | loss evaluations | loss of the 50 batches after a step |")
print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
for label in sys.argv[1:]:
    r = summary(label)
    if not r:
        print(f"| {label} | 0 | (no finished runs) | | | | | | | |")
        continue
    col = lambda k: [x[k] for x in r]
    print(f"| {label} | {len(r)} | {ms(col('acc'), '%.2f')} % | {'; '.join(col('widths'))} | {statistics.mean(col('params')):,.0f} "
          f"| {statistics.mean(col('seconds')):.1f} | {statistics.mean(col('growth')):.2f} | {ms(col('share'), '%.1f')} % "
          f"| {statistics.mean(col('evaluations')):.0f} | {statistics.mean(col('after')):.3f} |")

#!/usr/bin/env python3
"""Markdown table of the alignment ablation (tools/align_ablation.sh) from each run's test.json."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/align_ablation")
order = ["base", "alpha0.2", "alpha0.5", "hard", "separate", "peakset", "hbasis", "peakset-hbasis"]
pct = lambda v: f"{100 * v:.1f}"
print("| run | in-group top-1 | top-5 | top-10 | assignment, column softmax | optimal (align scores) | optimal, >20 C | fully right (optimal) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name in order + sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in order):
    f = root / name / "test.json"
    if not f.exists():
        continue
    j = json.loads(f.read_text())
    g, a, o = j["in_group"], j["assignment"], j["assignment_optimal_align"]
    big = j["assignment_optimal_align_by_carbons"].get(">20", {}).get("accuracy_per_molecule", float("nan"))
    print(f"| {name} | {pct(g['top1'])} | {pct(g['top5'])} | {pct(g['top10'])} | {pct(a['accuracy_per_molecule'])} | "
          f"{pct(o['accuracy_per_molecule'])} | {pct(big)} | {pct(o['fully_right'])} |")

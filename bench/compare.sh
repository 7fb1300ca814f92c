#!/usr/bin/env bash
# Side-by-side speed of larmor and its PyTorch reference (bench/reference/) on identical weights and batches,
# in one call: exports the batches once (bench_<task>_compare export), checks the reference's outputs and loss
# against ours on each batch (the Python side refuses to time on a mismatch), times larmor, PyTorch eager and
# (with --compile) torch.compile in the same run, and prints a Markdown table of ratios.
#
#   bench/compare.sh [--task shift|align] [--model M] [--data data/nmrshiftdb2.safetensors]
#                    [--batch-sizes B,...] [--modes infer,train] [--threads 1,2] [--device cpu|cuda]
#                    [--compile] [--repeats 10] [--build build] [--python python3] [--out runs/compare]
#
#   --task shift (default): the shift model, bench_shift_compare + bench/reference/shift_reference.py;
#        --model defaults to models/larmor-shift-small.safetensors, --batch-sizes to 16,64,256.
#   --task align: the alignment model, bench_align_compare + bench/reference/align_reference.py;
#        --model defaults to models/larmor-align.safetensors, --batch-sizes to 16,64,128,256.
#
# Needs a Release build with the task's tool (cmake --build build --target bench_shift_compare, or
# bench_align_compare) and a Python with torch and numpy (--python; e.g. a venv: python3 -m venv v &&
# v/bin/pip install torch numpy). Batches are <out>/<task>_batch_<B>.safetensors (exported when missing or
# older than the model);
# the raw JSON lines are kept in <out>/results.jsonl (shift) or <out>/results_align.jsonl (align).
set -euo pipefail
cd "$(dirname "$0")/.."

task=shift
model=
data=data/nmrshiftdb2.safetensors
sizes=
modes=infer,train
threads=1,2
device=cpu
compile=0
repeats=10
build=build
python=python3
out=runs/compare
while [[ $# -gt 0 ]]; do
  case "$1" in
    --task) task=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --batch-sizes) sizes=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --compile) compile=1; shift ;;
    --repeats) repeats=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

case "$task" in
  shift) model=${model:-models/larmor-shift-small.safetensors}; sizes=${sizes:-16,64,256}; results="$out/results.jsonl" ;;
  align) model=${model:-models/larmor-align.safetensors}; sizes=${sizes:-16,64,128,256}; results="$out/results_align.jsonl" ;;
  *) echo "compare.sh: --task must be shift or align, got '$task'" >&2; exit 2 ;;
esac
tool="$build/bench/bench_${task}_compare"
reference="bench/reference/${task}_reference.py"
[[ -x "$tool" ]] || { echo "compare.sh: $tool not found; build it: cmake --build $build --target bench_${task}_compare" >&2; exit 2; }
[[ -f "$model" ]] || { echo "compare.sh: model '$model' not found" >&2; exit 2; }
"$python" -c "import torch, numpy" 2>/dev/null || { echo "compare.sh: '$python' has no torch/numpy (use --python)" >&2; exit 2; }
mkdir -p "$out"

missing=0
for b in ${sizes//,/ }; do  # (re)export when missing or older than the model (they hold its outputs)
  f="$out/${task}_batch_$b.safetensors"
  [[ -f "$f" && ! "$model" -nt "$f" ]] || missing=1
done
if [[ $missing == 1 ]]; then
  [[ -f "$data" ]] || { echo "compare.sh: dataset '$data' not found (larmor prepare makes it)" >&2; exit 2; }
  "$tool" export --data "$data" --model "$model" --out "$out" --batch-sizes "$sizes"
fi

: > "$results"
echo "task: $task; model: $model; device: $device; $(date -u +%Y-%m-%dT%H:%MZ); $(uname -m); $(nproc) cores; torch $("$python" -c 'import torch; print(torch.__version__)')"
for mode in ${modes//,/ }; do
  for t in ${threads//,/ }; do
    for b in ${sizes//,/ }; do
      batch="$out/${task}_batch_$b.safetensors"
      "$tool" time --model "$model" --batch "$batch" --mode "$mode" --threads "$t" --device "$device" --repeats "$repeats" >> "$results"
      "$python" "$reference" --model "$model" --batch "$batch" --mode "$mode" --threads "$t" \
        --device "$device" --repeats "$repeats" >> "$results"
      if [[ $compile == 1 ]]; then
        "$python" "$reference" --model "$model" --batch "$batch" --mode "$mode" --threads "$t" \
          --device "$device" --repeats "$repeats" --compile >> "$results"
      fi
    done
  done
done

"$python" - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
key = lambda r: (r["mode"], r["threads"], r["B"])
groups = {}
for r in rows:
    groups.setdefault(key(r), {})[r["engine"]] = r
has_compile = any("torch.compile" in g for g in groups.values())
# shift batches have a padded length N; align batches V graph nodes and Nc carbon pairs
size_col = "N" if any("N" in r for r in rows) else "V / Nc"
size = lambda r: str(r["N"]) if "N" in r else f"{r['V']} / {r['Nc']}"
head = f"| mode | threads | B | {size_col} | larmor ms | molecules/s | torch eager ms | eager / larmor |"
if has_compile:
    head += " torch.compile ms | compile / larmor |"
# peak memory: the GPU allocator's peak when a side reports one, else the process' max RSS
head += " peak MiB larmor / eager |"
mem = lambda r: r.get("peak_mem_mib", r.get("max_rss_mib"))
print(head)
print("|" + " --- |" * (head.count("|") - 1))
for (mode, t, b), g in groups.items():
    ours = g["larmor"]
    line = f"| {mode} | {t} | {b} | {size(ours)} | {ours['median_ms']:.1f} | {ours['molecules_per_s']:.0f} |"
    e = g.get("torch eager")
    line += f" {e['median_ms']:.1f} | **{e['median_ms'] / ours['median_ms']:.2f}x** |" if e else " - | - |"
    if has_compile:
        c = g.get("torch.compile")
        line += f" {c['median_ms']:.1f} | **{c['median_ms'] / ours['median_ms']:.2f}x** |" if c else " - | - |"
    line += f" {mem(ours):.0f} / {mem(e):.0f} |" if e and mem(ours) and mem(e) else " - |"
    print(line)
EOF

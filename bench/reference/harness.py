"""What shift_reference.py and align_reference.py share: the command line, loading a larmor checkpoint and a
batch file, the timing loop and the JSON line, so both references time the same way as larmor's
bench_*_compare tools (warm-up calls, then the median of --repeats calls; CUDA synchronised inside the call)."""
import argparse
import json
import resource
import statistics
import time

import torch

import safetensors_np


def parser(description, what):
    """The common arguments; `what` names the compared outputs in the --tolerance help."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--mode", choices=["infer", "train"], default="infer")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="time torch.compile(model) instead of eager")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--tolerance", type=float, default=1e-4, help=f"parity check: max |{what}| and |loss| difference")
    return ap


def setup(a):
    """Threads and seed from the arguments; returns the torch device."""
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    return torch.device(a.device)


def synchronizer(dev):
    return (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)


def time_and_report(call, a, dev, batch_size, sizes):
    """Warm-up (3 calls under torch.compile, else 2), then a.repeats timed calls; prints one JSON line with
    the median and min in ms, molecules/s, `sizes` (e.g. {"N": 65}) and, on CUDA, the peak memory."""
    for _ in range(3 if a.compile else 2):
        call()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    ms = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        call()
        ms.append((time.perf_counter() - t0) * 1000.0)
    med = statistics.median(ms)
    rec = {"engine": "torch.compile" if a.compile else "torch eager", "torch": torch.__version__, "mode": a.mode,
           "device": a.device, "threads": torch.get_num_threads(), "B": batch_size, **sizes,
           "median_ms": round(med, 3), "min_ms": round(min(ms), 3),
           "molecules_per_s": round(batch_size / (med / 1000.0), 1),
           "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}
    if dev.type == "cuda":
        rec["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(rec))


def load_weights(model, weights):
    """Copies a larmor checkpoint's tensors (name -> np.ndarray, as safetensors_np.load returns them; f16
    entries become f32) into the model, strictly by name; the optimizer state ("optim.*") is skipped."""
    state = {k: torch.from_numpy(v.astype("float32")) for k, v in weights.items() if not k.startswith("optim.")}
    model.load_state_dict(state, strict=True)


def load_batch(path, device):
    """A bench_*_compare batch file as torch tensors on `device` (integer tensors as int64, the index type
    torch wants, converted once, outside the timing) and its metadata."""
    arrays, meta = safetensors_np.load(path)
    batch = {}
    for k, v in arrays.items():
        t = torch.from_numpy(v)
        if t.dtype in (torch.int32, torch.int64):
            t = t.to(torch.int64)
        batch[k] = t.to(device)
    return batch, meta

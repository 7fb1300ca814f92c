"""PyTorch reference of larmor's shift model (layers/shift_model.{h,cpp}) and training loss
(layers/shift_loss.cpp), used only to compare speed with larmor on identical weights and batches.

    python bench/reference/shift_reference.py --model models/larmor-shift-small.safetensors \
        --batch runs/compare/shift_batch_64.safetensors [--mode infer|train] [--threads 1] [--device cpu]
        [--compile] [--repeats 10]

It builds the model from the checkpoint's config, loads the checkpoint's tensors by name (strict: the
state_dict keys are larmor's parameter names), runs the batch in eval mode and checks that its shifts and
loss match the ones larmor wrote into the batch file (bench_shift_compare export) before timing anything;
a mismatch exits with status 1 and times nothing. Then it times one call (infer: torch.inference_mode,
shifts only; train: zero_grad, forward in training mode, loss, backward, clip_grad_norm_(1), AdamW) after
warm-up and prints one JSON line in the same shape as bench_shift_compare's.

The model, written from the architecture comment of layers/shift_model.h:
  h = Embed(tok) [+ sum_f AtomChem(feat_f)] + Solvent(solvent) on [CLS];  x = LN(h) * key_mask
  x_ij = mul[tok_i V + tok_j] d_ij + bias[...];  b0 = Linear(GELU(Linear(GaussianBasis(x)))) [+ GraphPair(type_ij)] -> (B, H, N, N)
  per layer (pre-LN): logits = q k^T / sqrt(dh) + bias; p = softmax over valid keys; bias <- logits
                      x += Out(p v);  x += FC2(GELU(FC1(LN(x))))
  shifts[..., n] = Linear(tanh(Linear(LN_final(x)))) per nucleus with a head.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import safetensors_np  # noqa: E402

NUCLEI = ["1H", "13C", "19F", "31P"]
PAD, CLS, SEP = 0, 1, 2


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, f = c["dim"], c["ffn"]
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc1 = nn.Linear(d, f)
        self.fc2 = nn.Linear(f, d)


class ShiftModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        V, D, H, K = c["vocab_size"], c["dim"], c["heads"], c["kernels"]
        self.tokens = nn.Embedding(V, D)
        if c.get("solvent_conditioning", True):
            self.solvent = nn.Embedding(c["num_solvents"], D)
        self.emb_ln = nn.LayerNorm(D, eps=1e-5)
        if c.get("atom_features", False):
            self.atom_chem = nn.Embedding(25, D)  # layers/shift_batch.h kShiftAtomFeatureRows
        if c.get("graph_pairs", False):
            self.graph_pair = nn.Embedding(14, H)  # kShiftPairTypes
        self.edge_mul = nn.Embedding(V * V, 1)
        self.edge_bias = nn.Embedding(V * V, 1)
        self.gbf_mean = nn.Parameter(torch.zeros(K))
        self.gbf_std = nn.Parameter(torch.ones(K))
        self.gbf_fc1 = nn.Linear(K, K)
        self.gbf_fc2 = nn.Linear(K, H)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["layers"])])
        self.final_ln = nn.LayerNorm(D, eps=1e-5)
        self.heads = [n for n in NUCLEI if n in c["nuclei"]]
        for n in self.heads:
            setattr(self, f"head_{n}_fc1", nn.Linear(D, D))
            setattr(self, f"head_{n}_fc2", nn.Linear(D, 1))
        # Pretraining heads: present in the checkpoint, unused for shifts.
        self.coord_fc1 = nn.Linear(H, H)
        self.coord_fc2 = nn.Linear(H, 1)
        self.dist_fc1 = nn.Linear(H, H)
        self.dist_ln = nn.LayerNorm(H, eps=1e-5)
        self.dist_fc2 = nn.Linear(H, 1)
        self.mlm_fc = nn.Linear(D, D)
        self.mlm_ln = nn.LayerNorm(D, eps=1e-5)
        self.mlm_bias = nn.Parameter(torch.zeros(V))

    def forward(self, tokens, coords, key_mask, solvent, atom_features=None, pair_types=None):
        c = self.c
        B, N = tokens.shape
        V, D, H = c["vocab_size"], c["dim"], c["heads"]
        dh = D // H
        p_emb = c["emb_dropout"] if self.training else 0.0
        p_res = c["dropout"] if self.training else 0.0
        p_att = c["attention_dropout"] if self.training else 0.0
        p_act = c["activation_dropout"] if self.training else 0.0

        key = key_mask != 0                                                # (B, N)
        atom = key & (tokens != PAD) & (tokens != CLS) & (tokens != SEP)   # (B, N)
        atom_pair = (atom[:, :, None] & atom[:, None, :]).to(coords.dtype)  # (B, N, N)
        with torch.no_grad():
            diff = coords[:, :, None, :] - coords[:, None, :, :]           # (B, N, N, 3)
            dist = diff.square().sum(-1).sqrt() * atom_pair                # (B, N, N)
        edge = tokens[:, :, None] * V + tokens[:, None, :]                  # (B, N, N)
        x_aff = self.edge_mul(edge).squeeze(-1) * dist + self.edge_bias(edge).squeeze(-1)
        s = self.gbf_std.abs() + 1e-5
        g = torch.exp(-0.5 * ((x_aff[..., None] - self.gbf_mean) / s) ** 2) / (math.sqrt(2 * math.pi) * s)  # (B, N, N, K)
        b0 = self.gbf_fc2(F.gelu(self.gbf_fc1(g)))                          # (B, N, N, H)
        if c.get("graph_pairs", False):
            b0 = b0 + self.graph_pair(pair_types.long())
        bias = b0.permute(0, 3, 1, 2).contiguous()                          # (B, H, N, N)

        h = self.tokens(tokens)                                             # (B, N, D)
        if c.get("atom_features", False):
            h = h + self.atom_chem(atom_features.long()).sum(2)             # (B, N, F, D) -> (B, N, D)
        if c.get("solvent_conditioning", True):
            h = torch.cat([h[:, :1] + self.solvent(solvent)[:, None], h[:, 1:]], dim=1)
        keyf = key.to(h.dtype)[..., None]
        x = F.dropout(self.emb_ln(h), p_emb, self.training) * keyf
        key_bias = torch.zeros(B, 1, 1, N, dtype=h.dtype, device=h.device).masked_fill(~key[:, None, None, :], float("-inf"))
        scale = 1.0 / math.sqrt(dh)
        for l in self.layers:
            qkv = l.qkv(l.ln1(x)).view(B, N, 3, H, dh).permute(2, 0, 3, 1, 4)  # (3, B, H, N, dh)
            q, k, v = qkv[0], qkv[1], qkv[2]
            logits = torch.matmul(q, k.transpose(-1, -2)) * scale + bias     # (B, H, N, N)
            p = F.dropout(torch.softmax(logits + key_bias, dim=-1), p_att, self.training)
            a = torch.matmul(p, v).permute(0, 2, 1, 3).reshape(B, N, D)      # (B, N, D)
            bias = logits
            x = x + F.dropout(l.out(a), p_res, self.training)
            f = F.dropout(F.gelu(l.fc1(l.ln2(x))), p_act, self.training)
            x = x + F.dropout(l.fc2(f), p_res, self.training)
        hidden = self.final_ln(x)
        cols = []
        for n in NUCLEI:
            if n in self.heads:
                t = torch.tanh(getattr(self, f"head_{n}_fc1")(hidden))
                cols.append(getattr(self, f"head_{n}_fc2")(t))
            else:
                cols.append(torch.zeros(B, N, 1, dtype=hidden.dtype, device=hidden.device))
        return torch.cat(cols, dim=2)                                       # (B, N, 4)


def segments_padded(offsets, total):
    """(S+1) CSR offsets -> (S, L) gather positions into the flat list and a (S, L) validity mask."""
    off = offsets.to(torch.int64)
    lens = off[1:] - off[:-1]
    L = int(lens.max().item()) if lens.numel() else 0
    pos = off[:-1, None] + torch.arange(L, device=off.device)[None, :]
    valid = torch.arange(L, device=off.device)[None, :] < lens[:, None]
    return pos.clamp(max=max(total - 1, 0)), valid


def sorted_set_l1(pred, target, offsets):
    """Mean over all compared predictions of |sort(pred_seg) - sort(target_seg)| (larmor's sorted_set_loss, L1)."""
    pos, valid = segments_padded(offsets, pred.numel())
    big = torch.finfo(pred.dtype).max
    ps = torch.where(valid, pred[pos], torch.full_like(pred[pos], big)).sort(dim=1).values
    ts = torch.where(valid, target[pos], torch.full_like(target[pos], big)).sort(dim=1).values
    return ((ps - ts).abs() * valid).sum() / valid.sum()


def shift_loss(shifts, batch, heads, lam):
    flat = shifts.reshape(-1, 4)
    total = shifts.sum() * 0.0
    for n, name in enumerate(NUCLEI):
        if name not in heads:
            continue
        for kind, w in (("assigned", 1.0), ("unassigned", lam)):
            key = f"{kind}.{name}."
            if key + "index" not in batch:
                continue
            pred = flat[:, n][batch[key + "index"]]
            total = total + w * sorted_set_l1(pred, batch[key + "target"], batch[key + "offsets"])
    return total


def load(model_path, batch_path, device):
    weights, meta = safetensors_np.load(model_path)
    c = json.loads(meta["model_config"])
    model = ShiftModel(c)
    harness.load_weights(model, weights)
    batch, bmeta = harness.load_batch(batch_path, device)
    return model.to(device), batch, float(bmeta.get("lambda", "1"))


def main():
    a = harness.parser(__doc__.split("\n")[0], "shift").parse_args()
    dev = harness.setup(a)
    model, batch, lam = load(a.model, a.batch, dev)
    args = (batch["tokens"], batch["coords"], batch["key_mask"], batch["solvent"], batch.get("atom_features"),
            batch.get("pair_types"))

    # Parity first: eval mode, our shifts and loss from the batch file.
    model.eval()
    with torch.no_grad():
        shifts = model(*args)
        loss = shift_loss(shifts, batch, model.heads, lam).item()
    ref_shifts, ref_loss = batch["out.shifts"], float(batch["out.loss"].reshape(-1)[0])
    keym = batch["key_mask"].bool()[..., None]
    dmax = float(((shifts - ref_shifts).abs() * keym).max())
    if not (dmax <= a.tolerance and abs(loss - ref_loss) <= a.tolerance):
        print(f"parity FAILED: max |shift - larmor| = {dmax:.3g}, loss {loss:.6f} vs larmor {ref_loss:.6f}", file=sys.stderr)
        return 1
    print(f"parity ok: max |shift - larmor| = {dmax:.2e} (standardised units), loss {loss:.6f} vs larmor {ref_loss:.6f}",
          file=sys.stderr)

    fn = torch.compile(model) if a.compile else model
    sync = harness.synchronizer(dev)
    if a.mode == "infer":
        model.eval()

        def call():
            with torch.inference_mode():
                fn(*args)
            sync()
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=1e-4)

        def call():
            opt.zero_grad(set_to_none=True)
            loss = shift_loss(fn(*args), batch, model.heads, lam)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sync()
    B, N = batch["tokens"].shape
    harness.time_and_report(call, a, dev, int(B), {"N": int(N)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PyTorch reference of larmor's spectrum-structure alignment model (layers/align_model.{h,cpp}, K-M3AID) and
its two-level contrastive loss, used only to compare speed with larmor on identical weights and batches.

    python bench/reference/align_reference.py --model models/larmor-align.safetensors \
        --batch runs/compare/align_batch_64.safetensors [--mode infer|train] [--threads 1] [--device cpu]
        [--compile] [--repeats 10]

It builds the model from the checkpoint's model_config (missing keys take AlignModelConfig's defaults, the
K-M3AID sizes), loads the checkpoint's tensors by name (strict: the state_dict keys are larmor's parameter
names), runs the batch in eval mode (BatchNorm on its running statistics, no dropout) and checks that its
four projected embeddings and its loss match the ones larmor wrote into the batch file
(bench_align_compare export) before timing anything; a mismatch exits with status 1 and times nothing.
Then it times one call (infer: torch.inference_mode, the four embeddings; train: zero_grad, forward in
training mode, loss, backward, clip_grad_norm_(1), AdamW lr 1e-3 / weight decay 1e-3 on matrices that are
not embedding tables, as larmor's align_model_decay) after warm-up and prints one JSON line in the same
shape as bench_align_compare's.

The model, written from the architecture comment of layers/align_model.h:
  graph:    h0 = Emb_atom + Emb_chir + Emb_hyb (+ Emb_H with node_hydrogens), over the disjoint batch graph
            per layer: m_v = sum over edges u->v and one self loop (bond type 4, direction 0) of
                         h_u + Emb_bond(t) + Emb_dir(d)
                       h = Dropout(ReLU?(BatchNorm(Lin(ReLU(Lin(m))))))       (no ReLU on the last layer)
            molecule = graph_projection(MLP(segment_sum(h)));  carbons = node_projection(h[carbon_nodes])
  peaks:    peak_projection(MLP(Lin(ppm * scale) [+ Lin(sqrt(2 pi) spacing * GaussianBasis(ppm))] ‖ Emb_mult))
  spectrum: cnn: conv1d(1->C, k 400, s 200, p 200) ReLU flatten ResMLP ReLU ResMLP ReLU Lin L2-normalise
            peakset: per-peak encoder, masked [sum ‖ mean], Lin ReLU Lin;  then spectrum_projection
  heads:    p = Lin(x); LayerNorm(p + Dropout(Lin(GELU(p))))
  loss:     alpha [CE(cS, I) + CE(cS^T, I)] + (1 - alpha) [CE(cL, T) + CE(cL^T, T^T)],
            T = row-softmax(10^p / (|d_i - d_j| + 10^-n)) in float64 (soft) or I.
Dropout draws from torch's generator, not larmor's Philox streams, so training-mode outputs agree only in
distribution; the parity check is in eval mode, where neither engine draws.
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

# AlignModelConfig's defaults (layers/align_model.h): the model_config JSON may leave any of these out.
DEFAULTS = {
    "gin_layers": 5, "gin_dim": 128, "gin_hidden": 256, "gin_dropout": 0.2, "num_atom_types": 120,
    "num_chirality_tags": 3, "num_hybridizations": 6, "graph_pool_hidden": 128, "shared_graph_encoder": True,
    "node_hydrogens": False, "peak_dim": 128, "peak_ppm_scale": 1.0, "peak_basis": 0, "peak_basis_min": -20.0,
    "peak_basis_max": 240.0, "spectrum_encoder": "cnn", "cnn_channels": 32, "spectrum_dim": 768,
    "projection_dim": 512, "projection_dropout": 0.1, "alpha": 0.1, "soft_n": 5.0, "soft_p": 1.0,
    "soft_targets": True, "molecule_gradient": "both", "logit_scale": 1.0 / math.sqrt(512.0),
}
SELF_LOOP_BOND_TYPE = 4   # bond types 0..3 + the self loop
NUM_MULTIPLICITIES = 5    # s, d, t, q, unknown
MAX_HYDROGENS = 4         # node_hydrogens classes 0..4
SPECTRUM_BINS = 4000
CNN_STRIDE = 200          # CReSS: kernel 400 = 2 * stride, padding 200 = stride


class BatchNorm(nn.Module):
    """BatchNorm1d with larmor's state (weight, bias, running_mean, running_var; no num_batches_tracked)."""

    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("running_mean", torch.zeros(d))
        self.register_buffer("running_var", torch.ones(d))

    def forward(self, x):
        # training: batch mean / biased variance, running stats updated with the unbiased one (momentum 0.1)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training, 0.1, 1e-5)


class GinLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["gin_dim"]
        self.bond_type_emb = nn.Embedding(SELF_LOOP_BOND_TYPE + 1, d)
        self.bond_direction_emb = nn.Embedding(3, d)
        self.fc1 = nn.Linear(d, c["gin_hidden"])
        self.fc2 = nn.Linear(c["gin_hidden"], d)
        self.bn = BatchNorm(d)


class GinEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["gin_dim"]
        self.p = c["gin_dropout"]
        self.atom_emb = nn.Embedding(c["num_atom_types"], d)
        self.chirality_emb = nn.Embedding(c["num_chirality_tags"], d)
        self.hybridization_emb = nn.Embedding(c["num_hybridizations"], d)
        if c["node_hydrogens"]:
            self.hydrogen_emb = nn.Embedding(MAX_HYDROGENS + 1, d)
        self.layers = nn.ModuleList([GinLayer(c) for _ in range(c["gin_layers"])])

    def forward(self, node_features, node_hydrogens, src, dst, bond_type, bond_direction):
        """node_features (V, 3), node_hydrogens (V) or None; src, dst, bond_type, bond_direction (E') with the
        self loops -> (V, gin_dim)."""
        h = (self.atom_emb(node_features[:, 0]) + self.chirality_emb(node_features[:, 1])
             + self.hybridization_emb(node_features[:, 2]))                          # (V, D)
        if hasattr(self, "hydrogen_emb"):
            h = h + self.hydrogen_emb(node_hydrogens)
        last = len(self.layers) - 1
        for l, layer in enumerate(self.layers):
            edge = layer.bond_type_emb(bond_type) + layer.bond_direction_emb(bond_direction)  # (E', D)
            m = torch.zeros_like(h).index_add(0, dst, h[src] + edge)                 # (V, D)
            h = layer.bn(layer.fc2(F.relu(layer.fc1(m))))                            # (V, D)
            if l < last:
                h = F.relu(h)
            h = F.dropout(h, self.p, self.training)
        return h


class MLP(nn.Module):
    """larmor's MLP: Linear layers named layers.<i>, ReLU between them, none after the last."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        for i, lin in enumerate(self.layers):
            x = lin(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x


class PeakEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["peak_dim"]
        self.ppm_scale = c["peak_ppm_scale"]
        self.ppm_fc = nn.Linear(1, d)
        self.multiplicity_emb = nn.Embedding(NUM_MULTIPLICITIES, d)
        self.fc1 = nn.Linear(2 * d, d)
        self.fc2 = nn.Linear(d, d)
        K = c["peak_basis"]
        self.has_basis = K > 0
        if self.has_basis:
            spacing = (c["peak_basis_max"] - c["peak_basis_min"]) / max(K - 1, 1)
            self.basis_mean = nn.Parameter(c["peak_basis_min"] + spacing * torch.arange(K, dtype=torch.float32))
            self.basis_std = nn.Parameter(torch.full((K,), float(spacing)))
            # the basis peaks at 1 / (sqrt(2 pi) spacing): scaled to O(1) by a constant of the config
            self.basis_scale = math.sqrt(2 * math.pi) * spacing
            self.basis_fc = nn.Linear(K, d)

    def forward(self, ppm, multiplicity):
        """ppm (...) float, multiplicity (...) int -> (..., peak_dim)."""
        x = ppm[..., None]                                                           # (..., 1)
        if self.ppm_scale != 1.0:
            x = x * self.ppm_scale
        p = self.ppm_fc(x)                                                           # (..., D)
        if self.has_basis:
            s = self.basis_std.abs() + 1e-5                                          # (K)
            g = torch.exp(-0.5 * ((ppm[..., None] - self.basis_mean) / s) ** 2) / (math.sqrt(2 * math.pi) * s)
            p = p + self.basis_fc(g * self.basis_scale)                              # (..., D)
        h = torch.cat([p, self.multiplicity_emb(multiplicity)], dim=-1)             # (..., 2D)
        return self.fc2(F.relu(self.fc1(h)))                                         # (..., D)


class CressCnnEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["cnn_channels"]
        flat = C * (SPECTRUM_BINS // CNN_STRIDE + 1)
        self.conv_weight = nn.Parameter(torch.zeros(C, 1, 2 * CNN_STRIDE))
        self.conv_bias = nn.Parameter(torch.zeros(C))
        self.res1_fc1 = nn.Linear(flat, flat)
        self.res1_fc2 = nn.Linear(flat, flat)
        self.res2_fc1 = nn.Linear(flat, flat)
        self.res2_fc2 = nn.Linear(flat, flat)
        self.out = nn.Linear(flat, c["spectrum_dim"])

    def forward(self, spectrum):
        """spectrum (B, 4000) -> (B, spectrum_dim), unit rows."""
        B = spectrum.shape[0]
        # larmor's conv1d_two_chunk is exactly this conv (kernel 2s, stride s, padding s): (B, C, 21)
        h = F.relu(F.conv1d(spectrum[:, None, :], self.conv_weight, self.conv_bias, stride=CNN_STRIDE,
                            padding=CNN_STRIDE)).reshape(B, -1)                      # (B, C*21), channel-major
        h = F.relu(h + self.res1_fc2(F.relu(self.res1_fc1(h))))
        h = F.relu(h + self.res2_fc2(F.relu(self.res2_fc1(h))))
        y = self.out(h)                                                              # (B, spectrum_dim)
        return y / torch.sqrt(y.square().sum(1, keepdim=True) + 1e-24)


class PeakSetEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.peak = PeakEncoder(c)
        self.fc1 = nn.Linear(2 * c["peak_dim"], c["spectrum_dim"])
        self.fc2 = nn.Linear(c["spectrum_dim"], c["spectrum_dim"])

    def forward(self, ppm, multiplicity, mask):
        """ppm (B, P), multiplicity (B, P), mask (B, P) -> (B, spectrum_dim)."""
        keep = (mask != 0).to(ppm.dtype)                                             # (B, P)
        h = self.peak(ppm, multiplicity) * keep[..., None]                           # (B, P, d)
        total = h.sum(1)                                                             # (B, d)
        avg = total / keep.sum(1, keepdim=True).clamp(min=1.0)                       # (B, d)
        return self.fc2(F.relu(self.fc1(torch.cat([total, avg], dim=1))))


class ProjectionHead(nn.Module):
    def __init__(self, d_in, d_out, p):
        super().__init__()
        self.p = p
        self.fc = nn.Linear(d_in, d_out)
        self.fc2 = nn.Linear(d_out, d_out)
        self.ln = nn.LayerNorm(d_out, eps=1e-5)

    def forward(self, x):
        p = self.fc(x)
        t = F.dropout(self.fc2(F.gelu(p)), self.p, self.training)                   # exact (erf) GELU
        return self.ln(p + t)


class AlignModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.gin = GinEncoder(c)
        if not c["shared_graph_encoder"]:
            self.gin_atom = GinEncoder(c)
        self.graph_pool = MLP([c["gin_dim"], c["graph_pool_hidden"], c["gin_dim"]])
        self.peak_encoder = PeakEncoder(c)
        if c["spectrum_encoder"] == "cnn":
            self.spectrum_encoder = CressCnnEncoder(c)
        elif c["spectrum_encoder"] == "peakset":
            self.spectrum_encoder = PeakSetEncoder(c)
        else:
            raise ValueError(f"unknown spectrum_encoder {c['spectrum_encoder']!r}")
        Dp, pd = c["projection_dim"], c["projection_dropout"]
        self.spectrum_projection = ProjectionHead(c["spectrum_dim"], Dp, pd)
        self.peak_projection = ProjectionHead(c["peak_dim"], Dp, pd)
        self.graph_projection = ProjectionHead(c["gin_dim"], Dp, pd)
        self.node_projection = ProjectionHead(c["gin_dim"], Dp, pd)

    def forward(self, g, node_hydrogens, spectrum_in, carbon_nodes, carbon_ppm, carbon_multiplicity):
        """g: the graph inputs of prepare_graph; spectrum_in: (spectrum,) or (peak_ppm, peak_multiplicity,
        peak_mask). Returns the four embeddings: spectrum, graph (B, Dp); peak, carbon (Nc, Dp)."""
        node_features, src, dst, bond_type, bond_direction, node_molecule, B = g
        args = (node_features, node_hydrogens, src, dst, bond_type, bond_direction)
        h = self.gin(*args)                                                          # (V, gin_dim)
        pooled = torch.zeros(B, h.shape[1], dtype=h.dtype, device=h.device).index_add(0, node_molecule, h)  # (B, gin_dim)
        graph = self.graph_projection(self.graph_pool(pooled))                       # (B, Dp)
        hc = self.gin_atom(*args) if hasattr(self, "gin_atom") else h
        carbon = self.node_projection(hc[carbon_nodes])                              # (Nc, Dp)
        spectrum = self.spectrum_projection(self.spectrum_encoder(*spectrum_in))     # (B, Dp)
        peak = self.peak_projection(self.peak_encoder(carbon_ppm, carbon_multiplicity))  # (Nc, Dp)
        return spectrum, graph, peak, carbon


def prepare_graph(batch):
    """The GIN's index inputs, rebuilt per call as larmor's GinGraph::build does: the batch's edges plus one
    self loop per node (bond type 4, direction 0), and the molecule of every node (for the sum pooling)."""
    nf, ei, ef, off = batch["node_features"], batch["edge_index"], batch["edge_features"], batch["node_offsets"]
    V, dev = nf.shape[0], nf.device
    loops = torch.arange(V, device=dev)
    src = torch.cat([ei[0], loops])                                                  # (E + V)
    dst = torch.cat([ei[1], loops])
    bond_type = torch.cat([ef[:, 0], torch.full((V,), SELF_LOOP_BOND_TYPE, dtype=ef.dtype, device=dev)])
    bond_direction = torch.cat([ef[:, 1], torch.zeros(V, dtype=ef.dtype, device=dev)])
    B = off.numel() - 1
    node_molecule = torch.repeat_interleave(torch.arange(B, device=dev), off[1:] - off[:-1], output_size=V)  # (V)
    return nf, src, dst, bond_type, bond_direction, node_molecule, B


def model_inputs(model, batch):
    if model.c["spectrum_encoder"] == "cnn":
        spectrum_in = (batch["spectrum"],)
    else:
        spectrum_in = (batch["peak_ppm"], batch["peak_multiplicity"], batch["peak_mask"])
    return (prepare_graph(batch), batch.get("node_hydrogens"), spectrum_in, batch["carbon_nodes"],
            batch["carbon_ppm"], batch["carbon_multiplicity"])


def info_nce(S, T, scale):
    """larmor's info_nce op: CE(scale S, T) + CE((scale S)^T, T^T), T = identity when None (T^T not renormalised)."""
    z = scale * S                                                                    # (R, C)
    if T is None:
        labels = torch.arange(z.shape[0], device=z.device)
        return F.cross_entropy(z, labels) + F.cross_entropy(z.t(), labels)
    R, C = z.shape
    return -(T * F.log_softmax(z, dim=1)).sum() / R - (T * F.log_softmax(z, dim=0)).sum() / C


def soft_targets(ppm, n, p):
    """T (Nc, Nc) = row-softmax(10^p / (|d_i - d_j| + 10^-n)), in float64 as larmor computes it, then cast."""
    d = ppm.to(torch.float64)
    logits = 10.0 ** p / ((d[:, None] - d[None, :]).abs() + 10.0 ** -n)
    return torch.softmax(logits, dim=1).to(ppm.dtype)


def align_loss(spectrum, graph, peak, carbon, carbon_ppm, c):
    """larmor's align_contrastive_loss with AlignLossOptions::from(config); also returns (molecule, atom)."""
    es = spectrum.detach() if c["molecule_gradient"] == "graph" else spectrum
    eg = graph.detach() if c["molecule_gradient"] == "spectrum" else graph
    l_mol = info_nce(es @ eg.t(), None, c["logit_scale"])
    l_atom = None
    if carbon_ppm.numel() > 0:
        T = soft_targets(carbon_ppm, c["soft_n"], c["soft_p"]) if c["soft_targets"] else None
        l_atom = info_nce(peak @ carbon.t(), T, c["logit_scale"])
    alpha = c["alpha"]
    total = l_mol * alpha if alpha != 0 else None
    if l_atom is not None and alpha != 1:
        total = l_atom * (1 - alpha) if total is None else total + l_atom * (1 - alpha)
    if total is None:
        total = l_mol * 0.0
    return total, l_mol, l_atom


def load(model_path, batch_path, device):
    weights, meta = safetensors_np.load(model_path)
    if meta.get("task") != "align":
        raise SystemExit(f"{model_path}: not an alignment checkpoint (task {meta.get('task')!r})")
    c = dict(DEFAULTS)
    c.update(json.loads(meta["model_config"]))
    model = AlignModel(c)
    harness.load_weights(model, weights)
    batch, _ = harness.load_batch(batch_path, device)
    return model.to(device), batch


def decay_groups(model, weight_decay):
    """AdamW parameter groups as larmor's align_model_decay: matrices decay, except embedding tables; 1-D never."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "_emb." not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    a = harness.parser(__doc__.split("\n")[0], "embedding").parse_args()
    dev = harness.setup(a)
    model, batch = load(a.model, a.batch, dev)
    c = model.c

    # Parity first: eval mode, our embeddings and loss from the batch file.
    model.eval()
    with torch.no_grad():
        outs = model(*model_inputs(model, batch))
        loss, l_mol, l_atom = align_loss(*outs, batch["carbon_ppm"], c)
    diffs = {}
    for name, x in zip(("spectrum", "graph", "peak", "carbon"), outs):
        ref = batch["out." + name]
        if ref.shape != x.shape:
            print(f"parity FAILED: {name} embedding {tuple(x.shape)} vs larmor {tuple(ref.shape)}", file=sys.stderr)
            return 1
        diffs[name] = float((x - ref).abs().max()) if x.numel() else 0.0
    loss, ref_loss = float(loss), float(batch["out.loss"].reshape(-1)[0])
    dmax = max(diffs.values())
    detail = ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
    parts = f"molecule {float(l_mol):.6f}, atom {float(l_atom) if l_atom is not None else 0.0:.6f}"
    if not (dmax <= a.tolerance and abs(loss - ref_loss) <= a.tolerance):
        print(f"parity FAILED: max |embedding - larmor| = {dmax:.3g} ({detail}); loss {loss:.6f} vs larmor "
              f"{ref_loss:.6f}", file=sys.stderr)
        return 1
    print(f"parity ok: max |embedding - larmor| = {dmax:.2e} ({detail}); loss {loss:.6f} vs larmor {ref_loss:.6f} "
          f"(|diff| {abs(loss - ref_loss):.2e}; {parts})", file=sys.stderr)

    fn = torch.compile(model) if a.compile else model
    sync = harness.synchronizer(dev)
    if a.mode == "infer":
        model.eval()

        def call():
            with torch.inference_mode():
                fn(*model_inputs(model, batch))
            sync()
    else:
        model.train()
        opt = torch.optim.AdamW(decay_groups(model, 1e-3), lr=1e-3)

        def call():
            opt.zero_grad(set_to_none=True)
            loss = align_loss(*fn(*model_inputs(model, batch)), batch["carbon_ppm"], c)[0]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sync()
    B = batch["node_offsets"].numel() - 1
    harness.time_and_report(call, a, dev, B, {"V": batch["node_features"].shape[0], "Nc": batch["carbon_nodes"].numel()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

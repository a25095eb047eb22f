"""What the shared space uses: integrated gradients of one statement's cosine w.r.t. an ECG, and how well each SCP
statement's direction in the shared space detects that statement on the test folds.

Integrated gradients (Sundararajan et al. 2017, Captum's implementation): for f(x) = cos(e_ecg(x), key) with `key`
a statement's projected text embedding, attribution_i = (x_i - b_i) * mean over the path b -> x of df/dx_i. The
attributions of all 12 x T samples add up to f(x) - f(b) (completeness; Captum's convergence delta measures the gap).
The baseline b is the all-zero signal in millivolts: a flat, isoelectric ECG, "no electrical activity". Caveats: the
answer depends on the baseline (a sample equal to the baseline gets zero attribution however much the model uses
it); it explains the model's cosine, not the disease; a positive value means "moving this sample from 0 mV to its
value raised the cosine", summed over the path, not a local importance.
"""
from __future__ import annotations

import numpy as np
import torch

from .evaluation import unit


def _cosine_to(model, key: torch.Tensor):
    """f(x) = cos(e_ecg(x), key) for a batch x [B, 12, T] in mV."""
    def f(x):
        return torch.nn.functional.cosine_similarity(model.project_ecg(model.encode_ecg(x)), key[None], dim=1)
    return f


def integrated_gradients(model, signal: np.ndarray, key: np.ndarray, steps: int = 32, batch_size: int = 16,
                         baseline: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """IG attributions (12, T) float32 of cos(e_ecg(signal), key) for one ECG `signal` (12, T) in mV, and
    {"cosine": f(x), "baseline_cosine": f(b), "delta": sum(attr) - (f(x) - f(b))}.

    `steps` points on the straight path (Gauss-Legendre), evaluated `batch_size` at a time: memory is bounded by
    batch_size copies of the record and its activations whatever `steps` (5,000-sample records at 500 Hz included).
    """
    from captum.attr import IntegratedGradients

    model.eval()
    x = torch.tensor(np.array(signal, dtype=np.float32))[None]
    b = torch.zeros_like(x) if baseline is None else torch.as_tensor(np.asarray(baseline, dtype=np.float32))[None]
    f = _cosine_to(model, torch.as_tensor(np.asarray(key, dtype=np.float32)))
    attr, delta = IntegratedGradients(f).attribute(x, baselines=b, n_steps=steps, internal_batch_size=batch_size,
                                                   return_convergence_delta=True)
    with torch.no_grad():
        fx, fb = float(f(x)[0]), float(f(b)[0])
    return attr[0].detach().numpy().astype(np.float32), {"cosine": fx, "baseline_cosine": fb,
                                                         "delta": float(delta[0])}


def mass_ratio(attr: np.ndarray, mask: np.ndarray) -> float:
    """Share of the absolute attribution inside `mask` divided by the mask's share of the samples: 1.0 = no more
    than chance, 3.0 = three times as concentrated there as a uniform attribution would be."""
    a = np.abs(attr)
    return float((a[mask].sum() / a.sum()) / mask.mean())


# ---------------------------------------------------------------------------------------------------------------
# Statement directions: each SCP statement's projected embedding as a detector of that statement

def statement_directions(e_ecg_test: np.ndarray, statement_keys: np.ndarray, codes: list[str],
                         scp_codes_test: list[dict]) -> list[dict]:
    """For every statement (row j of statement_keys, code codes[j]): the ROC-AUC of cos(e_ecg, key_j) over the test
    records as a detector of the records that carry the code (any likelihood, 0.0 included).

    Returns [{"code", "auc", "n_positive", "n_negative"}] sorted best AUC first; "auc" is None for a code without
    positives or without negatives among the test records (listed last)."""
    from sklearn.metrics import roc_auc_score

    if len(e_ecg_test) != len(scp_codes_test):
        raise ValueError(f"e_ecg_test has {len(e_ecg_test)} rows but scp_codes_test {len(scp_codes_test)} records")
    if len(statement_keys) != len(codes):
        raise ValueError(f"statement_keys has {len(statement_keys)} rows but codes {len(codes)} entries")
    cos = unit(np.asarray(e_ecg_test, dtype=np.float64)) @ unit(np.asarray(statement_keys, dtype=np.float64)).T
    rows = []
    for j, code in enumerate(codes):
        y = np.array([code in c for c in scp_codes_test])
        n_pos = int(y.sum())
        auc = float(roc_auc_score(y, cos[:, j])) if 0 < n_pos < len(y) else None
        rows.append({"code": code, "auc": auc, "n_positive": n_pos, "n_negative": int(len(y) - n_pos)})
    return sorted(rows, key=lambda r: (r["auc"] is None, -(r["auc"] or 0.0), r["code"]))


def statement_metrics(table: list[dict]) -> dict:
    """statement_directions' table as metrics JSON: {code: auc} for every scored code (flat, best first), then
    statement_auc_macro (mean over scored codes), n_statements_scored, n_statements_unscored (codes absent from
    or present in every test record) and n_positive ({code: test records carrying it})."""
    scored = [r for r in table if r["auc"] is not None]
    out = {r["code"]: round(r["auc"], 6) for r in scored}
    out["statement_auc_macro"] = round(float(np.mean([r["auc"] for r in scored])), 6) if scored else None
    out["n_statements_scored"] = len(scored)
    out["n_statements_unscored"] = len(table) - len(scored)
    out["n_positive"] = {r["code"]: r["n_positive"] for r in table}
    return out

"""Metrics that tell the truth about an ECG-text alignment, and the statements nearest to one record.

Everything above the "Interpretability" section is pure numpy/sklearn on arrays, row-aligned with
data/reports.jsonl; the evaluate stage (src/evaluate_alignment.py) wires them to the artifacts.

Retrieval ties. Scores are rounded to `TIE_DECIMALS` decimals and equal scores count as ties; a tie at the
k-th place is counted fractionally: the hit is the exact probability that a uniformly random order of the tied
candidates puts a same-report record in the remaining top-k slots. Index order never gets credit, so a collapsed
model (all scores equal) scores exactly the chance level `chance_recall`, and the metric is deterministic.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

TIE_DECIMALS = 6   # cosines closer than ~1e-6 are float noise, not a ranking


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); an all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def alignment_loss(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of 1 - cos(a_i, b_i): the reference code's cosine loss."""
    if a.shape != b.shape:
        raise ValueError(f"alignment_loss: shapes differ, {a.shape} vs {b.shape}")
    return float(np.mean(1.0 - np.sum(unit(a) * unit(b), axis=1)))


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine between different rows, exactly, without the n x n matrix: (||sum u||^2 - n) / (n(n-1)).
    Near 1.0 means the embeddings have collapsed to one direction."""
    u = unit(x)
    n = len(u)
    if n < 2:
        raise ValueError(f"mean_pairwise_cosine needs at least 2 rows, got {n}")
    s = u.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def group_ids(texts: list[str]) -> np.ndarray:
    """One integer per distinct text, in order of first appearance: records with identical reports share an id."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(t, len(ids)) for t in texts], dtype=np.int64)


def miss_probability(n, bad, m) -> np.ndarray:
    """C(n - bad, m) / C(n, m), elementwise: the chance that m of n items drawn without replacement avoid all `bad`
    ones. Computed as a product of m ratios (m is small: a k of recall@k), so it never overflows."""
    n, bad, m = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (n, bad, m)))
    p = np.ones(n.shape)
    for j in range(int(m.max(initial=0))):
        step = j < m
        p = np.where(step, p * np.clip(n - bad - j, 0, None) / np.maximum(n - j, 1), p)
    return p


def chance_recall(groups: np.ndarray, k: int) -> float:
    """Expected recall@k of a uniformly random ranking of all records: 1 - C(N - n_same, k)/C(N, k) averaged over
    queries, where n_same counts the query's own record and every other record with the same report."""
    groups = np.asarray(groups)
    n = len(groups)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return float(np.mean(1.0 - miss_probability(n, counts[inverse], min(k, n))))


def majority_share(groups: np.ndarray) -> float:
    """Share of records whose report is the most common one: the recall@1 of a model that always returns it."""
    return max(Counter(np.asarray(groups).tolist()).values()) / len(groups)


def recall_at_k(queries: np.ndarray, keys: np.ndarray, groups: np.ndarray, ks=(1, 5, 10),
                chunk: int = 1024) -> dict[int, float]:
    """Retrieval by cosine: query i ranks all keys; a hit at k if any of the top-k keys j has groups[j] == groups[i]
    (key i itself counts). Ties at the k-th place count fractionally (see the module docstring)."""
    groups = np.asarray(groups)
    n = len(groups)
    if not (len(queries) == len(keys) == n):
        raise ValueError(f"recall_at_k: {len(queries)} queries, {len(keys)} keys and {n} groups must match")
    q, kv = unit(queries), unit(keys)
    hits = {k: 0.0 for k in ks}
    for start in range(0, n, chunk):
        scores = np.round(q[start:start + chunk] @ kv.T, TIE_DECIMALS)
        same = groups[start:start + chunk, None] == groups[None, :]
        desc = -np.sort(-scores, axis=1)
        for k in ks:
            kk = min(k, n)
            v = desc[:, kk - 1:kk]                       # the k-th best score of each query
            above, tied = scores > v, scores == v
            slots = kk - above.sum(axis=1)               # top-k places left for the tied candidates
            sure = (same & above).any(axis=1)
            p_tie = 1.0 - miss_probability(tied.sum(axis=1), (same & tied).sum(axis=1), slots)
            hits[k] += float(np.where(sure, 1.0, p_tie).sum())
    return {k: hits[k] / n for k in ks}


def superclass_labels(scp_codes: list[dict], diagnostic_class: dict[str, str], classes) -> np.ndarray:
    """N x C bool: record i has a code whose diagnostic_class is classes[c] (any likelihood)."""
    index = {c: j for j, c in enumerate(classes)}
    y = np.zeros((len(scp_codes), len(classes)), dtype=bool)
    for i, codes in enumerate(scp_codes):
        for code in codes:
            j = index.get(diagnostic_class.get(code))
            if j is not None:
                y[i, j] = True
    return y


def primary_superclass(scp_codes: list[dict], diagnostic_class: dict[str, str], classes) -> list[str]:
    """Per record, the superclass of its most likely diagnostic code (the first on equal likelihood), or 'none'."""
    out = []
    for codes in scp_codes:
        best = None
        for code, likelihood in codes.items():
            c = diagnostic_class.get(code)
            if c in classes and (best is None or likelihood > best[0]):
                best = (likelihood, c)
        out.append(best[1] if best else "none")
    return out


def class_prompts(statement_emb: np.ndarray, statement_codes: list[str], diagnostic_class: dict[str, str],
                  classes) -> tuple[np.ndarray, list[str]]:
    """One prompt per class: the normalised mean of the unit embeddings of the statements whose diagnostic_class is
    the class (CLIP's prompt ensembling). Pass statement embeddings already projected into the shared space: a
    record listing one code has exactly that code's text embedding, so each projected statement is in the
    distribution the projection head was trained on, and the ensemble is taken where the cosines are.
    Returns (prompts for the classes that have statements, those classes)."""
    unit_emb = unit(statement_emb)
    prompts, kept = [], []
    for c in classes:
        rows = [i for i, code in enumerate(statement_codes) if diagnostic_class.get(code) == c]
        if rows:
            prompts.append(unit_emb[rows].mean(axis=0))
            kept.append(c)
    if not prompts:
        return np.zeros((0, statement_emb.shape[1])), kept
    return unit(np.stack(prompts)), kept


def auc_per_class(labels: np.ndarray, scores: np.ndarray, classes) -> tuple[dict[str, float], list[str]]:
    """ROC-AUC of scores[:, c] against labels[:, c] for each class with both label values present.
    Returns ({class: auc}, skipped classes)."""
    from sklearn.metrics import roc_auc_score

    aucs, skipped = {}, []
    for j, c in enumerate(classes):
        y = labels[:, j]
        if y.all() or not y.any():
            skipped.append(c)
            continue
        aucs[c] = float(roc_auc_score(y, scores[:, j]))
    return aucs, skipped


def macro(aucs: dict[str, float]) -> float | None:
    """Mean of the per-class values; None when no class could be scored."""
    return float(np.mean(list(aucs.values()))) if aucs else None


def zero_shot_scores(e_ecg: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """N x C cosine between each ECG embedding and each (projected) class prompt."""
    return unit(e_ecg) @ unit(prompts).T


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, classes,
                 c: float = 1.0) -> tuple[dict[str, float], list[str]]:
    """One-vs-rest logistic regression (standardised features, L2 with inverse strength c, max_iter 1000) per
    class, fitted on the training rows, ROC-AUC on the test rows. A class missing a label value in either split is
    skipped. Returns ({class: auc}, skipped classes)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = np.zeros(y_test.shape)
    fit = np.zeros(len(classes), dtype=bool)
    for j in range(len(classes)):
        y = y_train[:, j]
        if y.all() or not y.any():
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        probe.fit(x_train, y)
        scores[:, j] = probe.decision_function(x_test)
        fit[j] = True
    aucs, skipped = auc_per_class(y_test[:, fit], scores[:, fit], [k for k, f in zip(classes, fit) if f])
    return aucs, [k for k, f in zip(classes, fit) if not f] + skipped


def alignment_metrics(e_ecg: np.ndarray, e_text: np.ndarray, reports: list[str], labels: np.ndarray,
                      prompts: np.ndarray, classes, ks=(1, 5, 10)) -> tuple[dict, dict]:
    """Every metric of one model on the test rows, by contract name, and extras for the plots/log:
    (metrics, {"zero_shot_scores": N x C, "zero_shot_skipped": [...]})."""
    groups = group_ids(reports)
    m = {"alignment_loss": alignment_loss(e_ecg, e_text)}
    for k, r in recall_at_k(e_ecg, e_text, groups, ks).items():
        m[f"ecg_to_text_r{k}"] = r
    for k in ks:
        m[f"ecg_to_text_chance_r{k}"] = chance_recall(groups, k)
    m["ecg_to_text_majority_r1"] = majority_share(groups)
    scores = zero_shot_scores(e_ecg, prompts)
    aucs, skipped = auc_per_class(labels, scores, classes)
    m["zero_shot_auc_macro"] = macro(aucs)
    m.update({f"zero_shot_auc_{c}": a for c, a in aucs.items()})
    m["ecg_embedding_mean_cosine"] = mean_pairwise_cosine(e_ecg)
    m["text_embedding_mean_cosine"] = mean_pairwise_cosine(e_text)
    return m, {"zero_shot_scores": scores, "zero_shot_skipped": skipped}


def probe_metrics(x_train, y_train, x_test, y_test, classes, c: float, name: str = "linear_probe") -> dict:
    """The probe's metrics by contract name: {name}_auc_macro and {name}_auc_<CLASS>."""
    aucs, _ = linear_probe(x_train, y_train, x_test, y_test, classes, c)
    return {f"{name}_auc_macro": macro(aucs), **{f"{name}_auc_{k}": a for k, a in aucs.items()}}


# ---------------------------------------------------------------------------------------------------------------
# Interpretability: the SCP statements nearest to one record's ECG embedding (reads the pipeline's artifacts)

def project_text(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Text embeddings through the model's text projection head, in batches, without gradients (float32)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            t = torch.as_tensor(np.asarray(x[start:start + batch_size], dtype=np.float32))
            out.append(model.project_text(t).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def read_jsonl(path) -> list[dict]:
    """A JSON-lines file; a bad line raises ValueError naming the file and line."""
    import json
    from pathlib import Path

    rows = []
    with open(Path(path), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
    return rows


def _record_row(reports_path, ecg_id: int) -> int:
    """The row of ecg_id in reports.jsonl (= its row in every embedding array); KeyError naming the file."""
    from .reports import read_reports

    for row, record in enumerate(read_reports(reports_path)):
        if record.get("ecg_id") == ecg_id:
            return row
    raise KeyError(f"ecg_id {ecg_id} is not in {reports_path}")


def nearest_statements(ecg_id: int, k: int = 5, data_dir: str = "data") -> list[tuple[str, str, float]]:
    """The k SCP statements whose projected statement embedding is nearest (cosine) to record ecg_id's e_ecg:
    [(code, statement text, cosine)], best first."""
    from pathlib import Path

    from .models import load_model

    data = Path(data_dir)
    row = _record_row(data / "reports.jsonl", ecg_id)
    e_ecg = np.load(data / "ecg_embeddings" / "e_ecg.npy", mmap_mode="r")
    statements = read_jsonl(data / "text" / "statements.jsonl")
    emb = np.load(data / "text" / "statement_embeddings.npy")
    if len(statements) != len(emb):
        raise ValueError(f"{data / 'text'}: statements.jsonl has {len(statements)} rows, "
                         f"statement_embeddings.npy has {len(emb)}")
    keys = project_text(load_model(data / "model" / "model.pt"), emb)
    cos = zero_shot_scores(np.asarray(e_ecg[row:row + 1]), keys)[0]
    best = np.argsort(-cos, kind="stable")[:k]
    return [(statements[i]["code"], statements[i]["text"], float(cos[i])) for i in best]


def format_nearest(nearest: list[tuple[str, str, float]]) -> str:
    """nearest_statements' answer as lines for the terminal: cosine, code, statement text."""
    lines = [f"Nearest {len(nearest)} SCP statements to the ECG embedding (cosine in the shared space):"]
    lines += [f"  {cos:+.3f}  {code:<6} {text}" for code, text, cos in nearest]
    return "\n".join(lines)

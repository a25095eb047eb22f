"""Metrics that tell the truth about an ECG-text alignment, and the statements nearest to one record.

Everything above the "Interpretability" section is pure numpy on arrays, row-aligned with data/reports.jsonl; the
evaluate stage (src/evaluate_alignment.py) wires them to the artifacts.

Report identity. Two records have the same report when their canonical code sets (`reports.code_set`: sorted codes
with likelihoods) are equal: the same codes in another line order embed identically. (Under text.source=report the
exact identity is the translated free-text report, under both the pair; see benchmark.text_keys.) Looser notions of a correct
answer: the same codes ignoring likelihoods, and the same set of diagnostic superclasses.

Retrieval ties. Scores are rounded to `TIE_DECIMALS` decimals and equal scores count as ties; a tie at the
k-th place is counted fractionally: the hit is the exact probability that a uniformly random order of the tied
candidates puts a relevant candidate in the remaining top-k slots. Index order never gets credit, so a collapsed
model (all scores equal) scores exactly the chance level, and the metric is deterministic. Average precision breaks
ties in a fixed random order of the gallery (seeded), for the same reason.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from . import artifacts as art

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


def group_ids(keys: list) -> np.ndarray:
    """One integer per distinct key (e.g. a canonical code set), in order of first appearance."""
    ids: dict = {}
    return np.array([ids.setdefault(t, len(ids)) for t in keys], dtype=np.int64)


def miss_probability(n, bad, m) -> np.ndarray:
    """C(n - bad, m) / C(n, m), elementwise: the chance that m of n items drawn without replacement avoid all `bad`
    ones. Computed as a product of m ratios (m is small: a k of recall@k), so it never overflows."""
    n, bad, m = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (n, bad, m)))
    p = np.ones(n.shape)
    for j in range(int(m.max(initial=0))):
        step = j < m
        p = np.where(step, p * np.clip(n - bad - j, 0, None) / np.maximum(n - j, 1), p)
    return p


def gallery_chance(query_groups: np.ndarray, key_groups: np.ndarray, k: int) -> float:
    """Expected recall@k of a uniformly random ranking of the gallery: 1 - C(G - n_rel, k)/C(G, k) averaged over
    queries, where n_rel counts the gallery items in the query's group."""
    key_groups = np.asarray(key_groups)
    values, counts = np.unique(key_groups, return_counts=True)
    pos = np.clip(np.searchsorted(values, query_groups), 0, len(values) - 1)
    n_rel = np.where(values[pos] == query_groups, counts[pos], 0)
    g = len(key_groups)
    return float(np.mean(1.0 - miss_probability(g, n_rel, min(k, g))))


def chance_recall(groups: np.ndarray, k: int) -> float:
    """Expected recall@k of a random ranking of all records (each record's own text is in the gallery)."""
    return gallery_chance(np.asarray(groups), np.asarray(groups), k)


def majority_share(groups: np.ndarray) -> float:
    """Share of records whose report is the most common one: the recall@1 of a model that always returns it."""
    return max(Counter(np.asarray(groups).tolist()).values()) / len(groups)


def ranked_hits(queries: np.ndarray, keys: np.ndarray, relevance: list[tuple[np.ndarray, np.ndarray]],
                ks=(1, 5, 10), chunk: int = 512) -> list[np.ndarray]:
    """Retrieval by cosine: query i ranks all keys; for each (query_groups, key_groups) pair of `relevance`, hit@k
    of query i is 1 if a top-k key j has key_groups[j] == query_groups[i] (ties at the k-th place fractionally, see
    the module docstring). One sort of the scores serves every relevance notion. Returns per pair an
    n_queries x len(ks) float array."""
    q, kv = unit(queries), unit(keys)
    n = len(q)
    out = [np.zeros((n, len(ks))) for _ in relevance]
    for start in range(0, n, chunk):
        scores = np.round(q[start:start + chunk] @ kv.T, TIE_DECIMALS)
        desc = -np.sort(-scores, axis=1)
        for j, k in enumerate(ks):
            kk = min(k, kv.shape[0])
            v = desc[:, kk - 1:kk]                       # the k-th best score of each query
            above, tied = scores > v, scores == v
            slots = kk - above.sum(axis=1)               # top-k places left for the tied candidates
            n_tied = tied.sum(axis=1)
            for r, (qg, kg) in enumerate(relevance):
                same = np.asarray(qg)[start:start + chunk, None] == np.asarray(kg)[None, :]
                sure = (same & above).any(axis=1)
                p_tie = 1.0 - miss_probability(n_tied, (same & tied).sum(axis=1), slots)
                out[r][start:start + chunk, j] = np.where(sure, 1.0, p_tie)
    return out


def recall_at_k(queries: np.ndarray, keys: np.ndarray, groups: np.ndarray, ks=(1, 5, 10),
                chunk: int = 512) -> dict[int, float]:
    """Recall@k of query i against the keys of all records (key i itself counts), relevant = same group."""
    groups = np.asarray(groups)
    n = len(groups)
    if not (len(queries) == len(keys) == n):
        raise ValueError(f"recall_at_k: {len(queries)} queries, {len(keys)} keys and {n} groups must match")
    hits = ranked_hits(queries, keys, [(groups, groups)], ks, chunk)[0]
    return {k: float(hits[:, j].mean()) for j, k in enumerate(ks)}


def shuffle_null(queries: np.ndarray, keys: np.ndarray, relevance, ks=(1, 5, 10), n_shuffles: int = 5,
                 seed: int = 0) -> list[np.ndarray]:
    """The same retrieval with the query embeddings permuted across queries (same model, same gallery), averaged
    over n_shuffles seeded permutations: what the model's answer distribution scores with no link between a query's
    ECG and its report (a hub-heavy model scores its majority level here). Returns per relevance pair len(ks) means."""
    rng = np.random.default_rng(seed)
    total = [np.zeros(len(ks)) for _ in relevance]
    for _ in range(n_shuffles):
        perm = rng.permutation(len(queries))
        for r, hits in enumerate(ranked_hits(np.asarray(queries)[perm], keys, relevance, ks)):
            total[r] += hits.mean(axis=0) / n_shuffles
    return total


def first_of_each(groups: np.ndarray) -> np.ndarray:
    """Row index of the first record of each distinct group, in order of first appearance: a gallery of distinct
    reports."""
    _, first = np.unique(np.asarray(groups), return_index=True)
    return np.sort(first)


def multi_hot(code_lists: list, vocabulary: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(N x V bool, vocabulary): row i marks the codes of record i (vocabulary: sorted codes seen, by default)."""
    vocab = sorted({c for codes in code_lists for c in codes}) if vocabulary is None else list(vocabulary)
    col = {c: j for j, c in enumerate(vocab)}
    x = np.zeros((len(code_lists), len(vocab)), dtype=bool)
    for i, codes in enumerate(code_lists):
        x[i, [col[c] for c in codes if c in col]] = True
    return x, vocab


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """len(a) x len(b) Jaccard similarity of the code sets in the rows of two multi-hot matrices (two empty sets: 1)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    inter = a @ b.T
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0)


def _ap_of_ranked(rel: np.ndarray) -> np.ndarray:
    """Graded AP of each row of relevances in rank order: sum_r rel_r * P_r / sum_r rel_r, P_r = mean of rel_1..r
    (NaN for a row without relevance)."""
    precision = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    total = rel.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (rel * precision).sum(axis=1) / total, np.nan)


def graded_average_precision(queries: np.ndarray, keys: np.ndarray, relevance: np.ndarray, seed: int = 0,
                             chunk: int = 512) -> np.ndarray:
    """Per query, average precision with graded relevance rel in [0, 1] (here: Jaccard of code sets) over the
    ranking of all keys by cosine: AP = sum_r rel_r * P_r / sum_r rel_r with P_r = (sum_{i<=r} rel_i) / r, which is
    the usual AP when rel is 0/1. Ties in a fixed random order of the keys (seeded). A query with no relevant key
    gets NaN. With graded relevance even the best ranking scores below 1 (relevances [1, 0.5]: 0.917); divide by
    `ideal_average_precision` for a figure whose perfect ranking scores 1."""
    q, kv = unit(queries), unit(keys)
    tiebreak = np.random.default_rng(seed).permutation(len(kv))
    out = np.zeros(len(q))
    for start in range(0, len(q), chunk):
        scores = np.round(q[start:start + chunk] @ kv.T, TIE_DECIMALS)
        order = np.lexsort((np.broadcast_to(tiebreak, scores.shape), -scores), axis=1)
        rel = np.take_along_axis(np.asarray(relevance[start:start + chunk], dtype=np.float64), order, axis=1)
        out[start:start + chunk] = _ap_of_ranked(rel)
    return out


def ideal_average_precision(relevance: np.ndarray) -> np.ndarray:
    """Per query (row of relevance), the graded AP of the ideal ranking (relevance descending): the most any
    ranking can score. AP / ideal AP is the normalised graded AP, 1.0 for a perfect ranking."""
    return _ap_of_ranked(-np.sort(-np.asarray(relevance, dtype=np.float64), axis=1))


def hubness(queries: np.ndarray, keys: np.ndarray, k: int = 10) -> float:
    """Skewness of the k-occurrence N_k (how often each key is among a query's top k by cosine; ties at the k-th
    place broken by key index). 0 for a symmetric spread; large and positive when a few hubs answer most queries."""
    scores = unit(queries) @ unit(keys).T
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    n_k = np.bincount(top.ravel(), minlength=scores.shape[1]).astype(np.float64)
    sd = n_k.std()
    return float(np.mean((n_k - n_k.mean()) ** 3) / sd ** 3) if sd > 0 else 0.0


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


def class_prompts(statement_emb: np.ndarray, statement_codes: list[str], class_codes: dict[str, list[str]],
                  classes) -> tuple[np.ndarray, list[str]]:
    """One prompt per class: the normalised mean of the unit embeddings of its statements (class_codes[class], e.g.
    `labels.class_statements`; CLIP's prompt ensembling). Pass statement embeddings already projected into the
    shared space: a record listing one code has exactly that code's text embedding, so each projected statement is
    in the distribution the projection head was trained on, and the ensemble is taken where the cosines are.
    Returns (prompts for the classes that have an embedded statement, those classes)."""
    unit_emb = unit(statement_emb)
    row = {code: i for i, code in enumerate(statement_codes)}
    prompts, kept = [], []
    for c in classes:
        rows = [row[code] for code in class_codes.get(c, []) if code in row]
        if rows:
            prompts.append(unit_emb[rows].mean(axis=0))
            kept.append(c)
    if not prompts:
        return np.zeros((0, statement_emb.shape[1])), kept
    return unit(np.stack(prompts)), kept


def as_cosine(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(queries', keys') whose cosines are the dot products of queries and keys divided by one constant: two
    columns are appended that bring every query to the largest query norm and every key to the largest key norm.
    Every ranking by cosine (each query's ranking of the keys, each key's ranking of the queries) is then the
    ranking by dot product, so a score that is a dot product (a classifier's log-likelihood of a code set) runs
    through the cosine retrieval code unchanged."""
    q, k = np.asarray(queries, dtype=np.float64), np.asarray(keys, dtype=np.float64)
    qn, kn = (q ** 2).sum(axis=1), (k ** 2).sum(axis=1)
    q_fill = np.sqrt(np.maximum(qn.max() - qn, 0.0)) if len(q) else qn
    k_fill = np.sqrt(np.maximum(kn.max() - kn, 0.0)) if len(k) else kn
    return (np.column_stack([q, q_fill, np.zeros(len(q))]), np.column_stack([k, np.zeros(len(k)), k_fill]))


def zero_shot_scores(e_ecg: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """N x C cosine between each ECG embedding and each (projected) class prompt."""
    return unit(e_ecg) @ unit(prompts).T


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


def nearest_statements(ecg_id: int, k: int = 5, data_dir=art.DATA) -> list[tuple[str, str, float]]:
    """The k SCP statements whose projected statement embedding is nearest (cosine) to record ecg_id's e_ecg:
    [(code, statement text, cosine)], best first. data_dir: where the pipeline's outputs are (data/)."""
    from .models import load_model

    reports = art.under(data_dir, art.REPORTS)
    records = art.load_reports(reports)
    row = art.record_row(records, ecg_id, reports)
    e_ecg = art.load_array(art.under(data_dir, art.E_ECG), len(records), "ecg_embeddings", reports)
    statements, emb = art.load_statements(art.under(data_dir, art.TEXT))
    keys = project_text(load_model(art.under(data_dir, art.MODEL)), emb)
    cos = zero_shot_scores(np.asarray(e_ecg[row:row + 1]), keys)[0]
    best = np.argsort(-cos, kind="stable")[:k]
    return [(statements[i]["code"], statements[i]["text"], float(cos[i])) for i in best]


def format_nearest(nearest: list[tuple[str, str, float]]) -> str:
    """nearest_statements' answer as lines for the terminal: cosine, code, statement text."""
    lines = [f"Nearest {len(nearest)} SCP statements to the ECG embedding (cosine in the shared space):"]
    lines += [f"  {cos:+.3f}  {code:<6} {text}" for code, text, cos in nearest]
    return "\n".join(lines)

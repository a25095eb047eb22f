"""The evaluate stage's cost on the full PTB-XL: the real label table of ../shared/ptbxl-metadata (21,837 records,
real strat_fold and scp_codes), synthetic embeddings (text = likelihood-weighted random statement vectors, ECG = text
+ noise, so retrieval and probes have something to find) and the untrained cnn1d encoding of every record from a
random float32 memmap of shape N x 12 x 1000. Prints the time of each part and the total.

    python bench/bench_evaluate.py [--metadata ../shared/ptbxl-metadata] [--records N] [--bootstrap 1000]
    python bench/bench_evaluate.py --embeddings data     # a trained model's own embeddings (the stage's real cost)

--records takes the first N records (to check that the cost grows linearly in records). --embeddings DIR takes the
trained model's e_ecg / z_ecg (DIR/ecg_embeddings) and its projected record texts (DIR/text, DIR/model) instead of the
synthetic ones: the linear probes converge much more slowly on real embeddings than on synthetic text + noise (the
synthetic bench measured 116 s where the real stage took 402 s), so this is the figure to trust. Each part prints its
wall and CPU time (CPU time counts both threads; on a shared machine wall time grows with the load, CPU time less).
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
from ecgalign import benchmark as bm
from ecgalign import evaluation as ev
from ecgalign import stats
from ecgalign.models import build_model, encode_all
from ecgalign.ptbxl import read_database, read_statements
from ecgalign.reports import parse_scp_codes


class Clock:
    def __init__(self):
        self.parts, self.start, self.cpu = {}, time.time(), time.process_time()

    def __call__(self, name, fn, *args, **kw):
        t, c = time.time(), time.process_time()
        out = fn(*args, **kw)
        self.parts[name] = self.parts.get(name, 0.0) + time.time() - t
        print(f"  {name:<50}{time.time() - t:8.1f} s wall {time.process_time() - c:8.1f} s CPU", flush=True)
        return out


def real_embeddings(data: Path, reports: list[dict], codes: list[str]):
    """(e_ecg, z_ecg, projected record texts, projected statements in `codes` order) of a pipeline run's model,
    checked to hold the same records as the metadata table."""
    from ecgalign import artifacts as art
    from ecgalign.models import load_model

    ids = [r["ecg_id"] for r in art.load_reports(data / "reports.jsonl")]
    if ids != [r["ecg_id"] for r in reports]:
        raise SystemExit(f"{data}/reports.jsonl does not hold the metadata's records in order (--records?)")
    model = load_model(data / "model" / "model.pt")
    e_ecg, z_ecg = (np.load(data / "ecg_embeddings" / f"{k}.npy") for k in ("e_ecg", "z_ecg"))
    text = ev.project_text(model, np.load(data / "text" / "record_embeddings.npy"))
    statements, emb = art.load_statements(data / "text")
    row = {s["code"]: i for i, s in enumerate(statements)}
    keys = ev.project_text(model, emb)
    return e_ecg, z_ecg, text, np.stack([keys[row[c]] if c in row else np.zeros(keys.shape[1]) for c in codes])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metadata", default=str(REPO.parent / "shared" / "ptbxl-metadata"))
    ap.add_argument("--records", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embeddings", help="data folder of a pipeline run: use its model's embeddings")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    db = read_database(a.metadata)
    if a.records:
        db = db.iloc[:a.records]
    table = read_statements(a.metadata)
    reports = [{"ecg_id": int(i), "strat_fold": int(f), "scp_codes": parse_scp_codes(s, i)}
               for i, f, s in zip(db["ecg_id"], db["strat_fold"], db["scp_codes"])]
    folds = np.array([r["strat_fold"] for r in reports])
    train, val, test = (np.flatnonzero(np.isin(folds, f)) for f in (range(1, 9), [9], [10]))
    n = len(reports)
    print(f"{n} records: {len(train)} train, {len(val)} val, {len(test)} test; torch threads {a.threads}")

    rng = np.random.default_rng(0)
    codes = list(table.index)
    col = {c: j for j, c in enumerate(codes)}
    w = np.zeros((n, len(codes)), np.float32)
    for i, r in enumerate(reports):
        for c, v in r["scp_codes"].items():
            w[i, col[c]] = v if v > 0 else 100.0
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-9)
    statement_emb = rng.normal(size=(len(codes), 128)).astype(np.float32)
    e_text_all = w @ statement_emb
    e_ecg = e_text_all + rng.normal(size=e_text_all.shape).astype(np.float32) * 0.5
    z_ecg = np.concatenate([e_ecg, rng.normal(size=(n, 128)).astype(np.float32)], axis=1)
    if a.embeddings:
        e_ecg, z_ecg, e_text_all, statement_emb = real_embeddings(Path(a.embeddings), reports, codes)

    clock = Clock()
    total = time.time()
    prep = clock("prepare (labels, subsamples, groups)", bm.prepare, reports, table, train, val, test, a.fractions, 0)
    counts = clock("bootstrap counts", stats.bootstrap_counts, len(test), a.bootstrap, 0)
    task_counts, _ = clock("class-complete bootstrap counts per task", bm.task_bootstrap, prep, a.bootstrap, 0)
    splits = {"train": train, "val": val, "test": test}

    def prompts_of(task):
        return bm.prompt_scorer(statement_emb, codes, prep, task)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "signals.npy"
        sig = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 12, 1000))
        for s in range(0, n, 2048):
            sig[s:s + 2048] = rng.normal(size=(min(2048, n - s), 12, 1000)).astype(np.float32)
        sig.flush()
        del sig
        signals = np.load(path, mmap_mode="r")
        model = build_model("cnn1d", embed_dim=256, text_dim=128, proj_dim=128).eval()
        order = np.concatenate([test, val, train])
        clock("untrained cnn1d: encode all records", encode_all, model, signals, rows=order)

    for name, prefix in (("trained", ""), ("untrained", "baseline_")):
        emb = {"e": {s: e_ecg[r] for s, r in splits.items()}, "z": {s: z_ecg[r] for s, r in splits.items()}}
        clock(f"{name}: retrieval + intervals + null", bm.retrieval, prep, test, e_ecg[test], e_text_all[test],
              counts, 5, 0, prefix)
        clock(f"{name}: validation figures", bm.validation, prep, e_ecg[val], e_text_all[val], prefix)
        clock(f"{name}: 6 tasks x zero-shot + probes + intervals", bm.tasks, prep, emb, prompts_of, task_counts,
              (0.001, 0.01, 0.1, 1.0, 10.0), prefix)
    clock("chance / majority levels", bm.retrieval_levels, prep, test, 5, 0)
    print(f"total {time.time() - total:.1f} s wall, {time.process_time() - clock.cpu:.1f} s CPU for {n} records "
          "(the stage adds reading the artifacts, the plots and the statement directions)")


if __name__ == "__main__":
    main()

"""text_embeddings stage: embed every SCP statement of scp_statements.csv once, then each record's text embedding is
the confidence-weighted mean of its statements' embeddings (see ecgalign.text for the weighting policy).

    python src/embed_text.py      (from the repository root; params: the `text` section of params.yaml)

Writes data/text/{statements.jsonl, statement_embeddings.npy, record_embeddings.npy, stats.json} (record rows aligned
with data/reports.jsonl) and metrics/text.json.
"""
import json
import time
from pathlib import Path

from ecgalign import atomic, params, ptbxl, text
from ecgalign.reports import read_reports

RAW, REPORTS, OUT, METRICS = Path("data/raw"), Path("data/reports.jsonl"), Path("data/text"), Path("metrics/text.json")


def main() -> None:
    p = params.load().text
    t0 = time.perf_counter()
    statements = ptbxl.read_statements(RAW)
    records = read_reports(REPORTS)
    codes = list(statements.index)   # all statements, also those absent from the data: evaluation can use them
    texts = text.statement_texts(statements, codes, p.template)

    path = text.resolve_model(p.model)
    device = text.resolve_device(p.device)
    tokenizer, model = text.load_text_model(path, device)
    distinct = list(dict.fromkeys(texts))   # a template like "{description}" can repeat a text: embed it once
    emb = text.embed_texts(distinct, tokenizer, model, p.pooling, p.batch_size, p.max_length, device)
    statement_emb = emb[[distinct.index(t) for t in texts]]

    W, n_all_zero = text.weight_matrix([r["scp_codes"] for r in records], codes, p.zero_likelihood, p.keep_weight,
                                       ecg_ids=[r["ecg_id"] for r in records])
    record_emb = text.record_embeddings(W, statement_emb)
    seconds = round(time.perf_counter() - t0, 2)

    used = int((W > 0).any(axis=0).sum())
    n_empty = sum(not r["scp_codes"] for r in records)
    # data/text/stats.json holds no timing and no machine path: the same inputs give the same artifact
    summary = {"model": p.model, "dim": int(statement_emb.shape[1]), "pooling": p.pooling,
               "zero_likelihood": p.zero_likelihood, "n_records": len(records), "n_statements": len(codes),
               "n_all_zero_records": n_all_zero}
    stats = {**summary, "template": p.template, "keep_weight": p.keep_weight, "max_length": p.max_length,
             "device": device, "n_distinct_texts": len(distinct), "n_statements_used": used,
             "n_records_without_codes": n_empty}
    metrics = {**summary, "model_path": path, "seconds": seconds}
    with atomic.atomic_dir(OUT) as tmp:
        lines = [json.dumps({"code": c, "category": statements.loc[c, "Statement Category"],
                             "description": statements.loc[c, "SCP-ECG Statement Description"], "text": t},
                            ensure_ascii=False) for c, t in zip(codes, texts)]
        (tmp / "statements.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        atomic.save_npy(tmp / "statement_embeddings.npy", statement_emb)
        atomic.save_npy(tmp / "record_embeddings.npy", record_emb)
        atomic.write_json(tmp / "stats.json", stats)
    atomic.write_json(METRICS, metrics)
    print(f"text_embeddings: {len(codes)} statements ({len(distinct)} distinct texts, {used} used) embedded by "
          f"{p.model} ({metrics['dim']}-d, {p.pooling} pooling, {device}); {len(records)} records "
          f"(zero_likelihood={p.zero_likelihood}, {n_all_zero} with all-zero weights -> equal weights"
          f"{f', {n_empty} without codes -> zero vector' if n_empty else ''}) in {seconds} s -> {OUT}/")


if __name__ == "__main__":
    from ecgalign.errors import run
    run(main)

"""text_embeddings stage: embed every SCP statement of scp_statements.csv once, then each record's text embedding is
the confidence-weighted mean of its statements' embeddings (see ecgalign.text for the weighting policy); with
text.source=report it is the embedding of the record's translated free-text report (report_en of data/reports.jsonl,
each distinct string embedded once), with text.source=both the mean of the two, L2-normalised. The statement
embeddings are written whatever the source (the zero-shot prompts are built from them).

    python src/embed_text.py      (from the repository root; params: the `text` section of params.yaml)

Writes data/text/{statements.jsonl, statement_embeddings.npy, record_embeddings.npy, record_ids.npy, stats.json}
(record rows aligned with data/reports.jsonl) and metrics/text.json. record_ids.npy (int64) is each record's report
identity: equal ids <=> identical record text of text.source <=> bit-identical record embeddings (training's positives).
"""
import json
import time

from ecgalign import atomic, params, ptbxl, text
from ecgalign.artifacts import (RAW, RECORD_EMBEDDINGS, RECORD_IDS, REPORTS, STATEMENT_EMBEDDINGS, TEXT as OUT,
                                TEXT_METRICS as METRICS, TEXT_STATEMENTS, TEXT_STATS, load_reports)
from ecgalign.errors import ArtifactError
from ecgalign.reports import code_set


def main() -> None:
    p = params.load().text
    t0 = time.perf_counter()
    statements = ptbxl.read_statements(RAW)
    records = load_reports()
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
    record_emb = text.record_embeddings(W, statement_emb)   # identical weight rows -> bit-identical embeddings
    ids = text.report_ids(W)
    if p.source != "statements":
        missing = [r["ecg_id"] for r in records if "report_en" not in r]
        if missing:
            raise ArtifactError(f"{REPORTS}: ecg_id {missing[0]} has no report_en (free-text translation), which "
                                f"text.source={p.source} needs: rerun the reports stage (dvc repro -f reports)")
        embed = lambda texts: text.embed_texts(texts, tokenizer, model, p.pooling, p.batch_size,  # noqa: E731
                                               p.max_length, device, desc="embed reports")
        record_emb, ids, n_empty_reports = text.text_embeddings(p.source, record_emb, ids,
                                                                [r["report_en"] for r in records], embed)
    seconds = round(time.perf_counter() - t0, 2)

    used = int((W > 0).any(axis=0).sum())
    n_empty = sum(not r["scp_codes"] for r in records)
    n_code_sets = len({code_set(r["scp_codes"]) for r in records})
    # no timing and no machine path in either file: the same inputs give the same artifacts on every machine
    metrics = {"model": p.model, "model_version": text.model_version(p.model, path),
               "dim": int(statement_emb.shape[1]), "pooling": p.pooling, "zero_likelihood": p.zero_likelihood,
               "keep_weight": p.keep_weight,
               "n_records": len(records), "n_statements": len(codes), "n_all_zero_records": n_all_zero,
               "n_code_sets": n_code_sets, "n_report_ids": int(ids.max()) + 1 if len(ids) else 0,
               "source": p.source}
    if p.source != "statements":
        metrics.update(n_distinct_reports=len({r["report_en"] for r in records if r["report_en"]}),
                       n_empty_reports=n_empty_reports)
    stats = {**metrics, "template": p.template, "max_length": p.max_length, "device": device,
             "n_distinct_texts": len(distinct), "n_statements_used": used, "n_records_without_codes": n_empty}
    with atomic.atomic_dir(OUT) as tmp:
        lines = [json.dumps({"code": c, "category": statements.loc[c, "Statement Category"],
                             "description": statements.loc[c, "SCP-ECG Statement Description"], "text": t},
                            ensure_ascii=False) for c, t in zip(codes, texts)]
        (tmp / TEXT_STATEMENTS.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        atomic.save_npy(tmp / STATEMENT_EMBEDDINGS.name, statement_emb)
        atomic.save_npy(tmp / RECORD_EMBEDDINGS.name, record_emb)
        atomic.save_npy(tmp / RECORD_IDS.name, ids)
        atomic.write_json(tmp / TEXT_STATS.name, stats)
    atomic.write_json(METRICS, metrics)
    if p.source != "statements":
        print(f"text_embeddings: text.source={p.source}: {metrics['n_distinct_reports']} distinct translated reports "
              f"embedded once each ({n_empty_reports} records with an empty report -> zero vector)")
    print(f"text_embeddings: {len(codes)} statements ({len(distinct)} distinct texts, {used} used) embedded by "
          f"{p.model} ({metrics['dim']}-d, {p.pooling} pooling, {device}); {len(records)} records "
          f"(zero_likelihood={p.zero_likelihood}, {n_all_zero} with all-zero weights -> equal weights"
          f"{f', {n_empty} without codes -> zero vector' if n_empty else ''}; {n_code_sets} code sets, "
          f"{metrics['n_report_ids']} report identities) in {seconds} s -> {OUT}/")


if __name__ == "__main__":
    from ecgalign.cost import measured
    from ecgalign.errors import run
    with measured("text_embeddings"):
        run(main)

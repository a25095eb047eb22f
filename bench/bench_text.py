"""The text_embeddings stage's work on the full 21,837-row PTB-XL table with a BERT-base-sized model, against the
reference code's way (one BERT call per record over its statement texts), timed on the first -n records
(default 300) and extrapolated to the full table.

    python bench/bench_text.py [PTB-XL folder with the two tables, default ../shared/ptbxl-metadata] [-n 300]

The model is a random BertConfig() (BERT base: 12 layers, 768-d, ~110M parameters) with the packaged MiniLM's
WordPiece tokenizer, saved once to bench/out/bert-base-random (its speed is that of Bio_ClinicalBERT, which has the
same shape). Target: the stage is >= 100x faster than the per-record way on the full table.
"""
import argparse
import ast
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
from ecgalign import ptbxl, text

MODEL = BENCH / "out" / "bert-base-random"


def make_model() -> None:
    """Save a random BERT base with the MiniLM tokenizer (run in a child process: its memory is not the stage's)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel
    tokenizer = AutoTokenizer.from_pretrained(text.resolve_model(text.DEFAULT_MODEL))
    config = BertConfig()
    assert tokenizer.vocab_size == config.vocab_size, (tokenizer.vocab_size, config.vocab_size)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(MODEL)
    tokenizer.save_pretrained(MODEL)


def reference_way(records, W, codes, texts, tokenizer, model):
    """One forward pass per record over its statements' texts, mean over all positions (padding included, as the
    reference code does), weighted sum. Also returns the mask-aware mean of the same hidden states."""
    import torch
    column = {c: j for j, c in enumerate(codes)}
    out_ref, out_masked = [], []
    with torch.inference_mode():
        for i, scp in enumerate(records):
            cols = [column[c] for c in scp]
            batch = tokenizer([texts[j] for j in cols], padding=True, truncation=True, max_length=128,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            w = torch.from_numpy(W[i, cols]).unsqueeze(-1)
            out_ref.append((w * hidden.mean(1)).sum(0).numpy())
            out_masked.append((w * ((hidden * mask).sum(1) / mask.sum(1))).sum(0).numpy())
    return np.stack(out_ref), np.stack(out_masked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", type=Path, default=BENCH.parents[1] / "shared" / "ptbxl-metadata")
    parser.add_argument("-n", type=int, default=300,
                        help="records timed the per-record way (default 300: ~1-2 min on 2 busy cores; 1000: ~7 min)")
    args = parser.parse_args()
    root, n_ref = args.root, args.n
    if not (root / ptbxl.DATABASE).exists():
        sys.exit(f"{root} has no {ptbxl.DATABASE}: pass a PTB-XL folder")
    if not (MODEL / "config.json").exists():
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--make-model"], check=True)
        print(f"saved a random BERT base to {MODEL} in {time.perf_counter() - start:.1f} s")
    import pandas as pd
    import torch
    torch.manual_seed(0)
    db = pd.read_csv(root / ptbxl.DATABASE, usecols=["ecg_id", "scp_codes"])
    records = [ast.literal_eval(s) for s in db["scp_codes"]]
    statements = ptbxl.read_statements(root)
    codes = list(statements.index)

    # the stage's work: load the model, embed each statement once, weight matrix, one product
    start = time.perf_counter()
    tokenizer, model = text.load_text_model(str(MODEL), "cpu")
    loaded = time.perf_counter()
    texts = text.statement_texts(statements, codes, "{category}: {description}")
    S = text.embed_texts(texts, tokenizer, model, "mean", 64, 128, "cpu")
    embedded = time.perf_counter()
    W, n_all_zero = text.weight_matrix(records, codes, "keep", 100.0, ecg_ids=db["ecg_id"].tolist())
    R = text.record_embeddings(W, S)
    stage = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {MODEL.name}, {n_params / 1e6:.1f}M parameters, {S.shape[1]}-d; torch threads "
          f"{torch.get_num_threads()}")
    print(f"stage: {len(records):,} records x {len(codes)} statements: {stage:.2f} s in all (load "
          f"{loaded - start:.2f} s, embed {len(texts)} statements {embedded - loaded:.2f} s, weights + product "
          f"{stage - (embedded - start):.2f} s), {n_all_zero} all-zero records; peak RSS {peak_mb:,.0f} MB")

    # the reference code's way on the first n_ref records
    start = time.perf_counter()
    ref, masked = reference_way(records[:n_ref], W, codes, texts, tokenizer, model)
    per_record = (time.perf_counter() - start) / n_ref
    full = per_record * len(records)
    print(f"per-record BERT calls: {n_ref:,} records in {per_record * n_ref:.2f} s "
          f"({per_record * 1e3:.1f} ms/record) -> {full:,.0f} s extrapolated to {len(records):,} records")
    print(f"speed-up on the full table: {full / stage:,.0f}x (target >= 100x); excluding the model load "
          f"(paid by both ways): {full / (stage - (loaded - start)):,.0f}x")
    print(f"same numbers: max |stage - per-record mask-aware| = {np.abs(R[:n_ref] - masked).max():.2e}; "
          f"the reference's mean over padding moves records by up to {np.abs(ref - masked).max():.2e} "
          f"(embedding scale {np.abs(R).mean():.2e})")


if __name__ == "__main__":
    make_model() if sys.argv[1:] == ["--make-model"] else main()

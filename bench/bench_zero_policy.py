"""What the 0.0 policy (text.zero_likelihood, text.keep_weight) does to the text of real PTB-XL records: which entries
carry 0.0 and which carry a likelihood, by statement kind, and what share of a record's text weight the 0.0
statements get under `keep` at several keep_weight values (under `drop` it is 0 by definition). No model: counts and
the weight matrix only, in seconds.

    python bench/bench_zero_policy.py [PTB-XL folder with the two tables, default ../shared/ptbxl-metadata]
                                      [--keep-weights 15 50 100]
"""
import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
from ecgalign import ptbxl, text


def kind(statements, code: str) -> str:
    """'diagnostic', 'form', 'rhythm' or a combination ('diagnostic+form': NST_, DIG, LNGQT, NDT)."""
    row = statements.loc[code]
    return "+".join(k for k in ("diagnostic", "form", "rhythm") if row[k] == 1) or "none"


def zero_share(records, codes, keep_weight: float) -> np.ndarray:
    """Per record, the share of its text weight (row of W under keep) that falls on its 0.0 entries."""
    W, _ = text.weight_matrix(records, codes, "keep", keep_weight)
    column = {c: j for j, c in enumerate(codes)}
    zero = np.zeros(W.shape, dtype=bool)
    for i, scp in enumerate(records):
        for code, likelihood in scp.items():
            zero[i, column[code]] |= likelihood == 0
    return (W * zero).sum(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", nargs="?", type=Path, default=BENCH.parents[1] / "shared" / "ptbxl-metadata")
    ap.add_argument("--keep-weights", type=float, nargs="+", default=[15.0, 50.0, 100.0])
    args = ap.parse_args()
    if not (args.root / ptbxl.DATABASE).exists():
        sys.exit(f"{args.root} has no {ptbxl.DATABASE}: pass a PTB-XL folder")
    import pandas as pd
    db = pd.read_csv(args.root / ptbxl.DATABASE, usecols=["ecg_id", "scp_codes"])
    records = [ast.literal_eval(s) for s in db["scp_codes"]]
    statements = ptbxl.read_statements(args.root)
    codes = list(statements.index)

    entries = Counter()
    by_code = {True: Counter(), False: Counter()}
    for scp in records:
        for code, likelihood in scp.items():
            entries[kind(statements, code), likelihood == 0] += 1
            by_code[likelihood == 0][code] += 1
    print(f"{len(records):,} records, {sum(entries.values()):,} code entries")
    for k in sorted({k for k, _ in entries}):
        zero = [f"{c} {n:,}" for c, n in by_code[True].most_common() if kind(statements, c) == k][:4]
        real = [f"{c} {n:,}" for c, n in by_code[False].most_common() if kind(statements, c) == k][:4]
        print(f"  {k:16s} at 0.0: {entries[k, True]:6,} ({', '.join(zero) or '-'}); with a likelihood: "
              f"{entries[k, False]:6,} ({', '.join(real)})")
    both = sorted(c for c in by_code[True] if c in by_code[False] and kind(statements, c) != "diagnostic")
    print("  non-diagnostic statements seen both at 0.0 and with a likelihood (drop removes the first, keeps the "
          "second): " + ", ".join(f"{c} {by_code[True][c]:,}/{by_code[False][c]:,}" for c in both))

    typical = [{"IMI": 15.0, "SR": 0.0}]
    has_zero = np.array([any(v == 0 for v in scp.values()) for scp in records])
    print(f"share of a record's text weight on its 0.0 statements under keep ({has_zero.sum():,} records have "
          f"one; drop: 0 for all):")
    for kw in args.keep_weights:
        share = zero_share(records, codes, kw)
        print(f"  keep_weight {kw:5g}: 'IMI 15 + SR 0' {zero_share(typical, codes, kw)[0]:.1%}; full table mean "
              f"{share.mean():.1%}, median {np.median(share):.1%}; over records with a 0.0 entry mean "
              f"{share[has_zero].mean():.1%}")


if __name__ == "__main__":
    main()

"""Print one record's structured report, the start of its latent text embedding and, once a model is trained, the
SCP statements nearest to its ECG embedding in the shared space.

    python src/show_record.py 1
"""
import argparse
from pathlib import Path

from ecgalign import reports

DATA = Path("data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ecg_id", type=int)
    parser.add_argument("-k", type=int, default=5, help="nearest statements to show (default 5)")
    args = parser.parse_args()
    by_id = {r["ecg_id"]: r for r in reports.read_reports(DATA / "reports.jsonl")}
    if args.ecg_id not in by_id:
        raise SystemExit(f"ecg_id {args.ecg_id} is not in {DATA / 'reports.jsonl'} "
                         f"({len(by_id)} records, ecg_id {min(by_id)}-{max(by_id)})")
    print(by_id[args.ecg_id]["report"])
    if (DATA / "text" / "record_embeddings.npy").exists():
        from ecgalign.text import show_latent
        print(show_latent(args.ecg_id, data_dir=DATA))
    if (DATA / "ecg_embeddings" / "e_ecg.npy").exists():
        from ecgalign.evaluation import format_nearest, nearest_statements
        print(format_nearest(nearest_statements(args.ecg_id, k=args.k, data_dir=DATA)))


if __name__ == "__main__":
    from ecgalign.errors import run
    run(main)

"""Apply the trained model (data/model/model.pt, after `make repro`) to your own ECG recordings: WFDB records at any
sampling rate and in any lead order, or NumPy arrays (leads x samples, millivolts). Per recording, OUT/<name>/ gets
scores.csv (top SCP statements, zero-shot superclass scores, linear-probe superclass probabilities, nearest PTB-XL
records), z.npy and e.npy (the embedding), input.json (how the file was read) and, with --plot, ecg.png; OUT/summary.csv
has one row per recording. Run it at the repository's root (or through `make infer ECG="..."`). docs/inference.md.

    python src/infer.py my_ecg.hea                                 # WFDB: rate and lead names from the header
    python src/infer.py a.hea b.dat c --out results/ --plot        # several records; the printout with attribution
    python src/infer.py x.npy --rate 500 --leads I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6
    python src/infer.py long.hea --start 30                        # the 10 s from 30 s on (default: the first 10 s)
"""
import argparse
import sys
from pathlib import Path


def main(argv=None) -> None:
    from ecgalign.inference import infer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="WFDB records (.hea, .dat or the name without extension) and .npy arrays")
    parser.add_argument("--out", type=Path, default=Path("inference"), help="output folder (default: inference/)")
    parser.add_argument("--rate", help=".npy inputs: their sampling rate in Hz (WFDB headers carry their own)")
    parser.add_argument("--leads", help=".npy inputs: the lead name of each row, comma-separated, e.g. "
                                        "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6 (any order; missing leads allowed)")
    parser.add_argument("--start", type=float, default=0.0,
                        help="seconds into the recording where the 10 s window starts (default 0: the first 10 s)")
    parser.add_argument("--top", type=int, default=10, help="SCP statements listed per recording (default 10)")
    parser.add_argument("--neighbours", type=int, default=5, help="nearest PTB-XL records listed (default 5)")
    parser.add_argument("--skip-unknown-leads", action="store_true",
                        help="leave out leads whose name is not one of the 12 standard leads (default: an error)")
    parser.add_argument("--plot", action="store_true", help="also write OUT/<name>/ecg.png: the 12-lead printout "
                        "coloured by the integrated gradients of the top statement's cosine")
    parser.add_argument("--steps", type=int, default=32, help="--plot: integrated-gradients steps (default 32)")
    args = parser.parse_args(argv)
    if args.top < 1 or args.neighbours < 1 or args.steps < 1:
        parser.error("--top, --neighbours and --steps must be at least 1")
    infer(args.files, args.out, rate=args.rate, leads=args.leads, start=args.start, top=args.top,
          neighbours=args.neighbours, plot=args.plot, steps=args.steps, skip_unknown=args.skip_unknown_leads)


if __name__ == "__main__":
    from ecgalign.inference import run
    sys.exit(run(main))

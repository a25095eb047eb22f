"""Run the experiment grid of experiments.yaml through DVC's queue, then refresh results/grid.json and the README.

    python src/run_grid.py                 # sequential (one queue worker)
    python src/run_grid.py -j 4            # 4 queue workers (`dvc queue start -j 4`)
    python src/run_grid.py --only 'syn-*'  # part of the grid (a glob on experiment names)
    python src/run_grid.py --shard 0/3     # every 3rd experiment from the first: split a grid across machines
    python src/run_grid.py --dry-run       # the plan: what is done, queued or running, and what would be queued

Experiments are named `<config>-s<seed>`. Those that exist already (finished on a commit with the same pipeline
code) are skipped, queued or running ones are waited for, failed ones are queued again: re-running a grid, or a
killed one, runs only what is missing. See docs/experiments.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecgalign import grid as g

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", default=str(ROOT / "experiments.yaml"))
    ap.add_argument("-j", "--jobs", type=int, default=1, help="queue workers (experiments run in parallel)")
    ap.add_argument("--only", help="glob on experiment names, e.g. 'syn-*' or '*-s0'")
    ap.add_argument("--shard", help="i/k: run every k-th experiment of the grid, starting at the i-th (0-based)")
    ap.add_argument("--poll", type=float, default=60.0,
                    help="seconds between two `dvc queue status` (each costs ~0.8 s of CPU)")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--no-results", action="store_true", help="do not refresh results/grid.json and the README")
    args = ap.parse_args(argv)
    try:
        shard = tuple(int(x) for x in args.shard.split("/")) if args.shard else None
        if shard and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
            raise g.GridError(f"--shard {args.shard}: expected i/k with 0 <= i < k")
        grid = g.load_grid(args.grid, ROOT)
        if args.dry_run:   # the plan, nothing queued or removed
            p, _, outdated = g.survey(grid, ROOT, args.only, shard)
            print(f"grid: {len(p.done)} done, {len(p.pending)} queued or running on current code, "
                  f"{len(p.missing)} to queue")
            for name, overrides in g.queue_order(grid, p.missing):
                print(name, " ".join(g.set_args(overrides)))
            for _, name, status in outdated:
                print(f"{name}: {status.lower()} on other code or params (would be removed from the queue)")
            return 0
        g.run_grid(grid, ROOT, jobs=args.jobs, only=args.only, shard=shard, poll=args.poll)
        status = g.states(g.queue_status(ROOT)[0])
        failed = sorted(n for n, _, _, _ in grid.experiments() if status.get(n) == "Failed")
    except g.GridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.no_results:
        import results_table
        results_table.main(["--grid", args.grid, "--collect"])
    if failed:
        print(f"{len(failed)} experiment(s) failed: {', '.join(failed)}; see `dvc queue logs <name>`; "
              "running the grid again queues them again", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

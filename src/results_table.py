"""The README's results section, generated from the committed grid results (never typed by hand).

    python src/results_table.py                 # README.md block <- experiments.yaml + results/grid.json
    python src/results_table.py --collect       # first refresh results/grid.json from `dvc exp show --json`
    python src/results_table.py --grid experiments-claims.yaml --collect-only --results results/next/grid-claims.json
                                                # a grid in progress: its finished runs, no block rewritten
    python src/results_table.py --check         # exit 1 if the README block differs from what would be written
    python src/results_table.py --grid experiments-quick.yaml   # the quick grid's block in docs/experiments.md

A grid file names its snapshot (`results:`, default results/grid.json) and the file holding its block (`document:`,
default README.md); --results and --readme override them.

The table's metrics and the claims come from experiments.yaml, the figures from results/grid.json (so a fresh clone
without the experiment refs renders the same table). A collect keeps the previous snapshot's rows that are still
current (same code for the grid's stages, same params), so a grid run over several sessions or machines accumulates
in its snapshot. Definitions: src/ecgalign/grid.py.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecgalign import grid as g
from ecgalign.atomic import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", default=str(ROOT / "experiments.yaml"))
    ap.add_argument("--results", help="the snapshot (default: the grid file's `results:`)")
    ap.add_argument("--readme", help="the file with the results block (default: the grid file's `document:`)")
    ap.add_argument("--collect", action="store_true", help="refresh --results from dvc exp show first (rows of "
                    "the previous snapshot that are still current stay)")
    ap.add_argument("--collect-only", action="store_true", help="refresh --results, write no block (a grid in "
                    "progress: --results results/next/<file>)")
    ap.add_argument("--note", help="with --collect: the setting, printed above the table (e.g. 'synthetic, 2 epochs')")
    ap.add_argument("--check", action="store_true", help="only compare: exit 1 if the README block is stale")
    args = ap.parse_args(argv)
    try:
        grid = g.load_grid(args.grid, ROOT)
        args.results = args.results or str(ROOT / grid.results)
        args.readme = args.readme or str(ROOT / grid.document)
        if args.collect or args.collect_only:
            old = json.loads(Path(args.results).read_text()) if Path(args.results).exists() else {}
            results = g.collect(grid, ROOT, old.get("experiments", []))
            if args.note:
                results["note"] = args.note
            elif old.get("note"):  # keep the setting's description across re-collects
                results["note"] = old["note"]
            write_json(args.results, results)
            print(f"{args.results}: {len(results['experiments'])} experiments")
            dropped = sorted({e["name"] for e in old.get("experiments", [])} -
                             {e["name"] for e in results["experiments"]})
            if dropped:  # a code or params change since they ran, or a baseline commit this clone lacks
                print(f"warning: {len(dropped)} experiment(s) of the previous snapshot are not current experiments "
                      f"here and were left out: {', '.join(dropped)}; `git checkout {args.results}` restores it",
                      file=sys.stderr)
            if args.collect_only:
                return 0
        if not Path(args.results).exists():
            raise g.GridError(f"{args.results} not found: the grid has not been run and collected yet (make grid "
                              f"GRID={Path(args.grid).name})")
        results = json.loads(Path(args.results).read_text())
        readme = Path(args.readme).read_text()
        new = g.replace_block(readme, g.render(grid, results, g.family_members(grid, ROOT)))
    except (g.GridError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        if new != readme:
            print(f"{args.readme}: the results block differs from `python src/results_table.py`: run make results",
                  file=sys.stderr)
            return 1
        return 0
    if new != readme:
        write_text(args.readme, new)
        print(f"{args.readme}: results block rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())

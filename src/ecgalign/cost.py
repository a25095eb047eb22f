"""What a stage cost, measured in the real run: every stage script runs its main inside `measured(stage)`, which
writes metrics/cost/<stage>.json on success:

    {"stage": "train", "seconds": 412.3, "cpu_seconds": 801.0, "peak_rss_mb": 1612.4, "cpus": 2}

- seconds: wall-clock time of the stage's main (imports excluded: about 2 s for the stages that import torch);
- cpu_seconds: user + system CPU time of the process and its waited-for children (cpu_seconds / seconds is the
  number of cores kept busy on average);
- peak_rss_mb: the largest resident set of the process or of any child (getrusage's ru_maxrss), in MiB;
- cpus: the cores the process may run on.

The files are DVC metrics (`cache: false`): `dvc exp show` shows them beside the results, the grid collects them into
results/grid.json, and `make results` renders the cost table from them. They are the one kind of metric that differs
between two runs of the same params and seed. Under torchrun only rank 0 writes. A failed stage writes nothing.
"""
from __future__ import annotations

import os
import resource
import time
from contextlib import contextmanager
from pathlib import Path

COST_DIR = Path("metrics/cost")


def _usage() -> tuple[float, float]:
    """(cpu seconds, peak RSS in MiB) of this process and its waited-for children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return cpu, max(own.ru_maxrss, kids.ru_maxrss) / 1024.0   # ru_maxrss is in KiB on Linux


@contextmanager
def measured(stage: str, out_dir: str | Path = COST_DIR):
    """Time the block and write out_dir/<stage>.json when it ends without an exception (SystemExit included)."""
    start, (cpu0, _) = time.perf_counter(), _usage()
    yield
    seconds = time.perf_counter() - start
    cpu, peak = _usage()
    if int(os.environ.get("RANK", 0)) != 0:
        return
    from .atomic import write_json
    write_json(Path(out_dir) / f"{stage}.json",
               {"stage": stage, "seconds": round(seconds, 2), "cpu_seconds": round(cpu - cpu0, 2),
                "peak_rss_mb": round(peak, 1), "cpus": len(os.sched_getaffinity(0))})

"""What DVC adds to one experiment: the whole pipeline run as plain stage scripts vs as `dvc exp run` (in the
workspace) and as a queued experiment (`dvc exp run --queue` + `dvc queue start`, what `make grid` does), each in its
own fresh temp copy of the repository (git init, dvc init), so no run cache or DVC cache is shared between them.

    python bench/bench_dvc_overhead.py                       # the synthetic default (2,000 records, 15 epochs)
    python bench/bench_dvc_overhead.py --records 500 --epochs 2

Two figures per DVC mode:
- wall overhead: (DVC wall time - direct wall time) / direct wall time; on a loaded machine the noise of two
  separate runs can be larger than DVC's share;
- in-run overhead: in the DVC copy every stage command is wrapped by a timer, so the time spent outside the stage
  commands (hashing, caching, locking, the queue's temp copy and worker start) is measured within the same run.
Target: under 5 % of the run on the synthetic default.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIMER = '''import json, subprocess, sys, time
t = time.perf_counter(); rc = subprocess.call(sys.argv[3:])
open(sys.argv[1], "a").write(json.dumps({"stage": sys.argv[2], "seconds": time.perf_counter() - t}) + "\\n")
sys.exit(rc)
'''


def copy_repo(dest: Path, records: int, epochs: int | None) -> dict:
    dest.mkdir(parents=True)
    for name in ("src", "dvc.yaml", "params.yaml", ".gitignore"):
        src = REPO / name
        (shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
         if src.is_dir() else shutil.copy(src, dest / name))
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["data"].update(source="synthetic", synthetic_records=records)
    if epochs:
        params["train"]["epochs"] = epochs
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return yaml.safe_load((dest / "dvc.yaml").read_text())


def sh(cmd, cwd, env, quiet=True):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=quiet, text=True)
    if out.returncode:
        raise SystemExit(f"{cmd} failed in {cwd}:\n{(out.stdout or '')[-2000:]}\n{(out.stderr or '')[-2000:]}")
    return out.stdout


def git_dvc_repo(root: Path, dvc: dict, times: Path, env: dict) -> None:
    """git + dvc init, with every stage command wrapped by the timer (writing to `times`, outside the repo)."""
    (root / "stage_timer.py").write_text(TIMER)
    for name, stage in dvc["stages"].items():
        stage["cmd"] = f"python stage_timer.py {times} {name} {stage['cmd']}"
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        sh(cmd, root, env)


def stage_seconds(times: Path) -> float:
    return sum(json.loads(line)["seconds"] for line in times.read_text().splitlines())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--epochs", type=int, help="train.epochs (default: params.yaml's)")
    ap.add_argument("--no-queue", action="store_true", help="skip the queued experiment")
    args = ap.parse_args()
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HF_HUB_OFFLINE="1",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    with tempfile.TemporaryDirectory(prefix="dvc-overhead-") as tmp:
        tmp = Path(tmp)
        dvc = copy_repo(tmp / "direct", args.records, args.epochs)
        epochs = yaml.safe_load((tmp / "direct/params.yaml").read_text())["train"]["epochs"]
        print(f"synthetic, {args.records} records, {epochs} epochs; stages: {', '.join(dvc['stages'])}")

        t = time.perf_counter()
        for name, stage in dvc["stages"].items():
            sh(stage["cmd"].split(), tmp / "direct", env)
        direct = time.perf_counter() - t
        print(f"direct (stage scripts one after another): {direct:.1f} s")

        rows = [("dvc exp run", "workspace")] + ([] if args.no_queue else [("queued experiment", "queue")])
        for label, mode in rows:
            root, times = tmp / mode, tmp / f"{mode}-times.jsonl"
            git_dvc_repo(root, copy_repo(root, args.records, args.epochs), times, env)
            t = time.perf_counter()
            if mode == "workspace":
                sh(["dvc", "exp", "run", "-n", "bench"], root, env)
            else:
                sh(["dvc", "exp", "run", "--queue", "-n", "bench"], root, env)
                sh(["dvc", "queue", "start"], root, env)
                polls = 0  # the experiment's git ref appears when it has finished (a cheap git call, not dvc)
                while not sh(["git", "for-each-ref", "refs/exps"], root, env).strip():
                    polls += 1
                    if polls % 60 == 0 and "Failed" in sh(["dvc", "queue", "status"], root, env):
                        raise SystemExit(sh(["dvc", "queue", "logs", "bench"], root, env))
                    time.sleep(0.5)
            wall = time.perf_counter() - t
            inside = stage_seconds(times)
            print(f"{label}: {wall:.1f} s wall, {inside:.1f} s inside the stage commands; "
                  f"in-run overhead {wall - inside:.1f} s = {100 * (wall - inside) / wall:.1f} % of the run; "
                  f"vs direct {100 * (wall - direct) / direct:+.1f} %")


if __name__ == "__main__":
    main()

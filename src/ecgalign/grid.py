"""Seeded experiment grids through DVC's own queue, and the results table built from them.

One file (`experiments.yaml`) declares named configurations (each a dict of `-S` overrides), the seeds every
configuration runs with, the metrics the table shows and the claims to test. This module:

- plans the grid: experiment `<config>-s<seed>` = the configuration's overrides + the seed params set to the seed;
- finds what already exists in `dvc exp show --json --all-commits` (done, queued, running, failed) and queues only
  what is missing (`dvc exp run --queue -n NAME -S ...`), so re-running a grid, or a killed one, only adds the
  missing experiments; `dvc queue start -j N` runs them, `dvc queue status` is polled until they are done;
- collects the finished experiments into a flat snapshot (`results/grid.json`: config, seed, params, metrics), so the
  table is reproducible from git without the experiment refs;
- aggregates: mean ± sd over seeds per configuration, and for each claim the paired difference over the seeds both
  configurations share, with a 95 % t-interval over seeds and a p-value; the verdicts control the family-wise error
  across all claims at 5 % (Holm–Bonferroni);
- renders the README block between `<!-- results:begin -->` and `<!-- results:end -->`.

An existing experiment counts as done when its baseline commit has HEAD's pipeline code and params for the stages
the grid runs (their definitions in `dvc.yaml`, `requirements.txt`, every dependency under `src/` that `dvc.yaml`
names for those stages, and the values of the params.yaml keys it declares for them): committing the results or the
README does not invalidate a grid, nor does a change to the fine-tuning code or params (or a new stage) for a grid
that stops at `evaluate`; a change to the code or params it runs does.
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .resamples import is_resamples_file, resamples_path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
DEFAULT_FILE = "metrics/eval.json"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class GridError(ValueError):
    """A bad grid file, a failed DVC command or a README without the results markers."""


# ---------------------------------------------------------------------------------------------------------- the grid

@dataclass
class Claim:
    text: str
    a: str                # configuration claimed better (or equal, with `margin`)
    b: str
    metric: str           # "key" (in metrics/eval.json) or "metrics/<file>.json:key"
    direction: str        # higher: a > b | lower: a < b | equal: |a - b| < margin
    margin: float = 0.0
    b_metric: str = ""    # b's metric when it differs from a's (two figures of one run: aligned vs random init)

    @property
    def metric_b(self) -> str:
        return self.b_metric or self.metric


@dataclass
class Grid:
    seeds: list[int]
    seed_params: list[str]
    configs: dict[str, dict]          # name -> {param: value}; `common` already merged in
    metrics: list[dict]               # [{key, label, format}]
    claims: list[Claim] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)   # stages each experiment runs (with their upstream); [] = all
    results: str = "results/grid.json"                  # the snapshot (relative to the repository root)
    document: str = "README.md"                         # the file whose results block is generated from it
    task_tables: list[str] | None = None   # configurations with a per-task table (None: the first; []: none)
    stages: tuple[str, ...] = ()           # the pipeline stages an experiment runs (targets and upstream); () = all
    family: str = ""                       # holm_family: grids of one family share one Holm correction ("" alone)
    path: str = ""                         # the grid file, as given to load_grid

    def experiments(self) -> list[tuple[str, str, int, dict]]:
        """(name, config, seed, overrides) for every cell of the grid, in file order."""
        out = []
        for config, overrides in self.configs.items():
            for seed in self.seeds:
                sets = dict(overrides)
                sets.update({p: seed for p in self.seed_params})
                out.append((f"{config}-s{seed}", config, seed, sets))
        return out


ENV_RE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand_env(text: str) -> str:
    """`${NAME}` and `${NAME:-default}` replaced from the environment (as a shell does); `${NAME}` unset is an error,
    so that a grid never runs on a path that silently lost its variable."""
    def value(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if os.environ.get(name):
            return os.environ[name]
        if default is None:
            raise GridError(f"${{{name}}} is not set: set {name}=/path/to/ptb-xl (or write ${{{name}:-default}})")
        return default
    return ENV_RE.sub(value, text)


def _resolve_paths(overrides: dict, root: Path) -> dict:
    """`data.path` as the experiments will see it: environment variables expanded (experiments.yaml names the full
    dataset as ${PTBXL:-/tmp/ptb-xl}, so the same file works on any machine), then made absolute against the
    repository root: queued experiments run in a temporary copy of the repository (.dvc/tmp/exps/...), where a
    relative path would point elsewhere."""
    out = dict(overrides)
    if "data.path" in out:
        path = Path(expand_env(str(out["data.path"])))
        out["data.path"] = str(path if path.is_absolute() else (root / path).resolve())
    return out


def run_stages(root: Path, targets: list[str]) -> tuple[str, ...]:
    """The stages of root/dvc.yaml that `dvc exp run TARGETS` runs: the targets and every stage upstream of them (a
    stage is upstream when one of its outputs holds a dependency); () for no targets (all) or no dvc.yaml."""
    path = Path(root) / "dvc.yaml"
    if not targets or not path.exists():
        return ()
    spec = yaml.safe_load(path.read_text())["stages"]
    outs = {name: [str(next(iter(o)) if isinstance(o, dict) else o) for o in s.get("outs", [])]
            for name, s in spec.items()}
    needed, todo = set(), [t for t in targets if t in spec]
    while todo:
        stage = todo.pop()
        if stage in needed:
            continue
        needed.add(stage)
        for dep in map(str, spec[stage].get("deps", [])):
            todo += [s for s, paths in outs.items() if any(dep == o or dep.startswith(o + "/") for o in paths)]
    return tuple(s for s in spec if s in needed)


def missing_datasets(overrides: list[tuple[str, dict]]) -> list[str]:
    """One line per experiment to queue whose local dataset is not there (no ptbxl_database.csv at data.path)."""
    return [f"{name}: data.path {o['data.path']} holds no ptbxl_database.csv" for name, o in overrides
            if o.get("data.source") == "local" and not (Path(o["data.path"]) / "ptbxl_database.csv").is_file()]


def load_grid(path: str | Path, root: str | Path | None = None) -> Grid:
    """Read and check experiments.yaml; errors name the file and the key."""
    path = Path(path)
    root = Path(root) if root is not None else path.resolve().parent
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GridError(f"{path}: no such grid file") from None
    except yaml.YAMLError as e:
        raise GridError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise GridError(f"{path}: must be a mapping with keys seeds, configs, metrics, claims")
    keys = ("seeds", "seed_params", "common", "configs", "metrics", "claims", "targets", "results", "document",
            "task_tables", "holm_family")
    unknown = set(raw) - set(keys)
    if unknown:
        raise GridError(f"{path}: unknown key(s) {sorted(unknown)}; valid: {', '.join(keys)}")
    targets = raw.get("targets") or []
    if not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise GridError(f"{path}: targets must be a list of stage names, got {targets!r}")
    seeds = raw.get("seeds", [0, 1, 2])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        raise GridError(f"{path}: seeds must be a non-empty list of integers, got {seeds!r}")
    common = raw.get("common") or {}
    configs = {}
    for name, overrides in (raw.get("configs") or {}).items():
        if not NAME_RE.match(str(name)):
            raise GridError(f"{path}: configs.{name}: names are lower-case letters, digits, '-', '_', '.' "
                            "(they become DVC experiment names)")
        if overrides is not None and not isinstance(overrides, dict):
            raise GridError(f"{path}: configs.{name} must be a mapping of param -> value (the -S overrides)")
        configs[str(name)] = _resolve_paths({**common, **(overrides or {})}, root)
    if not configs:
        raise GridError(f"{path}: configs is empty: declare at least one named configuration")
    metrics = []
    for m in raw.get("metrics") or []:
        m = {"key": m} if isinstance(m, str) else dict(m)
        if "key" not in m:
            raise GridError(f"{path}: metrics entry {m!r} has no key")
        metrics.append({"key": m["key"], "label": m.get("label", m["key"]), "format": m.get("format", ".3f")})
    claims = []
    for i, c in enumerate(raw.get("claims") or []):
        missing = {"text", "a", "b", "metric", "direction"} - set(c)
        if missing:
            raise GridError(f"{path}: claims[{i}] lacks {sorted(missing)}")
        if c["direction"] not in ("higher", "lower", "equal"):
            raise GridError(f"{path}: claims[{i}].direction must be higher, lower or equal, got {c['direction']!r}")
        if c["direction"] == "equal" and not c.get("margin"):
            raise GridError(f"{path}: claims[{i}]: direction equal needs a margin > 0 (how close counts as equal)")
        for side in ("a", "b"):
            if c[side] not in configs:
                raise GridError(f"{path}: claims[{i}].{side}={c[side]!r} is not a configuration; "
                                f"configurations: {sorted(configs)}")
        claims.append(Claim(text=c["text"], a=c["a"], b=c["b"], metric=c["metric"], direction=c["direction"],
                            margin=float(c.get("margin", 0.0)), b_metric=str(c.get("b_metric", ""))))
    return Grid(seeds=seeds, seed_params=list(raw.get("seed_params", ["train.seed"])), configs=configs,
                metrics=metrics, claims=claims, targets=targets,
                results=str(raw.get("results", "results/grid.json")), document=str(raw.get("document", "README.md")),
                task_tables=None if raw.get("task_tables") is None else [str(c) for c in raw["task_tables"]],
                stages=run_stages(root, targets), family=str(raw.get("holm_family") or ""), path=str(path))


def family_members(grid: Grid, root: Path) -> list[tuple[Grid, dict]]:
    """The other grids of `grid`'s Holm family (experiments*.yaml of `root` with the same holm_family), each with its
    committed results (a grid without a results file yet has no claims to count)."""
    if not grid.family:
        return []
    out = []
    for path in sorted(Path(root).glob("experiments*.yaml")):
        if path.resolve() == Path(grid.path).resolve():
            continue
        other = load_grid(path, root)
        if other.family != grid.family:
            continue
        results = Path(root) / other.results
        if results.exists():
            out.append((other, json.loads(results.read_text())))
    return out


# ----------------------------------------------------------------------------------------------------- DVC and git

def run(cmd: list[str], root: Path, check: bool = True) -> subprocess.CompletedProcess:
    try:
        out = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        # the queued stages call `python` and `dvc` from PATH too, so the virtual environment must come first on it
        raise GridError(f"`{cmd[0]}` is not on PATH: run the grid through `make grid`, or `source .venv/bin/activate` "
                        "first") from None
    if check and out.returncode != 0:
        raise GridError(f"`{' '.join(cmd)}` failed (exit {out.returncode}):\n{out.stderr.strip()[-2000:]}")
    return out


def start_workers(root: Path, jobs: int) -> None:
    """`dvc queue start -j jobs`. The workers it starts outlive it and inherit its stdout and stderr: captured
    through pipes, the call would only return once the last worker has left (when the queue is empty), so they go
    to a log file instead."""
    log_path = root / ".dvc" / "tmp" / "queue-start.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as out:
        code = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=root, stdout=out, stderr=out).returncode
    if code != 0:
        raise GridError(f"`dvc queue start -j {jobs}` failed (exit {code}):\n{log_path.read_text().strip()[-2000:]}")


def missing_listings(root: Path) -> list[str]:
    """The paths whose directory listing (a `.dir` object) root/dvc.lock names and the DVC cache lacks. A queued
    experiment that restores a stage from the run cache loads these listings and fails without them (`failed to
    load directory`): a clone on a new machine has the lock, not the objects, until `dvc repro` has run there."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return []
    cache = Path(run(["dvc", "cache", "dir"], root).stdout.strip()) / "files" / "md5"
    entries = [e for s in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values()
               for e in s.get("deps", []) + s.get("outs", [])]
    return sorted({e["path"] for e in entries
                   if str(e.get("md5", "")).endswith(".dir") and not (cache / e["md5"][:2] / e["md5"][2:]).exists()})


def _stages(root: Path, stages: tuple[str, ...]) -> list[dict]:
    """The specs of `stages` in root/dvc.yaml (all stages when empty)."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return [s for name, s in spec.items() if not stages or name in stages]


def pipeline_paths(root: Path, stages: tuple[str, ...] = ()) -> list[str]:
    """What decides an experiment's result besides its params: dvc.yaml, params.yaml, requirements.txt and the
    code dependencies that dvc.yaml declares for `stages` (all stages when empty): a change to the fine-tuning code
    leaves a grid that runs up to `evaluate` current."""
    deps = {d for s in _stages(root, stages) for d in s.get("deps", []) if str(d).startswith("src/")}
    return ["dvc.yaml", "params.yaml", "requirements.txt", *sorted(deps)]


def stage_params(root: Path, stages: tuple[str, ...] = ()) -> list[str]:
    """The params.yaml keys (sections or dotted keys) that dvc.yaml declares for `stages`, as DVC itself tracks
    them: a new default under `finetune` leaves a grid that runs up to `evaluate` current."""
    return sorted({str(k) for s in _stages(root, stages) for k in s.get("params", [])})


def head_params(root: Path, stages: tuple[str, ...] = ()) -> dict:
    """HEAD's committed values of the params.yaml keys that dvc.yaml declares for `stages`, as dotted leaves
    ({"train.seed": 0, ...}): what an experiment of those stages must have run with, besides its overrides."""
    shown = run(["git", "show", "HEAD:params.yaml"], root, check=False)
    flat = flatten((yaml.safe_load(shown.stdout) or {}) if shown.returncode == 0 else {})
    keys = stage_params(root, stages)
    return {k: v for k, v in flat.items() if any(k == s or k.startswith(s + ".") for s in keys)}


OUTPUT_SECTIONS = ("outs", "metrics", "plots")   # declare where a stage's results go, not what they are


def stage_specs(root: Path, rev: str, stages: tuple[str, ...] = ()) -> dict | None:
    """{name: spec} of `stages` (all when empty) in dvc.yaml at commit `rev`, without their output declarations
    (OUTPUT_SECTIONS: moving a file from `outs` to `metrics` changes no figure; what a stage computes changes with its
    command, dependencies, params or code); None without a readable dvc.yaml."""
    shown = run(["git", "show", f"{rev}:dvc.yaml"], root, check=False)
    if shown.returncode != 0:
        return None
    spec = (yaml.safe_load(shown.stdout) or {}).get("stages") or {}
    return {name: {k: v for k, v in s.items() if k not in OUTPUT_SECTIONS}
            for name, s in spec.items() if not stages or name in stages}


def same_code(root: Path, baseline: str, paths: list[str], stages: tuple[str, ...] = ()) -> bool:
    """Whether `baseline` has HEAD's files `paths` (params.yaml aside: params are compared per experiment) and,
    of dvc.yaml, HEAD's definitions of `stages` (all when empty): a stage added downstream of them, or another
    stage's changed command, leaves the grid current."""
    files = [p for p in paths if p not in ("params.yaml", "dvc.yaml")]
    if files and run(["git", "diff", "--quiet", baseline, "HEAD", "--", *files], root, check=False).returncode:
        return False
    return stage_specs(root, baseline, stages) == stage_specs(root, "HEAD", stages)


def current_code(grid: Grid, root: Path):
    """is_current(baseline): whether a baseline commit has HEAD's code for the stages the grid runs, checked once per
    baseline (many experiments share one). Params are not the baseline's business: `plan` compares each
    experiment's own params with HEAD's (head_params) and its overrides, so a new default that an experiment
    overrode anyway (or that its stages do not read) leaves it current."""
    paths, known = pipeline_paths(root, grid.stages), {}

    def is_current(baseline: str) -> bool:
        if baseline not in known:
            known[baseline] = same_code(root, baseline, paths, grid.stages)
        return known[baseline]
    return is_current


def exp_show(root: Path) -> list[dict]:
    """`dvc exp show --json --all-commits`, parsed."""
    return json.loads(run(["dvc", "exp", "show", "--json", "--all-commits"], root).stdout or "[]")


def existing(shown: list[dict]) -> dict[str, list[dict]]:
    """Experiment name -> [{baseline, state, rev, data}] from `dvc exp show --json` (state: success, queued,
    running, failed; experiments run without the queue have no executor and count as success)."""
    found: dict[str, list[dict]] = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state") or "success"
            for rev in exp.get("revs") or []:
                if rev.get("error") and state == "success":
                    state = "failed"
                found.setdefault(rev.get("name") or exp.get("name"), []).append(
                    {"baseline": commit["rev"], "state": state, "rev": rev["rev"], "data": rev.get("data") or {}})
    return found


@dataclass
class Plan:
    done: dict[str, dict]            # name -> the experiment entry to collect
    pending: list[str]               # queued or running already, on current code and params: waited for
    failed: list[str]                # failed before: removed from the queue and queued again
    missing: list[tuple[str, dict]]  # (name, overrides) to queue
    stale: list[str] = field(default_factory=list)  # finished, but with other params: queued again with -f


def params_match(data: dict, overrides: dict) -> bool:
    """Whether an experiment ran with these overrides (a configuration edited in the grid file runs again)."""
    return flat_params_match(flatten((data.get("params") or {}).get("params.yaml", {}).get("data", {})), overrides)


def flat_params_match(params: dict, overrides: dict) -> bool:
    """params_match on flat params ({"train.seed": 0, ...}, as a results row keeps them)."""
    return all(k in params and params[k] == v for k, v in overrides.items())


def plan(grid: Grid, found: dict[str, list[dict]], is_current, only: str | None = None,
         shard: tuple[int, int] | None = None, head: dict | None = None) -> Plan:
    """Sort every experiment of the grid into done / pending / failed / stale / missing. `is_current(baseline)`
    says whether a baseline commit has HEAD's pipeline code; `head` (head_params) the params every experiment must
    have run with, its overrides aside (None: the overrides alone are checked); `only` (a glob on the name) and
    `shard` (i, k: every k-th experiment from the i-th) select part of the grid. An experiment is done when it
    finished on current code with exactly these params: a change re-runs exactly the experiments it stales."""
    p = Plan({}, [], [], [])
    for i, (name, _, _, overrides) in enumerate(grid.experiments()):
        if (only and not fnmatch.fnmatch(name, only)) or (shard and i % shard[1] != shard[0]):
            continue
        entries = found.get(name, [])
        finished = [e for e in entries if e["state"] == "success" and is_current(e["baseline"])]
        done = [e for e in finished if params_match(e["data"], {**(head or {}), **overrides})]
        if done:  # the newest, if the same name finished on several baselines with the same code
            p.done[name] = max(done, key=lambda e: str(e["data"].get("timestamp") or ""))
        elif any(e["state"] in ("queued", "running") and is_current(e["baseline"])
                 and params_match(e["data"], {**(head or {}), **overrides}) for e in entries):
            p.pending.append(name)
        else:
            if any(e["state"] == "failed" for e in entries):
                p.failed.append(name)
            if finished:
                p.stale.append(name)
            p.missing.append((name, overrides))
    return p


def queue_order(grid: Grid, missing: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """`missing` seed by seed (every configuration's seed 0, then seed 1, ...): a grid stopped part-way leaves
    complete pairs of configurations for the paired claims, not all seeds of one and none of the other."""
    rank = {name: (seed, i) for i, (name, _, seed, _) in enumerate(grid.experiments())}
    return sorted(missing, key=lambda item: rank[item[0]])


def set_args(overrides: dict) -> list[str]:
    """`-S key=value` arguments; values are written as YAML (lists, booleans) so params.yaml keeps their types."""
    args = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
        text = text.removesuffix("\n...").strip()
        args += ["-S", f"{key}={text}"]
    return args


def queue_status(root: Path) -> tuple[list[tuple[str, str, str]], int]:
    """[(task id, name, status)] (status: Queued, Running, Success, Failed) and the number of live workers, from
    `dvc queue status`. One name can have several tasks (an old success and a new run)."""
    out = run(["dvc", "queue", "status"], root).stdout
    tasks = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[-1] in ("Queued", "Running", "Success", "Failed") and parts[0] != "Task":
            tasks.append((parts[0], parts[1], parts[-1]))
    m = re.search(r"Worker status: (\d+) active, (\d+) idle", out)
    return tasks, (int(m.group(1)) + int(m.group(2))) if m else 0


def states(tasks: list[tuple[str, str, str]]) -> dict[str, str]:
    """Name -> its most telling status: Running, then Queued, then Failed, then Success."""
    rank = {"Running": 0, "Queued": 1, "Failed": 2, "Success": 3}
    out: dict[str, str] = {}
    for _, name, status in tasks:
        if name not in out or rank[status] < rank[out[name]]:
            out[name] = status
    return out


def survey(grid: Grid, root: Path, only: str | None = None, shard=None):
    """(the plan of the grid's experiments selected by `only` and `shard`, the queue's tasks, the queue's tasks that
    are outdated for the whole grid): what `run_grid` acts on and `run_grid.py --dry-run` prints."""
    found, is_current, head = existing(exp_show(root)), current_code(grid, root), head_params(root, grid.stages)
    tasks, _ = queue_status(root)
    return (plan(grid, found, is_current, only, shard, head), tasks,
            outdated_tasks(tasks, plan(grid, found, is_current, head=head)))


def outdated_tasks(tasks: list[tuple[str, str, str]], p: Plan) -> list[tuple[str, str, str]]:
    """The queue's queued or running tasks of experiments the plan `p` of the whole grid queues anew: queued on
    another commit or with other params (`plan` does not count them as pending), they would run first, for nothing,
    even those a run with --only leaves out."""
    again = {name for name, _ in p.missing}
    return [t for t in tasks if t[2] in ("Queued", "Running") and t[1] in again]


def _log(message: str) -> None:
    print(message, flush=True)  # progress must show at once when stdout is a file (make grid > grid.log)


def run_grid(grid: Grid, root: Path, jobs: int = 1, only: str | None = None, shard=None, poll: float = 60.0,
             log=_log) -> Plan:
    """Queue what is missing, start `jobs` queue workers and wait until none of the grid's experiments is queued
    or running. Returns the plan it acted on; failed experiments are listed by the caller from the final status."""
    dirty = run(["git", "status", "--porcelain", "--", *pipeline_paths(root)], root).stdout.rstrip()
    if dirty:
        raise GridError("uncommitted changes to the pipeline code or params.yaml:\n" + dirty +
                        "\ncommit or stash them first: queued experiments would run them while their baseline "
                        "commit says otherwise")
    unlisted = missing_listings(root)
    if unlisted:
        raise GridError("the DVC cache lacks the directory listings dvc.lock names for " + ", ".join(unlisted) +
                        ": experiments restored from the run cache would fail (`failed to load directory`); run "
                        "`make repro` (or `dvc repro`) here first, then commit dvc.lock if it changed")
    p, tasks, outdated = survey(grid, root, only, shard)
    log(f"grid: {len(p.done)} done, {len(p.pending)} already queued, {len(p.missing)} to queue"
        + (f" ({len(p.failed)} failed before: queued again)" if p.failed else "")
        + (f" ({len(p.stale)} finished with other params: run again)" if p.stale else ""))
    for task, name, status in tasks:  # by task id: a name can also have an older successful task
        if status == "Failed" and name in p.failed:
            run(["dvc", "queue", "remove", task], root, check=False)
    for task, name, status in outdated:
        run(["dvc", "queue", "kill" if status == "Running" else "remove", task], root, check=False)
    if outdated:
        log(f"removed from the queue, queued before on other code or params: {', '.join(n for _, n, _ in outdated)}")
    absent = missing_datasets(p.missing)
    if absent:
        raise GridError("the dataset of these experiments is missing, nothing was queued:\n" + "\n".join(absent) +
                        "\nrestore it (e.g. .venv/bin/python ../shared/ptbxl-full/restore.py /tmp/ptb-xl), or set "
                        "PTBXL=/path/to/ptb-xl, or run part of the grid with --only")
    for name, overrides in queue_order(grid, p.missing):
        force = ["-f"] if name in p.stale else []
        run(["dvc", "exp", "run", "--queue", *force, "-n", name, *set_args(overrides), *grid.targets], root)
        log(f"queued {name}")
    waiting = set(p.pending) | {n for n, _ in p.missing}
    if not waiting:
        return p
    start_workers(root, jobs)
    idle_polls, last = 0, None
    while True:
        tasks, workers = queue_status(root)
        status = states(tasks)
        left = sorted(n for n in waiting if status.get(n) in ("Queued", "Running"))
        summary = (len(waiting) - len(left), len(waiting), [n for n in left if status.get(n) == "Running"])
        if summary != last:
            log(f"{summary[0]}/{summary[1]} finished; running: {', '.join(summary[2]) or '-'}")
            last = summary
        if not left:
            break
        # workers gone (killed, reboot) while experiments remain: start them again. A running experiment means a live
        # worker whatever `dvc queue status` counts (under load its count can read 0, and a second worker would run a
        # second experiment beside the first)
        idle_polls = idle_polls + 1 if workers == 0 and not summary[2] else 0
        if idle_polls >= 3:
            start_workers(root, jobs)
            idle_polls = 0
        time.sleep(poll)
    return p


# ------------------------------------------------------------------------------------------------------- collecting

def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def snapshot(grid: Grid, found: dict[str, list[dict]], is_current, head: dict | None = None,
             resamples_of=None) -> dict:
    """The flat results of every finished experiment of the grid: {"experiments": [{name, config, seed, rev,
    baseline, params, metrics: {file: {key: value}}, resamples: {key: values}}]}, in grid order (deterministic: a
    re-collect of the same experiments gives the same file). resamples_of(rev): the run's figures under its kept
    bootstrap resamples (`kept_resamples`); a run with none has no "resamples"."""
    rows = []
    done = plan(grid, found, is_current, head=head).done
    for name, config, seed, _ in grid.experiments():
        if name not in done:
            continue
        data = done[name]["data"]
        params = flatten((data.get("params") or {}).get("params.yaml", {}).get("data", {}))
        metrics = {f: m["data"] for f, m in sorted((data.get("metrics") or {}).items())
                   if "data" in m and not is_resamples_file(f)}   # those: only the cited keys' (kept_resamples)
        rows.append({"name": name, "config": config, "seed": seed, "rev": done[name]["rev"],
                     "baseline": done[name]["baseline"], "params": params, "metrics": metrics})
        kept = resamples_of(done[name]["rev"]) if resamples_of is not None else {}
        if kept:
            rows[-1]["resamples"] = kept
    return {"experiments": rows}


def split_key(key: str) -> tuple[str, str]:
    """(metrics file, name) of a metric key: "name" (metrics/eval.json) or "metrics/<file>.json:name"."""
    file, _, name = key.rpartition(":") if ":" in key else (DEFAULT_FILE, ":", key)
    return file, name


def cited_keys(grid: Grid) -> list[str]:
    """The metric keys the grid's claims compare, as they cite them (their kept resamples are what results keep)."""
    return sorted({k for c in grid.claims for k in (c.metric, c.metric_b)})


def kept_resamples(root: Path, rev: str, keys: list[str]) -> dict:
    """{key: values} for the `keys` whose figures the experiment commit's stages kept under the bootstrap
    resamples (beside each metrics file: metrics/eval.json -> metrics/eval_resamples.json,
    `resamples.resamples_path`); a run without such a file (older runs, files without intervals) has none."""
    kept, files = {}, {}
    for key in keys:
        file, name = split_key(key)
        if file not in files:
            shown = run(["git", "show", f"{rev}:{resamples_path(file).as_posix()}"], root, check=False)
            files[file] = (json.loads(shown.stdout).get("figures") or {}) if not shown.returncode else {}
        if name in files[file]:
            kept[key] = files[file][name]
    return kept


def still_current(grid: Grid, rows: list[dict], is_current, head: dict | None = None) -> list[dict]:
    """The rows of an earlier snapshot that `snapshot` would take today: an experiment of the grid, run on a baseline
    commit with HEAD's code for the grid's stages (`is_current`; a commit this clone lacks is not current) and with
    HEAD's params and the experiment's overrides (`head`)."""
    cells = {name: overrides for name, _, _, overrides in grid.experiments()}
    return [r for r in rows if r.get("name") in cells and is_current(r["baseline"])
            and flat_params_match(r.get("params") or {}, {**(head or {}), **cells[r["name"]]})]


def collect(grid: Grid, root: Path, earlier: list[dict] = ()) -> dict:
    """The snapshot of the grid's finished, current experiments here, plus the rows of an `earlier` snapshot that are
    still current (`still_current`) and were not run again here: a grid run in parts, on several machines or
    sessions whose experiment refs are gone, accumulates in its committed snapshot; a code change drops exactly the
    rows it stales."""
    keys = cited_keys(grid)
    is_current, head = current_code(grid, root), head_params(root, grid.stages)
    found = snapshot(grid, existing(exp_show(root)), is_current, head,
                     (lambda rev: kept_resamples(root, rev, keys)) if keys else None)["experiments"]
    fresh = {r["name"] for r in found}
    kept = [r for r in still_current(grid, list(earlier), is_current, head) if r["name"] not in fresh]
    order = {name: i for i, (name, _, _, _) in enumerate(grid.experiments())}
    return {"experiments": sorted(found + kept, key=lambda r: order[r["name"]])}


# ------------------------------------------------------------------------------------------------------ statistics

def metric_value(metrics: dict, key: str):
    """The value of `key` ("name" in metrics/eval.json, or "metrics/<file>.json:name") in an experiment's metrics,
    or None."""
    file, name = split_key(key)
    value = (metrics.get(file) or {}).get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def not_defined(results: dict, config: str, key: str) -> bool:
    """Whether the metric is not defined for this configuration: its metrics file lists the key among the fnmatch
    patterns of `not_defined` (space-separated; the evaluate stage does so for a supervised control's zero-shot and
    retrieval)."""
    file, name = split_key(key)
    for e in results["experiments"]:
        patterns = (e["metrics"].get(file) or {}).get("not_defined") if e["config"] == config else None
        if isinstance(patterns, str) and any(fnmatch.fnmatchcase(name, p) for p in patterns.split()):
            return True
    return False


def dataset_of(exp: dict) -> str:
    """What an experiment ran on, from its metrics/data.json (the download stage's): synthetic and its size, or
    PTB-XL, its record count and the first digits of its table checksum; "?" for results older than that file."""
    d = exp["metrics"].get("metrics/data.json") or {}
    if not d:
        return "?"
    if d.get("source") == "synthetic":
        return f"synthetic {d['n_records']:,}"
    return f"PTB-XL {d['n_records']:,} ({d['database_sha256'][:8]})"


def datasets(results: dict, config: str) -> list[str]:
    return sorted({dataset_of(e) for e in results["experiments"] if e["config"] == config})


def by_seed(results: dict, config: str, key: str) -> dict[int, float]:
    """Seed -> value of `key` for one configuration; empty when its seeds ran on different datasets (a slice and the
    full data, say): such figures are never averaged or compared."""
    out = {}
    if len(datasets(results, config)) > 1:
        return out
    for e in results["experiments"]:
        if e["config"] == config:
            v = metric_value(e["metrics"], key)
            if v is not None and math.isfinite(v):
                out[e["seed"]] = v
    return out


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); sd is nan for one value."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, sd


def t_quantile(p: float, df: int) -> float:
    from scipy.stats import t
    return float(t.ppf(p, df))


ALPHA = 0.05   # family-wise error rate of the claims' verdicts (Holm–Bonferroni across the claims)
UNDEFINED = "undefined (no variation over seeds: no test)"


@dataclass
class Paired:
    n: int
    mean: float
    low: float
    high: float
    verdict: str
    p: float = float("nan")        # unadjusted p-value of the claim's test (see `paired`)
    p_holm: float = float("nan")   # Holm-adjusted across the claims (`claim_results`)
    se: float = float("nan")       # standard error of the mean difference over seeds

    def simultaneous(self, m: int) -> tuple[float, float]:
        """The Bonferroni interval of the difference at family-wise level 1 - ALPHA over m claims: every one of the
        m intervals covers its true difference together, with probability ≥ 95 %."""
        half = t_quantile(1 - ALPHA / (2 * m), self.n - 1) * self.se
        return self.mean - half, self.mean + half


def _t_sf(t: float, df: int) -> float:
    from scipy.stats import t as student
    return float(student.sf(t, df))


def paired(results: dict, claim: Claim) -> Paired | None:
    """Paired difference a - b over the seeds both configurations have, with its 95 % t-interval over seeds and the
    p-value of the claim's test, and the verdict at level ALPHA for this claim alone (`claim_results` corrects it
    for the number of claims):
    higher/lower: two-sided paired t-test of a - b = 0; supported when p < ALPHA and the difference lies on the
    claimed side (the interval excludes 0 on that side), contradicted on the other side, not supported otherwise;
    equal: two one-sided t-tests of |a - b| >= margin (TOST), p = 2 * the larger one-sided p, so that p < ALPHA is
    the interval lying within ±margin: supported then, not supported otherwise."""
    a, b = by_seed(results, claim.a, claim.metric), by_seed(results, claim.b, claim.metric_b)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    mean, sd = mean_sd(diffs)
    n = len(diffs)
    if n < 2:
        return Paired(1, mean, float("nan"), float("nan"), "not supported (one seed: no interval)")
    se = sd / math.sqrt(n)
    if not se > 0:   # the same difference on every seed: the t-test is undefined, never p = 0
        return Paired(n, mean, mean, mean, UNDEFINED)
    half = t_quantile(0.975, n - 1) * se
    low, high = mean - half, mean + half
    if claim.direction == "equal":
        p = min(1.0, 2 * max(_t_sf((mean + claim.margin) / se, n - 1), _t_sf((claim.margin - mean) / se, n - 1)))
    else:
        p = min(1.0, 2 * _t_sf(abs(mean) / se, n - 1))
    return Paired(n, mean, low, high, _verdict(claim, mean, p), p=p, se=se)


def run_se(results: dict, config: str, key: str) -> dict[int, float]:
    """Seed -> the standard error over test records of one run's figure, from the bootstrap interval the run
    recorded (<key>_ci_low/_ci_high at its ci_level, as a normal's: width / (2 z)); empty without one."""
    from scipy.stats import norm
    lo, hi = by_seed(results, config, f"{key}_ci_low"), by_seed(results, config, f"{key}_ci_high")
    level = by_seed(results, config, f"{split_key(key)[0]}:ci_level")
    return {s: (hi[s] - lo[s]) / (2 * norm.ppf((1 + level.get(s, 0.95)) / 2)) for s in set(lo) & set(hi)}


def run_resamples(results: dict, config: str, key: str) -> dict:
    """Seed -> one configuration's figure under each kept bootstrap resample (the collector keeps them, from the
    file beside each run's metrics file, for the keys the claims cite; NaN where undefined); empty when the runs
    kept none or ran on different datasets."""
    import numpy as np
    if len(datasets(results, config)) > 1:
        return {}
    return {e["seed"]: np.array([np.nan if v is None else v for v in e["resamples"][key]], dtype=np.float64)
            for e in results["experiments"] if e["config"] == config and key in (e.get("resamples") or {})}


def two_level(results: dict, claim: Claim, n_boot: int = 4000,
              seed: int = 0) -> tuple[float, float, bool] | None:
    """The claim's 95 % interval from a two-level bootstrap, (low, high, paired): the seeds both configurations
    share resampled with replacement, and within each drawn seed a test-record resample drawn, the mean of the
    drawn differences a - b one draw.
    Paired (True) when every shared seed's two runs kept their figures under the bootstrap resamples (they are
    model-free and seeded by evaluate.seed: both runs of a seed scored the same resampled test records, so a - b
    under resample k is a paired draw). Otherwise each run's figure is redrawn as a normal with the spread of its
    recorded interval (`run_se`), the two arms independently: that overstates the spread of a paired difference, a
    conservative interval (False). None when fewer than 2 seeds are shared or a run has neither."""
    import numpy as np
    a, b = by_seed(results, claim.a, claim.metric), by_seed(results, claim.b, claim.metric_b)
    ra, rb = run_resamples(results, claim.a, claim.metric), run_resamples(results, claim.b, claim.metric_b)
    shared = sorted(set(a) & set(b))
    rng = np.random.default_rng(seed)
    if len(shared) >= 2 and all(s in ra and s in rb and len(ra[s]) == len(rb[s]) for s in shared) and \
            len({len(ra[s]) for s in shared}) == 1:
        diff = np.stack([ra[s] - rb[s] for s in shared])          # seeds x kept resamples
        pick = rng.integers(0, len(shared), size=(n_boot, len(shared)))
        draws = diff[pick, rng.integers(0, diff.shape[1], size=pick.shape)].mean(axis=1)
        low, high = np.percentile(draws[np.isfinite(draws)], [2.5, 97.5])
        return float(low), float(high), True
    sa, sb = run_se(results, claim.a, claim.metric), run_se(results, claim.b, claim.metric_b)
    seeds = [s for s in shared if s in sa and s in sb]
    if len(seeds) < 2:
        return None
    diff = np.array([a[s] - b[s] for s in seeds])
    var = np.array([sa[s] ** 2 + sb[s] ** 2 for s in seeds])
    pick = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
    draws = (diff[pick] + rng.standard_normal(pick.shape) * np.sqrt(var[pick])).mean(axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high), False


def _verdict(claim: Claim, mean: float, p: float) -> str:
    if not p < ALPHA:
        return "not supported"
    if claim.direction == "equal":
        return "supported"
    sign = 1 if claim.direction == "higher" else -1
    return "supported" if sign * mean > 0 else "contradicted"


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order: the i-th smallest of m is multiplied by m - i + 1
    (i from 1), then made non-decreasing along the sorted order and capped at 1. Rejecting where the adjusted p is
    below alpha keeps the family-wise error at alpha."""
    m = len(p_values)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def claim_results(grid: Grid, results: dict, others: list[tuple[Grid, dict]] = ()) -> list[Paired | None]:
    """`paired` for every claim of the grid, the verdicts taken at the Holm-adjusted p-values across the claims that
    have a test (≥ 2 seeds and some variation over them), those of the `others` grids of its Holm family included
    (family_members): the chance that any supported or contradicted verdict of the family is wrong stays ≤ ALPHA."""
    out = [paired(results, c) for c in grid.claims]
    tested = [i for i, r in enumerate(out) if r is not None and math.isfinite(r.p)]
    family = [r.p for g, res in others for r in (paired(res, c) for c in g.claims) if r is not None and
              math.isfinite(r.p)]
    for i, p_holm in zip(tested, holm([out[i].p for i in tested] + family)):
        out[i].p_holm = p_holm
        out[i].verdict = _verdict(grid.claims[i], out[i].mean, p_holm)
    return out


# -------------------------------------------------------------------------------------------------------- rendering

def cell(results: dict, config: str, metric: dict) -> str:
    """mean ± sd over seeds; for a single run its bootstrap interval [<key>_ci_low, <key>_ci_high] if recorded."""
    fmt, key = metric["format"], metric["key"]
    values = by_seed(results, config, key)
    if not values:
        return "n/a" if not_defined(results, config, key) else "–"
    if len(values) == 1:
        (seed,) = values
        return f"{values[seed]:{fmt}}" + run_interval(results, config, seed, key, fmt)
    mean, sd = mean_sd(list(values.values()))
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def run_interval(results: dict, config: str, seed: int, key: str, fmt: str) -> str:
    """' [low, high]': the bootstrap interval one run recorded for `key` (<key>_ci_low/_ci_high), or ''."""
    exp = next(e for e in results["experiments"] if e["config"] == config and e["seed"] == seed)
    lo, hi = metric_value(exp["metrics"], key + "_ci_low"), metric_value(exp["metrics"], key + "_ci_high")
    return f" [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None and hi is not None else ""


def render(grid: Grid, results: dict, others: list[tuple[Grid, dict]] = ()) -> str:
    """The README block (without the markers): the per-configuration table and the claims (Holm-corrected with the
    `others` grids of its family)."""
    configs = [c for c in grid.configs if any(e["config"] == c for e in results["experiments"])]
    fmt_of = {m["key"]: m["format"] for m in grid.metrics}
    lines = [f"Generated by `make results` from `{grid.results}` ({len(results['experiments'])} experiments); "
             "cells are mean ± sd over seeds."]
    if results.get("note"):
        lines.append(f"Setting: {results['note']}")
    commits = sorted({e["baseline"][:7] for e in results["experiments"] if e.get("baseline")})
    if commits:
        lines.append(f"Computed at commit{'s' if len(commits) > 1 else ''} {', '.join(commits)} (each experiment's "
                     f"baseline; `make grid` re-runs an experiment once its stages' code or params change).")
    lines += ["", "| configuration | data | seeds | " + " | ".join(m["label"] for m in grid.metrics) + " |",
             "|---|---|---|" + "---|" * len(grid.metrics)]
    for c in configs:
        seeds = sorted({e["seed"] for e in results["experiments"] if e["config"] == c})
        data = datasets(results, c)
        lines.append(f"| {c} | {data[0] if len(data) == 1 else 'mixed: ' + '; '.join(data)} | "
                     f"{', '.join(map(str, seeds))} | " + " | ".join(cell(results, c, m) for m in grid.metrics) + " |")
    checked = claim_results(grid, results, others)
    n_tested = sum(r is not None and math.isfinite(r.p) for r in checked)
    across, n_family = f"the {n_tested} claims with an interval", n_tested
    if others:
        n_family = n_tested + sum(r is not None and math.isfinite(r.p)
                                  for g, res in others for r in (paired(res, c) for c in g.claims))
        files = ", ".join(sorted({grid.results, *(g.results for g, _ in others)}))
        across = (f"the {n_family} claims with an interval of the Holm family `{grid.family}` ({n_tested} here; "
                  f"the grids of {files})")
    verdicts = len(lines)
    lines += ["", f"Verdicts are Holm–Bonferroni-corrected across {across} (family-wise "
              f"error {ALPHA * 100:g} %): a claim is supported or contradicted when its Holm-adjusted p is below "
              f"{ALPHA:g}; the 95 % interval is the claim's own, uncorrected paired t-interval over seeds; the "
              f"simultaneous one is Bonferroni's over the same {n_family} claims (all of them cover their true "
              f"differences together with probability ≥ 95 %). Both count the variation over seeds only; the "
              f"two-level one also the test records' (seeds resampled, then one of each run's kept bootstrap "
              f"resamples of the test records, the same for both arms of a seed: paired; marked * where a run kept "
              f"none, and each arm's figure is redrawn from its own interval independently: conservative; "
              f"`grid.two_level`).",
              "", "| claim | metric | a − b (mean over seeds) | 95 % interval | simultaneous 95 % interval | "
              "two-level 95 % interval | seeds | p | Holm p | verdict (Holm) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for claim, r in zip(grid.claims, checked):
        f = fmt_of.get(claim.metric, ".3f")
        shown = claim.metric + (f" − {claim.b_metric}" if claim.b_metric else "")
        label = f"{claim.text} (a = {claim.a}, b = {claim.b}" + (
            f", equal within ±{claim.margin:g})" if claim.direction == "equal" else ")")
        if r is None:
            undefined = any(not_defined(results, c, claim.metric) for c in (claim.a, claim.b))
            verdict = "n/a (not defined)" if undefined else "no results"
            lines.append(f"| {label} | {shown} | – | – | – | – | 0 | – | – | {verdict} |")
            continue
        interval, joint, p, p_holm = ("–", "–", "–", "–") if not math.isfinite(r.p) else (
            f"[{r.low:+{f}}, {r.high:+{f}}]", "[{:+{f}}, {:+{f}}]".format(*r.simultaneous(n_family), f=f),
            _p(r.p), _p(r.p_holm))
        levels = two_level(results, claim)
        two = "–" if levels is None else "[{:+{f}}, {:+{f}}]{}".format(*levels[:2], "" if levels[2] else "*", f=f)
        lines.append(f"| {label} | {shown} | {r.mean:+{f}} | {interval} | {joint} | {two} | {r.n} | {p} | "
                     f"{p_holm} | {r.verdict} |")
    if not grid.claims:   # a table-only grid (experiments-minirocket.yaml): no verdicts to explain
        del lines[verdicts:]
    if configs:
        tables = configs[:1] if grid.task_tables is None else [c for c in grid.task_tables if c in configs]
        for c in tables:
            lines += render_tasks(results, c)
        lines += render_costs(results, configs[0], grid.stages or STAGES)
    return "\n".join(lines) + "\n"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


TASKS = ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")
TASK_COLUMNS = (("zero-shot", "zero_shot_{task}_auc_macro"), ("probe 1 %", "linear_probe_{task}_1pct_auc_macro"),
                ("probe 10 %", "linear_probe_{task}_10pct_auc_macro"),
                ("probe 100 %", "linear_probe_{task}_100pct_auc_macro"),
                ("untrained, probe 100 %", "baseline_linear_probe_{task}_100pct_auc_macro"))
TASK_COLUMNS_Z = (("zero-shot", "zero_shot_{task}_auc_macro"),
                  *((f"z probe {pct} %", f"linear_probe_z_{{task}}_{pct}pct_auc_macro") for pct in (1, 10, 100)),
                  ("untrained, z probe 100 %", "baseline_linear_probe_z_{task}_100pct_auc_macro"))


def cell_with_interval(results: dict, config: str, key: str, fmt: str = ".3f") -> str:
    """mean ± sd over seeds, then the bootstrap interval of the lowest seed's run in brackets."""
    values = by_seed(results, config, key)
    if not values:
        return "n/a" if not_defined(results, config, key) else "–"
    mean, sd = mean_sd(list(values.values()))
    text = f"{mean:{fmt}}" + (f" ± {sd:{fmt}}" if len(values) > 1 else "")
    return text + run_interval(results, config, min(values), key, fmt)


def task_columns(results: dict, config: str) -> tuple:
    """The probes on z (the primary ones) when the runs have them at every fraction, else those on e_ecg (runs
    computed before z was probed beyond superdiagnostic at 100 %)."""
    if any(by_seed(results, config, f"linear_probe_z_{task}_1pct_auc_macro") for task in TASKS):
        return TASK_COLUMNS_Z
    return TASK_COLUMNS


def render_tasks(results: dict, config: str) -> list[str]:
    """Macro AUC per PTB-XL benchmark task for one configuration: zero-shot, linear probe at 1/10/100 % of the
    labels and the untrained encoder's probe (`task_columns`); empty when its runs hold no per-task figures."""
    rows = []
    columns = task_columns(results, config)
    for task in TASKS:
        cells = [cell_with_interval(results, config, key.format(task=task)) for _, key in columns]
        if any(c != "–" for c in cells):
            rows.append(f"| {task} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    seeds = sorted({e["seed"] for e in results["experiments"] if e["config"] == config})
    return ["", f"Per task, `{config}` ({len(seeds)} seed(s)): macro AUC on the test fold, mean ± sd over seeds "
            f"[bootstrap interval of seed {seeds[0]}'s run]:", "",
            "| task | " + " | ".join(label for label, _ in columns) + " |",
            "|---|" + "---|" * len(columns), *rows]


STAGES = ("download", "reports", "text_embeddings", "signals", "train", "ecg_embeddings", "baseline", "minirocket",
          "evaluate", "finetune")


def render_costs(results: dict, config: str, stages=STAGES) -> list[str]:
    """The cost table of one configuration's runs, from their metrics/cost/<stage>.json, for the stages they ran
    (an experiment also carries the cost files its baseline commit holds for stages it did not run): mean wall and
    CPU time over the runs with the range of the wall time (a run that shared the machine with another shows as the
    long end), the largest peak memory. Empty when no run recorded costs."""
    runs = [e["metrics"] for e in results["experiments"] if e["config"] == config]
    rows, total = [], 0.0
    for stage in (s for s in STAGES if s in stages):
        costs = [m[f"metrics/cost/{stage}.json"] for m in runs if f"metrics/cost/{stage}.json" in m]
        if not costs:
            continue
        wall, cpu = (sum(c[k] for c in costs) / len(costs) for k in ("seconds", "cpu_seconds"))
        total += wall
        walls = sorted(c["seconds"] / 60 for c in costs)
        spread = f" ({walls[0]:.1f}–{walls[-1]:.1f})" if len(walls) > 1 else ""
        rows.append(f"| {stage} | {wall / 60:.1f} min{spread} | {cpu / 60:.1f} min | "
                    f"{max(c['peak_rss_mb'] for c in costs) / 1024:.2f} GiB | {len(costs)} |")
    if not rows:
        return []
    cpus = {c["cpus"] for m in runs for k, c in m.items() if k.startswith("metrics/cost/")}
    return ["", f"Cost of one `{config}` run on {' / '.join(datasets(results, config))} "
            f"({'/'.join(map(str, sorted(cpus)))} cores; from each stage's metrics/cost/<stage>.json; a stage restored "
            "from DVC's run cache shows the cost of the run that computed it):", "",
            "| stage | wall time, mean (range) | CPU time | peak memory | runs |", "|---|---|---|---|---|", *rows,
            f"| **all stages** | **{total / 60:.1f} min** | | | |"]


def replace_block(readme: str, block: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise GridError(f"README.md must hold exactly one {BEGIN} ... {END} pair around the generated results")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def readme_block(readme: str) -> str:
    """The text between the markers (what `replace_block` put there)."""
    if BEGIN not in readme or END not in readme:
        raise GridError(f"README.md has no {BEGIN} ... {END} block")
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].removeprefix("\n")

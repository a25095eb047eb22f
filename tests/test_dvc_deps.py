"""dvc.yaml lists, for every stage, exactly the ecgalign modules its script imports (transitively, function-level
imports included): a missing one leaves `dvc repro` saying "up to date" on stale results, an extra one re-runs the
stage for nothing."""
import ast
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SRC = REPO / "src"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _module_file(name: str) -> Path | None:
    """src/ecgalign/x.py (or x/__init__.py) for the dotted name ecgalign.x; None outside the package."""
    if name != "ecgalign" and not name.startswith("ecgalign."):
        return None
    base = SRC / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[Path]:
    """The ecgalign files one file imports anywhere in it (module level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(SRC).with_suffix("").parts[:-1])   # "ecgalign" inside the package
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: from .x import y / from . import x
                parts = package.split(".") if package else []
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from ecgalign import params` names a module; `from ecgalign.x import f` names module ecgalign.x
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name:   # `import ecgalign.x.y` also runs ecgalign/__init__.py and ecgalign/x
                file = _module_file(name)
                if file:
                    found.add(file)
                name = name.rpartition(".")[0]
    return found


# package data a module reads at run time: a stage importing the module depends on the data file too
PACKAGE_DATA = {SRC / "ecgalign" / "translate.py": [SRC / "ecgalign" / "data" / "report_glossary.tsv"]}


def imported_files(script: Path) -> set[Path]:
    """Every ecgalign file the script imports, transitively, and the package data those modules read."""
    seen, todo = set(), [script]
    while todo:
        for file in _imports(todo.pop()) - seen:
            seen.add(file)
            todo.append(file)
    return seen | {d for f in seen for d in PACKAGE_DATA.get(f, [])}


def _script(cmd: str) -> Path:
    scripts = [w for w in cmd.split() if w.endswith(".py")]
    assert scripts, f"cmd {cmd!r} runs no Python script"
    return REPO / scripts[0]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_every_module_it_imports(stage):
    spec = STAGES[stage]
    script = _script(spec["cmd"])
    deps = {str(d) for d in spec.get("deps", [])}
    rel = script.relative_to(REPO).as_posix()
    assert rel in deps, f"stage {stage}: dvc.yaml deps lack its script {rel}"
    missing = sorted(f.relative_to(REPO).as_posix() for f in imported_files(script)
                     if f.relative_to(REPO).as_posix() not in deps)
    assert not missing, f"stage {stage}: dvc.yaml deps lack {', '.join(missing)} (imported by {rel})"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_no_source_file_it_does_not_import(stage):
    """A src/ dependency the stage never imports re-runs it for nothing when that file is edited."""
    spec = STAGES[stage]
    script = _script(spec["cmd"])
    needed = {f.relative_to(REPO).as_posix() for f in imported_files(script) | {script}}
    extra = sorted(d for d in map(str, spec.get("deps", [])) if d.startswith("src/") and d not in needed)
    assert not extra, f"stage {stage}: dvc.yaml deps list {', '.join(extra)}, which its script does not import"


def test_imports_are_followed_transitively_and_inside_functions():
    files = {f.name for f in imported_files(SRC / "download_data.py")}
    # synthetic and download are imported inside main(); atomic through ptbxl; errors through params
    assert {"synthetic.py", "download.py", "ptbxl.py", "atomic.py", "params.py", "errors.py"} <= files


def _uncached_outs(spec: dict) -> list[str]:
    return [name for out in spec.get("outs", []) if isinstance(out, dict)
            for name, opts in out.items() if (opts or {}).get("cache") is False]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_can_be_served_from_the_run_cache(stage):
    """DVC saves a stage run to its run cache only when every plain out is cached (uncached metrics and plots are
    fine): one git-tracked `outs` entry made MiniRocket's 30 minutes run again for every configuration of a seed."""
    assert _uncached_outs(STAGES[stage]) == [], f"{stage}: declare git-tracked files under metrics or plots"


def test_the_run_cache_rule_is_dvcs(tmp_path):
    """The rule above, as this DVC applies it: an uncached metric keeps the stage in the run cache, an uncached out
    does not."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "DVC_NO_ANALYTICS": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    write = 'python -c "open(\'r.json\', \'w\').write(open(\'d\').read())"'

    def saved(section: str, name: str) -> bool:
        root = tmp_path / name
        root.mkdir()
        (root / "d").write_text("{}")
        (root / "dvc.yaml").write_text(f"stages:\n  s:\n    cmd: {write}\n    deps: [d]\n"
                                       f"    {section}:\n      - r.json: {{cache: false}}\n")
        for cmd in (["git", "init", "-q"], [*dvc, "init", "-q"], [*dvc, "repro", "-q"]):
            subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
        return any((root / ".dvc/cache/runs").glob("*/*/*"))

    assert saved("metrics", "metric") and not saved("outs", "out")


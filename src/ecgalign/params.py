"""Load and validate params.yaml once, up front, so that every stage fails before doing any work.

Each entry of SCHEMA is (type, check): `check` is a tuple of allowed values, a (low, high) range for numbers
(inclusive; None for open), or None. Unknown keys, wrong types and impossible values raise ParamsError with the
dotted key and, for unknown keys, the valid ones.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import yaml

FOLDS = tuple(range(1, 11))

SCHEMA = {
    "data": {
        "source": (str, ("synthetic", "local", "physionet")),
        "path": (str, None),
        "version": (str, None),
        "base_url": (str, None),
        "download_dir": (str, None),
        "download_workers": (int, (1, 64)),
        "timeout": ((int, float), (0.1, 600)),
        "sampling_rate": (int, (100, 500)),
        "synthetic_records": (int, (20, 1_000_000)),
        "seed": (int, (0, None)),
    },
    "split": {
        "train_folds": (list, FOLDS),
        "val_folds": (list, FOLDS),
        "test_folds": (list, FOLDS),
    },
    "reports": {"on_error": (str, ("raise", "skip"))},
    "text": {
        "model": (str, None),
        "template": (str, None),
        "pooling": (str, ("mean", "cls")),
        "zero_likelihood": (str, ("keep", "drop")),
        "keep_weight": ((int, float), (0.0, 100.0)),
        "batch_size": (int, (1, 4096)),
        "max_length": (int, (8, 512)),
        "device": (str, ("auto", "cpu", "cuda")),
    },
    "ecg": {
        "encoder": (str, ("cnn1d", "xresnet1d")),
        "embed_dim": (int, (8, 4096)),
    },
    "train": {
        "loss": (str, ("cosine", "infonce", "cosine+infonce")),
        "temperature": ((int, float), (1e-4, 10.0)),
        "learn_temperature": (bool, None),
        "proj_dim": (int, (2, 4096)),
        "epochs": (int, (1, 10_000)),
        "batch_size": (int, (2, 65_536)),
        "lr": ((int, float), (1e-8, 10.0)),
        "weight_decay": ((int, float), (0.0, 10.0)),
        "warmup_epochs": ((int, float), (0, 10_000)),
        "seed": (int, (0, None)),
        "device": (str, ("auto", "cpu", "cuda")),
        "num_workers": (int, (0, 64)),
    },
    "evaluate": {
        "seed": (int, (0, None)),
        "label_fractions": (list, (1e-4, 1.0)),
        "probe_c_grid": (list, (1e-6, 1e6)),
        "bootstrap": (int, (10, 100_000)),
        "shuffles": (int, (1, 100)),
        "map_points": (int, (10, 1_000_000)),
    },
}


class ParamsError(ValueError):
    """A params.yaml value that no stage can run with."""


def _check(key: str, value, typ, check):
    types = typ if isinstance(typ, tuple) else (typ,)
    # bool is an int in Python: refuse True where a number is meant, and 1 where a bool is meant
    if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        hint = ""
        if isinstance(value, str) and float in types and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value):
            hint = f"; YAML reads {value} as text: write it with a dot and a signed exponent, e.g. 1.0e-3, or as 0.001"
        raise ParamsError(f"params.yaml: {key} must be {names}, got {value!r} ({type(value).__name__}){hint}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamsError(f"params.yaml: {key} = {value!r} is not a finite number")
    if typ is list and check != FOLDS:   # a list of numbers, each in the (low, high) range
        low, high = check
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high]
        if not value or bad:
            raise ParamsError(f"params.yaml: {key} must be a non-empty list of numbers in [{low}, {high}], "
                              f"got {value!r}")
        return
    if typ is list:
        if not value:
            raise ParamsError(f"params.yaml: {key} must name at least one fold")
        bad = [v for v in value if isinstance(v, bool) or v not in check]
        if bad:
            raise ParamsError(f"params.yaml: {key} has {bad}; strat_fold values are 1-10")
        return
    if isinstance(check, tuple) and len(check) == 2 and all(c is None or isinstance(c, (int, float)) for c in check) \
            and not isinstance(value, str):
        low, high = check
        if (low is not None and value < low) or (high is not None and value > high):
            raise ParamsError(f"params.yaml: {key} = {value!r} is outside [{low}, {high}]")
    elif check is not None and value not in check:
        raise ParamsError(f"params.yaml: {key} = {value!r} is not one of {', '.join(map(str, check))}")


def validate(raw: dict) -> dict:
    """Check a params dict against SCHEMA; returns it unchanged or raises ParamsError."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of sections")
    unknown = sorted(set(raw) - set(SCHEMA))
    if unknown:
        raise ParamsError(f"params.yaml: unknown section(s) {unknown}; valid sections: {', '.join(SCHEMA)}")
    for section, fields in SCHEMA.items():
        values = raw.get(section)
        if not isinstance(values, dict):
            raise ParamsError(f"params.yaml: section '{section}' is missing or not a mapping")
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ParamsError(f"params.yaml: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
                              f"valid keys in '{section}': {', '.join(fields)}")
        for key, (typ, check) in fields.items():
            if key not in values:
                raise ParamsError(f"params.yaml: {section}.{key} is missing")
            _check(f"{section}.{key}", values[key], typ, check)
    if raw["data"]["sampling_rate"] not in (100, 500):
        raise ParamsError(f"params.yaml: data.sampling_rate = {raw['data']['sampling_rate']} is not one of 100, 500")
    split = raw["split"]
    for a, b in (("train_folds", "val_folds"), ("train_folds", "test_folds"), ("val_folds", "test_folds")):
        common = sorted(set(split[a]) & set(split[b]))
        if common:
            raise ParamsError(f"params.yaml: split.{a} and split.{b} share fold(s) {common}")
    return raw


def _namespace(obj):
    if isinstance(obj, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in obj.items()})
    return obj


def load(path: str | Path = "params.yaml") -> SimpleNamespace:
    """params.yaml, validated, as nested attribute namespaces: `p.train.lr`."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run the stages from the repository root")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamsError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    return _namespace(validate(raw))

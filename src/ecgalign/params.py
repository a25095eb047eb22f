"""Load and validate params.yaml once, up front, so that every stage fails before doing any work.

Each section of params.yaml is one frozen dataclass below; `load()` returns them as `Params` (`p.train.lr`). A field's
annotation is its type: `str`, `int`, `bool`, `float` (an int or a float), `Literal[...]` (one of these values; the
choices of ecg.encoder and train.loss are defined here, ENCODERS and LOSSES, and imported by ecgalign.models and
ecgalign.losses, so that validating params never imports torch) or
`list[Fold]` (strat_folds); `X | None` admits null besides an X (split.pretrain_folds). A number's allowed range is the field's metadata, written `between(low, high)` (inclusive;
None for open). Unknown keys, missing keys, wrong types, impossible values and duplicate YAML keys raise ParamsError
naming the dotted key (or the line).

Adding a parameter is one field here plus its value in params.yaml. An old SCHEMA line converts as
    "name": (str, None)                    ->  name: str
    "name": (bool, None)                   ->  name: bool
    "name": (int, (1, 64))                 ->  name: int = between(1, 64)
    "name": ((int, float), (0.0, None))    ->  name: float = between(0.0, None)
    "name": (str, ("a", "b"))              ->  name: Literal["a", "b"]
    "name": (list, FOLDS)                  ->  name: list[Fold]
A list of numbers is `list[float] = between(low, high)`: non-empty, every value in the range, none twice.
A whole new section is one more dataclass and one more field of `Params`.
"""
from __future__ import annotations

import dataclasses
import math
import re
from types import UnionType
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union, get_args, get_origin, get_type_hints

import yaml

from .artifacts import PARAMS
from .errors import ParamsError
from .labels import TASKS

ENCODERS = ("cnn1d", "xresnet1d", "dual_attention")   # ecg.encoder: built by ecgalign.models
LOSSES = ("cosine", "infonce", "cosine+infonce", "supervised")  # train.loss: computed by ecgalign.losses
FOLDS = tuple(range(1, 11))
Fold = Literal[FOLDS]
Device = Literal["auto", "cpu", "cuda"]
PRECISIONS = ("auto", "fp32", "bf16")             # train.precision, finetune.precision: ecgalign.precision


def between(low: float | None, high: float | None):
    """A field whose number must lie in [low, high] (None: open on that side)."""
    return field(metadata={"range": (low, high)})


@dataclass(frozen=True)
class Data:
    source: Literal["synthetic", "local", "physionet"]
    path: str
    version: str
    base_url: str
    download_dir: str
    download_workers: int = between(1, 64)
    timeout: float = between(0.1, 600)
    sampling_rate: Literal[100, 500]
    synthetic_records: int = between(20, 1_000_000)
    seed: int = between(0, None)


@dataclass(frozen=True)
class Split:
    train_folds: list[Fold]
    val_folds: list[Fold]
    test_folds: list[Fold]
    pretrain_folds: list[Fold] | None = None

    def __post_init__(self):
        for a, b in (("train_folds", "val_folds"), ("train_folds", "test_folds"), ("val_folds", "test_folds")):
            common = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            if common:
                raise ParamsError(f"params.yaml: split.{a} and split.{b} share fold(s) {common}")
        if self.pretrain_folds is not None:
            outside = sorted(set(self.pretrain_folds) - set(self.train_folds))
            if outside:
                raise ParamsError(f"params.yaml: split.pretrain_folds has fold(s) {outside} that are not in "
                                  f"split.train_folds = {list(self.train_folds)}: the pretraining pool must be a "
                                  f"subset of the training folds (null: all of them)")

    @property
    def pretrain_pool(self) -> list[int]:
        """The folds the alignment (or the supervised control) is pretrained on: pretrain_folds, or train_folds."""
        return list(self.train_folds if self.pretrain_folds is None else self.pretrain_folds)

    @property
    def disjoint(self) -> bool:
        """True when pretraining uses only part of the training folds (the disjoint protocol)."""
        return set(self.pretrain_pool) != set(self.train_folds)

    @property
    def protocol(self) -> str:
        """'disjoint' (labels only from the training folds that pretraining did not see) or 'in-sample'."""
        return "disjoint" if self.disjoint else "in-sample"

    @property
    def label_folds(self) -> list[int]:
        """The folds linear probes and fine-tuning draw their labels from: train_folds minus pretrain_folds under
        the disjoint protocol, all train_folds otherwise (in-sample: pretraining has seen these records' reports)."""
        if not self.disjoint:
            return list(self.train_folds)
        return [f for f in self.train_folds if f not in set(self.pretrain_pool)]


@dataclass(frozen=True)
class Reports:
    on_error: Literal["raise", "skip"]


@dataclass(frozen=True)
class Text:
    model: str
    template: str
    pooling: Literal["mean", "cls"]
    zero_likelihood: Literal["keep", "drop"]
    keep_weight: float = between(0.0, 100.0)
    batch_size: int = between(1, 4096)
    max_length: int = between(8, 512)
    device: Device
    source: Literal["statements", "report", "both"]


@dataclass(frozen=True)
class Ecg:
    encoder: Literal[ENCODERS]
    embed_dim: int = between(8, 4096)
    width: int = between(1, 64)

    def __post_init__(self):
        if self.encoder == "dual_attention" and self.embed_dim % 2:
            raise ParamsError(f"params.yaml: ecg.embed_dim = {self.embed_dim}: the dual_attention encoder needs an "
                              f"even size (half from average, half from max pooling)")


@dataclass(frozen=True)
class Train:
    loss: Literal[LOSSES]
    temperature: float = between(1e-4, 10.0)
    learn_temperature: bool
    proj_dim: int = between(2, 4096)
    epochs: int = between(1, 10_000)
    patience: int = between(0, 10_000)
    batch_size: int = between(2, 65_536)
    lr: float = between(1e-8, 10.0)
    weight_decay: float = between(0.0, 10.0)
    warmup_epochs: float = between(0, 10_000)
    seed: int = between(0, None)
    device: Device
    num_workers: int = between(0, 64)
    threads: int = between(0, 1024)
    precision: Literal[PRECISIONS]
    recon_weight: float = between(0.0, 1e4)


@dataclass(frozen=True)
class Augment:
    """Training-batch augmentations (ecgalign.augment); 0 turns one off."""
    crop: float = between(0.0, 0.9)
    scale: float = between(0.0, 0.9)
    noise: float = between(0.0, 10.0)
    wander: float = between(0.0, 10.0)
    lead_dropout: float = between(0.0, 0.9)


@dataclass(frozen=True)
class Evaluate:
    seed: int = between(0, None)
    label_fractions: list[float] = between(1e-4, 1.0)
    probe_c_grid: list[float] = between(1e-6, 1e6)
    bootstrap: int = between(10, 100_000)
    shuffles: int = between(1, 100)
    map_points: int = between(10, 1_000_000)
    ci_level: float = between(0.5, 0.999)


@dataclass(frozen=True)
class Finetune:
    task: Literal[TASKS]
    label_fractions: list[float] = between(1e-4, 1.0)
    max_epochs: int = between(1, 10_000)
    patience: int = between(1, 10_000)
    min_steps_per_epoch: int = between(1, 1_000_000)
    head_warmup_epochs: int = between(0, 10_000)
    bn_records: int = between(0, 100_000_000)
    batch_size: int = between(2, 65_536)
    lr_grid: list[float] = between(1e-8, 10.0)
    weight_decay: float = between(0.0, 10.0)
    seed: int = between(0, None)
    outcomes: str
    on_error: Literal["raise", "skip"]
    precision: Literal[PRECISIONS]
    event_batches: bool
    head_init: Literal["probe", "zero"]
    batch_dropout: float = between(0.0, 0.9)


@dataclass(frozen=True)
class Params:
    """params.yaml: one field per section."""
    data: Data
    split: Split
    reports: Reports
    text: Text
    ecg: Ecg
    train: Train
    augment: Augment
    evaluate: Evaluate
    finetune: Finetune


def _types(hint) -> tuple[type, ...]:
    """The Python types a YAML value may have for this annotation (float admits int, as YAML writes 1 for 1.0)."""
    if get_origin(hint) is Literal:
        return tuple(dict.fromkeys(type(v) for v in get_args(hint)))
    if get_origin(hint) is list:
        return (list,)
    if get_origin(hint) is Union:
        return tuple(t for h in get_args(hint) for t in _types(h))
    return (int, float) if hint is float else (hint,)


def _check(key: str, value, hint, f: dataclasses.Field) -> None:
    if get_origin(hint) in (Union, UnionType) and type(None) in get_args(hint):   # `X | None`: null or X
        if value is None:
            return
        hint = next(h for h in get_args(hint) if h is not type(None))
    types = _types(hint)
    # bool is an int in Python: refuse True where a number is meant, and 1 where a bool is meant
    if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        hint_ = ""
        if isinstance(value, str) and float in types and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value):
            hint_ = (f"; YAML reads {value} as text: write it with a dot and a signed exponent, e.g. 1.0e-3, "
                     f"or as 0.001")
        raise ParamsError(f"params.yaml: {key} must be {names}, got {value!r} ({type(value).__name__}){hint_}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamsError(f"params.yaml: {key} = {value!r} is not a finite number")
    if get_origin(hint) is list and get_args(hint)[0] is float:
        low, high = f.metadata["range"]
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high]
        if not value or bad or len(set(value)) != len(value):
            raise ParamsError(f"params.yaml: {key} must be a non-empty list of numbers in [{low}, {high}], each "
                              f"once, got {value!r}")
    elif get_origin(hint) is list:
        if not value:
            raise ParamsError(f"params.yaml: {key} must name at least one fold")
        allowed = get_args(get_args(hint)[0])
        bad = [v for v in value if isinstance(v, bool) or v not in allowed]
        if bad:
            raise ParamsError(f"params.yaml: {key} has {bad}; strat_fold values are 1-10")
    elif get_origin(hint) is Literal:
        if value not in get_args(hint):
            raise ParamsError(f"params.yaml: {key} = {value!r} is not one of {', '.join(map(str, get_args(hint)))}")
    elif "range" in f.metadata:
        low, high = f.metadata["range"]
        if (low is not None and value < low) or (high is not None and value > high):
            raise ParamsError(f"params.yaml: {key} = {value!r} is outside [{low}, {high}]")


# Keys that were renamed: the old name -> what to write instead (a clear error rather than "unknown key").
RENAMED = {
    "finetune.epochs": "finetune.max_epochs (fine-tuning now stops early: see finetune.patience)",
    "finetune.lr": "finetune.lr_grid, a list (e.g. [0.001]; the lr is chosen on the validation fold)",
}


def _section(cls, name: str, values) -> object:
    """One section of params.yaml as its dataclass, every field checked."""
    if not isinstance(values, dict):
        raise ParamsError(f"params.yaml: section '{name}' is missing or not a mapping")
    renamed = [f"{name}.{k}" for k in values if f"{name}.{k}" in RENAMED]
    if renamed:
        raise ParamsError("params.yaml: " + "; ".join(f"{k} was renamed: write {RENAMED[k]}" for k in renamed))
    fields = dataclasses.fields(cls)
    unknown = sorted(set(values) - {f.name for f in fields})
    if unknown:
        raise ParamsError(f"params.yaml: unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}; "
                          f"valid keys in '{name}': {', '.join(f.name for f in fields)}")
    hints = get_type_hints(cls)
    for f in fields:
        if f.name not in values:
            raise ParamsError(f"params.yaml: {name}.{f.name} is missing")
        _check(f"{name}.{f.name}", values[f.name], hints[f.name], f)
    return cls(**values)


def parse(raw) -> Params:
    """A params dict (params.yaml as YAML reads it) as Params, or ParamsError naming the key."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of sections")
    sections = get_type_hints(Params)
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ParamsError(f"params.yaml: unknown section(s) {unknown}; valid sections: {', '.join(sections)}")
    return Params(**{name: _section(cls, name, raw.get(name)) for name, cls in sections.items()})


def validate(raw: dict) -> dict:
    """Check a params dict; returns it unchanged or raises ParamsError."""
    parse(raw)
    return raw


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (YAML itself keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        first = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first[key] + 1}): remove one of them",
                    key_node.start_mark)
            first.setdefault(key, key_node.start_mark.line)
        return super().construct_mapping(node, deep=deep)


def load(path: str | Path = PARAMS) -> Params:
    """params.yaml, validated, as one frozen dataclass per section: `p.train.lr`."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run the stages from the repository root")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.load(f, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamsError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    return parse(raw)

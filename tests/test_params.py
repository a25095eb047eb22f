"""params.yaml validation: one place, before any work, with messages that name the key."""
import copy
import os
import subprocess
import sys

import pytest
import yaml

from ecgalign import params
from ecgalign.params import ParamsError, load, validate
from conftest import REPO

BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid():
    p = load(REPO / "params.yaml")
    assert p.data.source == "synthetic" and p.split.test_folds == [10]


def _with(section, key, value):
    raw = copy.deepcopy(BASE)
    raw[section][key] = value
    return raw


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "epochs", 0, "train.epochs = 0 is outside [1, 10000]"),
    ("train", "batch_size", -1, "train.batch_size = -1 is outside"),
    ("train", "lr", "fast", "train.lr must be int or float, got 'fast'"),
    ("train", "learn_temperature", 1, "train.learn_temperature must be bool"),
    ("train", "epochs", True, "train.epochs must be int, got True"),
    ("data", "sampling_rate", 250, "data.sampling_rate = 250 is not one of 100, 500"),
    ("data", "source", "s3", "data.source = 's3' is not one of synthetic, local, physionet"),
    ("ecg", "encoder", "resnet9000", "ecg.encoder = 'resnet9000' is not one of cnn1d, xresnet1d, dual_attention"),
    ("train", "recon_weight", -1, "train.recon_weight = -1 is outside [0.0, 10000.0]"),
    ("train", "recon_weight", "yes", "train.recon_weight must be int or float, got 'yes'"),
    ("train", "loss", "mse", "train.loss = 'mse' is not one of cosine, infonce, cosine+infonce"),
    ("text", "source", "tweets", "text.source = 'tweets' is not one of statements, report, both"),
    ("split", "test_folds", [11], "split.test_folds has [11]; strat_fold values are 1-10"),
    ("split", "test_folds", [], "split.test_folds must name at least one fold"),
    ("split", "val_folds", [8], "split.train_folds and split.val_folds share fold(s) [8]"),
])
def test_bad_values_are_named(section, key, value, message):
    with pytest.raises(ParamsError) as e:
        validate(_with(section, key, value))
    assert message in str(e.value)


def test_dual_attention_needs_an_even_embedding():
    raw = _with("ecg", "encoder", "dual_attention")
    raw["ecg"]["embed_dim"] = 255
    with pytest.raises(ParamsError, match="ecg.embed_dim = 255: the dual_attention encoder needs an even size"):
        validate(raw)


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ParamsError, match=r"unknown key\(s\) train.epoch; valid keys in 'train': loss, temperature"):
        validate(_with("train", "epoch", 3))


def test_missing_key_and_missing_file(tmp_path):
    raw = copy.deepcopy(BASE)
    del raw["text"]["pooling"]
    with pytest.raises(ParamsError, match="text.pooling is missing"):
        validate(raw)
    with pytest.raises(ParamsError, match="not found: run the stages from the repository root"):
        load(tmp_path / "params.yaml")


def test_duplicate_key_names_the_key_and_both_lines(tmp_path):
    text = (REPO / "params.yaml").read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  lr: ")) + 1
    (tmp_path / "params.yaml").write_text(text.replace("\n  lr: ", "\n  lr: 0.5\n  lr: ", 1))
    with pytest.raises(ParamsError) as e:
        load(tmp_path / "params.yaml")
    assert f"line {first + 1}, column 3" in str(e.value)
    assert f"duplicate key 'lr' (first on line {first})" in str(e.value)


def test_params_are_frozen_dataclasses_with_attribute_access():
    import dataclasses
    p = load(REPO / "params.yaml")
    assert p.train.lr == BASE["train"]["lr"] and vars(p.train) == BASE["train"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.lr = 1.0


def test_evaluate_lists_of_numbers_are_checked():
    import copy

    import yaml

    from ecgalign import params as pm

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    pm.validate(copy.deepcopy(raw))
    for bad in ([], [0.0], [0.5, "x"], [True], [1.5]):
        r = copy.deepcopy(raw)
        r["evaluate"]["label_fractions"] = bad
        with pytest.raises(pm.ParamsError, match=r"evaluate\.label_fractions must be a non-empty list of numbers"):
            pm.validate(r)


def test_validating_params_does_not_import_torch():
    """Every stage loads params first; the choices of ecg.encoder and train.loss live in params, not in the torch
    modules that use them, so params.yaml is validated without importing torch."""
    code = ("import sys, ecgalign.params as p; p.load(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m in "
            "('ecgalign.models', 'ecgalign.losses')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_models_and_losses_use_the_choices_params_validates():
    from ecgalign import losses, models
    assert models.ENCODERS is params.ENCODERS and losses.LOSSES is params.LOSSES

"""ECG augmentations: shapes, zero strength = identity, determinism, and each op doing what its docstring says."""
import math

import pytest
import torch

from ecgalign.augment import FIELDS, active, augment, check, generator

ALL_ON = {"crop": 0.2, "scale": 0.3, "noise": 0.05, "wander": 0.2, "lead_dropout": 0.25}


def batch(B=32, L=12, T=1000, seed=0):
    return torch.randn(B, L, T, generator=torch.Generator().manual_seed(seed))


def only(name, value):
    return {k: (value if k == name else 0.0) for k in FIELDS}


def test_zero_strength_is_the_identity():
    x = batch()
    for cfg in ({}, {k: 0.0 for k in FIELDS}, {"noise": 0}):
        assert not active(cfg)
        assert augment(x, cfg, generator(0, 1)) is x
    assert active({"noise": 0.01})


def test_shapes_and_determinism():
    x = batch()
    y = augment(x, ALL_ON, generator(0, 3))
    assert y.shape == (32, 12, 800) and y.dtype == torch.float32
    assert torch.equal(y, augment(x, ALL_ON, generator(0, 3)))       # same seed, epoch, rank: same batch
    for other in (generator(0, 4), generator(1, 3), generator(0, 3, rank=1)):
        assert not torch.equal(y, augment(x, ALL_ON, other))
    assert torch.equal(x, batch())                                    # the input is left untouched
    for name in FIELDS:                                               # every op alone changes the batch
        assert not torch.equal(augment(x, only(name, 0.1), generator(0, 1)), x), name


def test_scale_multiplies_each_record_by_one_factor():
    x = batch(B=200, T=50).abs() + 0.5
    ratio = augment(x, only("scale", 0.3), generator(0, 1)) / x
    per_record = ratio[:, 0, 0]
    torch.testing.assert_close(ratio, per_record[:, None, None].expand_as(ratio))   # all leads and samples alike
    assert 0.7 <= per_record.min() < 0.75 and 1.25 < per_record.max() <= 1.3


def test_noise_is_gaussian_of_the_given_sd():
    x = batch(B=64)
    d = augment(x, only("noise", 0.05), generator(0, 1)) - x
    assert d.std().item() == pytest.approx(0.05, rel=0.01) and abs(d.mean().item()) < 1e-3


def test_wander_is_a_slow_sine_bounded_by_its_amplitude():
    T = 1000
    x = batch(B=64, T=T)
    d = augment(x, only("wander", 0.2), generator(0, 1)) - x
    assert d.abs().max().item() <= 0.2 + 1e-6 and d.abs().max().item() > 0.15
    # a sine of at most 5 cycles per record and amplitude 0.2: slope at most 0.2 * 2 pi * 5 / T per sample
    assert d.diff(dim=-1).abs().max().item() <= 0.2 * 2 * math.pi * 5 / T * 1.01
    assert not torch.allclose(d[:, 0], d[:, 1])                     # leads get their own phase and amplitude


def test_lead_dropout_blanks_whole_leads_to_the_fill():
    x = batch(B=400, T=20)
    fill = torch.arange(12, dtype=torch.float32)
    y = augment(x, only("lead_dropout", 0.3), generator(0, 1), fill=fill)
    dropped = (y == fill[None, :, None]).all(dim=-1)
    kept = (y == x).all(dim=-1)
    assert torch.all(dropped ^ kept)                                 # each lead either blanked or untouched
    assert 0.27 < dropped.float().mean().item() < 0.33


def test_crop_keeps_a_random_window_of_each_record():
    T = 100
    x = torch.arange(T, dtype=torch.float32).expand(64, 12, T)
    y = augment(x, only("crop", 0.25), generator(0, 1))
    assert y.shape == (64, 12, 75)
    start = y[:, :, 0]
    assert torch.equal(y, start[..., None] + torch.arange(75.0))    # contiguous windows
    assert torch.equal(start, start[:, :1].expand_as(start))         # all leads of a record cut alike
    assert start.min() >= 0 and start.max() <= T - 75 and len(start[:, 0].unique()) > 10


def test_check_names_bad_settings():
    assert check({"noise": 1}) == {"crop": 0.0, "scale": 0.0, "noise": 1.0, "wander": 0.0, "lead_dropout": 0.0}
    with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['jitter'\]; known: crop, scale, noise"):
        check({"jitter": 0.1})
    with pytest.raises(ValueError, match=r"augment.crop = 1.0 is outside \[0, 1.0\)"):
        check({"crop": 1.0})

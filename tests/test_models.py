"""Encoders, projection heads, checkpoints."""
import math

import numpy as np
import pytest
import torch

from ecgalign.models import CheckpointError, build_model, encode_all, load_model, save_checkpoint


@pytest.mark.parametrize("encoder", ["cnn1d", "xresnet1d", "dual_attention"])
@pytest.mark.parametrize("T", [1000, 5000])
def test_shapes(encoder, T):
    torch.manual_seed(0)
    model = build_model(encoder, embed_dim=32, text_dim=24, proj_dim=16, length=T).eval()
    x, t = torch.randn(2, 12, T), torch.randn(2, 24)
    with torch.no_grad():
        z = model.encode_ecg(x)
        e_ecg, e_text = model(x, t)
    assert z.shape == (2, 32) and e_ecg.shape == (2, 16) and e_text.shape == (2, 16)
    assert torch.allclose(model.project_ecg(z), e_ecg)


def test_normalisation_lives_in_the_model():
    mean, std = np.arange(12, dtype=np.float32), np.full(12, 2.0, dtype=np.float32)
    torch.manual_seed(0)
    model = build_model("cnn1d", 16, 8, 4, lead_mean=mean, lead_std=std).eval()
    x = torch.randn(3, 12, 1000)
    with torch.no_grad():
        expected = model.encoder((x - torch.tensor(mean)[:, None]) / 2.0)
        assert torch.allclose(model.encode_ecg(x), expected)
    with pytest.raises(ValueError, match="lead_std has non-finite or non-positive values"):
        build_model("cnn1d", 16, 8, 4, lead_std=np.zeros(12))
    with pytest.raises(ValueError, match="lead_mean must have 12 values"):
        build_model("cnn1d", 16, 8, 4, lead_mean=np.zeros(8))


def test_temperature():
    model = build_model("cnn1d", 16, 8, 4, temperature=0.07)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07)) and model.logit_scale.requires_grad
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert not build_model("cnn1d", 16, 8, 4, learn_temperature=False).logit_scale.requires_grad
    assert build_model("cnn1d", 16, 8, 4, temperature=0.001).scale().item() == pytest.approx(100.0)  # CLIP's clamp


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = build_model("cnn1d", 16, 8, 4, temperature=0.05, lead_mean=np.ones(12), lead_std=np.full(12, 3.0))
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, epoch=3)
    loaded = load_model(path, encoder="cnn1d")
    assert loaded.config == model.config and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert torch.load(path, weights_only=True)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind

    with pytest.raises(CheckpointError, match=r"model\.pt: checkpoint holds a 'cnn1d' encoder, but ecg.encoder = "
                                              r"'xresnet1d'"):
        load_model(path, encoder="xresnet1d")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"corrupt\.pt: not a readable checkpoint"):
        load_model(corrupt)
    with pytest.raises(CheckpointError, match=r"absent\.pt: checkpoint not found"):
        load_model(tmp_path / "absent.pt")
    other = tmp_path / "other.pt"
    torch.save({"config": {**model.config, "proj_dim": 5}, "state_dict": model.state_dict()}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt: the weights do not fit the stored config"):
        load_model(other)


def test_encode_all_matches_the_model_batched_over_a_memmap(tmp_path):
    torch.manual_seed(0)
    model = build_model("cnn1d", 16, 8, 4).eval()
    x = np.random.default_rng(0).standard_normal((7, 12, 1000)).astype(np.float32)
    np.save(tmp_path / "signals.npy", x)
    signals = np.load(tmp_path / "signals.npy", mmap_mode="r")
    z, e = encode_all(model, signals, batch_size=3)
    with torch.no_grad():
        z_ref = model.encode_ecg(torch.from_numpy(x))
        e_ref = model.project_ecg(z_ref)
    assert z.dtype == np.float32 and z.shape == (7, 16) and e.shape == (7, 4)
    np.testing.assert_allclose(z, z_ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(e, e_ref.numpy(), atol=1e-5)
    z2, _ = encode_all(model, signals, batch_size=2, rows=[5, 1])
    np.testing.assert_allclose(z2, z[[5, 1]], atol=1e-5)


def test_the_same_weights_give_byte_identical_checkpoints(tmp_path):
    """The file name must not leak into the checkpoint: DVC hashes it, so reruns would look like changes."""
    torch.manual_seed(0)
    model = build_model("cnn1d", embed_dim=8, text_dim=4, proj_dim=4)
    save_checkpoint(tmp_path / "a.pt", model, epoch=1)
    save_checkpoint(tmp_path / "other-name.pt", model, epoch=1)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "other-name.pt").read_bytes()


@pytest.mark.parametrize("device, kind", [("cpu", "GlobalBatchNorm"), ("cuda", "SyncBatchNorm")])
def test_sync_batchnorm_swaps_every_batchnorm_keeping_the_tensors(device, kind):
    """Conversion only (no GPU needed): torch's SyncBatchNorm for CUDA, GlobalBatchNorm (CPU/gloo) otherwise; the
    same parameter and buffer tensors, the same state_dict keys; on one process it computes what BatchNorm does."""
    from ecgalign.models import sync_batchnorm
    torch.manual_seed(0)
    model = build_model("xresnet1d", 16, 8, 4)
    plain = build_model("xresnet1d", 16, 8, 4)
    plain.load_state_dict(model.state_dict())
    n_bn = sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    weight = model.encoder.stem[0][1].weight
    converted = sync_batchnorm(model, device)
    assert converted is model and converted.encoder.stem[0][1].weight is weight
    assert sum(type(m).__name__ == kind for m in model.modules()) == n_bn > 0
    assert not any(type(m) is torch.nn.BatchNorm1d for m in model.modules())
    assert list(model.state_dict()) == list(plain.state_dict())
    if device == "cpu":   # training mode, one process: batch statistics and running averages as BatchNorm1d's
        x, t = torch.randn(4, 12, 500), torch.randn(4, 8)
        torch.testing.assert_close(model(x, t), plain(x, t))
        for k, v in plain.state_dict().items():
            torch.testing.assert_close(model.state_dict()[k], v, msg=k)


@pytest.mark.parametrize("T", [1000, 5000])
def test_dual_attention_exposes_its_attention_and_rows_sum_to_one(T):
    torch.manual_seed(0)
    model = build_model("dual_attention", 32, 8, 4, length=T).eval()
    assert model.attention() is None                      # nothing before the first forward
    with torch.no_grad():
        model.encode_ecg(torch.randn(3, 12, T))
    att = model.attention()
    assert att["leads"].shape == (3, 12, 12)
    assert att["time"].shape == (3, 12, 32, 32)          # 1,000 -> 1,024 and 5,000 -> /5 -> 1,024: 32 tokens
    for a in att.values():
        assert (a >= 0).all()
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    assert build_model("cnn1d", 16, 8, 4).attention() is None


def test_dual_attention_keeps_leads_apart_until_the_cross_lead_attention():
    """The twelve temporal attention blocks have their own weights: changing lead 3's weights changes lead 3's
    attention map only."""
    torch.manual_seed(0)
    model = build_model("dual_attention", 32, 8, 4, length=1000).eval()
    x = torch.randn(2, 12, 1000)
    with torch.no_grad():
        model.encode_ecg(x)
        before = model.attention()["time"].clone()
        model.encoder.time_attention.qkv.weight[3].mul_(3.0)
        model.encode_ecg(x)
        after = model.attention()["time"]
    changed = [lead for lead in range(12) if not torch.equal(before[:, lead], after[:, lead])]
    assert changed == [3]


@pytest.mark.parametrize("encoder", ["cnn1d", "dual_attention"])
def test_reconstruction_error_per_record_and_lead(encoder):
    torch.manual_seed(0)
    model = build_model(encoder, 32, 8, 4, length=1000, reconstruct=True).eval()
    x, t = torch.randn(5, 12, 1000), torch.randn(5, 8)
    with torch.no_grad():
        e_ecg, e_text, err = model(x, t, reconstruct=True)
        rec = model.decoder(model.encode_ecg(x))
        z, e, err_all = encode_all(model, x.numpy(), batch_size=2, reconstruction=True)
    assert rec.shape == x.shape and err.shape == (5, 12)
    torch.testing.assert_close(err, ((rec - model.normalise(x)) ** 2).mean(-1))
    np.testing.assert_allclose(err_all, err.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e, e_ecg.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(CheckpointError, match="no decoder"):
        build_model(encoder, 32, 8, 4, length=1000).reconstruction_error(x)


def test_a_model_without_the_term_has_no_decoder_and_the_old_config():
    torch.manual_seed(0)
    plain = build_model("cnn1d", 16, 8, 4)
    assert plain.decoder is None and "length" not in plain.config and "reconstruct" not in plain.config
    with pytest.raises(ValueError, match="needs the signal length"):
        build_model("dual_attention", 16, 8, 4)


def test_dual_attention_and_the_decoder_take_cropped_records():
    """augment.crop shortens training batches: the network pads them to its length, the decoder's error is over the
    samples given; a longer record than the network was built for is refused."""
    torch.manual_seed(0)
    model = build_model("dual_attention", 32, 8, 4, length=1000, reconstruct=True).eval()
    with torch.no_grad():
        e, _, err = model(torch.randn(2, 12, 800), torch.randn(2, 8), reconstruct=True)
    assert e.shape == (2, 4) and err.shape == (2, 12)
    with pytest.raises(ValueError, match="longer than the 1000"):
        model.encode_ecg(torch.randn(1, 12, 1100))

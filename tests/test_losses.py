"""Losses against hand computations."""
import math

import numpy as np
import pytest
import torch

from ecgalign.losses import alignment_objective, cosine_alignment_loss, infonce_loss, soft_targets

E_ECG = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
E_TEXT = torch.tensor([[1.0, 1.0], [0.0, 2.0]])


def numpy_infonce(a, b, scale, target):
    """Symmetric cross-entropy with (soft) targets, written out with numpy."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    logits = scale * a @ b.T

    def ce(lg):
        log_softmax = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
        return -(target * log_softmax).sum(axis=1).mean()
    return (ce(logits) + ce(logits.T)) / 2


def test_cosine_loss_by_hand():
    # cos(row 0) = 1/sqrt(2), cos(row 1) = 1  ->  mean(1 - cos) = (1 - 0.70711) / 2
    assert cosine_alignment_loss(E_ECG, E_TEXT).item() == pytest.approx((1 - 1 / math.sqrt(2)) / 2, abs=1e-6)


def test_infonce_2x2_by_hand():
    # logits = 10 * [[c, 0], [c, 1]] with c = 1/sqrt(2); row 0 targets column 0, row 1 column 1
    c, s = 1 / math.sqrt(2), 10.0
    ecg_to_text = (-(s * c - math.log(math.exp(s * c) + 1)) - (s - math.log(math.exp(s * c) + math.exp(s)))) / 2
    text_to_ecg = (-(s * c - math.log(2 * math.exp(s * c))) - (s - math.log(1 + math.exp(s)))) / 2
    expected = (ecg_to_text + text_to_ecg) / 2
    assert infonce_loss(E_ECG, E_TEXT, s).item() == pytest.approx(expected, abs=1e-5)
    assert expected == pytest.approx(numpy_infonce(E_ECG.numpy(), E_TEXT.numpy(), s, np.eye(2)), abs=1e-6)


def test_collapsed_batch():
    """All embeddings equal: cosine loss 0 (the trivial minimum), InfoNCE log(B): nothing is told apart."""
    e = torch.ones(8, 4)
    assert cosine_alignment_loss(e, 3 * e).item() == pytest.approx(0.0, abs=1e-6)
    assert infonce_loss(e, 3 * e, 14.3).item() == pytest.approx(math.log(8), abs=1e-5)
    assert infonce_loss(e, e, 14.3, torch.zeros(8, dtype=torch.long)).item() == pytest.approx(math.log(8), abs=1e-5)


def test_soft_targets_treat_identical_reports_as_positives():
    ids = torch.tensor([5, 5, 2])
    assert torch.equal(soft_targets(ids), torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    expected = numpy_infonce(a.numpy(), b.numpy(), 7.0, soft_targets(ids).numpy())
    assert infonce_loss(a, b, 7.0, ids).item() == pytest.approx(expected, abs=1e-5)
    # all reports distinct: exactly CLIP's identity targets
    assert infonce_loss(a, b, 7.0, torch.tensor([0, 1, 2])).item() == pytest.approx(infonce_loss(a, b, 7.0).item())
    # with duplicates the soft loss differs from plain CLIP (which would call record 1 a negative of record 0)
    assert infonce_loss(a, b, 7.0, ids).item() != pytest.approx(infonce_loss(a, b, 7.0).item(), abs=1e-3)


def test_objective_kinds_and_gradients():
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    cos, nce = cosine_alignment_loss(a, b), infonce_loss(a, b, log_scale.exp())
    assert alignment_objective("cosine", a, b, log_scale.exp()).item() == pytest.approx(cos.item())
    assert alignment_objective("infonce", a, b, log_scale.exp()).item() == pytest.approx(nce.item())
    both = alignment_objective("cosine+infonce", a, b, log_scale.exp())
    assert both.item() == pytest.approx(cos.item() + nce.item(), abs=1e-6)
    both.backward()
    assert a.grad.abs().sum() > 0 and log_scale.grad is not None and log_scale.grad != 0
    with pytest.raises(ValueError, match="train.loss = 'mse' is not one of cosine, infonce, cosine\\+infonce"):
        alignment_objective("mse", a, b, 1.0)


GATHER_CHECK = """
from pathlib import Path
import torch, torch.distributed as dist
from ecgalign.losses import alignment_objective
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
x, t, ids = torch.randn(8, 5), torch.randn(8, 3), torch.tensor([0, 1, 1, 2, 3, 3, 3, 4])
net = torch.nn.Linear(5, 3)
full = torch.nn.Linear(5, 3)
full.load_state_dict(net.state_dict())
ddp = torch.nn.parallel.DistributedDataParallel(net)
shard = slice(4 * rank, 4 * rank + 4)
for kind in ("infonce", "cosine+infonce"):
    ddp.zero_grad(), full.zero_grad()
    local = alignment_objective(kind, ddp(x[shard]), t[shard], 10.0, ids[shard])
    local.backward()
    reference = alignment_objective(kind, full(x), t, 10.0, ids, gather=False)  # the whole batch, no gathering
    reference.backward()
    if kind == "infonce":
        assert torch.allclose(local, reference), kind
    assert torch.allclose(net.weight.grad, full.weight.grad, atol=1e-6), kind
Path(__file__).with_name(f"ok{rank}").touch()  # a file per rank: their stdout lines interleave
"""


def test_gathered_infonce_gives_the_full_batch_gradient_under_ddp(tmp_path):
    """2 gloo processes with half a batch each: the DDP gradient equals the one-process gradient of the batch."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "check.py"
    script.write_text(GATHER_CHECK)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "ok0").exists() and (tmp_path / "ok1").exists(), run.stdout[-3000:]

"""Alignment losses (open_clip style: small functions, the distributed gathering beside them).

- cosine_alignment_loss: mean(1 - cos(e_ecg, e_text)), the reference code's loss. It has no negatives, so it has a
  trivial minimum (every embedding on one direction); it is still logged for every run as the comparable figure.
- infonce_loss: CLIP's symmetric cross-entropy over the cosine-similarity logits of a batch (MERL uses the same).
  PTB-XL repeats reports a lot (in the synthetic default and in PTB-XL, "normal ECG + sinus rhythm" is a large share
  of a batch), and plain CLIP would push two records with the *same* report apart as negatives. Given `text_ids`
  (equal ids = identical text embedding), the targets are soft: each ECG's target is spread uniformly over every
  text in the batch identical to its own (and symmetrically for texts). With all reports distinct this is exactly
  CLIP's identity target; with all reports identical the loss is log(B) whatever the embeddings, as it should be:
  there is nothing to tell apart.
- alignment_objective: "cosine" | "infonce" | "cosine+infonce" (the sum) | "supervised" (the control: no text;
  multi-label BCE of the model's class logits against the record's SCP codes, see supervised_loss).

`logit_scale` here is the multiplier 1/temperature (the model's `scale()`, i.e. exp of its log-space parameter),
as in open_clip's ClipLoss.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .params import LOSSES

SUPERVISED = "supervised"   # the supervised control: the same encoder trained on the codes, no text


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over records and codes of the binary cross-entropy of the class logits against the 0/1 code labels."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def alignment_monitor(kind: str, e_ecg: torch.Tensor, e_text: torch.Tensor) -> float:
    """The comparable alignment figure logged beside the objective: mean 1 - cos for the alignment losses; NaN for
    the supervised control, which has no shared space (its "e_ecg" are class logits, its "e_text" the labels)."""
    if kind == SUPERVISED:
        return float("nan")
    return float(cosine_alignment_loss(e_ecg, e_text))


def cosine_alignment_loss(e_ecg: torch.Tensor, e_text: torch.Tensor) -> torch.Tensor:
    """mean over the batch of 1 - cos(e_ecg_i, e_text_i)."""
    return (1.0 - F.cosine_similarity(e_ecg.float(), e_text.float(), dim=-1, eps=1e-8)).mean()


def soft_targets(text_ids: torch.Tensor) -> torch.Tensor:
    """[B, B] rows summing to 1: uniform over the batch entries whose text id equals the row's."""
    same = (text_ids[:, None] == text_ids[None, :]).float()
    return same / same.sum(dim=1, keepdim=True)


def infonce_loss(e_ecg: torch.Tensor, e_text: torch.Tensor, logit_scale, text_ids: torch.Tensor | None = None):
    """Symmetric InfoNCE: (CE(ecg -> text) + CE(text -> ecg)) / 2 over logit_scale * cos(e_ecg_i, e_text_j).
    Hard identity targets (CLIP) without text_ids, soft targets over identical texts with them."""
    a = F.normalize(e_ecg.float(), dim=-1)
    b = F.normalize(e_text.float(), dim=-1)
    logits = logit_scale * a @ b.T
    if text_ids is None:
        target = torch.arange(len(a), device=a.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    target = soft_targets(text_ids.to(a.device))  # symmetric: the same target serves both directions
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def gather_features(e_ecg: torch.Tensor, e_text: torch.Tensor, text_ids: torch.Tensor | None = None):
    """All ranks' features, concatenated in rank order (open_clip's gather_features with gather_with_grad):
    torch.distributed.nn.all_gather keeps the gradient path to this rank's shard. A no-op on one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return e_ecg, e_text, text_ids
    import torch.distributed.nn

    e_ecg = torch.cat(torch.distributed.nn.all_gather(e_ecg.contiguous()))
    e_text = torch.cat(torch.distributed.nn.all_gather(e_text.contiguous()))
    if text_ids is not None:
        parts = [torch.empty_like(text_ids) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, text_ids.contiguous())
        text_ids = torch.cat(parts)
    return e_ecg, e_text, text_ids


def alignment_objective(kind: str, e_ecg, e_text, logit_scale, text_ids=None, gather: bool = True):
    """The training objective `train.loss`. InfoNCE runs over the features of all ranks when `gather` and DDP is
    running (every rank computes the same global loss; DDP's gradient averaging then gives the global gradient);
    the cosine term is per record and stays local."""
    if kind not in LOSSES:
        raise ValueError(f"train.loss = {kind!r} is not one of {', '.join(LOSSES)}")
    if kind == SUPERVISED:   # e_ecg: class logits, e_text: the 0/1 labels (per record: no gathering needed)
        return supervised_loss(e_ecg, e_text)
    total = 0.0
    if "cosine" in kind:
        total = total + cosine_alignment_loss(e_ecg, e_text)
    if "infonce" in kind:
        if gather:
            e_ecg, e_text, text_ids = gather_features(e_ecg, e_text, text_ids)
        total = total + infonce_loss(e_ecg, e_text, logit_scale, text_ids)
    return total

"""CLIP's symmetric contrastive loss, and the one function that talks to the other workers.

Each worker holds B (image, caption) pairs. The logits of its B rows are taken against the
image and text features of ALL workers (world_size * B columns), so every pair competes with the
global batch, yet each worker only computes a [B, world_size * B] block. Its pairs sit on the
diagonal of its own block: labels = arange(B) + B * rank.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each worker the sum over workers of the gradient w.r.t. its rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:                 # [B, E] -> [world * B, E]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = slice(dist.get_rank() * x.shape[0], (dist.get_rank() + 1) * x.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:             # [world * B, E] -> [B, E]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)             # gloo has no reduce_scatter; B x E is small next to the model
        return grad[ctx.rows]


def gather_features(image_features: torch.Tensor, text_features: torch.Tensor):
    """All workers' features, concatenated in rank order ([world * B, E] each); identity on one process.

    This is the only collective in the loss; every worker must pass the same B. The gather is
    differentiable: in backward each worker receives the SUM over workers of the gradients of
    their losses w.r.t. its own features, so its features also get the gradient of being the
    negatives in the other workers' rows. (Gathering without grad and putting the local tensor
    back in its slot, open_clip's default, drops those terms when every worker computes only its
    local rows.) DDP then averages parameter gradients over workers, which makes the step exactly
    the gradient of the loss over the global batch.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return image_features, text_features
    return _GatherWithGrad.apply(image_features), _GatherWithGrad.apply(text_features)


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
              rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """Mean of the image->text and text->image cross-entropies over this worker's rows.

    `image_features`, `text_features`: the local [B, E] L2-normalized features; `logit_scale` is the
    learned log temperature (the exp is taken here). With world_size > 1, call it inside an
    initialized process group (gather_features does the communication).
    """
    all_image, all_text = gather_features(image_features, text_features) if world_size > 1 else (
        image_features, text_features)
    scale = logit_scale.exp()
    logits_per_image = scale * image_features @ all_text.T             # [B, world*B]
    logits_per_text = scale * text_features @ all_image.T              # [B, world*B]
    B = image_features.shape[0]
    labels = torch.arange(B, device=image_features.device) + B * rank
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2

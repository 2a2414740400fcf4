"""Gradients of the loss, per example and summed over examples, in evaluation mode: how hard
each training point pulls on the weights (chapter 08, after Arpit et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

from .models import evaluation_mode

__all__ = ["GRADIENT_MEMORY", "per_example_gradient_norms", "summed_gradient"]

GRADIENT_MEMORY = 2**29
"""Bytes the per-example gradients of one batch may take (:func:`per_example_gradient_norms`)."""


def per_example_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Norm of each example's own loss gradient with respect to all the model's parameters.

    The model is evaluated as it is in evaluation mode (no dropout, running batch-norm
    statistics), so each gradient depends on its example alone; ``torch.func`` computes a batch
    of them at once (``vmap`` over ``grad`` of the cross-entropy of one example).

    Parameters
    ----------
    model : nn.Module
    x : Tensor of shape (n, ...)
    y : Tensor of shape (n,), int64
        The labels whose loss is differentiated (the ones trained on, corrupted or not).
    batch_size : int, optional
        Examples per ``vmap`` call; default as many as fit :data:`GRADIENT_MEMORY` (each example
        holds a gradient the size of the model).

    Returns
    -------
    Tensor of shape (n,), float32, on the CPU
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}.")
    if batch_size is None:
        batch_size = max(1, GRADIENT_MEMORY // (4 * sum(p.numel() for p in model.parameters())))
    device = next(model.parameters()).device
    parameters = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def loss(params, example, label):
        logits = torch.func.functional_call(model, (params, buffers), (example.unsqueeze(0),))
        return nn.functional.cross_entropy(logits, label.unsqueeze(0))

    gradients = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    norms = []
    with evaluation_mode(model):
        for i in range(0, len(x), batch_size):
            batch = gradients(parameters, x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
            norms.append(torch.stack([g.flatten(1).square().sum(dim=1) for g in batch.values()]).sum(dim=0).sqrt().cpu())
    return torch.cat(norms)


def summed_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Gradient of the cross-entropy summed over the examples, with respect to all the model's
    parameters, in evaluation mode (as :func:`per_example_gradient_norms`).

    Parameters
    ----------
    model : nn.Module
    x : Tensor of shape (n, ...)
    y : Tensor of shape (n,), int64
    batch_size : int
        Examples per forward pass (the sum is accumulated over them).

    Returns
    -------
    Tensor of shape (n_parameters,), float32, on the CPU
        All parameters' gradients flattened in ``named_parameters`` order; zeros for ``n = 0``.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}.")
    device = next(model.parameters()).device
    parameters = list(model.parameters())
    total = [torch.zeros_like(p) for p in parameters]
    with evaluation_mode(model):
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size].to(device))
            loss = nn.functional.cross_entropy(logits, y[i : i + batch_size].to(device), reduction="sum")
            for sum_, gradient in zip(total, torch.autograd.grad(loss, parameters)):
                sum_ += gradient
    return torch.cat([g.flatten() for g in total]).cpu()

"""Masked training: SGD (momentum) or Adam with a schedule, where pruned weights never move.

Pruned weights get no gradient and no momentum: the gradient is multiplied by the mask before
every optimizer step, and the mask is re-applied to the weights after it (weight decay and Adam's
epsilon cannot revive a zero then). With a zero gradient the momentum / Adam moments of pruned
weights stay exactly zero (checked in the tests).

Randomness: the data order of every epoch comes from a generator seeded with
``substream(seed, ORDER)``; augmentation from ``substream(seed, AUGMENT)``. The initial weights
are the caller's (see ``models.init_model``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from .. import pruning
from ..config import Model
from ..seeding import AUGMENT, ORDER, substream
from .data import Dataset
from .models import prunable

# Streams of a run's seed used here, beyond ticketlab.seeding's DATA/START/TEST/PRUNE.



class TrainSpec(Model):
    """One training run at one pruning level."""

    optimizer: Annotated[Literal["sgd", "adam"], Field(description="sgd (with momentum) or adam")] = "sgd"
    lr: Annotated[float, Field(gt=0, description="peak learning rate (> 0)")] = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1, description="SGD momentum in [0, 1)")] = 0.9
    weight_decay: Annotated[float, Field(ge=0, description="L2 weight decay (>= 0)")] = 0.0
    batch_size: Annotated[int, Field(ge=1, description="mini-batch size (>= 1)")] = 64
    epochs: Annotated[int, Field(ge=1, description="epochs per level (>= 1)")] = 10
    schedule: Annotated[
        Literal["constant", "cosine", "step"],
        Field(description="lr schedule: constant, cosine (to 0 over all steps), or step (x gamma at milestones)"),
    ] = "constant"
    milestones: Annotated[tuple[int, ...], Field(description="epochs at which 'step' multiplies the lr by gamma")] = ()
    gamma: Annotated[float, Field(gt=0, le=1, description="factor of the 'step' schedule in (0, 1]")] = 0.1
    warmup_steps: Annotated[int, Field(ge=0, description="linear lr warm-up over this many steps")] = 0
    augment: Annotated[bool, Field(description="random crop (pad 4) + horizontal flip, for CIFAR")] = False

    @model_validator(mode="after")
    def _milestones(self):
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1 (got {self.milestones})")
        return self


def lr_at(spec: TrainSpec, step: int, steps_per_epoch: int) -> float:
    total = spec.epochs * steps_per_epoch
    if spec.schedule == "cosine":
        lr = spec.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    elif spec.schedule == "step":
        epoch = step // steps_per_epoch
        lr = spec.lr * spec.gamma ** sum(epoch >= m for m in spec.milestones)
    else:
        lr = spec.lr
    if spec.warmup_steps and step < spec.warmup_steps:
        lr *= (step + 1) / spec.warmup_steps
    return lr


def make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    pruning.apply_masks(prunable(model), masks)


def masked_step(model: nn.Module, masks: dict[str, torch.Tensor], opt: torch.optim.Optimizer) -> None:
    """One optimizer step after backward: mask the gradients, step, re-apply the masks."""
    params = prunable(model)
    for k, m in masks.items():
        if params[k].grad is not None:
            params[k].grad.mul_(m.to(params[k].grad))
    opt.step()
    apply_masks(model, masks)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 4-pixel-padded crop and horizontal flip, per sample, vectorized."""
    B, C, H, W = x.shape
    p = nn.functional.pad(x, (4, 4, 4, 4))
    oy = torch.randint(0, 9, (B,), generator=gen).to(x.device)
    ox = torch.randint(0, 9, (B,), generator=gen).to(x.device)
    flip = (torch.rand(B, generator=gen) < 0.5).to(x.device)
    iy = oy[:, None] + torch.arange(H, device=x.device)
    ix = ox[:, None] + torch.arange(W, device=x.device)
    ix = torch.where(flip[:, None], ix.flip(1), ix)
    b = torch.arange(B, device=x.device)[:, None, None]
    return p.permute(0, 2, 3, 1)[b, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)


def loss_fn(task: str):
    return nn.functional.cross_entropy if task == "classify" else nn.functional.mse_loss


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, device, dtype,
             batch: int = 1000) -> dict:
    """Classification: error in percent and mean cross-entropy. Regression: relative RMSE
    (||f - y|| / ||y||, as a fraction) and mean squared error."""
    was = model.training
    model.eval()
    loss_sum, wrong, sq, ysq = 0.0, 0, 0.0, 0.0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(device=device, dtype=dtype)
        yb = y[i:i + batch].to(device)
        out = model(xb)
        if task == "classify":
            loss_sum += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
            wrong += int((out.argmax(1) != yb).sum())
        else:
            yb = yb.to(dtype)
            sq += float(((out - yb) ** 2).sum())
            ysq += float((yb ** 2).sum())
    model.train(was)
    n = len(x)
    if task == "classify":
        return {"error": 100.0 * wrong / n, "loss": loss_sum / n}
    return {"error": math.sqrt(sq / ysq) if ysq > 0 else float("nan"), "loss": sq / n}


@dataclass
class TrainResult:
    history: list[dict]  # one row per epoch: epoch, lr, train_loss, test_error, test_loss, seconds
    test_error: float
    rewind_state: dict | None = None  # state_dict after ``rewind_step`` optimizer steps, if asked
    optimizer: torch.optim.Optimizer | None = field(default=None, repr=False)
    steps: int = 0


def train(model: nn.Module, masks: dict[str, torch.Tensor], data: Dataset, spec: TrainSpec, seed: int, *,
          device="cpu", dtype=torch.float32, rewind_step: int | None = None, progress=None) -> TrainResult:
    """Train ``model`` (already on device/dtype) in place under ``masks``; evaluate after every epoch.

    ``rewind_step=k`` also returns a copy of the state after k optimizer steps (k = 0: before any).
    ``progress`` is an optional tqdm bar advanced once per epoch.
    """
    masks = {k: m.to(device=device, dtype=dtype) for k, m in masks.items()}
    apply_masks(model, masks)
    opt = make_optimizer(model, spec)
    crit = loss_fn(data.task)
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / spec.batch_size)
    order_gen = torch.Generator().manual_seed(substream(seed, ORDER))
    aug_gen = torch.Generator().manual_seed(substream(seed, AUGMENT))
    x_all = data.x_train.to(device=device, dtype=dtype)
    y_all = data.y_train.to(device)
    if data.task != "classify":
        y_all = y_all.to(dtype)
    rewind_state = None
    step, history = 0, []
    model.train()
    for epoch in range(spec.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=order_gen).to(device)
        total = 0.0
        for i in range(steps_per_epoch):
            if rewind_step is not None and step == rewind_step:
                rewind_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            idx = perm[i * spec.batch_size:(i + 1) * spec.batch_size]
            xb, yb = x_all[idx], y_all[idx]
            if spec.augment:
                xb = _augment(xb, aug_gen)
            for g in opt.param_groups:
                g["lr"] = lr_at(spec, step, steps_per_epoch)
            opt.zero_grad(set_to_none=True)
            loss = crit(model(xb), yb)
            loss.backward()
            masked_step(model, masks, opt)
            total += float(loss.detach()) * len(idx)
            step += 1
        ev = evaluate(model, data.x_test, data.y_test, data.task, device, dtype)
        history.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": total / n,
                        "test_error": ev["error"], "test_loss": ev["loss"], "seconds": time.perf_counter() - t0})
        if progress is not None:
            progress.update(1)
    if rewind_step is not None and rewind_state is None and step == rewind_step:
        rewind_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainResult(history, history[-1]["test_error"], rewind_state, opt, step)

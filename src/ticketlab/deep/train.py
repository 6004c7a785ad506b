"""Masked training: SGD (momentum) or Adam with a schedule, where pruned weights never move.

A run is a sequence of T = epochs x ceil(n / batch) optimizer steps. Its whole state at a step
(weights, optimizer moments, the data-order and augmentation generators, the current epoch's
order, the best-so-far on validation) is a ``TrainState``: ``train`` can start from one (rewinding
to step k continues from k with the schedule position and data order intact, and trains the
remaining T - k steps) and hands one out after every epoch (checkpoints: a killed run resumes
bit-identically).

Selection uses the validation set only (``Dataset.x_val``, held out of the training pool): it is
evaluated every ``eval_every`` steps and at every epoch end; the *early-stopping iteration* is the
step of least validation loss (Frankle & Carbin 2019). The test set is evaluated once, at the end,
on the final weights and on the weights of the early-stopping iteration.

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
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import pruning
from ..config import bad_value
from ..seeding import AUGMENT, ORDER, substream
from .data import Dataset
from .spec import TrainSpec

__all__ = [
    "lr_at", "make_optimizer", "apply_masks", "masked_step", "loss_fn", "evaluate", "mask_optimizer_state",
    "TrainState", "TrainResult", "initial_state", "rewound", "train",
]


def lr_at(spec: TrainSpec, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimizer step ``step``: the spec's schedule (constant, cosine over all
    epochs, or step decay by ``gamma`` at each milestone epoch), times a linear warm-up over the first
    ``warmup_steps``."""
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
    """The spec's optimizer over all of the model's parameters: Adam, or SGD with momentum."""
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights of ``model`` in place (masks: parameter name -> 0/1 tensor of its shape)."""
    pruning.apply_masks(dict(model.named_parameters()), masks)


def masked_step(model: nn.Module, masks: dict[str, torch.Tensor], opt: torch.optim.Optimizer) -> None:
    """One optimizer step after backward: mask the gradients, step, re-apply the masks."""
    params = dict(model.named_parameters())
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


def loss_fn(task: str) -> Callable[..., torch.Tensor]:
    """The training loss of a task: cross-entropy for 'classify', mean squared error for 'regress'."""
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


def mask_optimizer_state(opt: torch.optim.Optimizer, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the momentum / Adam moments of pruned weights (a rewound state carried onto a smaller mask)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, m in masks.items():
            for buf in opt.state.get(params[k], {}).values():
                if isinstance(buf, torch.Tensor) and buf.shape == m.shape:
                    buf.mul_(m.to(buf))


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def _opt_state_cpu(opt: torch.optim.Optimizer) -> dict:
    sd = opt.state_dict()
    return {"state": {i: {k: (v.detach().to("cpu").clone() if isinstance(v, torch.Tensor) else v)
                          for k, v in st.items()} for i, st in sd["state"].items()},
            "param_groups": [dict(g) for g in sd["param_groups"]]}


@dataclass
class TrainState:
    """Everything a run needs to continue from ``step`` exactly as if it had not stopped (CPU tensors)."""

    step: int
    model: dict
    optimizer: dict | None  # None: a fresh optimizer (step 0, or a rewind that resets it)
    order_gen: torch.Tensor
    aug_gen: torch.Tensor
    perm: torch.Tensor | None  # the current epoch's data order, if ``step`` is inside an epoch
    history: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    best: dict | None = None  # {step, val_loss, val_error, model}: the early-stopping point so far
    epoch_loss: float = 0.0  # training-loss sum of the current epoch so far
    origin: int | None = None  # the step this level started from (kept through checkpoints)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        return cls(**d)


@dataclass
class TrainResult:
    """What one training run returns: per-epoch history, every validation evaluation, the final and
    the early-stopping test metrics, and the state to rewind to (if asked)."""

    history: list[dict]  # one row per epoch: epoch, step, lr, train_loss, val_error, val_loss, seconds
    evals: list[dict]  # every validation evaluation: step, val_error, val_loss
    test_error: float  # final weights
    test_loss: float
    early_stop: dict  # step, val_error, val_loss, test_error, test_loss at the least validation loss
    rewind_state: TrainState | None = None  # the state at ``rewind_step``, if asked
    optimizer: torch.optim.Optimizer | None = field(default=None, repr=False)
    steps: int = 0  # optimizer steps of this level (T - its start step, counted across resumes)
    start_step: int = 0  # the step the level started from (k when rewound to k)


def initial_state(model: nn.Module, seed: int) -> TrainState:
    """The state at step 0: the model's weights, a fresh optimizer, the seed's generators."""
    order_gen = torch.Generator().manual_seed(substream(seed, ORDER))
    aug_gen = torch.Generator().manual_seed(substream(seed, AUGMENT))
    return TrainState(0, _snapshot(model), None, order_gen.get_state(), aug_gen.get_state(), None)


def rewound(state: TrainState, *, optimizer: bool = True) -> TrainState:
    """A rewind point as the start of a new level: its step, weights, data order and (if ``optimizer``)
    optimizer state, with the history and early-stopping record of the run it came from dropped."""
    return TrainState(state.step, state.model, state.optimizer if optimizer else None, state.order_gen,
                      state.aug_gen, state.perm)


def train(model: nn.Module, masks: dict[str, torch.Tensor], data: Dataset, spec: TrainSpec, seed: int, *,
          device="cpu", dtype=torch.float32, start: TrainState | None = None, rewind_step: int | None = None,
          on_epoch=None, on_rewind=None, progress=None) -> TrainResult:
    """Train ``model`` (already on device/dtype) in place under ``masks`` from ``start`` (default: step 0
    with the model's current weights) to step T.

    ``start`` loads its weights into the model (the masks are applied to them and to its optimizer
    moments). ``rewind_step=k`` also returns the state at step k (k = 0: before any step).
    ``on_epoch(state)`` is called after every epoch but the last with the state to checkpoint, and
    ``on_rewind(state)`` as soon as the rewind state exists. ``progress``: an
    optional tqdm bar advanced once per epoch trained here.
    """
    masks = {k: m.to(device=device, dtype=dtype) for k, m in masks.items()}
    if start is None:
        start = initial_state(model, seed)
    else:
        model.load_state_dict(start.model)
    apply_masks(model, masks)
    opt = make_optimizer(model, spec)
    if start.optimizer is not None:
        opt.load_state_dict(start.optimizer)
        mask_optimizer_state(opt, model, masks)
    crit = loss_fn(data.task)
    n = len(data.x_train)
    spe = math.ceil(n / spec.batch_size)
    total_steps = spec.epochs * spe
    if start.step > total_steps:
        raise bad_value("start", f"must be at a step within the run's {total_steps} steps", start.step)
    order_gen = torch.Generator()
    order_gen.set_state(start.order_gen)
    aug_gen = torch.Generator()
    aug_gen.set_state(start.aug_gen)
    x_all = data.x_train.to(device=device, dtype=dtype)
    y_all = data.y_train.to(device)
    if data.task != "classify":
        y_all = y_all.to(dtype)
    has_val = data.x_val is not None and len(data.x_val) > 0
    history, evals = list(start.history), list(start.evals)
    best = dict(start.best) if start.best is not None else None
    step, perm, epoch_loss = start.step, start.perm, start.epoch_loss
    origin = start.step if start.origin is None else start.origin
    rewind_state = None

    def state_now() -> TrainState:
        return TrainState(step, _snapshot(model), _opt_state_cpu(opt), order_gen.get_state(), aug_gen.get_state(),
                          None if perm is None else perm.cpu().clone(), list(history), list(evals),
                          None if best is None else dict(best), epoch_loss, origin)

    def validate():
        nonlocal best
        if evals and evals[-1]["step"] == step:  # already evaluated at this step
            return evals[-1]
        if has_val:
            ev = evaluate(model, data.x_val, data.y_val, data.task, device, dtype)
        else:  # no validation set: the early-stopping point is the last step
            ev = {"error": float("nan"), "loss": -float(step)}
        row = {"step": step, "val_error": ev["error"], "val_loss": ev["loss"] if has_val else float("nan")}
        evals.append(row)
        if best is None or ev["loss"] < best["val_loss"] or not has_val:
            best = {"step": step, "val_error": ev["error"], "val_loss": ev["loss"], "model": _snapshot(model)}
        return row

    if rewind_step == step:
        rewind_state = state_now()
        if on_rewind is not None:
            on_rewind(rewind_state)
    if not evals:
        validate()  # the starting point counts (iteration 0, or the rewind step k)
    model.train()
    t0 = time.perf_counter()
    while step < total_steps:
        i = step % spe
        if i == 0:
            perm = torch.randperm(n, generator=order_gen)
            epoch_loss, t0 = 0.0, time.perf_counter()
        idx = perm[i * spec.batch_size:(i + 1) * spec.batch_size].to(device)
        xb, yb = x_all[idx], y_all[idx]
        if spec.augment:
            xb = _augment(xb, aug_gen)
        for g in opt.param_groups:
            g["lr"] = lr_at(spec, step, spe)
        opt.zero_grad(set_to_none=True)
        loss = crit(model(xb), yb)
        if not torch.isfinite(loss):
            raise bad_value("lr", "must be small enough for the loss to stay finite", spec.lr,
                            hint=f"training diverged at step {step} (loss {float(loss)}); lower --lr")
        loss.backward()
        masked_step(model, masks, opt)
        epoch_loss += float(loss.detach()) * len(idx)
        step += 1
        if spec.eval_every and step % spec.eval_every == 0:
            validate()
        if step % spe == 0:
            row = validate()
            perm = None
            history.append({"epoch": step // spe, "step": step, "lr": opt.param_groups[0]["lr"],
                            "train_loss": epoch_loss / n, "val_error": row["val_error"],
                            "val_loss": row["val_loss"], "seconds": time.perf_counter() - t0})
            epoch_loss = 0.0
            if progress is not None:
                progress.update(1)
            if on_epoch is not None and step < total_steps:
                on_epoch(state_now())
        if rewind_step == step:
            rewind_state = state_now()
            if on_rewind is not None:
                on_rewind(rewind_state)
    final = evaluate(model, data.x_test, data.y_test, data.task, device, dtype)
    early = {k: v for k, v in best.items() if k != "model"}
    if best["step"] == step:
        early.update(test_error=final["error"], test_loss=final["loss"])
    else:
        current = _snapshot(model)
        model.load_state_dict(best["model"])
        ev = evaluate(model, data.x_test, data.y_test, data.task, device, dtype)
        model.load_state_dict(current)
        early.update(test_error=ev["error"], test_loss=ev["loss"])
    if not has_val:
        early["val_loss"] = float("nan")
    return TrainResult(history, evals, final["error"], final["loss"], early, rewind_state, opt,
                       step - origin, origin)

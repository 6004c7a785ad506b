"""Iterative magnitude pruning (IMP) with rewinding, stored level by level so runs resume.

One run = one (model, data, n_train, seed, recipe). Level 0 trains the dense net from theta_0 (and
keeps theta_k, the weights after k optimizer steps, when rewinding to step k). Level L >= 1 prunes
``rate`` of the remaining weights of level L-1's *trained* weights by magnitude (layer-wise or
global, the output layer at ``output_rate``; ``ticketlab.pruning``), resets the survivors to
theta_k (k = 0: rewind to init) and trains again.

Controls (Frankle & Carbin 2019): ``reinit`` trains the ticket's level-L mask from a fresh random
init; ``random_mask`` trains a random mask with the ticket's per-layer sparsity from the ticket's
theta_k. Both read the ticket run (same settings, control 'none'), running it first if needed.

Layout on disk (``run_dir = <store>/imp/<model>-<data>-n<N>-seed<s>[-<control>]``)::

    config.json          every setting (IMPSpec), seeds, code version, torch version, device, dtype
    init.pt, rewind.pt   theta_0 and theta_k (state_dicts)
    level_03/mask.pt     {weight name: bool mask}
    level_03/weights.pt  trained state_dict, masks baked in (loads into a plain model)
    level_03/metrics.json  per-epoch history, sparsity per layer and overall, test error, timing

A level is finished when its metrics.json exists (written last, atomically); a finished level is
never recomputed, and an interrupted run resumes after its last finished level. ``rounds`` is not
part of a run's identity: asking for more rounds later extends the same run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from typing import Annotated, Literal

import torch
from pydantic import Field, field_validator

from .. import __version__
from ..config import ConfigError, Model
from ..pruning import magnitude_scores, mask_agreement, prune, random_scores, sparsity
from ..seeding import PRUNE, START, substream
from .data import Dataset, load_data
from .models import MODELS, build_model, init_model, output_layer, prunable
from .train import TrainSpec, train

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class IMPSpec(Model):
    """Everything one IMP run depends on (besides the device)."""

    model: Annotated[str, Field(description=f"network: one of {', '.join(MODELS)}")]
    data: Annotated[str, Field(description="data spec, see ticketlab.deep.data")]
    n_train: Annotated[int | None, Field(ge=1, description="training-set size (None: the whole pool)")] = None
    seed: Annotated[int, Field(ge=0, description="run seed: init, data subset, data order, random masks")] = 0
    rounds: Annotated[int, Field(ge=0, description="pruning rounds (levels 1..rounds after the dense level 0)")] = 10
    rate: Annotated[float, Field(gt=0, lt=1, description="share of remaining weights pruned per round (0, 1)")] = 0.2
    output_rate: Annotated[
        float | None, Field(ge=0, lt=1, description="own per-round rate for the output layer (None: rate)")] = None
    scope: Annotated[Literal["layerwise", "global"], Field(description="rank weights per layer or globally")] = (
        "layerwise")
    rewind: Annotated[int, Field(ge=0, description="rewind to the weights after this many steps (0: init)")] = 0
    control: Annotated[
        Literal["none", "reinit", "random_mask"],
        Field(description="none (the ticket), reinit (ticket mask, fresh init), random_mask (random mask of "
                          "the ticket's per-layer sparsity, ticket's init)")] = "none"
    widths: Annotated[tuple[int, ...] | None, Field(description="hidden widths of the 'mlp' model")] = None
    split_seed: Annotated[int, Field(ge=0, description="seed of the fixed train/test split (mnist5k, digits)")] = 0
    train: TrainSpec = TrainSpec()
    dtype: Literal["float32", "float64"] = "float32"

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        if v not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)} (got {v!r})")
        return v

    def identity(self) -> dict:
        d = self.model_dump(mode="json")
        d.pop("rounds")
        return d

    def run_name(self) -> str:
        tag = self.data.split(":")[0]
        n = "all" if self.n_train is None else str(self.n_train)
        suffix = "" if self.control == "none" else f"-{self.control}"
        return f"{self.model}-{tag}-n{n}-seed{self.seed}{suffix}"

    def ticket(self) -> "IMPSpec":
        return self.model_copy(update={"control": "none"})


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("invalid device 'cuda': no CUDA device is available here (use --device cpu)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"invalid device {device!r}: use cpu, cuda or cuda:N") from None


# --------------------------------------------------------------------------- storage


def _atomic_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _atomic_save(path: str, obj) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _cpu(state: dict) -> dict:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


def run_dir(store: str, spec: IMPSpec) -> str:
    return os.path.join(store, "imp", spec.run_name())


def level_dir(rdir: str, level: int) -> str:
    return os.path.join(rdir, f"level_{level:02d}")


def finished_levels(rdir: str) -> list[int]:
    """Levels 0, 1, ... finished in a row (a gap ends the list)."""
    out, level = [], 0
    while os.path.isfile(os.path.join(level_dir(rdir, level), "metrics.json")):
        out.append(level)
        level += 1
    return out


def _check_config(rdir: str, spec: IMPSpec, device: str) -> None:
    path = os.path.join(rdir, "config.json")
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)["identity"]
        new = spec.identity()
        if old != json.loads(json.dumps(new)):
            diff = [f"{k}: stored {old.get(k)!r} vs now {new.get(k)!r}" for k in sorted(set(old) | set(new))
                    if old.get(k) != json.loads(json.dumps(new.get(k)))]
            raise ConfigError(f"store {rdir!r} holds a run with other settings ({'; '.join(diff)}); "
                              "use another --store or remove that directory")
        return
    os.makedirs(rdir, exist_ok=True)
    _atomic_json(path, {"identity": spec.identity(), "spec": spec.model_dump(mode="json"),
                        "seeds": {"run": spec.seed, "init": substream(spec.seed, START),
                                  "prune": substream(spec.seed, PRUNE)},
                        "ticketlab_version": __version__, "torch_version": torch.__version__,
                        "python": platform.python_version(), "device": str(device), "dtype": spec.dtype,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def load_level(rdir: str, level: int, device="cpu"):
    """(model, masks, metrics) of a finished level: a plain nn.Module with the trained weights
    (pruned ones zero) and the bool masks."""
    with open(os.path.join(rdir, "config.json")) as f:
        spec = IMPSpec(**json.load(f)["spec"])
    ldir = level_dir(rdir, level)
    with open(os.path.join(ldir, "metrics.json")) as f:
        metrics = json.load(f)
    data = load_data(spec.data, split_seed=spec.split_seed)
    model = build_model(spec.model, in_shape=data.in_shape, num_classes=data.num_classes, widths=spec.widths)
    model.load_state_dict(torch.load(os.path.join(ldir, "weights.pt"), map_location=device))
    masks = torch.load(os.path.join(ldir, "mask.pt"), map_location=device)
    return model.to(device=device, dtype=DTYPES[spec.dtype]), masks, metrics


# --------------------------------------------------------------------------- the loop


def _fresh(spec: IMPSpec, data: Dataset, seed: int, device, dtype):
    return init_model(spec.model, seed, in_shape=data.in_shape, num_classes=data.num_classes,
                      widths=spec.widths).to(device=device, dtype=dtype)


def _next_masks(spec: IMPSpec, model, masks: dict, weights: dict, level: int, ticket_dir: str | None):
    if spec.control == "none":
        out_name = output_layer(model)
        overrides = {} if spec.output_rate is None else {out_name: spec.output_rate}
        return prune(magnitude_scores(weights), masks, spec.rate, scope=spec.scope, overrides=overrides)
    ticket_masks = torch.load(os.path.join(level_dir(ticket_dir, level), "mask.pt"))
    if spec.control == "reinit":
        return ticket_masks
    target = {k: v for k, v in sparsity(ticket_masks).items() if k != "overall"}
    ones = {k: torch.ones_like(m) for k, m in ticket_masks.items()}
    scores = random_scores(ones, substream(substream(spec.seed, PRUNE), level))
    return prune(scores, ones, 0.0, of="total", overrides=target)


def run_imp(spec: IMPSpec, store: str, *, device: str = "cpu", progress=None,
            data: Dataset | None = None) -> list[dict]:
    """Run (or resume) one IMP run and return the metrics of levels 0..rounds."""
    dev = resolve_device(device)
    dtype = DTYPES[spec.dtype]
    pool = data if data is not None else load_data(spec.data, split_seed=spec.split_seed)
    data = pool.subset(spec.n_train, spec.seed)
    n = len(data.x_train)
    total_steps = spec.train.epochs * math.ceil(n / spec.train.batch_size)
    if spec.rewind > total_steps:
        raise ConfigError(f"invalid rewind {spec.rewind}: the dense run has only {total_steps} steps "
                          f"({spec.train.epochs} epochs x {math.ceil(n / spec.train.batch_size)} batches)")
    ticket_dir = None
    if spec.control != "none":
        ticket_dir = run_dir(store, spec.ticket())
        run_imp(spec.ticket(), store, device=device, progress=progress, data=pool)
    rdir = run_dir(store, spec)
    _check_config(rdir, spec, str(dev))
    done = finished_levels(rdir)
    if progress is not None:
        progress.update(spec.train.epochs * len([lv for lv in done if lv <= spec.rounds]))

    init_seed = substream(spec.seed, START)
    model = _fresh(spec, data, init_seed, dev, dtype)
    if not os.path.isfile(os.path.join(rdir, "init.pt")):
        _atomic_save(os.path.join(rdir, "init.pt"), _cpu(model.state_dict()))

    results = []
    for level in range(spec.rounds + 1):
        ldir = level_dir(rdir, level)
        if level in done:
            with open(os.path.join(ldir, "metrics.json")) as f:
                results.append(json.load(f))
            continue
        os.makedirs(ldir, exist_ok=True)
        if level == 0 and spec.control != "reinit":
            masks = {k: torch.ones_like(w, dtype=torch.bool, device="cpu") for k, w in prunable(model).items()}
        else:
            prev = level_dir(rdir, level - 1) if level else None
            weights = torch.load(os.path.join(prev, "weights.pt")) if prev else None
            masks_prev = torch.load(os.path.join(prev, "mask.pt")) if prev else None
            masks = _next_masks(spec, model, masks_prev, {k: weights[k] for k in masks_prev} if prev else None,
                                level, ticket_dir)
        if spec.control == "reinit":
            start = _fresh(spec, data, substream(substream(spec.seed, START), 1000 + level), dev, dtype).state_dict()
        elif level == 0:
            start = torch.load(os.path.join(rdir, "init.pt"))
        else:
            start = torch.load(os.path.join(rdir, "rewind.pt" if spec.rewind else "init.pt"))
        model.load_state_dict(start)
        want_rewind = level == 0 and spec.rewind > 0 and spec.control != "reinit"
        t0 = time.perf_counter()
        res = train(model, masks, data, spec.train, spec.seed, device=dev, dtype=dtype,
                    rewind_step=spec.rewind if want_rewind else None, progress=progress)
        seconds = time.perf_counter() - t0
        if want_rewind:
            _atomic_save(os.path.join(rdir, "rewind.pt"), _cpu(res.rewind_state))
        sp = sparsity(masks)
        metrics = {"level": level, "sparsity": sp, "pruning_ratio_percent": 100 * sp["overall"],
                   "remaining_percent": 100 * (1 - sp["overall"]),
                   "kept": {k: int(m.sum()) for k, m in masks.items()},
                   "test_error": res.test_error, "best_test_error": min(h["test_error"] for h in res.history),
                   "error_unit": "percent" if data.task == "classify" else "relative_rmse",
                   "history": res.history, "steps": res.steps, "train_seconds": seconds,
                   "device": str(dev), "dtype": spec.dtype, "n_train": n}
        if data.reference_masks is not None:  # deep oracle: unaligned agreement with the teacher's masks
            metrics["teacher_mask"] = mask_agreement(masks, data.reference_masks)
        _atomic_save(os.path.join(ldir, "mask.pt"), {k: m.to("cpu", torch.bool) for k, m in masks.items()})
        _atomic_save(os.path.join(ldir, "weights.pt"), _cpu(model.state_dict()))
        _atomic_json(os.path.join(ldir, "metrics.json"), metrics)
        results.append(metrics)
    return results

"""Iterative magnitude pruning (IMP) with rewinding, stored level by level so runs resume.

One run = one (model, data, n_train, seed, recipe). Level 0 trains the dense net from theta_0 for T
steps and keeps the full training state at step k (``rewind``; in steps or epochs). Level L >= 1
prunes ``rate`` of the remaining weights of level L-1's *trained* weights by magnitude (layer-wise
or global, the output layer at ``output_rate``; ``ticketlab.pruning``), resets the survivors to
theta_k and trains the remaining T - k steps from step k on: same schedule position, same data
order, and (``rewind_optimizer``) the optimizer moments of step k with the pruned entries zeroed.
k = 0 is Frankle & Carbin's rewind to init.

A validation set (``val_size`` items held out of the training pool, once per ``split_seed``) gives
each level its early-stopping iteration (least validation loss); the test set is evaluated only at
the end of a level, on the final weights and on those of that iteration.

Controls (Frankle & Carbin 2019): ``reinit`` trains the ticket's level-L mask from a fresh random
init (from step 0); ``random_mask`` trains a random mask with the ticket's per-layer sparsity from
the ticket's theta_k. Both read the ticket run (same settings, control 'none'), running it first
if needed, and share its dense level 0 (copied: the dense net is the same network for all three).

Layout on disk (``run_dir = <store>/imp/<model>-<data>-n<N>-seed<s>[-<control>]``)::

    config.json          every setting (IMPSpec), seeds, code version, torch version, device, dtype
    init.pt              theta_0 (state_dict)
    rewind.pt            the training state at step k (k > 0): weights, optimizer, data order
    level_03/checkpoint.pt  the state after the last finished epoch of an unfinished level
    level_03/mask.pt     {weight name: bool mask}
    level_03/weights.pt  trained state_dict, masks baked in (loads into a plain model)
    level_03/metrics.json  per-epoch history, validation evaluations, early stop, sparsity, test error

A level is finished when its metrics.json exists (written last, atomically); a finished level is
never recomputed; an unfinished one resumes from its last epoch checkpoint, bit-identically.
``rounds`` is not part of a run's identity: asking for more rounds later extends the same run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time

import torch

from .. import __version__
from ..config import bad_value
from ..device import DTYPES, resolve_device
from ..pruning import imp_loop, magnitude_scores, mask_agreement, prune, random_scores, sparsity
from ..seeding import PRUNE, START, random_mask_seed, reinit_seed, substream
from .data import Dataset, default_val_size, load_data
from .models import MLP_WIDTHS, build_model, init_model, prunable, seeded
from .spec import IMPSpec
from .train import TrainState, initial_state, rewound, train

__all__ = [
    "run_dir", "level_dir", "finished_levels", "read_spec", "load_level", "to_torch_prune", "prepare_data",
    "rewind_steps", "check_run", "run_imp",
]


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
    """The folder of one IMP run: ``<store>/imp/<spec.run_name()>``."""
    return os.path.join(store, "imp", spec.run_name())


def level_dir(rdir: str, level: int) -> str:
    """The folder of one IMP level inside a run: ``<rdir>/level_NN``."""
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
        new = json.loads(json.dumps(spec.identity()))
        if old != new:
            diff = [f"{k}: stored {old.get(k)!r} vs now {new.get(k)!r}" for k in sorted(set(old) | set(new))
                    if old.get(k) != new.get(k)]
            raise bad_value("--store", "must hold no run or a run with these settings", rdir,
                            hint=f"it holds other settings ({', '.join(diff)}); use another --store or remove "
                            "that directory")
        return
    os.makedirs(rdir, exist_ok=True)
    _atomic_json(path, {"identity": spec.identity(), "spec": spec.model_dump(mode="json"),
                        "seeds": {"run": spec.seed, "init": substream(spec.seed, START),
                                  "prune": substream(spec.seed, PRUNE)},
                        "ticketlab_version": __version__, "torch_version": torch.__version__,
                        "python": platform.python_version(), "device": str(device), "dtype": spec.dtype,
                        "torch_threads": torch.get_num_threads(),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def read_spec(rdir: str) -> IMPSpec:
    """The ``IMPSpec`` a run was started with (from its config.json)."""
    with open(os.path.join(rdir, "config.json")) as f:
        return IMPSpec(**json.load(f)["spec"])


def load_level(rdir: str, level: int, device="cpu", factory=None):
    """(model, masks, metrics) of a finished level: a plain nn.Module with the trained weights
    (pruned ones zero) and the bool masks. A custom model needs its ``factory``."""
    spec = read_spec(rdir)
    ldir = level_dir(rdir, level)
    with open(os.path.join(ldir, "metrics.json")) as f:
        metrics = json.load(f)
    if factory is not None:
        model = factory()
    elif spec.model.startswith("custom:"):
        raise bad_value("factory", f"must be given to load_level for the custom model {spec.model!r}", factory,
                        hint=f"run {rdir!r} holds a custom model")
    else:
        data = load_data(spec.data, split_seed=spec.split_seed)
        model = build_model(spec.model, in_shape=data.in_shape, num_classes=data.num_classes, widths=spec.widths)
    model.load_state_dict(torch.load(os.path.join(ldir, "weights.pt"), map_location=device))
    masks = torch.load(os.path.join(ldir, "mask.pt"), map_location=device)
    return model.to(device=device, dtype=DTYPES[spec.dtype]), masks, metrics


def to_torch_prune(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Attach ``masks`` to ``model`` with ``torch.nn.utils.prune.custom_from_mask`` (weight_orig +
    weight_mask, the mask applied by a forward pre-hook); returns the model."""
    from torch.nn.utils import prune as tprune

    modules = dict(model.named_modules())
    for name, m in masks.items():
        mod_name, _, attr = name.rpartition(".")
        if mod_name not in modules or not hasattr(modules[mod_name], attr):
            raise bad_value("masks", "must name parameters of the model", name)
        tprune.custom_from_mask(modules[mod_name], attr, m.to(torch.bool))
    return model


# --------------------------------------------------------------------------- the loop


def _state_dict(state: TrainState) -> dict:
    return state.to_dict()


def _load_state(path: str) -> TrainState:
    return TrainState.from_dict(torch.load(path, weights_only=False))


def _random_masks(spec: IMPSpec, ticket_masks: dict, level: int) -> dict:
    target = {k: v for k, v in sparsity(ticket_masks).items() if k != "overall"}
    ones = {k: torch.ones_like(m) for k, m in ticket_masks.items()}
    scores = random_scores(ones, random_mask_seed(spec.seed, level))
    return prune(scores, ones, 0.0, of="total", overrides=target)


def prepare_data(spec: IMPSpec, pool: Dataset) -> Dataset:
    """The run's data: the validation items held out of the pool, then the run's n_train subset."""
    if tuple(pool.x_test.shape[1:]) != tuple(pool.x_train.shape[1:]):
        raise bad_value("data", "must have test inputs shaped like its training inputs", spec.data,
                        hint=f"test inputs have shape {tuple(pool.x_test.shape[1:])}, training inputs "
                        f"{tuple(pool.x_train.shape[1:])}")
    n_val = spec.val_size if spec.val_size is not None else default_val_size(len(pool.x_train))
    return pool.holdout(n_val, spec.split_seed).subset(spec.n_train, spec.seed)


def rewind_steps(spec: IMPSpec, n_train: int) -> tuple[int, int]:
    """(k, T): the rewind step and the steps per level's full run, checked."""
    spe = math.ceil(n_train / spec.train.batch_size)
    total = spec.train.epochs * spe
    k = spec.rewind * (spe if spec.rewind_unit == "epochs" else 1)
    if k > total:
        raise bad_value("rewind", f"must be within the run's {total} steps ({spec.train.epochs} epochs x {spe} "
                        "batches)", f"{spec.rewind} {spec.rewind_unit}")
    return k, total


def _check_teacher_layers(spec: IMPSpec, weights: dict, reference: dict) -> None:
    """Data with a teacher's masks (the deep oracle) is scored by mask agreement, position by position:
    the weights to prune must be the teacher's layers, by name and shape. Else a ConfigError naming the
    setting that differs (model, widths or params) and what the teacher is."""
    want = {k: tuple(m.shape) for k, m in reference.items()}
    if {k: tuple(w.shape) for k, w in weights.items()} == want:
        return
    hidden = "-".join(str(shape[0]) for shape in list(want.values())[:-1])
    why = "IMP's masks are scored against the teacher's, layer by layer"
    if spec.model.startswith("custom:"):
        raise bad_value("model", f"must have prunable weights named and shaped as the teacher's for data {spec.data!r}",
                        spec.model, hint=f"{why}: {', '.join(f'{k} {v}' for k, v in want.items())}")
    if spec.model != "mlp":
        raise bad_value("model", f"must be 'mlp' for data {spec.data!r}", spec.model,
                        hint=f"{why}, and the teacher is an mlp with hidden widths {hidden}: use model mlp, widths {hidden}")
    widths = "-".join(map(str, spec.widths or MLP_WIDTHS))
    if widths != hidden:
        kind, _, opts = spec.data.partition(":")
        own = f"{kind}:" + ",".join([o for o in opts.split(",") if o and not o.startswith("widths=")] + [f"widths={widths}"])
        raise bad_value("widths", f"must be the teacher's hidden widths {hidden} for data {spec.data!r}",
                        widths if spec.widths else f"{widths} (unset)",
                        hint=f"{why}; use widths {hidden}, or data {own} for a teacher of these widths")
    raise bad_value("params", f"must be unset for data {spec.data!r}", spec.params,
                    hint=f"{why}, on all of {', '.join(want)}")


def check_run(spec: IMPSpec, device: str = "cpu", data: Dataset | None = None, factory=None):
    """Every check of a run that needs no writing: device, data, rewind point, model, the weights to
    prune, one forward pass. Returns what ``run_imp`` needs; raises ConfigError naming the setting."""
    dev = torch.device(resolve_device(device, spec.dtype))
    dtype = DTYPES[spec.dtype]
    custom = spec.model.startswith("custom:")
    if custom and (factory is None or data is None):
        raise bad_value("model", "must be built in, or custom:NAME with its factory and data", spec.model,
                        hint="a custom model needs factory= and data= in run_imp")
    if not custom and factory is not None:
        raise bad_value("factory", "must be None for a built-in model", factory,
                        hint=f"model {spec.model!r} is built in; name it 'custom:NAME' to use a factory")
    pool = data if data is not None else load_data(spec.data, split_seed=spec.split_seed)
    data = prepare_data(spec, pool)
    k, _ = rewind_steps(spec, len(data.x_train))

    def fresh(seed: int):
        if custom:
            m = seeded(factory, seed, spec.init)
        else:
            m = init_model(spec.model, seed, spec.init, in_shape=data.in_shape, num_classes=data.num_classes,
                           widths=spec.widths)
        return m.to(device=dev, dtype=dtype)

    model = fresh(substream(spec.seed, START))
    weights = prunable(model, spec.params)  # refuses a module pruned by torch.nn.utils.prune
    if data.reference_masks is not None:  # before any work: the agreement with the teacher needs its layers
        _check_teacher_layers(spec, weights, data.reference_masks)
    with torch.no_grad():  # a forward pass on one item: a wrong input shape fails here, not after an epoch
        try:
            model.eval()
            model(data.x_train[:1].to(device=dev, dtype=dtype))
        except RuntimeError as e:
            raise bad_value("model", f"must accept inputs of shape {tuple(data.x_train.shape[1:])}", spec.model,
                            hint=str(e).splitlines()[0]) from None
    return dev, dtype, pool, data, k, fresh, model, weights


def run_imp(spec: IMPSpec, store: str, *, device: str = "cpu", progress=None, data: Dataset | None = None,
            factory=None) -> list[dict]:
    """Run (or resume) one IMP run and return the metrics of levels 0..rounds.

    ``factory``: for ``model='custom:NAME'``, a callable returning a fresh nn.Module (called under a
    seeded RNG; ``spec.init`` is applied on top); ``data`` then must be given (``Dataset.from_tensors``
    or ``from_loader``). Everything is checked before anything is written.
    """
    dev, dtype, pool, data, k, fresh, model, weights = check_run(spec, device, data, factory)
    ticket_dir = None
    if spec.control != "none":
        ticket_dir = run_dir(store, spec.ticket())
        run_imp(spec.ticket(), store, device=device, progress=progress, data=pool, factory=factory)
    rdir = run_dir(store, spec)
    _check_config(rdir, spec, str(dev))
    done = finished_levels(rdir)
    if progress is not None:
        progress.update(spec.train.epochs * len([lv for lv in done if lv <= spec.rounds]))
    if not os.path.isfile(os.path.join(rdir, "init.pt")):
        _atomic_save(os.path.join(rdir, "init.pt"), _cpu(model.state_dict()))
    rewind_path = os.path.join(ticket_dir or rdir, "rewind.pt")
    results: dict[int, dict] = {}

    def start_of(level: int) -> TrainState:
        if spec.control == "reinit" and level > 0:
            m = fresh(reinit_seed(spec.seed, level))
            return initial_state(m, spec.seed)
        if level == 0 or k == 0:
            init = torch.load(os.path.join(rdir if spec.control == "none" else ticket_dir, "init.pt"))
            model.load_state_dict(init)
            return initial_state(model, spec.seed)
        return rewound(_load_state(rewind_path), optimizer=spec.rewind_optimizer)

    def train_level(level: int, masks: dict) -> dict:
        ldir = level_dir(rdir, level)
        if level in done:
            with open(os.path.join(ldir, "metrics.json")) as f:
                results[level] = json.load(f)
            return torch.load(os.path.join(ldir, "weights.pt"))
        os.makedirs(ldir, exist_ok=True)
        if level == 0 and spec.control != "none":  # the dense level is the ticket's
            src = level_dir(ticket_dir, 0)
            for name in ("mask.pt", "weights.pt"):
                shutil.copyfile(os.path.join(src, name), os.path.join(ldir, name))
            with open(os.path.join(src, "metrics.json")) as f:
                metrics = dict(json.load(f), copied_from=os.path.basename(ticket_dir))
            _atomic_json(os.path.join(ldir, "metrics.json"), metrics)
            results[level] = metrics
            return torch.load(os.path.join(ldir, "weights.pt"))
        ckpt = os.path.join(ldir, "checkpoint.pt")
        start = _load_state(ckpt) if os.path.isfile(ckpt) else start_of(level)
        want_rewind = level == 0 and k > 0 and not os.path.isfile(rewind_path)
        t0 = time.perf_counter()
        res = train(model, masks, data, spec.train, spec.seed, device=dev, dtype=dtype, start=start,
                    rewind_step=k if want_rewind else None,
                    on_epoch=lambda st: _atomic_save(ckpt, _state_dict(st)),
                    on_rewind=lambda st: _atomic_save(rewind_path, _state_dict(st)), progress=progress)
        sp = sparsity(masks)
        metrics = {"level": level, "control": spec.control, "sparsity": sp,
                   "pruning_ratio_percent": 100 * sp["overall"], "remaining_percent": 100 * (1 - sp["overall"]),
                   "kept": {k_: int(m.sum()) for k_, m in masks.items()},
                   "test_error": res.test_error, "test_loss": res.test_loss,
                   "early_stop": res.early_stop, "val_error": res.early_stop["val_error"],
                   "early_stop_test_error": res.early_stop["test_error"],
                   "early_stop_step": res.early_stop["step"],
                   "error_unit": "percent" if data.task == "classify" else "relative_rmse",
                   "history": res.history, "evals": res.evals, "start_step": res.start_step,
                   "steps": res.steps, "train_seconds": time.perf_counter() - t0,
                   "resumed_from_step": start.step if os.path.isfile(ckpt) else None,
                   "device": str(dev), "dtype": spec.dtype, "n_train": len(data.x_train),
                   "n_val": 0 if data.x_val is None else len(data.x_val), "n_test": len(data.x_test)}
        if data.reference_masks is not None:  # deep oracle: unaligned agreement with the teacher's masks
            metrics["teacher_mask"] = mask_agreement(masks, data.reference_masks)
        _atomic_save(os.path.join(ldir, "mask.pt"), {k_: m.to("cpu", torch.bool) for k_, m in masks.items()})
        _atomic_save(os.path.join(ldir, "weights.pt"), _cpu(model.state_dict()))
        _atomic_json(os.path.join(ldir, "metrics.json"), metrics)
        if os.path.isfile(ckpt):
            os.remove(ckpt)
        results[level] = metrics
        return _cpu(model.state_dict())

    def next_masks(level: int, trained: dict, masks: dict) -> dict:
        stored = os.path.join(level_dir(rdir, level), "mask.pt")
        if level in done or os.path.isfile(stored):  # never re-derive a mask a level already trained on
            return torch.load(stored)
        if spec.control == "none":
            out_name = list(masks)[-1]
            overrides = {} if spec.output_rate is None else {out_name: spec.output_rate}
            return prune(magnitude_scores({n: trained[n] for n in masks}), masks, spec.rate, scope=spec.scope,
                         overrides=overrides)
        ticket_masks = torch.load(os.path.join(level_dir(ticket_dir, level), "mask.pt"))
        return ticket_masks if spec.control == "reinit" else _random_masks(spec, ticket_masks, level)

    ones = {n: torch.ones_like(w, dtype=torch.bool, device="cpu") for n, w in weights.items()}
    imp_loop(ones, train_level, next_masks, spec.rounds)
    return [results[lv] for lv in range(spec.rounds + 1)]

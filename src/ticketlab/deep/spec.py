"""The settings of deep training and of an IMP run, as config models (no torch needed to read them).

``TrainSpec`` is one training run at one pruning level; ``IMPSpec`` is everything an IMP run depends
on besides the device. Their field descriptions and defaults are the one source of the ``ticketlab
imp`` options (``cli/imp.py`` generates them), so help text and defaults are written once, here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..config import Model

__all__ = ["MODELS", "INITS", "TrainSpec", "IMPSpec"]

MODELS = ("lenet300", "lenet5", "resnet20", "resnet50", "mlp")  #: built by deep.models.build_model
INITS = ("kaiming_normal", "pytorch")  #: applied by deep.models.reinitialize


class TrainSpec(Model):
    """One training run at one pruning level."""

    optimizer: Annotated[Literal["sgd", "adam"], Field(description="sgd (with momentum) or adam")] = "sgd"
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False, description="peak learning rate (> 0, finite)")] = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1, description="SGD momentum in [0, 1)")] = 0.9
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False, description="L2 weight decay (>= 0)")] = 0.0
    batch_size: Annotated[int, Field(ge=1, description="mini-batch size (>= 1)")] = 64
    epochs: Annotated[int, Field(ge=1, description="epochs per level (>= 1)")] = 10
    schedule: Annotated[
        Literal["constant", "cosine", "step"],
        Field(description="lr schedule: constant, cosine (to 0 over all steps), or step (x gamma at milestones)"),
    ] = "constant"
    milestones: Annotated[tuple[int, ...], Field(description="epochs at which 'step' multiplies the lr by gamma")] = ()
    gamma: Annotated[float, Field(gt=0, le=1, description="factor of the 'step' schedule in (0, 1]")] = 0.1
    warmup_steps: Annotated[int, Field(ge=0, description="linear lr warm-up over this many steps")] = 0
    eval_every: Annotated[int, Field(ge=0, description="validation every this many steps (0: at epoch ends only)")] = 0
    augment: Annotated[bool, Field(description="random crop (pad 4) + horizontal flip, for CIFAR")] = False

    @field_validator("milestones")
    @classmethod
    def _milestones(cls, v):
        if any(m < 1 for m in v) or list(v) != sorted(v):
            raise ValueError(f"must be increasing epochs >= 1 (got {v})")
        return v


class IMPSpec(Model):
    """Everything one IMP run depends on (besides the device)."""

    model: Annotated[str, Field(description=f"network: one of {', '.join(MODELS)}, or 'custom:NAME' with a "
                                            "factory passed to run_imp")]
    data: Annotated[str, Field(description="data spec, see ticketlab.deep.data (a label for custom data)")]
    n_train: Annotated[int | None, Field(ge=1, description="training-set size (None: the whole pool)")] = None
    seed: Annotated[int, Field(ge=0, description="run seed: init, data subset, data order, random masks")] = 0
    rounds: Annotated[int, Field(ge=0, description="pruning rounds (levels 1..rounds after the dense level 0)")] = 10
    rate: Annotated[float, Field(gt=0, lt=1, description="share of remaining weights pruned per round (0, 1)")] = 0.2
    output_rate: Annotated[
        float | None, Field(ge=0, lt=1, description="own per-round rate of the output layer, in [0, 1) "
                                                    "(unset: rate)")] = None
    scope: Annotated[Literal["layerwise", "global"],
                     Field(description="rank weights per layer (layerwise) or over all layers (global)")] = (
        "layerwise")
    rewind: Annotated[int, Field(ge=0, description="rewind to the state after this many steps or epochs (0: init)")] = 0
    rewind_unit: Annotated[Literal["steps", "epochs"], Field(description="unit of rewind: steps or epochs")] = "steps"
    rewind_optimizer: Annotated[bool, Field(description="carry the optimizer moments of step k (pruned entries "
                                                        "zeroed) into each level; off: a fresh optimizer")] = True
    init: Annotated[Literal[INITS], Field(description="kaiming_normal (OpenLTH's default) or pytorch "
                                                      "(the modules' own default init)")] = "kaiming_normal"
    val_size: Annotated[int | None, Field(ge=0, description="validation items held out of the training pool "
                                                            "(unset: 5,000 of >= 50,000, else 10 %)")] = None
    params: Annotated[str | None, Field(description="weights to prune: comma-separated name globs or module "
                                                    "types (e.g. 'Linear' or 'features.*'); unset: every "
                                                    "Linear/Conv2d weight")] = None
    control: Annotated[
        Literal["none", "reinit", "random_mask"],
        Field(description="none (the ticket), reinit (ticket mask, fresh init), random_mask (random mask of "
                          "the ticket's per-layer sparsity, ticket's init)")] = "none"
    widths: Annotated[tuple[int, ...] | None, Field(description="hidden widths of the 'mlp' model")] = None
    split_seed: Annotated[int, Field(ge=0, description="seed of the fixed train/validation/test splits")] = 0
    train: TrainSpec = TrainSpec()
    dtype: Annotated[Literal["float32", "float64"],
                     Field(description="float32 (default: deep nets train in single precision) or float64")] = \
        "float32"

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        if v not in MODELS and not (v.startswith("custom:") and len(v) > 7):
            raise ValueError(f"must be one of {', '.join(MODELS)} or 'custom:NAME' (got {v!r})")
        return v

    @field_validator("widths")
    @classmethod
    def _widths(cls, v):
        if v is not None and (not v or min(v) < 1):
            raise ValueError(f"must be one or more hidden widths >= 1 (got {v})")
        return v

    @model_validator(mode="after")
    def _widths_only_mlp(self):
        if self.widths is not None and self.model != "mlp":
            raise ValueError(f"widths: must be unset for a model other than 'mlp' (got {self.widths} with model "
                             f"{self.model!r})")
        return self

    def identity(self) -> dict:
        d = self.model_dump(mode="json")
        d.pop("rounds")
        return d

    def run_name(self) -> str:
        tag = self.data.split(":")[0]
        n = "all" if self.n_train is None else str(self.n_train)
        suffix = "" if self.control == "none" else f"-{self.control}"
        return f"{self.model.replace(':', '-')}-{tag}-n{n}-seed{self.seed}{suffix}"

    def ticket(self) -> "IMPSpec":
        return self.model_copy(update={"control": "none"})

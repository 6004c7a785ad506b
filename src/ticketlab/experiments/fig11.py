"""Figure 11: lottery tickets on real data (IMP), as an experiment of the one protocol.

The IMP runs keep their own folder tree of checkpoints (``<folder>/imp/<run>/level_*``, written by
``ticketlab.deep.imp``; `ticketlab imp --store DIR` adds to it); this module runs the recipe of its
config into that folder, reads every finished level back as one row per (run, level), and
summarizes, plots and judges them with ``ticketlab.deep.fig11``. Its config is recorded in the
SQLite store like every other experiment's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
from pydantic import Field

from ..deep.fig11 import QUICK, fig11_claims, fig11_notes
from ..deep.models import MODELS
from .base import Cell, Experiment, ExperimentConfig

__all__ = ["imp_dir", "PAPER_IMP", "Fig11Config", "Fig11", "EXPERIMENT"]


def imp_dir(store) -> Path:
    """The IMP folder: a folder given as such (`ticketlab imp --store DIR`), else the folder of the SQLite
    store; runs live under <folder>/imp/ (they hold checkpoints, not rows)."""
    p = Path(store)
    return p if p.is_dir() else p.parent


class Fig11Config(ExperimentConfig):
    """The IMP recipe: every (n_train, seed) is one run of ``rounds`` prune-rewind-retrain rounds."""

    model: Annotated[str, Field(pattern=f"^({'|'.join(MODELS)})$", description=f"network: one of {', '.join(MODELS)}")] \
        = QUICK["model"]
    data: Annotated[str, Field(pattern=r"^[a-z0-9_]+(:.+)?$", description="data set: NAME or NAME:PATH, e.g. mnist5k "
                                                                          "(shipped) or mnist:DIR "
                                                                          "(ticketlab.deep.data)")] = QUICK["data"]
    n_train: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1, description="training-set "
                                                                                                "sizes N")] = \
        QUICK["n_train"]
    seeds: Annotated[tuple[Annotated[int, Field(ge=0)], ...], Field(min_length=1, description="run seeds")] = \
        QUICK["seeds"]
    rounds: Annotated[int, Field(ge=0, description="IMP rounds after the dense level")] = QUICK["rounds"]
    rate: Annotated[float, Field(gt=0, lt=1, description="fraction of the hidden weights pruned per round")] = \
        QUICK["rate"]
    output_rate: Annotated[float, Field(ge=0, lt=1, description="fraction of the output layer pruned per round")] = \
        QUICK["output_rate"]
    epochs: Annotated[int, Field(ge=1, description="training epochs per level")] = QUICK["train"]["epochs"]
    lr: Annotated[float, Field(gt=0, description="SGD learning rate")] = QUICK["train"]["lr"]
    batch_size: Annotated[int, Field(ge=1, description="minibatch size")] = QUICK["train"]["batch_size"]


#: the paper-scale Figure 11 run (the full MNIST in DIR), said by `sweep fig11 --scale paper` and the report
PAPER_IMP = ("ticketlab imp --model lenet5 --data mnist:DIR --n-train 25000,30000,35000,40000 --rounds 12 "
             "--rate 0.2 --store {folder}")


class Fig11(Experiment):
    """Figure 11: IMP on a real network and data set; runs live in the IMP folder tree, not the store."""

    name = "fig11"
    title = "Figure 11: lottery tickets on real data (IMP)"
    Config = Fig11Config
    sweeps = False  # IMP runs hold checkpoints: they live in their folder tree, not as store rows

    def not_run_hint(self):
        return (PAPER_IMP.format(folder="FOLDER"),
                "(the full MNIST in DIR; then `ticketlab report --store FOLDER`; this repository's paper-scale "
                "runs are in docs/results/deep, see docs/deep.md)")

    def presets(self):
        # the paper's Figure 11 needs 25k-40k MNIST images on disk (see run)
        return {"quick": {}, "paper": dict(model="lenet5", n_train=(25000, 30000, 35000, 40000), rounds=12,
                                           rate=0.2)}

    def cells(self, cfg):
        return [Cell({"n_train": n, "seed": s}, None) for n in cfg.n_train for s in cfg.seeds]

    def run(self, cfg, store, *, device="cpu", executor=None, progress=True, chunk_size=None, memory_budget=None):
        import torch

        from ..deep.fig11 import run_grid
        from ..deep.train import TrainSpec

        folder = imp_dir(store)
        if cfg.scale == "paper":
            print(f"fig11: the paper scale needs the full MNIST on disk: run `{PAPER_IMP.format(folder=folder)}`; "
                  "the report includes whatever that folder holds", file=sys.stderr)
            return {"total": 0, "skipped": 0, "ran": 0, "written": 0}
        if not Path(store).is_dir():
            from ..store import Store

            with Store(store) as st:
                st.save_config(self.name, cfg.config_id(), cfg.model_dump(mode="json"))
        base = dict(model=cfg.model, data=cfg.data, rounds=cfg.rounds, rate=cfg.rate, output_rate=cfg.output_rate,
                    train=TrainSpec(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size))
        old = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread is much faster than oversubscribed ones for these tiny nets
        try:
            runs = run_grid(base, cfg.n_train, cfg.seeds, str(folder), device=str(device), progress=progress)
        finally:
            torch.set_num_threads(old)
        return {"total": len(runs), "skipped": 0, "ran": len(runs), "written": 0}

    def has_results(self, store) -> bool:
        return (imp_dir(store) / "imp").is_dir()

    def stored_config(self, store, config_id=None, scale=None):
        if Path(store).is_file():
            cfg = super().stored_config(store, config_id, scale)
            if cfg is not None:
                return cfg
        from ..deep.fig11 import stored_recipe

        recipe = stored_recipe(str(imp_dir(store)))  # runs of `ticketlab imp`: their own recipe, not a preset
        if recipe is None:
            return self.default_config("quick")
        paper = self.presets()["paper"]
        scale = "paper" if all(recipe[k] == v for k, v in paper.items()) else "custom"
        return self.Config(scale=scale, **recipe)

    def load(self, cfg, store) -> pd.DataFrame:
        """Every finished level of every run in the IMP folder (one row per run and level)."""
        from ..deep.fig11 import collect

        df = pd.DataFrame.from_records(collect(str(imp_dir(store))) if self.has_results(store) else [])
        df.attrs["imp_dir"] = str(imp_dir(store))
        return df

    def summarize(self, cfg, df):
        from ..deep.fig11 import summarize_rows

        rows = df.to_dict("records") if not df.empty else []
        return {"store": df.attrs.get("imp_dir"), "families": summarize_rows(rows)}

    def plot(self, cfg, df, summary, out_dir: Path):
        from ..deep.fig11 import plot_fig11

        return [Path(p) for p in plot_fig11(summary["store"], str(out_dir))]

    def claims(self, cfg, summary, paper):
        from .. import verdicts as vd

        # fig11_claims decides a direction on the paired gain's 2-SE interval over seeds (no paper number
        # enters: the paper's table is about a different N range); mapped onto the four categories
        return [vd.from_direction(c, "paired gain over seeds, 2-SE interval excludes 0")
                for c in fig11_claims(summary, paper)]

    def summary_notes(self, cfg, summary) -> list[str]:
        return fig11_notes(summary, cfg.scale)


#: the registered experiment (``experiments.get_experiment('fig11')``)
EXPERIMENT = Fig11()

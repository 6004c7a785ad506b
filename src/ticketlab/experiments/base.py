"""What an experiment is: a validated config, the cells it spans, how a cell's trials run, and
what it concludes (summary, plot, claims). Executors and the store know nothing of this."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from .. import __version__
from ..config import Model, SolverSpec, TrialSpec, stable_hash
from ..seeding import trial_seed

__all__ = [
    "ExperimentConfig", "AGDConfig", "check_r_within_d", "problem_group", "paper_r_spread", "Cell", "TrialRef",
    "Experiment",
]


class ExperimentConfig(Model):
    """Fields every experiment has; each experiment adds its grid and fixed parameters."""

    trials: Annotated[int, Field(ge=1, description="trials per cell (>= 1)")] = 10
    seed: Annotated[int, Field(ge=0, description="base seed; each trial's seed derives from it, its cell and index")] = 0
    scale: Annotated[str, Field(description="quick, paper, or custom (any --set override makes it custom)")] = "quick"
    dtype: Literal["float64", "float32"] = "float64"

    #: tuple fields that say how a quantity is measured (the landscape's radius grid), not which problems
    #: are run: unstated choices like the scalar fields (catalog, sensitivity), never the design's grid
    choice_grids: ClassVar[frozenset[str]] = frozenset()

    def problem_grids(self) -> list[str]:
        """The tuple fields that say which problems run (the design's grids): every grid but ``choice_grids``."""
        return [k for k in type(self).model_fields
                if isinstance(getattr(self, k), (tuple, list)) and k not in self.choice_grids]

    @field_validator("*", mode="after")
    @classmethod
    def _grid_unique_and_sorted(cls, value, info):
        """A grid (a tuple field) names each point once; a numeric grid is in increasing order, so that
        `--set N=100,100` never counts one cell twice and every grid has one spelling (one config id)."""
        if not isinstance(value, tuple) or not value:
            return value
        repeated = sorted({v for v in value if value.count(v) > 1}, key=str)
        if repeated:
            raise ValueError(f"must not repeat a grid point (got {list(value)}, repeated: "
                             f"{', '.join(map(str, repeated))})")
        numeric = all(isinstance(v, (int, float)) for v in value)
        if numeric and list(value) not in (sorted(value), sorted(value, reverse=True)):
            raise ValueError(f"must be in increasing (or decreasing) order (got {list(value)}; e.g. {sorted(value)})")
        return value

    def config_id(self) -> str:
        """Stable id of what the numbers depend on (the trial count only extends a sweep; the default
        design leaves the id of configs stored before the field existed unchanged)."""
        exclude = {"trials", "scale"} | ({"design"} if getattr(self, "design", None) == "independent" else set())
        return stable_hash(self.model_dump(mode="json", exclude=exclude))


class AGDConfig(ExperimentConfig):
    """Experiments that run Algorithm 1: its settings nest as one ``solver`` (``--set solver.beta=0``;
    a bare ``--set max_iter=...`` names the same field)."""

    solver: Annotated[SolverSpec, Field(description="Algorithm 1's settings (ticketlab.config.SolverSpec)")] = \
        SolverSpec()

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_solver_fields(cls, data):
        """Configs stored before the solver nested (flat eta, beta, max_iter, tol) still load, as
        the same config: each such field that is not the config's own moves into ``solver``."""
        if isinstance(data, dict):
            flat = {k: data[k] for k in SolverSpec.model_fields if k in data and k not in cls.model_fields}
            if flat:
                data = {k: v for k, v in data.items() if k not in flat}
                solver = data.get("solver", cls.model_fields["solver"].default)
                data["solver"] = {**(solver.model_dump() if isinstance(solver, Model) else solver), **flat}
        return data

    @property
    def tol(self) -> float:  # read-only views for notes and titles
        return self.solver.tol

    @property
    def step_convention(self) -> str:
        return self.solver.step_convention


def check_r_within_d(d: int, r_values, field: str) -> None:
    """Every kept-weight count of a grid is 1..d: a grid point above d is refused, never clamped (a clamped
    cell would be stored under the label of the r~ it did not run)."""
    over = [v for v in r_values if v > d]
    if over:
        raise ValueError(f"{field}: must give r~ <= d = {d} (got r~ = {', '.join(map(str, over))}); "
                         f"lower {field} or raise d")
    under = [v for v in r_values if v < 1]
    if under:
        raise ValueError(f"{field}: must give r~ >= 1 (got r~ = {', '.join(map(str, under))})")


Design = Annotated[Literal["independent", "common"], Field(description=(
    "independent: every cell draws its own problems (the plain sweep); common: the cells of one group "
    "(see the experiment) share each trial's problem - X, W*, mask and start direction - and are solved "
    "together, X read once an iteration for all of them (common random numbers; docs/performance.md)"))]


def problem_group(spec: TrialSpec) -> str:
    """The group of a cell under design='common': what defines its problems (the oracle but its noise
    level, N, the kind of start), so cells that differ only in noise, start distance or solver share."""
    return stable_hash({"oracle": spec.oracle.model_dump(mode="json", exclude={"noise"}), "N": spec.N,
                        "init": spec.init.kind})


def paper_r_spread(d: int, r: int) -> float:
    """The paper's r_j ~ U[0.9 r~, 1.1 r~] (Figures 2 and 4), narrowed so that 1.1 r~ never exceeds d."""
    return round(min(0.1, max(0.0, d / r - 1.0)), 6)


@dataclass(frozen=True)
class Cell:
    """One point of an experiment's grid: readable coordinates plus the full trial spec."""

    params: dict
    spec: TrialSpec
    extra: dict = field(default_factory=dict)  # cell-specific settings beyond the TrialSpec
    group: str | None = None  # design='common': cells of one group share their trials' problems

    def key(self, experiment: str) -> str:
        body = {"experiment": experiment, "spec": self.spec.model_dump(mode="json"),
                "params": self.params, "extra": self.extra}
        return stable_hash(body if self.group is None else {**body, "group": self.group})

    def seed_key(self, experiment: str) -> str:
        """What defines the trial's problem (oracle, data, start), not how it is solved: cells that
        differ only in the solver (AGD vs GD, step sizes) or in the noise level get the same seeds, so
        their comparison is paired, trial by trial, on identical problems (the noise is the same
        standard-normal draw, scaled). Cells of one ``group`` get the same seeds whatever else differs
        (the common design: Figure 2's start distances then share X, W*, mask and start direction)."""
        if self.group is not None:
            return stable_hash({"experiment": experiment, "group": self.group})
        spec = self.spec
        oracle = spec.oracle.model_dump(mode="json", exclude={"noise"})
        return stable_hash({"experiment": experiment, "oracle": oracle, "N": spec.N,
                            "init": spec.init.model_dump(mode="json"), "extra": self.extra})


@dataclass(frozen=True)
class TrialRef:
    """A trial, fully determined by (experiment, cell, index, base seed, code version)."""

    cell_index: int
    trial: int
    seed: int
    trial_id: str


class Experiment:
    """The one protocol of everything `reproduce` runs: a Config with presets, the cells it spans,
    how a cell's trials run (``run_cell``; or the whole ``run``, for an experiment that keeps its own
    files, as Figure 11's IMP checkpoints), how the results are read back (``load``), and what they
    conclude (``summarize``, ``plot``, ``claims``, ``notes``)."""

    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type[ExperimentConfig]]
    sweeps: ClassVar[bool] = True  # its trials are rows of the SQLite store, run by ticketlab.sweep

    def not_run_hint(self) -> tuple[str, str] | None:
        """For an experiment that keeps its own files (``sweeps`` False): the command that runs it at the
        paper's scale and the report's words after it; None for a store sweep (the report builds its
        ``ticketlab sweep`` line)."""
        return None

    def default_config(self, scale: str) -> ExperimentConfig:
        presets = self.presets()
        if scale not in presets:
            from ..config import bad_value

            raise bad_value("--scale", f"must be one of {', '.join(presets)} for {self.name}", scale)
        preset = dict(presets[scale])
        for name, value in preset.items():  # a preset's sub-model settings refine the field's default
            default = self.Config.model_fields[name].default
            if isinstance(value, dict) and isinstance(default, Model):
                preset[name] = {**default.model_dump(), **value}
        return self.Config(scale=scale, **preset)

    def presets(self) -> dict[str, dict]:
        return {"quick": {}, "paper": {}}

    def cells(self, cfg) -> list[Cell]:
        raise NotImplementedError

    def run_cell(self, cfg, cell: Cell, seeds: list[int], device: str) -> list[dict]:
        from ..trial import run_trials

        return run_trials(cell.spec, seeds, device=device)

    def run_cells(self, cfg, cells: list[Cell], seeds: list[int], device: str) -> list[list[dict]]:
        """The trials of several cells of one group on the same seeds (design='common'), solved
        together; one list of results per cell, each as ``run_cell`` would give it."""
        if len(cells) == 1 or type(self).run_cell is not Experiment.run_cell:
            return [self.run_cell(cfg, c, seeds, device) for c in cells]
        from ..trial import run_common

        return run_common([c.spec for c in cells], seeds, device=device)

    def solved_fraction(self, cfg) -> float:
        """The share of its trials a config actually solves (bisection infers the rest), for estimates."""
        return 1.0

    def solved_together(self, cfg) -> bool:
        """Whether the cells of a group are solved together (one X for all) rather than one by one."""
        return True

    def summarize(self, cfg, df: pd.DataFrame) -> dict:
        raise NotImplementedError

    def plot(self, cfg, df: pd.DataFrame, summary: dict, out_dir: Path) -> list[Path]:
        raise NotImplementedError

    def claims(self, cfg, summary: dict, paper: dict) -> list[dict]:
        """Each claim of the paper this experiment tests: {claim, paper, ours, verdict, check, reason, needed},
        the verdict one of ``ticketlab.verdicts.CATEGORIES`` (built with ``Verdict.claim``)."""
        return []

    def notes(self, cfg) -> list[str]:
        """Choices the paper leaves open and how this config made them (shown in the report)."""
        return []

    def summary_notes(self, cfg, summary: dict) -> list[str]:
        """Notes that depend on the results (shown after ``notes``)."""
        return []

    def table(self, cfg, summary: dict) -> str | None:
        """An optional text table of the summary, shown in the report under the figures."""
        return None

    # --- where results live (the SQLite store unless an experiment keeps its own files) ------
    def run(self, cfg, store, *, device="cpu", executor=None, progress=True, chunk_size=None,
            memory_budget=None) -> dict:
        """Run what ``store`` lacks of ``cfg``; returns counts {total, skipped, ran, written}."""
        from ..store import Store
        from ..sweep import run_sweep

        with Store(store) as st:
            return run_sweep(self.name, cfg, st, device=device, executor=executor, progress=progress,
                             chunk_size=chunk_size, memory_budget=memory_budget)

    def has_results(self, store) -> bool:
        """Whether ``store`` can hold results of this experiment at all (the file, or the folder of
        packed tables, exists)."""
        from ..store import is_store

        return is_store(store)

    def stored_config(self, store, config_id: str | None = None, scale: str | None = None):
        """The config to show from ``store``: the largest complete one, or the one named by
        ``config_id`` / at ``scale`` (``ticketlab.catalog.select_config``); None if none is recorded."""
        from ..catalog import select_config

        return select_config(self, store, config_id, scale)

    def load(self, cfg, store) -> pd.DataFrame:
        """This config's results, one row per trial."""
        from ..store import Store

        with Store(store) as st:
            return self.frame(cfg, st.frame(self.name))

    def seed_key(self, cell: Cell) -> str:
        """What a cell's trial seeds derive from (see Cell.seed_key)."""
        return cell.seed_key(self.name)

    # --- shared mechanics -------------------------------------------------------------------
    def trials(self, cfg) -> list[TrialRef]:
        refs = []
        for i, cell in enumerate(self.cells(cfg)):
            key, seed_key = cell.key(self.name), self.seed_key(cell)
            for t in range(cfg.trials):
                seed = trial_seed(cfg.seed, seed_key, t)
                tid = stable_hash({"cell": key, "trial": t, "seed": seed, "code": __version__})
                refs.append(TrialRef(i, t, seed, tid))
        return refs

    def frame(self, cfg, df: pd.DataFrame) -> pd.DataFrame:
        """The rows of a store frame that belong to this config (its cells, its first `trials` trials)."""
        if df.empty:
            return df
        keys = {cell.key(self.name) for cell in self.cells(cfg)}
        return df[(df["experiment"] == self.name) & df["cell_id"].isin(keys) & (df["trial"] < cfg.trials)]

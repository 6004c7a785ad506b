"""`ticketlab init-study`: how the method-of-moments starts' error falls with N, for several r and d."""

from __future__ import annotations

import json
import os

import typer

from ..config import ConfigError
from .options import check_seed, int_list, json_text


def register(app: typer.Typer) -> None:
    @app.command("init-study")
    def init_study_cmd(
        N_grid: str = typer.Option("1000,4000,16000", "--N", "--N-grid", help="grid of sample sizes N, "
                                                                             "comma-separated (>= 1)"),
        r_grid: str = typer.Option("10,20", "--r", "--r-grid", help="grid of kept weights per neuron r, "
                                                                    "comma-separated (1..d)"),
        d_grid: str = typer.Option("100,300,1000", "--d", "--d-grid", help="grid of input dimensions d, "
                                                                           "comma-separated"),
        K: int = typer.Option(5, "--K", help="hidden neurons K (>= 1; K <= kept coordinates)"),
        trials: int = typer.Option(3, help="independent trials per (d, r, N) cell (>= 1)"),
        kinds: str = typer.Option(
            "tensor,moments,moments0,dense",
            help="comma-separated inits: tensor (the paper's method of moments with the mask), moments (the "
                 "mask-aware variant), moments0 (its pure second-moment fit), dense (no mask)"),
        layout: str = typer.Option("overlap", help="oracle supports: overlap, random, disjoint or groups:N1,N2,..."),
        noise: float = typer.Option(0.0, help="noise level sigma / E_y (>= 0)"),
        target: float = typer.Option(0.5, help="error level for the samples ratio dense / mask-aware (0 < t < 10)"),
        seed: int = typer.Option(0, help="base seed (>= 0); each cell's trials derive their seeds from it and the "
                                         "cell, as a sweep's do"),
        out: str = typer.Option("", help="directory for init_study.json, init_study.png and .pdf (none if empty)"),
        device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    ) -> None:
        """Initialization error vs N for several r and d: the table, a plot, and the dense/masked samples ratio."""
        from ..experiments.init import format_table, init_study, plot_study

        from ..device import resolve_device

        check_seed(seed)
        device = resolve_device(device)
        kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
        result = init_study(int_list(N_grid, "--N/--N-grid"), int_list(r_grid, "--r/--r-grid"),
                            int_list(d_grid, "--d/--d-grid"),
                            K=K, trials=trials, kinds=kind_list, seed=seed, layout=layout, noise=noise,
                            target=target, device=device)
        if out:
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "init_study.json"), "w") as f:
                json.dump(result, f, indent=1)
            result["files"] = [os.path.join(out, "init_study.json"),
                               *plot_study(result, os.path.join(out, "init_study"))]
        if as_json:
            typer.echo(json_text(result))
        else:
            typer.echo(format_table(result))
            for path in result.get("files", []):
                typer.echo(f"wrote {path}")

"""Seconds per IMP round for LeNet-5 on mnist5k (one round = magnitude prune + retrain), on the CPU or,
with ``--device cuda``, on a GPU.

quick: N = 500, 1 epoch per level, 1 round. full: N = 4000, 8 epochs (the recipe of docs/deep.md).
Times level 1 only (level 0 also pays the data load and warm-up). One torch thread, as the CLI
recommends on a small shared CPU; also reports the torch default thread count for comparison.
"""

from __future__ import annotations

import json
import tempfile
import time


def run(quick: bool, device: str = "cpu") -> dict:
    import torch

    from ticketlab.deep.data import load_data
    from ticketlab.deep.imp import IMPSpec, run_imp
    from ticketlab.deep.train import TrainSpec

    n, epochs = (500, 1) if quick else (4000, 8)
    t0 = time.perf_counter()
    pool = load_data("mnist5k")
    load_s = time.perf_counter() - t0
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as store:
            spec = IMPSpec(model="lenet5", data="mnist5k", n_train=n, rounds=1, rate=0.2,
                           train=TrainSpec(epochs=epochs, lr=0.05, batch_size=64, schedule="cosine"))
            res = run_imp(spec, store, data=pool, device=device)
    finally:
        torch.set_num_threads(old)
    lvl = res[1]
    out = {"bench": f"imp_round_lenet5_mnist5k_{device}", "device": device,
           "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu", "quick": quick, "n_train": n, "epochs": epochs,
           "threads": 1, "torch_default_threads": old, "seconds_per_round": lvl["train_seconds"],
           "seconds_per_epoch": lvl["train_seconds"] / epochs,
           "train_samples_per_s": n * epochs / lvl["train_seconds"], "mnist5k_load_s": load_s,
           "dense_seconds": res[0]["train_seconds"], "test_error_level1": lvl["test_error"]}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    import sys

    run("--full" not in sys.argv, device="cuda" if "--cuda" in sys.argv else "cpu")

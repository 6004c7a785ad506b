"""The Dask executor on a loopback LocalCluster: same numbers as a local run, a worker killed mid-batch
loses and duplicates nothing, and an unreachable scheduler fails fast with a clear error."""

import os
import socket
import sys
import time

import pytest

pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (a dependency of distributed)

from ticketlab.app import make_config  # noqa: E402
from ticketlab.config import ConfigError  # noqa: E402
from ticketlab.dask_executor import DaskExecutor, _on_worker  # noqa: E402
from ticketlab.experiments import get_experiment  # noqa: E402
from ticketlab.store import Store, load  # noqa: E402
from ticketlab.sweep import run_sweep  # noqa: E402

# the helpers below travel to the workers by value, so the workers need not import this test file
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GRID = ["d=24", "K=2", "r_tilde=4,8", "N=8,16,32,64", "max_iter=1500"]
TRIALS = 2
# timing differs between runs, and git_commit records the tree when a process started (it moves while
# someone commits); every other column must be identical
VOLATILE = {"wall_time", "git_commit"}


def tiny_cfg():
    exp = get_experiment("fig4")
    return make_config(exp, "quick", TRIALS, GRID)


def trial_numbers(db):
    df = load(db).set_index("trial_id").sort_index()
    return df.drop(columns=[c for c in df.columns if c in VOLATILE])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    ex = DaskExecutor(workers=2)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def local_numbers(tmp_path_factory):
    db = tmp_path_factory.mktemp("local") / "local.db"
    with Store(db) as st:
        run_sweep("fig4", tiny_cfg(), st, progress=False, chunk_size=2)
    return trial_numbers(db)


class DieOnce:
    """Wraps the task function: the first batch to start, on whichever worker, kills that worker's process."""

    def __init__(self, fn, marker):
        self.fn, self.marker = fn, str(marker)

    def __call__(self, task):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.fn(task)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)  # mid-batch, no cleanup: as if the node were lost


class CancelOnce:
    """Wraps the task function: the first batch to start cancels its own future on the scheduler."""

    def __init__(self, fn, marker):
        self.fn, self.marker = fn, str(marker)

    def __call__(self, task):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return self.fn(task)
        from distributed import Future, get_client, get_worker

        client = get_client()
        client.cancel([Future(get_worker().get_current_task(), client)], force=True)
        time.sleep(0.5)  # the client sees the cancellation before any result could arrive
        return self.fn(task)


class CountingExecutor:
    """Passes the sweep through to an executor (optionally wrapping fn) and records every yielded task."""

    def __init__(self, inner, wrap=None):
        self.inner, self.wrap, self.yielded = inner, wrap, []

    def run(self, fn, tasks):
        for task, rows in self.inner.run(self.wrap(fn) if self.wrap else fn, tasks):
            self.yielded.extend(task.trial_ids)
            yield task, rows


def threads_and_pid(_):
    import torch

    return torch.get_num_threads(), os.getpid()


def fail(task):
    raise ValueError(f"bad batch {task}")


# --- fast checks, no cluster ---------------------------------------------------------------------

def test_bad_arguments_name_the_parameter():
    with pytest.raises(ConfigError, match=r"--workers: must be an integer > 0 \(got 0\)"):
        DaskExecutor(workers=0)
    with pytest.raises(ConfigError, match="connect_timeout"):
        DaskExecutor(address="tcp://127.0.0.1:1", connect_timeout=0)
    with pytest.raises(ConfigError, match="--scheduler"):
        DaskExecutor(address="  ")


def test_a_worker_with_other_code_refuses_to_run():
    with pytest.raises(RuntimeError, match="same ticketlab version"):
        _on_worker(threads_and_pid, None, None, "0.0.0-other")


def test_unreachable_scheduler_fails_fast_with_the_address():
    addr = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"--scheduler: must .*got '{addr}'.*within 1 s"):
        DaskExecutor(address=addr, connect_timeout=1)
    assert time.perf_counter() - t0 < 10  # bounded: the timeout plus dask's last retry, not minutes


def test_cli_unreachable_scheduler_is_one_clean_line(tmp_path, capsys):
    from ticketlab.cli import main

    addr = f"tcp://127.0.0.1:{free_port()}"
    rc = main(["sweep", "fig4", "--store", str(tmp_path / "x.db"), "--scheduler", addr, "--no-progress",
               "--trials", "1", *[a for g in GRID for a in ("--set", g)]])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: --scheduler: must") and addr in errors[0]
    assert err[-1] == errors[0] and not any("Traceback" in line for line in err)


# --- on a 2-process LocalCluster ----------------------------------------------------------------

def test_cluster_sweep_equals_the_local_sweep_and_resumes(cluster, local_numbers, tmp_path):
    db = tmp_path / "dask.db"
    counting = CountingExecutor(cluster)
    with Store(db) as st:
        counts = run_sweep("fig4", tiny_cfg(), st, progress=False, chunk_size=2, executor=counting)
        assert counts == {"total": 16, "skipped": 0, "ran": 16, "written": 16}
        assert sorted(counting.yielded) == sorted(local_numbers.index)  # each trial yielded exactly once
        again = run_sweep("fig4", tiny_cfg(), st, progress=False, chunk_size=2, executor=cluster)
        assert again["ran"] == 0 and st.count() == 16
    got = trial_numbers(db)
    assert set(got["device"]) == {"cpu"}
    # every trial's numbers come from its seed alone: not from the worker, the batch order or the threads
    assert got.equals(local_numbers), got.compare(local_numbers)


def test_torch_threads_are_pinned_per_worker(cluster):
    for n in (2, 1):
        ex = DaskExecutor(address=cluster.address, torch_threads=n)
        try:
            out = [r for _, r in ex.run(threads_and_pid, range(4))]
        finally:
            ex.close()
        assert {t for t, _ in out} == {n}


def test_a_failing_batch_raises_a_clear_error_instead_of_hanging(cluster):
    ex = DaskExecutor(address=cluster.address, retries=1, resubmit=1)
    try:
        with pytest.raises(RuntimeError, match="a batch raised on the Dask cluster.*ValueError: bad batch 7"):
            list(ex.run(fail, [7]))
    finally:
        ex.close()
    assert ex.resubmitted == 0  # an error of the batch itself is not a lost worker


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(cluster, local_numbers, tmp_path):
    pids_before = set(cluster.client.run(os.getpid).values())
    marker = tmp_path / "died"
    counting = CountingExecutor(cluster, wrap=lambda fn: DieOnce(fn, marker))
    db = tmp_path / "killed.db"
    with Store(db) as st:
        counts = run_sweep("fig4", tiny_cfg(), st, progress=False, chunk_size=2, executor=counting)
    dead = int(marker.read_text())
    assert dead in pids_before  # a worker of the cluster really died, inside a batch
    assert counts["ran"] == counts["written"] == 16
    assert sorted(counting.yielded) == sorted(local_numbers.index)  # its batch ran elsewhere, once
    assert trial_numbers(db).equals(local_numbers)


def test_a_lost_batch_is_resubmitted_once(cluster, local_numbers, tmp_path):
    """A future cancelled under the client (as by a scheduler restart, or dask giving up on a batch whose
    workers kept dying) is resubmitted by the executor; the batch is yielded once."""
    marker = tmp_path / "cancelled"
    counting = CountingExecutor(cluster, wrap=lambda fn: CancelOnce(fn, marker))
    db = tmp_path / "lost.db"
    before = cluster.resubmitted
    with Store(db) as st:
        counts = run_sweep("fig4", tiny_cfg(), st, progress=False, chunk_size=2, executor=counting)
    assert marker.exists() and cluster.resubmitted - before == 1
    assert counts["ran"] == counts["written"] == 16
    assert sorted(counting.yielded) == sorted(local_numbers.index)
    assert trial_numbers(db).equals(local_numbers)

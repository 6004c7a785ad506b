"""A small calibrated cost model of Algorithm 1: time per iteration and memory per trial.

Used to pick the fast engine's data layout per trial, to print a paper-scale estimate before a
sweep starts, and to size chunks under a memory budget. One iteration of one trial reads its data
once and does 4 flops per (sample, stored weight): 2 in the forward product, 2 in the gradient.

    t_iter = max(compute, memory)
    dense rows: compute = N * (K * SEGMENT_S + 4 * u K / FLOPS)     (u = union of kept columns)
    union:      compute = N * 4 * sum_j r_j / UNION_FLOPS
    memory  = N * u * itemsize / BANDWIDTH if the trial's data (N x u) exceeds CACHE_BYTES, else 0

The layout rule that follows (in float64: union when 2 sum_j r_j <= u K + 40 K, i.e. unless the
supports overlap so much that the dense rows kernel's twice higher flop rate outweighs its extra
flops and per-segment cost) matches the faster of the two forced layouts at the measured points
of ``benchmarks.roofline.cost_follows_mask`` and of the table in docs/performance.md.

The constants were measured on the development machine (2-core AMD EPYC Zen 3 VM, shared, see
docs/performance.md; ``python -m benchmarks`` re-measures them): the dense rows kernel sustains
about 16 GFLOP/s per core in float64 (32 in float32) on long rows (24 on a quiet machine), each
neuron's row segment costs about 10 ns per sample of loop set-up and reductions, the union
kernel sustains about half that rate per flop but multiplies no pruned zero, and a trial whose
data exceed the cache streams about 10 GB/s per core. They sit between the quiet and the busy
runs of the benchmark, so on this machine the estimates land within ~2x either way (the
benchmark's entry (c) prints model and measurement side by side); they are meant for planning,
not for scheduling to the second.

Below them: a trial's setup, the in-cache speedup of small trials, and the work of the trials that
run no Algorithm 1 (the landscape's Hessians, the init study's moments); ``sweep.trial_seconds``
composes them per experiment, and ``python -m benchmarks.cost_model`` prints the whole-sweep estimate
beside the measured time of every quick figure (docs/performance.md, "Estimate against measurement").
"""

from __future__ import annotations

import math

# The calibration constants below stay module-level (benchmarks and tests read them) but are not API.
__all__ = ["estimate", "iteration_time", "layout_time", "union_time", "prefer_union", "bytes_per_trial",
           "shared_time", "prefer_union_shared", "setup_time", "test_error_time", "landscape_trial_time",
           "init_trial_time"]

FLOPS = {8: 16e9, 4: 32e9}  # sustained flop/s of the dense rows kernel per core, by itemsize
UNION_FLOPS = {8: 8e9, 4: 16e9}  # the union (feature-major) kernel: about half of that per flop
SEGMENT_S = 10e-9  # per sample and neuron segment of the rows kernel: loop set-up and reductions
BANDWIDTH = 10e9  # bytes/s the kernel streams per core when its data exceed the cache
CACHE_BYTES = 2 * 2**20  # a trial's data up to this stays in cache across iterations
# The reference engine: effective rate of a whole batched iteration (two products and about ten
# elementwise passes) and its per-iteration Python/dispatch overhead, both measured with benchmark
# (a) on the shared development machine (min of repeats); an idle machine does better.
TORCH_FLOPS = {8: 2e9, 4: 4e9}
TORCH_STEP_S = 1.5e-3
# The reference engine's whole quick sweeps (in-cache data, batches of 3-12 trials, two threads) ran
# 2.5-4.4x faster than the rates above on a quiet machine (python -m benchmarks.cost_model --engine
# reference, figures 2-10); like CACHED_SPEEDUP, applied only where a trial's data stay in cache.
REFERENCE_CACHED_SPEEDUP = 3.2
# The slot engine (engine/slots.py) on the CPU: the reference's batched iteration plus the masks that
# replace the host's stopping decisions, and frozen slots computing to their block's end; measured
# against the reference on the same quick sweeps (python -m benchmarks.cost_model --engine slots|reference).
SLOTS_CPU_FACTOR = 1.1  # geometric mean of slots/reference over the nine quick sweeps fig2-fig10 (0.5-2.6 each)
# The reference engine on a GPU: a batched iteration is about forty small kernel launches, so it
# costs about CUDA_STEP_S however small the batch (measured on an H200: the paper-scale Figure 4,
# 100 trials a batch, took 0.75 ms per batched iteration, Python and launches), and the flops at
# CUDA_FLOPS once the products are large (an effective float64 rate of batched products there).
CUDA_STEP_S = 0.75e-3
CUDA_FLOPS = {8: 8e12, 4: 16e12}
# A trial whose data stay in cache (N u itemsize <= CACHE_BYTES: every quick figure) runs either
# kernel about this much faster than the rates above, which hold for trials streaming from memory
# (benchmark entry (c), N = 5000: union at 0.7-1.2 of the model). Measured on whole quick sweeps
# (python -m benchmarks.cost_model, one thread): Figures 2-8 ran 1.7-2.4x faster than the rates
# above on a quiet machine and 1.3-1.7x at load 2.5 on the 2 cores. Planning only: the layout rule
# (prefer_union) compares the two kernels at the same residency, so it does not change.
CACHED_SPEEDUP = 1.6


def _itemsize(dtype) -> int:
    return 4 if "32" in str(dtype) else 8


def layout_time(N: int, K: int, S: int, L: int, itemsize: int) -> float:
    """Seconds per iteration of one trial whose rows have L stored values and S stored weights."""
    return max(N * (K * SEGMENT_S + 4 * S / FLOPS[itemsize]), _stream_time(N * L * itemsize))


def _stream_time(data: int) -> float:
    """Seconds to read a trial's data once per iteration: nothing while they stay in cache."""
    return data / BANDWIDTH if data > CACHE_BYTES else 0.0


def prefer_union(N: int, K: int, r_sum: int, u: int, itemsize: int) -> bool:
    """The union layout (4 N r_sum flops, feature-major) beats dense rows (4 N u K flops, masked)?"""
    return union_time(N, K, r_sum, u, itemsize) <= layout_time(N, K, u * K, u, itemsize)


def union_time(N: int, K: int, r_sum: int, u: int, itemsize: int) -> float:
    """Seconds per iteration of one trial in the union layout."""
    return max(N * 4 * r_sum / UNION_FLOPS[itemsize], _stream_time(N * u * itemsize))


def iteration_time(N: int, d: int, K: int, r_sum: int, backend: str = "fast", dtype="float64",
                   batch: int = 100, members: int = 1) -> float:
    """Seconds per iteration of one trial (a mask with sum_j r_j = r_sum, union of supports <= d);
    with members > 1 (design='common', fast backend) one member of a group sharing its problem."""
    isz = _itemsize(dtype)
    if backend == "fast":
        u = min(d, r_sum)
        if members > 1:  # the shared engine's rates were measured at in-cache shapes already
            return min(shared_time(N, K, r_sum, u, isz, members))
        t = min(union_time(N, K, r_sum, u, isz), layout_time(N, K, u * K, u, isz))
        return t / CACHED_SPEEDUP if N * u * isz <= CACHE_BYTES else t
    if backend == "reference":  # dense batched products, the whole batch streamed every iteration
        compute = 4 * N * d * K / TORCH_FLOPS[isz]
        memory = 2 * N * d * isz / BANDWIDTH
        t = max(compute, memory) + TORCH_STEP_S / max(1, batch)
        return t / REFERENCE_CACHED_SPEEDUP if N * d * isz <= CACHE_BYTES else t
    raise ValueError(f"backend: must be 'fast' or 'reference' (got {backend!r})")


def estimate(N: int, d: int, K: int, r_sum: int, iterations: int, trials: int, backend: str = "fast",
             *, cores: int = 1, dtype="float64", batch: int = 32, max_iter: int | None = None,
             members: int = 1) -> float:
    """Wall seconds to run ``trials`` trials of ``iterations`` iterations each on ``cores`` cores
    (backend 'fast' or 'reference' on the CPU), or on one GPU (backend 'cuda': batches of ``batch``
    trials, each running as long as its slowest trial, taken as twice the typical one and at most
    ``max_iter``). members > 1: the cell is one of that many sharing each problem (design='common':
    a group's members run together on one core, each at the shared engine's cost)."""
    if backend == "cuda":
        b = max(1, min(batch, trials))
        step = max(CUDA_STEP_S, 4 * N * d * K * b / CUDA_FLOPS[_itemsize(dtype)])
        per_batch = min(2 * iterations, max_iter) if max_iter else 2 * iterations
        return math.ceil(trials / b) * per_batch * step
    per_trial = iterations * iteration_time(N, d, K, r_sum, backend, dtype, batch=trials,
                                            members=members if backend == "fast" else 1)
    if backend == "fast":  # one trial per core
        return per_trial * math.ceil(trials / max(1, cores))
    return per_trial * trials / max(1, cores)


def bytes_per_trial(N: int, d: int, K: int, dtype="float64") -> int:
    """Memory one trial holds while it runs: X, y, the mask, W* and four weight-sized buffers.

    The fast engine adds one copy of the kept columns of X per running thread (at most N * d values).
    """
    isz = _itemsize(dtype)
    return isz * (N * d + N + 6 * d * K)


# The shared-problem engine (engine/shared.py): M members read one X. Its union loops sustain about
# SHARED_UNION_FLOPS per core on useful flops (4 N sum_j r_j a member); its dense path, two BLAS
# products over the union (4 N u K a member), about SHARED_DENSE_FLOPS: measured side by side at
# Figure 2's shapes with M = 10 on one core (docs/performance.md, issue 14 section), so the union
# loops win unless the supports cover nearly all of the union (sum_j r_j > 0.8 u K).
SHARED_UNION_FLOPS = {8: 16e9, 4: 24e9}
SHARED_DENSE_FLOPS = {8: 20e9, 4: 30e9}


def shared_time(N: int, K: int, r_sum: int, u: int, itemsize: int, members: int) -> tuple[float, float]:
    """Seconds per member-iteration of the shared-problem engine: (union layout, dense layout)."""
    union = 4 * N * r_sum / SHARED_UNION_FLOPS[itemsize] + _stream_time(N * u * itemsize) / max(1, members)
    dense = 4 * N * u * K / SHARED_DENSE_FLOPS[itemsize] + _stream_time(N * u * itemsize) / max(1, members)
    return union, dense


def prefer_union_shared(N: int, K: int, r_sum: int, u: int, itemsize: int, members: int) -> bool:
    """The shared engine's union loops beat its dense BLAS products for this group?"""
    union, dense = shared_time(N, K, r_sum, u, itemsize, members)
    return union <= dense


# What a trial costs besides Algorithm 1's iterations, and the trials that run no Algorithm 1 at all.
# Measured with one torch thread at the quick grids, twice: on a quiet machine (load ~1.6 on the 2
# cores, only niced jobs besides) and on a busy one (load ~4: every job twice slower); the constants
# sit between the two, as the kernel rates above do (python -m benchmarks.cost_model compares whole
# sweeps with the estimate; docs/performance.md, section "Estimate against measurement").
# Setting up a trial (drawing X, y, W*, the mask and the start; the metrics at the end): about 1 ms
# and 40 ns per value of X (the draw alone: 22 ns a value quiet; 1.4-1.8 ms a Figure 4 trial busy at
# N = 50-250, d = 100; the init study's X of 16,000 x 1,000 values dominates its trials).
TRIAL_SETUP_S = 1e-3
DRAW_S = 40e-9
# A sampled test error (test_error='sampled', Figures 7-10 at paper scale: n_test = 100,000 fresh
# inputs a trial) draws n_test x d Gaussians and runs two forward passes on them. Measured with one
# torch thread at load ~2 (metrics.test_rmse_sampled, d = 100, K = 5: 0.11-0.17 s a trial, 99% of a
# paper-scale Figure 9 trial): about TEST_DRAW_S a value drawn and TEST_FORWARD_S a value and neuron
# per network evaluated.
TEST_DRAW_S = 17e-9
TEST_FORWARD_S = 0.3e-9
# The landscape study (landscape/study.py): per trial, 1 + radii x points weight matrices, each a
# Hessian on the p kept weights (built from the N samples: ~N p^2 work) and its eigenvalues (p^3),
# twice (the empirical and the population Hessian); fitted to the quick grid's eight cells
# (p = 25-200, N = 500-2000: 0.02-0.53 s a trial quiet, 0.06-0.81 s busy).
LANDSCAPE_TRIAL_S = 0.035
HESSIAN_S = 2.1e-10  # per sample, kept weight squared and point (1.75e-10 quiet, 2.6e-10 busy)
EIGEN_S = 3.4e-10  # per kept weight cubed and eigendecomposition (2.6e-10 quiet, 4.3e-10 busy)
# Beyond DENSE_MAX kept weights (landscape/empirical.py) the extremes come from Lanczos on Hessian-
# vector products, no population Hessian. A product runs through the dense X (N x d) and W (d x K), so it
# costs ~N d K whatever p, and the products per point barely move with p: the paper grid (N = 5000,
# d = 500, K = 10) took 165-320 s for 114 matrices at p = 1,960-4,000, flat in p (load ~2), and one
# thread measured 1.1 s a point at N = 2000 and 2.1 s at d = 250 against 1.8-3.7 s at d = 500 (load ~4):
# about LANCZOS_S per sample, input and neuron, per matrix.
LANDSCAPE_DENSE_MAX = 1500
LANCZOS_S = 8e-8
# The initialization study (experiments/init.py): every kind on the same data. A mask-aware kind
# (tensor, moments, moments0) does power iterations and restarts over the union of kept columns
# (~N u work, many passes, whatever d); the dense method of moments forms a d x d second moment
# (~N d^2). Quick grid (d = 100-1000, N = 1000-16000), quiet: the three masked kinds 0.064 s
# together at N = 1000 and 0.20 s at N = 16000 (u <= 50), dense 0.41 s at d = 1000, N = 16000; busy
# about twice that.
INIT_KIND_S = 0.025
INIT_MASKED_S = 9e-8  # per sample and kept column
INIT_DENSE_S = 3.5e-11  # per sample and d^2


def setup_time(N: int, d: int) -> float:
    """Seconds to set up and measure one trial: draw its N x d data, start, metrics."""
    return TRIAL_SETUP_S + DRAW_S * N * d


def test_error_time(n_test: int, d: int, K: int, evaluations: int = 1) -> float:
    """Seconds of a sampled test error for one trial: one draw of n_test x d inputs, then the oracle and
    ``evaluations`` learners on them (IMP's rounds share the draw)."""
    return n_test * d * (TEST_DRAW_S + (1 + evaluations) * K * TEST_FORWARD_S)


def landscape_trial_time(N: int, p: int, points: int, d: int, K: int) -> float:
    """Seconds of one landscape trial: ``points`` weight matrices (W* included), p kept weights of a
    d x K layer (Lanczos, and the generalized Hessian once more at W*, beyond LANDSCAPE_DENSE_MAX)."""
    if p > LANDSCAPE_DENSE_MAX:
        return LANDSCAPE_TRIAL_S + (points + 1) * LANCZOS_S * N * d * K
    return LANDSCAPE_TRIAL_S + points * (HESSIAN_S * N * p * p + 2 * EIGEN_S * p**3)


def init_trial_time(N: int, d: int, u: int, kinds) -> float:
    """Seconds of one initialization-study trial running ``kinds`` on N x d data whose mask keeps u columns."""
    masked = sum(k != "dense" for k in kinds)
    dense = sum(k == "dense" for k in kinds)
    return (INIT_KIND_S * len(kinds) + masked * INIT_MASKED_S * N * u + dense * INIT_DENSE_S * N * d * d)

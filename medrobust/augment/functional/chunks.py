"""Cache-sized batch chunks for multi-pass CPU kernels (a single call on accelerators), and sample
chunks on CPU worker threads (:func:`map_chunks`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager

import torch

__all__ = ["CPU_CHUNK_BYTES", "chunk_size", "chunked", "chunk_workers", "in_chunk_worker", "map_chunks"]

#: bytes of input per chunk for cache-blocked CPU kernels (L2-to-L3 sized: the intermediates of a
#: few 224x224 images stay in cache instead of streaming the whole batch through memory per op)
CPU_CHUNK_BYTES = 2 << 20


def chunk_size(x: torch.Tensor, chunk_bytes: int = CPU_CHUNK_BYTES) -> int:
    """Samples per cache-sized chunk on the CPU (the whole batch on an accelerator)."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    per = max(1, x[0].numel() * x.element_size())
    return max(1, min(x.shape[0], chunk_bytes // per))


def chunked(x: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor, int], object],
            chunk_bytes: int = CPU_CHUNK_BYTES) -> torch.Tensor:
    """``fn(x[i:j], out[i:j], i)`` over cache-sized batch chunks; ``fn`` fills its ``out`` slice.

    A loop over blocks of samples, not over samples: the intermediates of a multi-pass kernel stay
    in cache (measured 1.5-3x on the 2-core CPU for 224x224 batches); on an accelerator it is a
    single call over the whole batch. Returns ``out`` (contiguous, ``x``'s shape and dtype).
    """
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    step = chunk_size(x, chunk_bytes)
    for i in range(0, x.shape[0], step):
        fn(x[i:i + step], out[i:i + step], i)
    return out


# ------------------------------------------------------------------------------------------------
# sample-parallel chunks on the CPU

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_ACTIVE = 0  # map_chunks runs in progress (a second caller meanwhile runs inline)
_LOCAL = threading.local()


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker) has none of the parent's threads: drop the pool, the
    lock (another thread may have held it) and the run count, so its first run starts afresh."""
    global _LOCK, _POOL, _POOL_SIZE, _ACTIVE
    _LOCK = threading.Lock()
    _POOL, _POOL_SIZE, _ACTIVE = None, 0, 0


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def in_chunk_worker() -> bool:
    """Whether the calling thread is one of :func:`map_chunks`' workers (nested calls run inline)."""
    return bool(getattr(_LOCAL, "worker", False))


def _pool(size: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE < size:
        old = _POOL
        _POOL = ThreadPoolExecutor(size, thread_name_prefix="medrobust-chunk")
        _POOL_SIZE = size
        if old is not None:
            old.shutdown(wait=False)
    return _POOL


@contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` in the calling thread while a :func:`map_chunks`
    run lasts, and restored in the same thread after (OpenMP's count is per thread, so the thread
    that lowered it is the one to restore it); the run count makes concurrent callers inline."""
    global _ACTIVE
    saved = torch.get_num_threads()
    with _LOCK:
        _ACTIVE += 1
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
        with _LOCK:
            _ACTIVE -= 1


def chunk_workers(n_chunks: int) -> int:
    """How many worker threads :func:`map_chunks` would use for ``n_chunks`` chunks here: torch's
    intra-op thread count, at most one per chunk; 1 (inline) inside a worker or another run."""
    if in_chunk_worker() or _ACTIVE:
        return 1
    return max(1, min(int(n_chunks), torch.get_num_threads()))


def map_chunks(fn: Callable[[int, int], object], n: int, step: int) -> None:
    """``fn(i, j)`` for the chunks ``[i, j)`` of ``range(n)`` (``step`` samples each), on CPU
    worker threads that each run torch with ``threads // workers`` intra-op threads.

    The batched CPU kernels are many short OpenMP regions; every region wakes and joins the
    team, which costs tens of microseconds per region with the passive wait policy medrobust sets
    (and collapses with spinning threads on shared cores). Chunks of samples on worker threads
    (torch releases the GIL inside its ops) keep every core busy with no barrier between them: on
    2 cores, 1.3-3x the whole-batch call for the natural corruptions, idle or shared. ``fn`` must
    write its own slice of the result (samples are independent, so the chunks give the result of
    one call). Runs inline with one worker (a 1-thread process, one chunk, a nested call, or while
    another thread's run is in progress). While a run is in progress torch's intra-op thread
    count is lowered for the calling thread and the workers and restored after (OpenMP's count is
    per thread: other threads that have run torch ops keep theirs, measured; a thread that starts
    torch work inside the window starts with the lower count). Grad mode is carried into the
    workers. The first exception of a chunk is raised after every chunk has finished.
    """
    chunks = [(i, min(n, i + step)) for i in range(0, n, max(1, int(step)))]
    workers = chunk_workers(len(chunks))
    if workers <= 1:
        for i, j in chunks:
            fn(i, j)
        return
    with _LOCK:
        pool = _pool(workers)
    per = max(1, torch.get_num_threads() // workers)
    grad = torch.is_grad_enabled()

    def job(chunk: tuple[int, int]) -> None:
        _LOCAL.worker = True
        # in this thread too: OpenMP's and MKL's thread counts are per thread (MKL's BLAS would
        # otherwise start a team of its default size inside every worker)
        torch.set_num_threads(per)
        try:
            with torch.set_grad_enabled(grad):
                fn(*chunk)
        finally:
            _LOCAL.worker = False

    with _intra_op_threads(per):
        futures = [pool.submit(job, c) for c in chunks]
        wait(futures)
    for f in futures:
        f.result()  # the first failure, re-raised here

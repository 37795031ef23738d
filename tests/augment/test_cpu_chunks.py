"""Sample chunks on CPU worker threads (map_chunks) and the block-seeded bulk noise."""

from __future__ import annotations

import threading

import pytest
import torch

from medrobust.augment import corrupt, corruption_names
from medrobust.augment.base import NOISE_BLOCK, bulk_rand, bulk_randn
from medrobust.augment.functional.chunks import chunk_workers, in_chunk_worker, map_chunks
from medrobust.bench.corruptions import photo_batch


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def test_map_chunks_covers_the_range_once_and_restores_the_thread_count(two_threads):
    seen: list[tuple[int, int]] = []
    inner: list[int] = []
    names: set[str] = set()

    def fn(i: int, j: int) -> None:
        seen.append((i, j))
        inner.append(torch.get_num_threads())
        names.add(threading.current_thread().name)
        assert in_chunk_worker()

    map_chunks(fn, 23, 5)
    assert sorted(seen) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert set(inner) == {1}  # one intra-op thread per worker while the run lasts
    assert all(n.startswith("medrobust-chunk") for n in names)
    assert torch.get_num_threads() == 2 and not in_chunk_worker()


def test_map_chunks_runs_inline_with_one_thread_or_nested():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        where: list[str] = []
        map_chunks(lambda i, j: where.append(threading.current_thread().name), 10, 3)
        assert set(where) == {threading.current_thread().name}
    finally:
        torch.set_num_threads(old)
    torch.set_num_threads(2)
    try:
        nested: list[int] = []

        def outer(i: int, j: int) -> None:
            assert chunk_workers(4) == 1  # inside a worker: nested runs are inline
            map_chunks(lambda a, b: nested.append(b - a), j - i, 1)

        map_chunks(outer, 8, 4)
        assert sorted(nested) == [1] * 8
    finally:
        torch.set_num_threads(old)


def test_map_chunks_raises_the_chunk_error_after_all_chunks(two_threads):
    done: list[int] = []

    def fn(i: int, j: int) -> None:
        if i == 0:
            raise ValueError("chunk 0 failed")
        done.append(i)

    with pytest.raises(ValueError, match="chunk 0 failed"):
        map_chunks(fn, 12, 3)
    assert sorted(done) == [3, 6, 9]
    assert torch.get_num_threads() == 2


def test_map_chunks_carries_grad_mode(two_threads):
    modes: list[bool] = []
    with torch.no_grad():
        map_chunks(lambda i, j: modes.append(torch.is_grad_enabled()), 4, 1)
    assert modes == [False] * 4


@pytest.mark.parametrize("draw", [bulk_rand, bulk_randn])
def test_bulk_noise_does_not_depend_on_the_thread_count(draw):
    old = torch.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out.append(draw(3 * NOISE_BLOCK + 1, 2, 5, 7, generator=torch.Generator().manual_seed(4)))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(out[0], out[1])
    x = out[0]
    assert x.shape == (3 * NOISE_BLOCK + 1, 2, 5, 7) and x.dtype == torch.float32
    # blocks are independent streams, not copies of one another
    assert not torch.equal(x[:NOISE_BLOCK], x[NOISE_BLOCK:2 * NOISE_BLOCK])
    # the same seed gives the same field; a different one does not
    again = draw(3 * NOISE_BLOCK + 1, 2, 5, 7, generator=torch.Generator().manual_seed(4))
    other = draw(3 * NOISE_BLOCK + 1, 2, 5, 7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x, again) and not torch.equal(x, other)


def test_bulk_noise_has_the_right_law():
    u = bulk_rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    z = bulk_randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1.0) < 0.01


@pytest.mark.parametrize("name", corruption_names("all"))
def test_corruptions_do_not_depend_on_the_thread_count(name):
    # 20 images at 64x64: several chunks and noise blocks; uint8 and float paths
    x8 = torch.from_numpy(photo_batch(20, 64)).permute(0, 3, 1, 2).contiguous()
    sev = torch.tensor([1, 2, 3, 4, 5] * 4)
    old = torch.get_num_threads()
    res = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            y8 = corrupt(x8, name, sev, generator=torch.Generator().manual_seed(1))
            yf = corrupt(x8.float() / 255, name, sev, generator=torch.Generator().manual_seed(1))
            res.append((y8, yf))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(res[0][0], res[1][0]), name
    torch.testing.assert_close(res[0][1], res[1][1], rtol=0, atol=1e-6, msg=name)


def test_map_chunks_works_in_a_forked_child(two_threads):
    import multiprocessing as mp

    map_chunks(lambda i, j: None, 8, 2)  # the parent's pool exists now
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_run, args=(q,))
    p.start()
    p.join(60)
    assert p.exitcode == 0 and q.get(timeout=5) == [(0, 2), (2, 4), (4, 6), (6, 8)]


def _child_run(q) -> None:
    torch.set_num_threads(2)
    seen: list[tuple[int, int]] = []
    map_chunks(lambda i, j: seen.append((i, j)), 8, 2)  # would hang on the parent's dead threads
    q.put(sorted(seen))


def test_concurrent_calls_from_two_threads_give_the_sequential_results(two_threads):
    # a second caller while a run holds the pool runs inline; both results stay exact and the
    # caller's thread count comes back
    x8 = torch.from_numpy(photo_batch(24, 64)).permute(0, 3, 1, 2).contiguous()
    names = ["gaussian_blur", "shot_noise", "spatter", "jpeg_compression"]
    want = {n: corrupt(x8, n, 3, generator=torch.Generator().manual_seed(2)) for n in names}
    got: dict[str, torch.Tensor] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            for _ in range(3):
                got[name] = corrupt(x8, name, 3, generator=torch.Generator().manual_seed(2))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for n in names:
        assert torch.equal(got[n], want[n]), n
    assert torch.get_num_threads() == 2

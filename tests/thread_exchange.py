"""core.sampler's Exchange between threads of one process: the border-only exchange's logic tested without
torch.distributed, and the bytes each process sends counted."""

from __future__ import annotations

import threading

import torch


class Hub:
    """What the `world` threads share: a mailbox per (sender, receiver) and a barrier for collectives."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.barrier = threading.Barrier(world)
        self.mail: dict[tuple[int, int], torch.Tensor] = {}
        self.board: dict[int, torch.Tensor] = {}
        self.lock = threading.Lock()

    def exchange(self, rank: int) -> ThreadExchange:
        return ThreadExchange(self, rank)


class ThreadExchange:
    def __init__(self, hub: Hub, rank: int) -> None:
        self.hub, self.rank, self.world = hub, rank, hub.world
        self.sent_bytes: list[int] = []
        """Bytes this process sent, one entry per collective or trade."""

    def _post(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        self.hub.barrier.wait()
        with self.hub.lock:
            self.hub.board[self.rank] = tensor.clone()
        self.hub.barrier.wait()
        everything = [self.hub.board[p] for p in range(self.world)]
        self.hub.barrier.wait()
        return everything

    def gather(self, rows: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
        self.sent_bytes.append(rows.numel() * rows.element_size())
        return self._post(rows)

    def broadcast(self, tensor: torch.Tensor, source: int) -> torch.Tensor:
        if self.rank == source:
            self.sent_bytes.append(tensor.numel() * tensor.element_size() * (self.world - 1))
        return self._post(tensor)[source].clone()

    def trade(self, sends, shapes, like):
        self.sent_bytes.append(sum(t.numel() * t.element_size() for t in sends.values()))
        self.hub.barrier.wait()
        with self.hub.lock:
            for q, tensor in sends.items():
                self.hub.mail[(self.rank, q)] = tensor.clone()
        self.hub.barrier.wait()
        received = {q: self.hub.mail[(q, self.rank)] for q in shapes}
        assert all(tuple(received[q].shape) == tuple(shape) for q, shape in shapes.items())
        self.hub.barrier.wait()
        with self.hub.lock:
            for q in sends:
                self.hub.mail.pop((self.rank, q), None)
        return received


def run_threads(world: int, job) -> list:
    """`job(exchange)` on `world` threads, each with its own exchange; their results in rank order."""
    hub, results, errors = Hub(world), [None] * world, []

    def one(rank: int) -> None:
        try:
            results[rank] = job(hub.exchange(rank))
        except BaseException as error:  # noqa: BLE001  (re-raised below)
            errors.append(error)
            hub.barrier.abort()

    threads = [threading.Thread(target=one, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results

"""One long piece across several processes (one GPU each): torch.distributed under `torchrun` or `accelerate launch`.

Every process builds the same canvas from the same seed, steps a contiguous share of the views' segments, and
gathers the others' (core.sampler's `Exchange`), so each ends the loop with the same canvas; the first process
writes the file. On CPUs (gloo) the result equals the single-process run with the same segments bit for bit.
"""

from __future__ import annotations

import datetime
import math
import os

import torch

from ..errors import SwapForwardError


class TorchExchange:
    """core.sampler's Exchange over the default torch.distributed process group."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def gather(self, views: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
        most = max(counts)
        padded = views.new_zeros((most, *views.shape[1:]))
        padded[: views.shape[0]] = views
        everything = [torch.empty_like(padded) for _ in range(self.world)]
        self.dist.all_gather(everything, padded)
        return [rows[:count] for rows, count in zip(everything, counts, strict=True)]

    def trade(self, sends: dict[int, torch.Tensor], shapes: dict[int, tuple[int, ...]],
              like: torch.Tensor) -> dict[int, torch.Tensor]:
        """Point-to-point: `sends[q]` to process q, and from each process q of `shapes` a tensor of that shape (of
        `like`'s dtype and device)."""
        received = {q: like.new_empty(shape) for q, shape in shapes.items()}
        pending = [self.dist.isend(tensor.contiguous(), q) for q, tensor in sends.items()]
        pending += [self.dist.irecv(tensor, q) for q, tensor in received.items()]
        for request in pending:
            request.wait()
        return received

    def broadcast(self, tensor: torch.Tensor, source: int) -> torch.Tensor:
        tensor = tensor.contiguous()
        self.dist.broadcast(tensor, src=source)
        return tensor

    def total(self, *counts: int) -> list[int]:
        """Each of `counts` summed over the processes (the model calls of the whole run)."""
        device = "cuda" if self.dist.get_backend() == "nccl" else "cpu"
        summed = torch.tensor(counts, dtype=torch.int64, device=device)
        self.dist.all_reduce(summed)
        return summed.tolist()


#: Whether this process's generations are shared with the other processes (one piece across them): set by
#: `join_from_environment`. A process group alone does not share them (batch jobs split the jobs, not a piece).
_sharing = False


def join_from_environment() -> bool:
    """Join the process group that torchrun or accelerate describe (WORLD_SIZE > 1), to share each generation's views
    with the other processes: NCCL on GPUs, each process on the GPU of its LOCAL_RANK, gloo on CPUs. False for a
    single process."""
    global _sharing
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=TIMEOUT)
    _sharing = True
    return True


#: How long a process waits for the others at a step before it stops: a process that dies closes its connections and
#: the others stop at once; a machine that vanishes without closing them is noticed after this.
TIMEOUT = datetime.timedelta(minutes=10)


def peer_failure(error: BaseException) -> str | None:
    """One sentence for a collective call that failed because another process of the run stopped (or None when the
    error is something else)."""
    import torch.distributed as dist

    text = str(error)
    words = ("connection closed", "connection reset", "broken pipe", "timed out", "nccl", "gloo")
    if not isinstance(error, getattr(dist, "DistError", ())) and not any(w in text.lower() for w in words):
        return None
    rank = dist.get_rank() if dist.is_initialized() else "?"
    reason = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return (f"another process of this distributed run stopped (process {rank} saw: {reason[:200]}); nothing was "
            f"written.")


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def process_device(asked: str) -> str:
    """This process's device: its own GPU (LOCAL_RANK) when the run is on CUDA, else what was asked."""
    on_cuda = asked.startswith("cuda") or (asked == "auto" and torch.cuda.is_available())
    return f"cuda:{local_rank()}" if on_cuda else asked


def current() -> TorchExchange | None:
    """The exchange of the process group this process joined to share its generations, or None (a single process, or
    processes that each run their own jobs)."""
    import torch.distributed as dist

    if not _sharing or not dist.is_initialized() or dist.get_world_size() == 1:
        return None
    return TorchExchange()


def is_first() -> bool:
    """Whether this process writes the outputs and prints (the only process, or rank 0)."""
    exchange = current()
    return exchange is None or exchange.rank == 0


def check_shareable(method: str, eta: float, saving: str | None, views: int, world: int, batch: int = 1) -> None:
    """One sentence for a run that several processes cannot share exactly (`saving`: the scheduler's name when the
    run saves or resumes a state and its scheduler keeps a history per view)."""
    from ..core.methods import METHODS, get_method
    from ..options import listed

    if not get_method(method).shareable:
        others = listed([m.name for m in METHODS.values() if m.shareable])
        raise SwapForwardError(f"method {method} needs every view in one model call or one gradient step, so it runs "
                               f"in one process; run it without torchrun, or use {others}.")
    if eta:
        raise SwapForwardError(f"eta={eta:g} draws noise view by view in one process's order with this scheduler; "
                               f"several processes take eta 0, or DDIM (whose noise is drawn once per canvas frame).")
    if saving:
        raise SwapForwardError(f"--save-state and --resume with several processes need a scheduler that keeps no "
                               f"history per view (DDIM, DDPM, Euler, flow-matching Euler), and this model's "
                               f"{saving} keeps one; run without torchrun to use them.")
    if math.ceil(views / batch) < world:
        unit = "views" if batch == 1 else f"batches of {batch} views"
        raise SwapForwardError(f"{world} processes need at least {world} {unit}, and this output has {views} views; "
                               f"use fewer processes, a longer output"
                               + ("." if batch == 1 else " or a smaller --view-batch-size."))

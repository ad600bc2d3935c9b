"""One long piece across several processes (gloo on the CPU): the same canvas as one process, bit for bit."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from swapforward import LongAudioPipeline, SwapForwardError

#: Segments of two of the tiny model's views (4 channels x 32 frames x 8 bins, float32).
SEGMENT_BYTES = 2 * 4 * 32 * 8 * 4
BASE = dict(window_seconds=0.064, num_inference_steps=4, seed=2, progress_bar=False)
CASES = {
    "safa-loop": dict(method="safa", loop=True, audio_length_in_s=0.4),
    "md-loop": dict(method="md", loop=True, audio_length_in_s=0.3, overlap=0.8),
    # open canvas, two takes, DDIM's noise (drawn once per canvas frame), longer guidance
    "safa-eta-takes": dict(method="safa", audio_length_in_s=0.45, r_guide=0.5, eta=0.7, num_waveforms_per_prompt=2),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cases():
    from tiny_pipelines import tiny_audioldm_pipeline

    pipe = LongAudioPipeline.from_pipe(tiny_audioldm_pipeline())
    return {name: pipe("rain on a tin roof", **BASE, **case) for name, case in CASES.items()}


def worker(rank, world, port, out, threads):
    """One process of a `world`-process run of every case; the first saves the canvases and audio."""
    import torch.distributed as dist

    from swapforward.runtime import distributed, memory

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    assert distributed.join_from_environment() and distributed.current().world == world
    memory.SEGMENT_BYTES = SEGMENT_BYTES
    results = run_cases()
    if rank == 0:
        torch.save({name: (r.latents, torch.from_numpy(r.audio), r.model_calls) for name, r in results.items()}, out)
    dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_several_processes_make_the_single_process_canvas_bit_for_bit(world, tmp_path, monkeypatch):
    from swapforward.runtime import memory

    out = tmp_path / "results.pt"
    mp.spawn(worker, args=(world, free_port(), str(out), torch.get_num_threads()), nprocs=world, join=True)
    shared = torch.load(out)
    monkeypatch.setattr(memory, "SEGMENT_BYTES", SEGMENT_BYTES)
    for name, alone in run_cases().items():
        latents, audio, calls = shared[name]
        assert torch.equal(latents, alone.latents), name
        assert torch.equal(audio, torch.from_numpy(alone.audio)), name
        assert alone.layout.num_views >= 2 * world and calls == alone.model_calls, name


def test_what_several_processes_cannot_share_is_one_sentence():
    from swapforward.runtime.distributed import check_shareable

    with pytest.raises(SwapForwardError, match=r"^method mad needs every view in one model call"):
        check_shareable("mad", 0.0, False, 10, 2)
    with pytest.raises(SwapForwardError, match=r"^eta=0.5 draws noise view by view"):
        check_shareable("safa", 0.5, False, 10, 2)
    with pytest.raises(SwapForwardError, match=r"^3 processes need at least 3 views, and this output has 2"):
        check_shareable("safa", 0.0, False, 2, 3)
    check_shareable("md-tri", 0.0, False, 3, 3)


def test_torchrun_command_writes_one_file_equal_to_the_single_process_file(tiny_model_dir, tmp_path):
    """`torchrun --nproc_per_node 2 swapforward audio ...`: one file, written by the first process, the same bytes
    as one process makes (one view per model call, so the batches are the same whatever the segments)."""
    import subprocess
    import sys

    args = ["audio", "rain", "--model", tiny_model_dir, "--seconds", "0.4", "--window-seconds", "0.064", "--steps",
            "3", "--loop", "--seed", "1", "--view-batch-size", "1", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "swapforward", *args, "-o", str(tmp_path / "one.wav")],
                         capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(free_port()), "-m", "swapforward", *args, "-o", str(tmp_path / "two.wav")],
                         capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "two.wav").read_bytes() == (tmp_path / "one.wav").read_bytes()
    assert two.stdout.count("two.wav: 0.40 s of safa audio") == 1, "one summary, from the first process"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.wav", "two.wav"]

"""One long piece across several processes (gloo on the CPU): the same canvas as one process, bit for bit."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from swapforward import LongAudioPipeline, SwapForwardError

#: Segments of two of the tiny model's views (4 channels x 32 frames x 8 bins, float32): rounded up to one batch.
SEGMENT_BYTES = 2 * 4 * 32 * 8 * 4
BASE = dict(window_seconds=0.064, num_inference_steps=4, seed=2, progress_bar=False)
#: Long enough for a batch of the default 8 views (4 a take with two takes) on each of up to 4 processes.
CASES = {
    "safa-loop": dict(method="safa", loop=True, audio_length_in_s=1.6),
    "md-loop": dict(method="md", loop=True, audio_length_in_s=0.6, overlap=0.8),
    # open canvas, two takes, DDIM's noise (drawn once per canvas frame), longer guidance
    "safa-eta-takes": dict(method="safa", audio_length_in_s=1.8, r_guide=0.5, eta=0.7, num_waveforms_per_prompt=2),
}


THREADS = torch.get_num_threads()


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
    """At the default view batch (8 views a call on the CPU), and with the processes' threads as the single run's:
    the same calls in every process count (batches fixed in view index), each frame merged from the same views in the
    same order (border-only exchange), the canvas gathered once. Four processes: tests/test_scale_out.py."""
    from swapforward.runtime import memory

    out = tmp_path / "results.pt"
    mp.spawn(worker, args=(world, free_port(), str(out), torch.get_num_threads()), nprocs=world, join=True)
    shared = torch.load(out)
    monkeypatch.setattr(memory, "SEGMENT_BYTES", SEGMENT_BYTES)
    for name, alone in run_cases().items():
        latents, audio, calls = shared[name]
        assert torch.equal(latents, alone.latents), name
        assert torch.equal(audio, torch.from_numpy(alone.audio)), name
        assert alone.layout.num_views > 8 * (world - 1) and calls == alone.model_calls, name


def test_what_several_processes_cannot_share_is_one_sentence():
    from swapforward.runtime.distributed import check_shareable

    with pytest.raises(SwapForwardError, match=r"^method mad needs every view in one model call"):
        check_shareable("mad", 0.0, None, 10, 2)
    with pytest.raises(SwapForwardError, match=r"^eta=0.5 draws noise view by view"):
        check_shareable("safa", 0.5, None, 10, 2)
    with pytest.raises(SwapForwardError, match=r"^3 processes need at least 3 views, and this output has 2"):
        check_shareable("safa", 0.0, None, 2, 3)
    with pytest.raises(SwapForwardError, match=r"^2 processes need at least 2 batches of 8 views, and this output has "
                                               r"8 views; use fewer processes, a longer output or a smaller "):
        check_shareable("safa", 0.0, None, 8, 2, 8)
    with pytest.raises(SwapForwardError, match=r"need a scheduler that keeps no history per view .* this model's "
                                               r"DPMSolverMultistepScheduler keeps one"):
        check_shareable("safa", 0.0, "DPMSolverMultistepScheduler", 30, 2)
    check_shareable("md-tri", 0.0, None, 3, 3)
    check_shareable("md-tri", 0.0, None, 17, 3, 8)


class Stop(Exception):
    """Stands for a crash or a preemption."""


def saving_worker(rank, world, port, state, out, phase):
    """`phase` "save": a `world`-process run saving its state every 2 steps, stopped after step 4; "resume": the run
    resumed from that state by `world` processes, the first saving its latents."""
    import torch.distributed as dist
    from tiny_pipelines import tiny_audioldm_pipeline

    from swapforward.runtime import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if world > 1:
        assert distributed.join_from_environment()
    pipe = LongAudioPipeline.from_pipe(tiny_audioldm_pipeline())
    options = dict(BASE, **CASES["safa-loop"], num_inference_steps=8)
    if phase == "save":

        def stop(k, t, latents):
            if k == 4:
                raise Stop

        with pytest.raises(Stop):
            pipe("rain on a tin roof", save_state=state, save_every=2, callback=stop, **options)
    else:
        result = pipe("rain on a tin roof", resume_from=state, **options)
        if rank == 0:
            torch.save((result.latents, result.model_calls), out)
    if world > 1:
        dist.destroy_process_group()


def test_a_state_saved_by_two_processes_resumes_with_three_or_one_to_the_same_canvas(tmp_path):
    """DDIM keeps no history per view, so a state saved by 2 processes (the canvas gathered, one scheduler copy, the
    summed counts) resumes with 3 processes or 1 to the uninterrupted run's canvas and model calls."""
    from tiny_pipelines import tiny_audioldm_pipeline

    state, out = tmp_path / "state.pt", tmp_path / "out.pt"
    mp.spawn(saving_worker, args=(2, free_port(), str(state), str(out), "save"), nprocs=2, join=True)
    assert state.exists()
    torch.set_num_threads(1)
    try:
        pipe = LongAudioPipeline.from_pipe(tiny_audioldm_pipeline())
        options = dict(BASE, **CASES["safa-loop"], num_inference_steps=8)
        full = pipe("rain on a tin roof", **options)
        alone = pipe("rain on a tin roof", resume_from=state, **options)
    finally:
        torch.set_num_threads(THREADS)
    assert torch.equal(alone.latents, full.latents) and alone.model_calls == full.model_calls
    mp.spawn(saving_worker, args=(3, free_port(), str(state), str(out), "resume"), nprocs=3, join=True)
    latents, calls = torch.load(out)
    assert torch.equal(latents, full.latents) and calls == full.model_calls


ARGS = ["audio", "rain", "--seconds", "1.6", "--window-seconds", "0.064", "--steps", "3", "--loop", "--seed", "1",
        "--device", "cpu"]


def test_torchrun_command_writes_one_file_equal_to_the_single_process_file(tiny_model_dir, tmp_path):
    """`torchrun --nproc_per_node 2 swapforward audio ...` at the default view batch: one file, written by the first
    process, the same bytes as one process makes (with the same threads each)."""
    import subprocess
    import sys

    args = [*ARGS, "--model", tiny_model_dir]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "swapforward", *args, "-o", str(tmp_path / "one.wav")],
                         capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(free_port()), "-m", "swapforward", *args, "-o", str(tmp_path / "two.wav")],
                         capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "two.wav").read_bytes() == (tmp_path / "one.wav").read_bytes()
    assert two.stdout.count("two.wav: 1.60 s of safa audio") == 1, "one summary, from the first process"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.wav", "two.wav"]


def test_two_nodes_on_the_loopback_write_the_single_process_file(tiny_model_dir, tmp_path):
    """Two torchrun "machines" (--nnodes 2, one process each, a c10d rendezvous on 127.0.0.1, gloo): the first
    node's file equals one process's, byte for byte."""
    import subprocess
    import sys

    args = [*ARGS, "--model", tiny_model_dir]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "swapforward", *args, "-o", str(tmp_path / "one.wav")],
                         capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr
    port = free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node",
                               "1", "--node_rank", str(rank), "--rdzv_backend", "c10d", "--rdzv_endpoint",
                               f"127.0.0.1:{port}", "--rdzv_id", "swapforward-test", "-m", "swapforward", *args,
                               "-o", str(tmp_path / f"node{rank}.wav")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for rank in range(2)]
    results = [node.communicate(timeout=300) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-2000:] for _, err in results]
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["node0.wav", "one.wav"] or written == ["node1.wav", "one.wav"], written
    node_file = tmp_path / next(name for name in written if name.startswith("node"))
    assert node_file.read_bytes() == (tmp_path / "one.wav").read_bytes()


def test_a_process_that_dies_mid_run_stops_the_others_with_one_sentence_and_no_file(tiny_model_dir, tmp_path):
    """Two torchrun nodes; the second node's process is killed once the first is in its denoising loop: the first
    stops at once with one sentence (its collective call fails, or torchrun stops it), and no file appears."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    args = [*ARGS[:-4], "--steps", "400", "--device", "cpu", "--model", tiny_model_dir]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node",
                               "1", "--node_rank", str(rank), "--rdzv_backend", "c10d", "--rdzv_endpoint",
                               f"127.0.0.1:{port}", "--rdzv_id", "swapforward-death", "-m", "swapforward", *args,
                               "-o", str(tmp_path / "out.wav")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, start_new_session=True) for rank in range(2)]
    seen, looping = [], threading.Event()

    def read_first() -> None:
        for line in iter(nodes[0].stderr.readline, ""):
            seen.append(line)
            if "step" in line and "views" in line:
                looping.set()
        looping.set()

    reader = threading.Thread(target=read_first)
    reader.start()
    assert looping.wait(240)
    time.sleep(1)
    import psutil

    worker = psutil.Process(nodes[1].pid).children(recursive=True)[0]  # the second node's process, not its agent
    worker.send_signal(signal.SIGKILL)
    stopped = time.time()
    nodes[0].wait(120)
    reader.join(10)
    nodes[1].wait(30)
    text = "".join(seen)
    said = ("error: another process of this distributed run stopped", "interrupted (SIGTERM); nothing was written")
    assert any(sentence in text for sentence in said), text[-3000:]
    assert nodes[0].returncode != 0 and time.time() - stopped < 60
    assert not list(tmp_path.iterdir()), "no file, no temporary file"

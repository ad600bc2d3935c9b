"""`compile()` / `--compile`: torch.compile on the denoiser gives the eager result, up to rounding (CPU inductor)."""

import numpy as np
import pytest
import soundfile as sf
from tiny_pipelines import tiny_audioldm_pipeline
from typer.testing import CliRunner

from swapforward import LongAudioPipeline, SwapForwardError
from swapforward.frontends.cli import app

# MD keeps one batch shape through the run (SaFa adds the reference for its first steps): one compilation, which
# the CLI test below finds in inductor's cache.
KWARGS = {"audio_length_in_s": 0.1, "window_seconds": 0.064, "method": "md", "num_inference_steps": 3, "seed": 4,
          "progress_bar": False}


def test_a_compiled_denoiser_gives_the_eager_result():
    long = LongAudioPipeline.from_pipe(tiny_audioldm_pipeline())  # its own modules: compiling is in place
    eager = long("rain", **KWARGS)
    assert not long.adapter.compiled
    assert long.compile() is long and long.adapter.compiled
    compiled = long("rain", **KWARGS)
    assert compiled.model_calls == eager.model_calls
    np.testing.assert_allclose(compiled.audio, eager.audio, rtol=0, atol=1e-5)
    assert not np.array_equal(compiled.audio, long("rain", **{**KWARGS, "seed": 5}).audio)


def test_a_denoiser_compiled_by_the_user_is_seen_and_its_outputs_copied_exactly():
    """Outputs of a compiled denoiser are copied out (CUDA graphs overwrite them); dynamo's eager backend runs the
    same operations, so the copy must change nothing. The user compiled the module themselves, as diffusers' docs
    show, and a pipeline made from it afterwards knows."""
    import torch

    pipe = tiny_audioldm_pipeline()
    kwargs = {**KWARGS, "method": "safa", "guidance_scale": 1.0, "view_batch_size": 1}  # raw outputs, many calls
    plain = LongAudioPipeline.from_pipe(pipe)("rain", **kwargs)
    pipe.unet = torch.compile(pipe.unet, backend="eager", dynamic=False)
    long = LongAudioPipeline.from_pipe(pipe)
    assert long.adapter.compiled
    assert np.array_equal(long("rain", **kwargs).audio, plain.audio)


def test_an_unknown_compile_mode_is_one_sentence(audioldm):
    with pytest.raises(SwapForwardError, match=r"Unknown compile mode 'fast'; use one of: reduce-overhead, "):
        LongAudioPipeline.from_pipe(audioldm).compile(mode="fast")


def test_cli_compile_flag(tiny_model_dir, tmp_path):
    out = tmp_path / "c.wav"
    args = ["audio", "rain", "--model", tiny_model_dir, "--seconds", "0.1", "--window-seconds", "0.064",
            "--steps", "2", "--seed", "1", "--method", "md", "--out"]
    compiled = CliRunner().invoke(app, [*args, str(out), "--compile"])
    assert compiled.exit_code == 0, compiled.output
    eager = CliRunner().invoke(app, [*args, str(tmp_path / "e.wav")])
    assert eager.exit_code == 0, eager.output
    np.testing.assert_allclose(sf.read(out)[0], sf.read(tmp_path / "e.wav")[0], rtol=0, atol=1e-4)


def test_a_failing_compiler_is_one_sentence():
    """Where torch.compile cannot work (no C++ compiler, an unsupported GPU), the user reads why, not a traceback."""

    def no_compiler(graph, inputs):
        raise RuntimeError("no C++ compiler found")

    pipe = tiny_audioldm_pipeline()
    long = LongAudioPipeline.from_pipe(pipe).compile(backend=no_compiler)
    with pytest.raises(SwapForwardError) as info:
        long("rain", **KWARGS)
    assert str(info.value) == ("torch.compile could not compile the denoiser (RuntimeError: no C++ compiler found); "
                               "run without compiling.")

"""The web app: the Studio behind its buttons, the page served on localhost and called as a user's browser would."""

import os
import re
import socket

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from swapforward import SwapForwardError
from swapforward.frontends.app import Studio, app_options, build_app, slug
from swapforward.frontends.cli import app

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

AUDIO = {"seconds": 0.15, "steps": 3, "method": "safa", "window_seconds": 0.064}


@pytest.fixture(scope="module")
def studio(tiny_model_dir, tiny_sd_dir, tmp_path_factory):
    return Studio(tiny_model_dir, tiny_sd_dir, tmp_path_factory.mktemp("app-results"), device="cpu")


def app_arguments(**values):
    """The audio tab's inputs in their order on the page, the spec's defaults where `values` says nothing."""
    shown = {o.key: o.default_for("audio") for o in app_options("audio")}
    shown.update(values)
    return [shown.get(o.key) for o in app_options("audio")] + [values.get("file_format", "flac")]


def test_audio_writes_the_sound_and_its_spectrogram_and_names_the_seed(studio):
    sound, picture, files, summary = studio.audio("rain on a tin roof", seed=5, **AUDIO)
    assert files == [sound]
    name = os.path.basename(sound)
    assert re.fullmatch(r"rain-on-a-tin-roof-safa-5-[0-9a-f]{6}\.flac", name), name
    assert os.path.dirname(sound) == str(studio.output_dir) and picture == sound[:-5] + ".png"
    data, rate = sf.read(sound)
    assert rate == 16000 and len(data) == round(0.15 * 16000) and np.isfinite(data).all()
    assert Image.open(picture).format == "PNG"
    assert "seed 5" in summary and "3 views (+1 reference" in summary
    again, _, _, _ = studio.audio("rain on a tin roof", seed=5, file_format="wav", **AUDIO)
    assert again[:-4] == sound[:-5], "the same result, another format"
    np.testing.assert_allclose(sf.read(again)[0], data, atol=1e-6)  # 24-bit FLAC against float WAV
    looped, _, _, _ = studio.audio("rain on a tin roof", seed=5, **{**AUDIO, "loop": True})
    assert looped != sound and os.path.exists(sound), "another setting keeps the first result"


def test_a_random_seed_is_reported_and_reproduces_the_result(studio):
    sound, _, _, summary = studio.audio("wind", seed=-1, **AUDIO)
    seed = int(summary.split("seed ")[1].split(";")[0])
    assert 0 <= seed < 2**31
    again, _, _, _ = studio.audio("wind", seed=float(seed), **AUDIO)  # browsers send numbers as floats
    assert again == sound and studio.pipelines, "same file name, and the model stayed loaded"


def test_takes_are_kept_side_by_side_and_a_loop_plays_round(studio):
    sound, picture, files, summary = studio.audio("surf", seed=11, takes=3, **{**AUDIO, "loop": True})
    assert len(files) == 3 and files[0] == sound and sound.endswith("_0.flac") and picture.endswith("_0.png")
    assert "3 takes, seeds 11, 12, 13" in summary
    assert all(os.path.exists(f) for f in files)


def test_panorama(studio):
    path, files, summary = studio.panorama("misty forest", width=192, height=64, steps=2, seed=3, method="md")
    assert files == [path]
    assert Image.open(path).size == (192, 64)
    assert summary.startswith("192 x 64, seed 3;")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"prompt": " "}, "The prompt is empty"),
        ({"seconds": 0}, "seconds must be a finite number > 0 and <= 86400, got 0."),
        ({"seed": "abc"}, "seed must be a whole number from 0 to 2^64-1, or -1 for a random one, got 'abc'."),
        ({"seed": 2**64}, "seed must be a whole number from 0 to 2^64-1"),
        ({"steps": 2.5}, "steps must be a whole number >= 1 and <= 10000, got 2.5."),
        ({"file_format": "aiff"}, "file_format must be one of flac, wav, mp3, ogg, got 'aiff'."),
        ({"method": "fast"}, "Unknown method 'fast'"),
        ({"r_guide": float("nan")}, "r_guide must be a finite number between 0 and 1, got nan."),
    ],
)
def test_bad_input_is_one_sentence_before_any_work(studio, kwargs, message):
    arguments = {"prompt": "rain", **AUDIO, **kwargs}
    before = set(studio.output_dir.iterdir())
    with pytest.raises(SwapForwardError) as info:
        studio.audio(**arguments)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert set(studio.output_dir.iterdir()) == before


def test_slug():
    assert slug("Rain on a tin roof!") == "rain-on-a-tin-roof"
    assert slug("???") == "untitled"
    assert len(slug("a" * 100)) == 40


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_served_page_makes_audio_and_reports_mistakes(studio):
    from gradio_client import Client

    demo = build_app(studio)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        values = dict(prompt="rain", seconds=0.15, method="md", steps=3, seed=7, window_seconds=0.064,
                      file_format="wav", negative_prompt="")
        sound, picture, files, summary = client.predict(*app_arguments(**values), api_name="/audio")
        data, rate = sf.read(sound)
        assert rate == 16000 and len(data) == 2400 and "seed 7; 3 views;" in summary
        with pytest.raises(Exception, match="The prompt is empty"):
            client.predict(*app_arguments(**{**values, "prompt": ""}), api_name="/audio")
    finally:
        demo.close()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--port", "0"], "--port must be a whole number >= 1 and <= 65535, got '0'."),
        (["--device", "tpu"], "device"),
        (["--scheduler", "fast"], "scheduler"),
    ],
)
def test_cli_app_refuses_bad_options_in_one_line(args, message, tmp_path):
    result = CliRunner().invoke(app, ["app", *args])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr

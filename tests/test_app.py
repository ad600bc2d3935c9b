"""The web app: the Studio behind its buttons, the page served on localhost and called as a user's browser would."""

import os
import re
import shlex
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


def untouched_form(demo, kind):
    """What the page's fields of `kind` hold before anyone types: their values as served to the browser."""
    by_id = {c["props"].get("elem_id"): c["props"].get("value") for c in demo.config["components"]}
    return {o.key: by_id[f"{kind}-{o.key}"] for o in app_options(kind)}


def app_arguments(**values):
    """The audio tab's inputs in their order on the page: the untouched form, changed where `values` says."""
    shown = untouched_form(build_app(Studio("unused", "unused")), "audio")
    shown.update(values)
    return [shown[o.key] for o in app_options("audio")]


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
        ({"file_format": "aiff"}, "Unknown file_format 'aiff'; use one of: flac, wav, mp3, ogg, opus."),
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


def serve(studio):
    demo = build_app(studio)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                allowed_paths=[str(studio.output_dir)])
    return demo, port


def test_the_served_page_makes_audio_keeps_the_takes_and_reports_mistakes(studio, capfd, monkeypatch, tmp_path):
    from gradio_client import Client

    demo, port = serve(studio)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        values = dict(prompt="rain", seconds=0.15, method="md", steps=3, seed=7, window_seconds=0.064,
                      file_format="wav", negative_prompt="")
        sound, picture, files, summary, command, take_a, take_b = client.predict(*app_arguments(**values),
                                                                                 api_name="/audio")
        data, rate = sf.read(sound)
        assert rate == 16000 and len(data) == 2400 and "seed 7; 3 views;" in summary
        assert sf.info(sound).subtype == "PCM_16", "the player gets a WAV every browser plays, however short"
        assert len(files) == 1 and files[0].endswith(".wav")
        assert command.startswith("swapforward audio rain --seconds 0.15 --window-seconds 0.064 --method md --steps 3")
        assert command.endswith(f"--seed 7 --model {studio.models['audio']} -o {os.path.basename(files[0])} "
                                f"--spectrogram {os.path.basename(files[0])[:-4]}.png")
        monkeypatch.chdir(tmp_path)
        again = CliRunner().invoke(app, shlex.split(command)[1:])
        assert again.exit_code == 0, again.output
        np.testing.assert_array_equal(sf.read(tmp_path / os.path.basename(files[0]))[0], sf.read(files[0])[0])
        *_, take_a, take_b = client.predict(*app_arguments(**{**values, "seed": 8, "file_format": "flac"}),
                                            api_name="/audio")
        labels = [label for label, _ in take_a["choices"]]
        assert labels == ["1.1 seed 7 · rain-md", "2.1 seed 8 · rain-md"], "the seed comes before a narrow menu cuts"
        assert (take_a["value"], take_b["value"]) == (labels[1], labels[0]), "the newest two, ready to compare"
        capfd.readouterr()
        refused = client.predict(*app_arguments(**{**values, "prompt": ""}), api_name="/audio")
        assert refused[3].startswith("Refused: The prompt is empty"), "one sentence in the summary box"
        unchanged = {"__type__": "update"}  # gradio's "leave this output as it is"
        assert refused[0] == refused[-1] == unchanged, "the earlier results stay on the page, no Error badges"
        log = capfd.readouterr().err
        assert "swapforward app: refused: The prompt is empty" in log and "Traceback" not in log
        assert len([line for line in log.splitlines() if "refused" in line]) == 1
    finally:
        demo.close()


def test_the_page_has_a_cancel_button_for_each_generation(studio):
    demo = build_app(studio)
    config = demo.config
    by_id = {c["id"]: c for c in config["components"]}
    generate = {d["api_name"]: i for i, d in enumerate(config["dependencies"]) if d.get("api_name") in
                ("audio", "panorama")}
    cancels = {}
    for dependency in config["dependencies"]:
        for target, _ in dependency["targets"]:
            if target not in by_id:  # the page itself (its unload: a closed tab)
                continue
            label = by_id[target]["props"].get("value")
            if label == "Cancel":
                cancels[by_id[target]["props"]["elem_id"]] = dependency["cancels"]
    assert cancels == {"audio-cancel": [generate["audio"]], "panorama-cancel": [generate["panorama"]]}


def test_progress_is_reported_in_denoising_steps(studio):
    seen = []
    studio.audio("rain", seed=1, progress=lambda done, total: seen.append((done, total)), **AUDIO)
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_a_looped_panorama_turns_in_a_360_viewer(studio):
    import urllib.request

    from gradio_client import Client

    demo, port = serve(studio)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        shown = untouched_form(demo, "panorama")
        shown.update(prompt="forest", width=192, height=64, view_width=64, steps=2, seed=1, negative_prompt="")
        arguments = [shown.get(o.key) for o in app_options("panorama")]
        loop_at = [o.key for o in app_options("panorama")].index("loop")
        arguments[loop_at] = True
        path, html, files, summary, *_ = client.predict(*arguments, api_name="/panorama")
        assert "looping" in summary and "animation: sf-turn" in html
        url = html.split("url('")[1].split("')")[0]
        assert url.startswith("/gradio_api/file=" + str(studio.output_dir))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{url}") as response:
            assert response.status == 200 and response.read()[:4] == b"\x89PNG", "the viewer's picture is served"
        arguments[loop_at] = False
        _, html, *_ = client.predict(*arguments, api_name="/panorama")
        assert html == "", "a panorama that does not loop has no 360 view"
    finally:
        demo.close()


def test_the_360_viewer_can_stand_still_at_an_angle():
    from swapforward.frontends.app import viewer_html

    turning = viewer_html("/x/p.png", 1024, 128)
    assert "-1920.0px" in turning and "animation" in turning  # one period: 1024 px shown 240 px high
    still = viewer_html("/x/p.png", 1024, 128, angle=90)
    assert "background-position-x: -480.0px" in still and "animation:" not in still


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


def test_the_untouched_form_makes_audio_and_a_panorama(studio):
    """Every field as the page first shows it (for time, fewer steps and, for the tiny model whose 10.24 s window
    is 5,120 frames, shorter views): nothing is refused. A browser shows and sends an empty number field as 0, so
    no number field may start empty."""
    import gradio as gr
    from gradio_client import Client

    demo, port = serve(studio)
    try:
        numbers = [c for c in demo.blocks.values() if isinstance(c, gr.Number)]
        assert numbers and all(c.value is not None for c in numbers), [c.elem_id for c in numbers if c.value is None]
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        audio = untouched_form(demo, "audio")
        assert audio["seconds"] == audio["bpm"] == audio["sample_rate"] == audio["loudness"] == ""
        sound, _, files, summary, command, *_ = client.predict(*{**audio, "steps": 2, "window_seconds": 0.256}.values(),
                                                        api_name="/audio")
        assert sf.info(files[0]).duration == 24.0 and files[0].endswith(".flac"), "24 s, the spec's default"
        assert "--seconds" not in command and "--steps 2" in command
        panorama = untouched_form(demo, "panorama")
        assert panorama["height"] == panorama["overlap"] == panorama["view_width"] == ""
        path, _, files, summary, *_ = client.predict(*{**panorama, "steps": 2}.values(), api_name="/panorama")
        assert Image.open(path).size[0] == 3200 and "3200 x" in summary
    finally:
        demo.close()


def test_cancel_stops_the_loop_within_one_view_batch_writes_nothing_and_frees_the_studio(studio):
    import threading

    from swapforward.frontends.app import Cancelled

    before = set(studio.output_dir.iterdir())
    seen, outcome = [], []

    def report(done, total):
        seen.append(done)
        if done == 2:
            assert studio.cancel(), "a run is going"

    def run():
        try:
            studio.audio("rain", seed=2, progress=report, **{**AUDIO, "steps": 40})
        except Cancelled as stop:
            outcome.append(str(stop))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert outcome == ["cancelled in step 3 of 40; nothing was written"] and seen == [1, 2]
    assert set(studio.output_dir.iterdir()) == before, "no file"
    assert not studio.cancel(), "nothing runs after it"
    sound, *_ = studio.audio("rain", seed=2, **AUDIO)  # the next run starts at once and finishes
    assert os.path.exists(sound)


def test_cancel_on_the_served_page_stops_the_server_side_run(studio):
    import time

    from gradio_client import Client

    demo, port = serve(studio)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        before = set(studio.output_dir.iterdir())
        values = dict(prompt="rain", seconds=0.15, method="md", steps=999, seed=3, window_seconds=0.064)
        job = client.submit(*app_arguments(**values), api_name="/audio")
        deadline = time.time() + 60
        while not studio._busy.locked() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert client.predict(api_name="/cancel_audio").startswith("Cancelled: the audio run stops")
        started = time.time()
        result = job.result(timeout=60)
        assert result[3].startswith("Cancelled: cancelled ") and time.time() - started < 10
        assert set(studio.output_dir.iterdir()) == before
        *_, summary, _, _, _ = client.predict(*app_arguments(**{**values, "steps": 2}), api_name="/audio")
        assert "seed 3" in summary, "the next run starts at once"
    finally:
        demo.close()


def test_the_page_groups_its_fields_and_shows_a_method_s_settings_only_with_it():
    from swapforward.frontends.app import SECTIONS, method_visibility

    for kind in ("audio", "panorama"):
        keys = [o.key for o in app_options(kind)]
        assert len(keys) == len(set(keys)) and all(any(k in s for _, s in SECTIONS) for k in keys)
        options = app_options(kind)
        shown = dict(zip(keys, method_visibility("md", options), strict=True))
        assert not shown["r_guide"] and not shown["sync_weight"] and shown["steps"] and shown["overlap"]
        shown = dict(zip(keys, method_visibility("syncd", options), strict=True))
        assert shown["sync_weight"] and not shown["mad_ratio"] and not shown["swap_interval"]
    with pytest.raises(KeyError, match="no section"):
        from swapforward.frontends import app as module

        original = module.SECTIONS
        module.SECTIONS = original[:-1]
        try:
            app_options("audio")
        finally:
            module.SECTIONS = original


@pytest.mark.parametrize("kind", ["audio", "panorama"])
def test_every_preset_is_a_valid_request(studio, kind):
    from swapforward.frontends.app import PRESETS, SKIP, preset_values

    keys = [o.key for o in app_options(kind)]
    form = untouched_form(build_app(studio), kind)
    assert len(PRESETS[kind]) >= 3
    for name in PRESETS[kind]:
        values = {k: form[k] if v is SKIP else v for k, v in zip(keys, preset_values(kind, name, keys), strict=True)}
        values["prompt"] = values["prompt"] or "x"
        request, _ = studio.request(kind, values.pop("prompt"), {k: v for k, v in values.items()
                                                                 if k not in ("file_format", "model")})
        assert request.loop == PRESETS[kind][name]["loop"]

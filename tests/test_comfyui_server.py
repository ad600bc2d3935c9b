"""The node pack in a real ComfyUI server: ComfyUI 0.8.0 started on the loopback with the pack installed by
`swapforward comfyui`, the example workflows submitted over HTTP with the user's loaders swapped for tiny models,
and the files they write checked; bad inputs come back as ComfyUI's validation errors."""

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from comfyui_models import comfyui_missing, comfyui_server

pytestmark = pytest.mark.skipif(comfyui_missing() is not None, reason=str(comfyui_missing()))

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "comfyui"
TESTS = Path(__file__).parent


class Server:
    def __init__(self, url: str, base: Path) -> None:
        self.url, self.base = url, base

    def call(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def run(self, graph: dict, limit: float = 300) -> dict:
        status, answer = self.call("/prompt", {"prompt": graph, "client_id": "swapforward-test"})
        assert status == 200, answer
        end = time.time() + limit
        while time.time() < end:
            _, history = self.call(f"/history/{answer['prompt_id']}")
            entry = history.get(answer["prompt_id"])
            if entry and entry.get("status", {}).get("completed") is not None:
                assert entry["status"]["status_str"] == "success", entry["status"]
                return entry["outputs"]
            time.sleep(0.5)
        raise AssertionError("the workflow did not finish in time")

    def file(self, output: dict) -> Path:
        return self.base / "output" / output.get("subfolder", "") / output["filename"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui")
    (base / "custom_nodes").mkdir()
    refused = subprocess.run([sys.executable, "-m", "swapforward", "comfyui", str(base / "output")],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "is not a ComfyUI folder" in refused.stderr, refused.stderr
    installed = subprocess.run([sys.executable, "-m", "swapforward", "comfyui", str(base)], capture_output=True,
                               text=True)
    assert installed.returncode == 0, installed.stderr
    shutil.copytree(TESTS / "comfyui_tiny_nodes", base / "custom_nodes" / "comfyui_tiny_nodes")
    with comfyui_server(base, [TESTS]) as url:
        yield Server(url, base)


def tiny_panorama(width: int, loop: bool) -> dict:
    """The example 360 workflow at a test's size, its checkpoint loader and text encoders swapped for tiny ones."""
    graph = json.loads((EXAMPLES / "panorama-360.json").read_text())
    del graph["2"], graph["3"]
    graph["1"] = {"class_type": "TinySDCheckpoint", "inputs": {"seed": 0}}
    graph["4"]["inputs"].update(width=width, height=64)
    graph["5"]["inputs"].update(steps=3, positive=["1", 2], negative=["1", 3], loop=loop)
    graph["6"]["inputs"].update(vae=["1", 1], loop=loop, tile=16, overlap=8)
    graph["7"]["inputs"]["filename_prefix"] = f"test/panorama-{width}-{loop}"
    return graph


def tiny_audio_loop(seconds: float) -> dict:
    graph = json.loads((EXAMPLES / "audio-loop-2min.json").read_text())
    for node in ("2", "3", "4", "5"):
        del graph[node]
    graph["1"] = {"class_type": "TinyStableAudioCheckpoint", "inputs": {"seed": 0, "seconds_total": 1.0}}
    graph["6"]["inputs"].update(seconds=seconds, view_seconds=1.0)
    graph["7"]["inputs"].update(steps=3, positive=["1", 2], negative=["1", 3])
    graph["8"]["inputs"].update(vae=["1", 1], tile=16, overlap=8)
    return graph


def seam_ratio(columns: np.ndarray) -> float:
    """The step from the last column (or sample) to the first, against the median step between neighbours."""
    steps = np.abs(np.diff(columns, axis=0)).mean(axis=tuple(range(1, columns.ndim)))
    return float(np.abs(columns[-1] - columns[0]).mean() / np.median(steps))


def test_the_example_workflows_run_and_write_a_wide_image_a_360_panorama_and_an_audio_loop(server):
    from PIL import Image

    wide = server.run(tiny_panorama(512, False))["7"]["images"][0]
    image = np.asarray(Image.open(server.file(wide)), dtype=np.float32)
    assert image.shape == (64, 512, 3)
    around = server.run(tiny_panorama(512, True))["7"]["images"][0]
    turned = np.asarray(Image.open(server.file(around)), dtype=np.float32)
    assert turned.shape == (64, 512, 3)
    assert seam_ratio(turned.transpose(1, 0, 2)) < 2.0, "the 360 panorama's ends meet like neighbouring columns"

    import soundfile

    sound = server.run(tiny_audio_loop(6.0))["9"]["audio"][0]
    wave, rate = soundfile.read(server.file(sound))
    assert rate == 44100 and wave.shape == (round(6.0 * 44100 / 2048 / 2) * 2 * 2048, 2)
    assert seam_ratio(wave) < 2.0, "the loop's end continues into its start"


def test_bad_inputs_are_comfyuis_validation_errors_naming_the_input(server):
    graph = tiny_panorama(512, True)
    graph["5"]["inputs"]["overlap"] = 1.5
    status, answer = server.call("/prompt", {"prompt": graph})
    assert status == 400
    errors = answer["node_errors"]["5"]["errors"]
    assert errors[0]["extra_info"]["input_name"] == "overlap" and "1.5 bigger than max of 0.95" in errors[0]["message"]
    graph = tiny_panorama(512, True)
    graph["4"]["inputs"].update(width=256, height=512)
    status, answer = server.call("/prompt", {"prompt": graph})
    assert status == 400
    said = json.dumps(answer["node_errors"]["4"])
    assert "width 256 px is narrower than one view (512 px)" in said and "Traceback" not in said


def test_the_examples_name_only_nodes_and_inputs_the_server_knows(server):
    """The shipped workflows as they are (a user's loaders included) against the server's /object_info."""
    _, known = server.call("/object_info")
    for example in EXAMPLES.glob("*.json"):
        if example.name.endswith(".workflow.json"):  # the front end's format of the same graphs
            continue
        for node in json.loads(example.read_text()).values():
            info = known.get(node["class_type"])
            assert info is not None, f"{example.name}: {node['class_type']} is not a ComfyUI node"
            inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
            assert set(node["inputs"]) <= set(inputs), (example.name, node["class_type"])

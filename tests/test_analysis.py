"""The spectral analysis of Fig. 2(b): closed-form checks and the command on tiny pipelines."""

import json
import math
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from swapforward.core import ViewLayout
from swapforward.evaluation.analysis import region_patches, relative_log_amplitude
from swapforward.frontends.cli import app


def test_relative_log_amplitude_is_zero_at_dc_and_peaks_at_a_cosines_frequency():
    cols = torch.arange(32).float()
    patch = (1.0 + torch.cos(2 * math.pi * 8 * cols / 32)).expand(2, 16, 32)  # half of Nyquist, along columns
    freqs, curve = relative_log_amplitude(patch, bins=17)
    assert curve[0] == 0.0 and freqs[0] == 0.0 and freqs[-1] == pytest.approx(math.pi)
    assert int(np.argmax(curve[1:])) + 1 == 8  # radius 0.5 of Nyquist -> bin 8 of 0..16
    others = np.delete(curve, [0, 8])
    assert (others < curve[8] - 5).all(), "no other ring holds any of the cosine's energy"


def test_white_noise_has_a_flat_relative_spectrum_and_smoothing_lowers_it():
    torch.manual_seed(0)
    noise = torch.randn(4, 64, 64)
    _, flat = relative_log_amplitude(noise)
    smooth = (noise + noise.roll(1, -1) + noise.roll(1, -2) + noise.roll((1, 1), (-2, -1))) / 4
    _, lowered = relative_log_amplitude(smooth)
    assert abs(flat[-1] - flat[len(flat) // 2]) < 0.5
    assert lowered[-1] < flat[-1] - 1.0


def test_region_patches_cut_equal_width_overlap_and_middle_patches():
    layout = ViewLayout.build(84, 32, stride=26)  # overlaps [26, 32) and [52, 58)
    canvas = torch.arange(84.0).view(1, 1, 84, 1).expand(1, 4, 84, 3)
    patches = region_patches(canvas, layout, axis=2)
    assert [p[0, :, 0].tolist() for p in patches["overlap"]] == [list(range(26, 32)), list(range(52, 58))]
    assert all(p.shape == (4, 6, 3) for p in patches["reference"]) and len(patches["reference"]) == 3


def test_analyze_command_writes_curves_for_every_method(tiny_model_dir, tmp_path):
    result = CliRunner().invoke(app, ["analyze", "rain", "--model", tiny_model_dir, "--seconds", "0.2",
                                      "--window-seconds", "0.064", "--steps", "6", "--every", "3", "--out-dir",
                                      str(tmp_path), "-m", "safa", "-m", "md"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "analysis.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "analysis.json").read_text())
    assert set(data["curves"]) == {"safa", "md"} and data["steps"] == [3, 6]
    assert set(data["curves"]["md"]["6"]) == {"overlap", "reference"}
    lines = (tmp_path / "analysis.csv").read_text().splitlines()
    assert lines[0] == "method,step,region,frequency,relative_log_amplitude" and len(lines) == 1 + 2 * 2 * 2 * 16
    assert "overlap - reference at pi after step 6" in result.stdout
    assert "safa, 4 views" in result.stderr and "md, 4 views" in result.stderr and "6/6" in result.stderr, "progress"


def test_analyze_panorama_and_bad_input(tiny_sd_dir, tmp_path):
    ok = CliRunner().invoke(app, ["analyze", "forest", "--kind", "panorama", "--model", tiny_sd_dir, "--width", "256",
                                  "--height", "64", "--view-width", "64", "--steps", "2", "--every", "1",
                                  "--out-dir", str(tmp_path / "p")])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(app, ["analyze", "x", "--kind", "video", "--out-dir", str(tmp_path / "v")])
    assert bad.exit_code == 2 and "Unknown --kind 'video'; use one of: audio, panorama." in bad.stderr


@pytest.mark.parametrize("width", [72, 96, 128, 136])
def test_small_panoramas_have_both_regions(sd, width, tmp_path):
    from swapforward import PanoramaPipeline
    from swapforward.evaluation.analysis import analyze

    result = analyze(PanoramaPipeline.from_pipe(sd), "x", ["safa", "md"], every=1, height=64, width=width,
                     view_width=64, num_inference_steps=2, overlap=0.2, seed=0)
    assert all(set(by_step[2]) == {"overlap", "reference"} for by_step in result.curves.values())
    paths = result.save(tmp_path)
    assert all(os.path.exists(p) for p in paths)


def test_a_layout_without_a_reference_region_is_one_sentence(tiny_sd_dir, tmp_path):
    result = CliRunner().invoke(app, ["analyze", "x", "--kind", "panorama", "--width", "80", "--view-width", "64",
                                      "--model", tiny_sd_dir,
                                      "--height", "64", "--overlap", "0.9", "--loop", "--steps", "1",
                                      "--out-dir", str(tmp_path / "a")])
    assert result.exit_code == 2, result.output
    assert "error: The layout has no frames that only one view covers" in result.stderr
    assert not (tmp_path / "a").exists()

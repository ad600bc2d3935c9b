"""Issue 39: worlds whose styles differ in the spectrum, in loudness over time, in how the channels co-vary, in all of
them, or as real sounds do; the style mix, the modulation kept and the second-moment measures, each able to fail."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from swapforward.lab import beyond
from swapforward.lab.beyond import (
    Candidate,
    canvas_styles,
    channel_world,
    fit_sound,
    fitted_world,
    modulated_world,
    modulation_depth,
    moments,
    rates_world,
    rows,
)
from swapforward.lab.candidates import channel_covariance_move, modulation_move
from swapforward.lab.run import Lab, Setting, styles_row
from swapforward.lab.worlds import StylesWorld


@pytest.mark.parametrize("make", beyond.WORLDS, ids=lambda make: make.__name__)
def test_true_signals_are_classified_to_their_own_style_in_every_world(make):
    world = make()
    x, styles = world.sample(96, 128, torch.Generator().manual_seed(1))
    accuracy = float((canvas_styles(world, x, 64) == styles).double().mean())
    assert accuracy > 0.9, (world.name, accuracy)
    assert math.isclose(sum(world.style_weights), 1.0)


def test_the_channel_worlds_styles_share_every_channels_spectrum():
    world = channel_world()
    a, b = (world.covariance(c, 32) for c in (0, 1))
    assert torch.equal(a[:32, :32], b[:32, :32]) and torch.equal(a[32:, 32:], b[32:, 32:])
    assert torch.equal(a[:32, 32:], -b[:32, 32:]) and a[:32, 32:].abs().max() > 0.5


def test_each_rate_of_the_rates_world_shows_at_its_own_period():
    world = rates_world()
    x, styles = world.sample(192, 192, torch.Generator().manual_seed(2))
    fast, slow = (x[styles == s] for s in (1, 2))
    assert modulation_depth(fast, 8) > 0.3 > 0.15 > modulation_depth(fast, 32)
    assert modulation_depth(slow, 32) > 0.3 > 0.15 > modulation_depth(slow, 8)


def test_modulation_depth_is_the_envelopes_first_harmonic():
    m, period = 0.8, 16
    t = torch.arange(128, dtype=torch.float64)
    envelope = (1 + m * torch.cos(2 * math.pi * t / period))[None, None, :, None]
    assert math.isclose(modulation_depth(envelope.expand(1, 2, 128, 4), period), 2 * m / (1 + m**2 / 2),
                        rel_tol=1e-9)
    assert modulation_depth(torch.ones(1, 2, 128, 4), period) < 1e-9


def test_the_fit_recovers_a_known_cross_covariance_and_stays_positive_definite():
    generator = torch.Generator().manual_seed(3)
    frames, a, rho = 4000, 0.8, 0.6
    z = torch.randn(8, 2, frames, generator=generator, dtype=torch.float64)
    z[:, 1] = rho * z[:, 0] + math.sqrt(1 - rho**2) * z[:, 1]
    x = torch.zeros_like(z)
    for t in range(1, frames):  # AR(1): lag-tau correlation a^tau, channels correlated rho at every lag
        x[..., t] = a * x[..., t - 1] + math.sqrt(1 - a**2) * z[..., t]
    lags = fit_sound(x, 64)
    taper = 1 - torch.arange(64, dtype=torch.float64) / 128
    assert torch.allclose(lags[:, 0, 0], a ** torch.arange(64.0, dtype=torch.float64) * taper, atol=0.06)
    assert abs(float(lags[0, 0, 1]) - rho) < 0.05 and abs(float(lags[3, 1, 0]) - rho * a**3) < 0.06
    torch.linalg.cholesky(beyond._block_toeplitz(lags)(64))


def test_the_shipped_fit_is_three_real_sounds_and_the_rhythm_repeats_at_its_beat():
    world = fitted_world()
    assert [s for s in world.name.split("(")[1].rstrip(")").split(", ")] == ["speech", "rain", "rhythm"]
    rhythm = world.covariance(2, 217).view(2, 217, 2, 217)[0, :, 0, :]
    beat = 12.5  # a hit twice a second at 25 frames a second
    assert float(rhythm[0, round(beat)]) > 0.5 and float(rhythm[0, round(beat / 2)]) < 0.3
    for c in range(3):
        torch.linalg.cholesky(world.covariance(c, 217))


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_the_fit_script_remakes_the_shipped_fit_from_the_sounds(tmp_path):
    """The sounds are made again (sox with fixed noises) and fitted; the shipped fit is what they give, to rounding."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "fit_lab_sounds.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "fit.json")], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    made, shipped = (json.loads(path.read_text()) for path in (tmp_path / "fit.json", beyond.FITTED))
    assert [s["name"] for s in made["sounds"]] == [s["name"] for s in shipped["sounds"]]
    for a, b in zip(made["sounds"], shipped["sounds"], strict=True):
        assert a["frames"] == b["frames"]
        assert torch.allclose(torch.tensor(a["covariances"]), torch.tensor(b["covariances"]), atol=1e-4)


def test_the_channel_move_reaches_the_targets_covariance_at_share_one_and_leaves_the_view_at_zero():
    generator = torch.Generator().manual_seed(4)
    views = torch.randn(3, 4, 32, 5, generator=generator, dtype=torch.float64)
    mixing = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.4, 0, 0], [0, 0, 1, 0], [0, 0, -0.7, 0.7]], dtype=torch.float64)
    target = torch.einsum("ij,bjfk->bifk", mixing, torch.randn(3, 4, 32, 5, generator=generator,
                                                               dtype=torch.float64))

    def cov(x):
        flat = x.flatten(2)
        return flat @ flat.mT / flat.shape[-1]

    assert torch.allclose(cov(channel_covariance_move(views, target, 1.0)), cov(target), atol=1e-5)
    assert torch.allclose(channel_covariance_move(views, target, 0.0), views, atol=1e-6)


def test_the_modulation_move_gives_a_steady_view_the_targets_modulation_and_keeps_it_at_zero_share():
    generator = torch.Generator().manual_seed(5)
    views = torch.randn(64, 2, 64, 4, generator=generator, dtype=torch.float64)
    t = torch.arange(64, dtype=torch.float64)
    target = views.roll(1, 0) * (1 + 0.8 * torch.cos(2 * math.pi * t / 16)).view(1, 1, -1, 1)
    assert torch.allclose(modulation_move(views, target, 0.0), views, rtol=0, atol=1e-9)  # FFT rounding only
    assert modulation_depth(modulation_move(views, target, 1.0), 16) > 2 * modulation_depth(views, 16)


def test_second_moment_measures_pass_true_signals_and_fail_a_canvas_that_copies():
    world = channel_world()
    x, _ = world.sample(256, 217, torch.Generator().manual_seed(6))
    truth = moments(world, x, 51)
    assert abs(truth["kl"]) < 0.01 and abs(truth["copying"]) < 0.03 and truth["lost_dimensions"] == 0
    copied = x.clone()
    copied[:, :, 51:102] = copied[:, :, :51]
    assert moments(world, copied, 51)["copying"] > 0.15


def test_a_joint_method_fails_the_style_mix_and_modulation_targets_where_one_window_keeps_them():
    """MD* averages the modulated style away: its share of it and its modulation depth fall far below one window's,
    and the targets say so."""
    lab = Lab(samples=64, steps=10)
    table = rows(lab, modulated_world(), (Candidate("control"), Candidate("md-tri"), Candidate("safa")))
    truth, window, tri = table[0], table[1], table[2]
    assert abs(window["shares"][1] - truth["shares"][1]) < 0.15 and window["depths"][0] > 0.85 * truth["depths"][0]
    assert tri["mix_error"] > 0.15 and tri["coherence"] < 0.9
    assert not tri["targets"]["mix"] and not tri["targets"]["modulation"]
    assert not table[3]["targets"]["copying"]  # SaFa's reference swap copies frames into every view


def test_the_main_styles_table_measures_the_style_mix_against_true_signals():
    lab = Lab(samples=64, steps=10)
    strong = styles_row(lab, StylesWorld(), Setting("md-envelope", envelope_share=1.0))
    assert abs(strong["true_style_shares"][1] - 0.5) < 0.15
    assert strong["mix_error"] > 0.25  # moving every envelope all the way picks the reference's kind of style


def test_the_command_prints_and_writes_every_worlds_table(tmp_path):
    from typer.testing import CliRunner

    from swapforward.frontends.cli import app

    done = CliRunner().invoke(app, ["lab", "--beyond", "--quick", "--samples", "4", "--steps", "2", "-o",
                                    str(tmp_path)])
    assert done.exit_code == 0, done.output
    written = (tmp_path / "beyond.md").read_text()
    for name in ("spectrum", "modulated", "rates", "transients", "channels", "mixed", "fitted sounds"):
        assert f"World `{name}" in written
    assert "style-mix error" in written and "modulation kept" in written and "targets missed" in written
    assert "worlds where it meets every target" in written
    assert "| single window (the model itself) |" in done.output and (tmp_path / "beyond.json").exists()


def test_context_guidance_moves_the_context_estimate_toward_the_finished_frames_and_leaves_other_views():
    from diffusers import DDIMScheduler

    from swapforward.lab.candidates import context_guided
    from swapforward.lab.worlds import GaussianWorld, denoiser

    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
    scheduler.set_timesteps(10)
    world, generator = GaussianWorld(), torch.Generator().manual_seed(7)
    model = denoiser(world, scheduler)
    clean = world.sample(2, 13, generator)
    x = torch.randn(4, 2, 64, 4, generator=generator, dtype=torch.float64)
    ids = torch.tensor([0, 1, 0, 1])  # two canvases of two views; view 0 holds the context
    t = scheduler.timesteps[3]
    abar = scheduler.alphas_cumprod[int(t)].double()

    def x0(eps):
        return (x - (1 - abar).sqrt() * eps) / abar.sqrt()

    plain, guided = model(x, t, ids), context_guided(model, scheduler, clean, 0.5)(x, t, ids)
    assert torch.equal(guided[ids == 1], plain[ids == 1])
    before = (x0(plain)[ids == 0][:, :, :13] - clean).pow(2).sum()
    after = (x0(guided)[ids == 0][:, :, :13] - clean).pow(2).sum()
    assert after < 0.9 * before
    late = context_guided(model, scheduler, clean, 0.5, until=0.3)
    assert torch.equal(late(x, t, ids), plain)  # step 3 of 10 is past the first 30%


def test_views_one_after_another_with_reconstruction_guidance_keep_the_channel_style_that_averaging_loses():
    lab = Lab(samples=64, steps=10)
    table = rows(lab, channel_world(), (Candidate("control"), Candidate("md-tri"), Candidate("safa"),
                                        Candidate("md-tri", 0.5, sequential=True),
                                        Candidate("md-tri", 0.5, sequential=True, guidance=0.5)))
    tri, alone, guided = table[2]["consistency"], table[4]["consistency"], table[5]["consistency"]
    assert guided > 0.8 > 0.6 > max(tri, alone), (tri, alone, guided)
    assert guided + table[5]["consistency_se"] >= table[3]["consistency"] and table[5]["targets"]["consistency"]


def test_the_main_report_prints_the_style_mix_in_every_styles_table():
    from swapforward.lab.run import markdown

    styles = {"setting": "md-tri (overlap 0.2)", "segments": 3, "consistency": 0.4, "consistency_se": 0.02,
              "independent_windows": 0.25, "view_segments": 4, "consistency_views": 0.2, "consistency_views_se": 0.02,
              "independent_views": 0.125, "style_shares": [0.3, 0.7], "true_style_shares": [0.5, 0.5],
              "mix_error": 0.2}
    gaussian = {"kl_floor_per_frame": 0.01, "lost_dimensions": 0, "corr_at_stride": 0.0, "kl_per_frame": 0.01,
                "sampled": False, "targets": {"consistency": False}}
    result = {"length": 217, "window": 64, "steps": 2, "scheduler": "ddim", "samples": 4, "gaussian": [],
              "styles": [styles], "kept": [], "few_steps": [{**styles, **gaussian, "sampler": "flow, 8 steps"}],
              "candidates": [{**styles, **gaussian}]}
    tables = markdown(result).split("###")[1:]
    printed = [t for t in tables if "consistency" in t]
    assert len(printed) == 3 and all("style-mix error" in t and "| 0.200 |" in t for t in printed)
    assert "0.700 (0.500)" in tables[1]

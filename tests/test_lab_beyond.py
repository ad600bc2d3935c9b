"""Issue 39's first part: worlds whose styles differ in loudness over time or in how the channels co-vary, the style
mix each method makes and the modulation it keeps; measures that a method known to drop modulation fails."""

import math

import torch

from swapforward.lab.beyond import (
    canvas_styles,
    channel_world,
    modulated_world,
    modulation_depth,
    rows,
)
from swapforward.lab.run import Lab


def test_true_signals_are_classified_to_their_own_style_in_both_worlds():
    for world in (modulated_world(), channel_world()):
        x, styles = world.sample(128, 192, torch.Generator().manual_seed(1))
        accuracy = float((canvas_styles(world, x, 64) == styles).double().mean())
        assert accuracy > 0.9, (world.name, accuracy)


def test_the_channel_worlds_styles_share_every_channels_spectrum():
    world = channel_world()
    a, b = (world.covariance(c, 32) for c in (0, 1))
    assert torch.equal(a[:32, :32], b[:32, :32]) and torch.equal(a[32:, 32:], b[32:, 32:])
    assert torch.equal(a[:32, 32:], -b[:32, 32:]) and a[:32, 32:].abs().max() > 0.5


def test_modulation_depth_is_the_envelopes_first_harmonic():
    m, period = 0.8, 16
    t = torch.arange(128, dtype=torch.float64)
    envelope = (1 + m * torch.cos(2 * math.pi * t / period))[None, None, :, None]
    assert math.isclose(modulation_depth(envelope.expand(1, 2, 128, 4), period), 2 * m / (1 + m**2 / 2),
                        rel_tol=1e-9)
    assert modulation_depth(torch.ones(1, 2, 128, 4), period) < 1e-9


def test_a_joint_method_fails_the_style_mix_and_modulation_measures_where_one_window_passes():
    """MD* averages the modulated style away (issue 39's finding): its share of the modulated style and its
    modulation depth fall far below one window's, which keeps both."""
    lab = Lab(samples=64, steps=10)
    table = {row["setting"].split(" (")[0]: row for row in rows(lab, modulated_world())}
    truth, window, tri = table["truth"], table["single window"], table["md-tri"]
    assert abs(window["shares"][1] - truth["shares"][1]) < 0.15 and window["depth"] > 0.85 * truth["depth"]
    assert tri["mix_error"] > 0.25 and tri["depth"] < 0.9 * window["depth"]


def test_the_command_prints_and_writes_both_worlds_tables(tmp_path):
    from typer.testing import CliRunner

    from swapforward.frontends.cli import app

    done = CliRunner().invoke(app, ["lab", "--beyond", "--quick", "--samples", "16", "--steps", "5", "-o",
                                    str(tmp_path)])
    assert done.exit_code == 0, done.output
    written = (tmp_path / "beyond.md").read_text()
    assert "World `modulated`" in written and "World `channels`" in written and "style-mix error" in written
    assert "| single window (the model itself) |" in done.output

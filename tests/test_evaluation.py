"""Evaluation: closed-form checks of the formulas, crop boundaries, and every metric end to end with small random
feature networks in place of the real ones."""

import json
from dataclasses import replace

import lpips
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from typer.testing import CliRunner

from swapforward import SwapForwardError
from swapforward.evaluation import metrics, weights
from swapforward.evaluation.crops import (
    audio_windows,
    image_crops,
    region_crops,
    sliding_windows,
)
from swapforward.evaluation.evaluate import (
    evaluate_audio,
    evaluate_panoramas,
    markdown,
    read_audio,
    write_reports,
)
from swapforward.evaluation.features import (
    AudioExtractors,
    Cnn14,
    ImageExtractors,
    VGGish,
    load_cnn14,
    load_vggish,
    mel_picture,
    vggish_examples,
)
from swapforward.frontends.cli import app

# --- formulas against closed forms -----------------------------------------------------------------------------------


def test_frechet_distance_of_gaussians_with_diagonal_covariances():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(20000, 3))
    b = rng.normal([1.0, 0.0, 2.0], [2.0, 1.0, 1.0], size=(20000, 3))
    # |mu_a - mu_b|^2 + sum(s_a^2 + s_b^2 - 2 s_a s_b) = 5 + (1 + 4 - 4) = 6
    assert metrics.frechet_distance(a, b) == pytest.approx(6.0, rel=0.03)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kernel_distance_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    assert abs(metrics.kernel_distance(a, b)) < 0.05
    assert metrics.kernel_distance(a, b + 2.0) > 1.0
    assert metrics.kernel_distance(a, b) == metrics.kernel_distance(a, b)  # seeded subsets


def test_kl_divergence_closed_forms():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    assert metrics.kl_divergence(logits, logits, paired=True) == pytest.approx(0.0, abs=1e-5)
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    expected = float(np.sum(p * np.log(p / q)))  # KL(reference p || generated q)
    assert metrics.kl_divergence(np.log(q)[None], np.log(p)[None], paired=True) == pytest.approx(expected, rel=1e-4)
    # unpaired: each generated posterior against the mean reference posterior
    reference = np.log(np.array([[0.9, 0.1], [0.1, 0.9]]))
    assert metrics.kl_divergence(np.log(p)[None], reference, paired=False) == pytest.approx(0.0, abs=1e-5)


def test_cosine_scores():
    e = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    assert metrics.mean_pairwise_cosine(e[:1].repeat(3, 0)) == pytest.approx(1.0)
    assert metrics.mean_pairwise_cosine(e) == pytest.approx((0 - 1 + 0) / 3)
    assert metrics.text_alignment(e, np.array([1.0, 0.0])) == pytest.approx(0.0)
    assert metrics.text_alignment(e, np.array([1.0, 0.0]), scale=100.0) == pytest.approx(100 / 3)


def test_style_loss_closed_form():
    ones = torch.ones(1, 2, 3, 3)
    assert metrics.gram(ones).tolist() == [[0.5, 0.5], [0.5, 0.5]]  # 9 / (2 * 3 * 3)
    assert metrics.style_loss([ones], [ones]) == 0.0
    assert metrics.style_loss([ones], [2 * ones]) == pytest.approx(1.5**2)  # Gram 2.0 vs 0.5


# --- crops ------------------------------------------------------------------------------------------------------------


def test_audio_windows_match_hand_computed_boundaries():
    assert audio_windows(24 * 10, 10, seconds=10, overlap=0.2) == [(0, 100), (80, 180), (140, 240)]
    assert audio_windows(32 * 10, 10, seconds=10, step_seconds=8) == [(0, 100), (80, 180), (160, 260), (220, 320)]
    assert audio_windows(50, 10, seconds=10) == [(0, 50)]
    assert sliding_windows(3200, 512, 512)[-1] == (2688, 3200)


def test_image_and_region_crops():
    assert image_crops(1280, 512) == [(0, 512), (512, 1024), (768, 1280)]
    spans = region_crops(3200, 512, regions=5, seed=3)
    assert len(spans) == 5 and all(b - a == 512 for a, b in spans)
    assert all(i * 640 <= a and b <= (i + 1) * 640 for i, (a, b) in enumerate(spans))
    with pytest.raises(ValueError):
        region_crops(2000, 512)


# --- feature networks ------------------------------------------------------------------------------------------------


@pytest.fixture
def trust(monkeypatch):
    """Record a test file's own SHA-256 as the checkpoint's, as the real files' are recorded in weights.py."""

    def record(path):
        name = path.name
        monkeypatch.setitem(weights.CHECKPOINTS, name, replace(weights.CHECKPOINTS[name],
                                                               sha256=weights.sha256_of(path)))
        return path

    return record


def test_cnn14_loads_a_checkpoint_in_the_panns_format(tmp_path, trust):
    torch.manual_seed(0)
    model = Cnn14().eval()
    torch.save({"model": model.state_dict()}, tmp_path / "Cnn14_16k_mAP=0.438.pth")
    trust(tmp_path / "Cnn14_16k_mAP=0.438.pth")
    loaded = load_cnn14(folder=tmp_path)
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        embedding, logits = loaded(wave)
        assert embedding.shape == (2, 2048) and logits.shape == (2, 527)
        assert torch.equal(logits, model(wave)[1])


def test_missing_weights_are_one_sentence(tmp_path):
    from swapforward import SwapForwardError

    with pytest.raises(SwapForwardError,
                       match=r"FD and KL \(PANNs CNN14, 16 kHz\) need Cnn14_16k_mAP=0.438.pth in .*; "
                             r"run `swapforward weights`"):
        load_cnn14(folder=tmp_path)


@pytest.mark.parametrize("change", ["lacks", "extra", "misshapen"])
def test_checkpoints_are_loaded_strictly(tmp_path, trust, change):
    """A checkpoint that does not fit the network is refused in one sentence naming the file and the keys, never
    loaded in part (the rest would stay random and the metric would still print a number)."""
    torch.manual_seed(0)
    cnn_state, vggish_state = Cnn14().state_dict(), VGGish().state_dict()
    if change == "lacks":
        del cnn_state["fc_audioset.bias"], vggish_state["embeddings.4.weight"]
    elif change == "extra":
        cnn_state["spec_augmenter.bias"] = vggish_state["pproc.mean"] = torch.zeros(3)
    else:
        cnn_state["fc1.bias"], vggish_state["features.0.bias"] = torch.zeros(7), torch.zeros(7)
    torch.save({"model": cnn_state}, tmp_path / "Cnn14_16k_mAP=0.438.pth")
    torch.save(vggish_state, tmp_path / "vggish-10086976.pth")
    trust(tmp_path / "Cnn14_16k_mAP=0.438.pth"), trust(tmp_path / "vggish-10086976.pth")
    key = {"lacks": ("fc_audioset.bias", "embeddings.4.weight"), "extra": ("spec_augmenter.bias", "pproc.mean"),
           "misshapen": ("fc1.bias", "features.0.bias")}[change]
    words = {"lacks": "lacks", "extra": "has unexpected", "misshapen": "has misshapen"}[change]
    with pytest.raises(SwapForwardError, match=rf"Cnn14_16k_mAP=0.438.pth does not fit Cnn14: it {words} {key[0]}\.$"):
        load_cnn14(folder=tmp_path)
    with pytest.raises(SwapForwardError, match=rf"vggish-10086976.pth does not fit VGGish: it {words} {key[1]}\.$"):
        load_vggish(folder=tmp_path)


def test_a_corrupted_checkpoint_is_refused_and_not_used(tmp_path, trust, monkeypatch):
    torch.manual_seed(0)
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": Cnn14().state_dict()}, path)
    trust(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the cache
    path.write_bytes(bytes(data))
    loaded = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loaded.append(a) or {})
    message = (r"Cnn14_16k_mAP=0.438.pth does not match its recorded SHA-256 \(expected [0-9a-f]{16}\.\.\., found "
               r"[0-9a-f]{16}\.\.\.\), so it is not used; delete it and run `swapforward weights` again\.$")
    with pytest.raises(SwapForwardError, match=message):
        load_cnn14(folder=tmp_path)
    assert loaded == [], "the file was never read as a checkpoint"


def test_the_real_checkpoints_have_recorded_hashes_and_sources():
    for checkpoint in weights.CHECKPOINTS.values():
        if checkpoint.url:
            assert len(checkpoint.sha256) in (8, 64) and checkpoint.source, checkpoint.name
            if len(checkpoint.sha256) == 8:
                assert checkpoint.name.rsplit("-", 1)[1].startswith(checkpoint.sha256), "torch.hub's name convention"
    for name in ("clip-vit-base-patch16", "clap-htsat-unfused"):
        assert len(weights.CHECKPOINTS[name].revision) == 40, "the default hub snapshots are pinned to a commit"
    assert weights.CHECKPOINTS["vgg16-397923af.pth"].sha256.startswith("397923af")


def test_downloads_are_verified_before_they_enter_the_cache(tmp_path, monkeypatch):
    published = tmp_path / "published.bin"
    published.write_bytes(b"the real weights")
    good = weights.sha256_of(published)
    url = published.as_uri()
    monkeypatch.setitem(weights.CHECKPOINTS, "vgg19-dcbb9e9d.pth",
                        replace(weights.CHECKPOINTS["vgg19-dcbb9e9d.pth"], url=url, sha256=good[:8]))
    cache = tmp_path / "cache"
    weights.fetch(["vgg19-dcbb9e9d.pth"], cache, log=lambda line: None)
    assert (cache / "vgg19-dcbb9e9d.pth").read_bytes() == b"the real weights"
    published.write_bytes(b"something else")  # the server now hands out another file
    (cache / "vgg19-dcbb9e9d.pth").unlink()
    with pytest.raises(SwapForwardError, match=r"^The download of vgg19-dcbb9e9d.pth from file://.* does not match "
                                               r"its recorded SHA-256 .*, so it was deleted; try again later\.$"):
        weights.fetch(["vgg19-dcbb9e9d.pth"], cache, log=lambda line: None)
    assert sorted(p.name for p in cache.iterdir()) == [], "neither the file nor a partial one is left"


def test_snapshot_folders_are_checked_against_their_manifest(tmp_path):
    folder = tmp_path / "clap-htsat-unfused"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "model.safetensors").write_bytes(b"weights")
    weights.write_manifest(folder)
    assert weights.require("clap-htsat-unfused", tmp_path) == folder
    (folder / "sub" / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(SwapForwardError, match=r"model.safetensors does not match its recorded SHA-256"):
        weights.require("clap-htsat-unfused", tmp_path)


def test_stereo_files_are_averaged_to_mono(tmp_path):
    t = np.arange(16000) / 16000
    left = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    right = (0.25 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    sf.write(tmp_path / "mono.wav", left, 16000, subtype="FLOAT")
    assert np.array_equal(read_audio(tmp_path / "stereo.wav", 16000), (left + right) / 2)
    assert np.array_equal(read_audio(tmp_path / "mono.wav", 16000), left)


def test_clap_input_can_be_peak_normalised():
    from swapforward.evaluation.features import peak_normalized

    wave = np.array([0.1, -0.4, 0.2], dtype=np.float32)
    assert np.allclose(peak_normalized(wave), [0.25, -1.0, 0.5])
    assert np.array_equal(peak_normalized(np.zeros(3, dtype=np.float32)), np.zeros(3))


# --- end to end with random networks --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_lpips():
    torch.manual_seed(0)
    return lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()


def random_audio_extractors(random_lpips):
    torch.manual_seed(0)
    cnn = Cnn14().eval()
    project = torch.randn(64, 16)

    def panns(waves):
        with torch.no_grad():
            out = [cnn(torch.as_tensor(w)[None]) for w in waves]
        return torch.cat([o[0] for o in out]).numpy(), torch.cat([o[1] for o in out]).numpy()

    def clap_audio(waves):
        return np.stack([(torch.as_tensor(w[:64 * 200]).view(200, 64).abs().mean(0) @ project).numpy() for w in waves])

    vggish = VGGish().eval()

    def vggish_frames(wave):
        with torch.no_grad():
            return vggish(vggish_examples(wave)).numpy()

    return AudioExtractors(16000, panns, vggish_frames, clap_audio, lambda text: np.ones(16), random_lpips, mel_picture)


def test_audio_metrics_end_to_end(tmp_path, random_lpips):
    rng = np.random.default_rng(0)
    (tmp_path / "gen").mkdir(), (tmp_path / "ref").mkdir()
    for i in range(2):
        sf.write(tmp_path / "gen" / f"g{i}.wav", rng.normal(0, 0.1, 16000 * 3).astype(np.float32), 16000)
    for i in range(4):
        sf.write(tmp_path / "ref" / f"r{i}.wav", rng.normal(0, 0.1, 8000 * 2).astype(np.float32), 8000)
    gen, ref = sorted((tmp_path / "gen").glob("*.wav")), sorted((tmp_path / "ref").glob("*.wav"))
    result = evaluate_audio(gen, ref, random_audio_extractors(random_lpips), prompt="rain", window_seconds=1.0)
    assert result["crops"] == 2 * 4  # 3 s in 1 s windows at overlap 0.2: starts 0, 0.8, 1.6, 2.0
    for key in ("FD", "FAD", "KL", "CLAP", "Intra-CLAP", "Intra-LPIPS"):
        assert np.isfinite(result[key]), key
    assert result["KL"] > -1e-3 and -1 <= result["Intra-CLAP"] <= 1  # log(p + 1e-6), as AudioLDM: about >= 0
    write_reports({"gen": result}, tmp_path / "m.json", tmp_path / "m.md")
    assert json.loads((tmp_path / "m.json").read_text())["gen"]["crops"] == 8
    assert (tmp_path / "m.md").read_text().startswith("| set | files | crops | FD | FAD | KL | CLAP |")


def test_panorama_metrics_end_to_end(tmp_path, random_lpips):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 8, stride=8)
    rng = np.random.default_rng(0)
    (tmp_path / "gen").mkdir(), (tmp_path / "ref").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 400, 3), dtype=np.uint8)).save(tmp_path / "gen" / f"p{i}.png")
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "ref" / f"r{i}.png")

    def features(images):
        with torch.no_grad():
            return conv(images).mean((2, 3)).numpy()

    def vgg_layers(images):
        return [conv(images), torch.relu(conv(images))]

    extractors = ImageExtractors(features, features, lambda text: np.ones(8), random_lpips, vgg_layers)
    gen, ref = sorted((tmp_path / "gen").glob("*.png")), sorted((tmp_path / "ref").glob("*.png"))
    result = evaluate_panoramas(gen, ref, extractors, prompt="forest")
    assert result["crop"] == 64 and result["crops"] == 2 * 7
    for key in ("FID", "KID", "CLIP", "Intra-LPIPS", "Intra-Style-Loss"):
        assert np.isfinite(result[key]), key
    assert "| FID | KID | CLIP |" in markdown({"gen": result})


def test_eval_command_names_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("SWAPFORWARD_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "gen").mkdir()
    sf.write(tmp_path / "gen" / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "gen"), "--out", str(tmp_path / "m.json")])
    assert result.exit_code == 2 and "need Cnn14_16k_mAP=0.438.pth in" in result.stderr
    assert not (tmp_path / "m.json").exists()
    empty = CliRunner().invoke(app, ["eval", str(tmp_path), "--kind", "panorama", "--out", str(tmp_path / "m.json")])
    assert empty.exit_code == 2 and "holds no .jpeg, .jpg, .png, .webp files." in empty.stderr


def test_vggish_examples_and_embeddings(tmp_path, trust):
    from swapforward.evaluation.features import VGGish, load_vggish, vggish_examples

    t = np.arange(16000 * 2) / 16000
    examples = vggish_examples(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert examples.shape == (2, 1, 96, 64)
    band = examples[0, 0].mean(0).argmax().item()
    # HTK mel: 125 Hz -> 185.2, 7500 Hz -> 2773.3, 1 kHz -> 1000.0; band i is centred at 185.2 + 39.82 (i + 1)
    assert band in (19, 20)
    torch.manual_seed(0)
    model = VGGish().eval()
    torch.save(model.state_dict(), tmp_path / "vggish-10086976.pth")
    trust(tmp_path / "vggish-10086976.pth")
    with torch.no_grad():
        embedding = load_vggish(folder=tmp_path)(examples)
    assert embedding.shape == (2, 128) and (embedding < 0).any(), "no final ReLU"


def test_reference_sets_come_from_the_base_model_one_view_each(audioldm, sd, tmp_path):
    from swapforward import LongAudioPipeline, PanoramaPipeline
    from swapforward.evaluation.evaluate import generate_reference

    long = LongAudioPipeline.from_pipe(audioldm)
    paths = generate_reference(long, "audio", "rain", tmp_path / "a", samples=2, size=0.064)
    assert [p.name for p in paths] == ["0000.wav", "0001.wav"]
    data, rate = sf.read(paths[1])
    plain = audioldm("rain", audio_length_in_s=0.064, num_inference_steps=200, guidance_scale=3.5,
                     generator=torch.Generator().manual_seed(1)).audios[0]
    assert rate == 16000 and np.allclose(data, plain, atol=1e-6)
    stamp = paths[0].stat().st_mtime_ns
    generate_reference(long, "audio", "rain", tmp_path / "a", samples=2, size=0.064)
    assert paths[0].stat().st_mtime_ns == stamp, "existing files are kept"
    images = generate_reference(PanoramaPipeline.from_pipe(sd), "panorama", "forest", tmp_path / "p", samples=1)
    assert Image.open(images[0]).size == (64, 64)

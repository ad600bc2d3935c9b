import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning)

import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from tiny_pipelines import tiny_audioldm2_pipeline, tiny_audioldm_pipeline  # noqa: E402

# Two threads as on the build machines, unless the run asks for others (CI's second pass takes one).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

#: The tiers (pyproject.toml declares the markers). Slow: whole modules of subprocesses, torch.compile, the served app
#: and end-to-end commands, and elsewhere tests by what their names say they run, plus the metric networks' tests.
SLOW_MODULES = {"test_compile", "test_batch", "test_app", "test_first_use", "test_cli", "test_distributed",
                "test_scripts", "test_live_browser", "test_comfyui_server"}
SLOW_WORDS = ("cli", "command", "fresh_process", "served", "signal", "sigterm", "ctrl_c", "end_to_end", "checkpoint",
              "vggish", "reference_sets", "app_page")
#: Modules whose tests compare computed numbers: CI runs them a second time with portable kernels and one thread.
NUMBER_MODULES = {"test_core", "test_audio_pipeline", "test_panorama", "test_baselines", "test_behaviour_values",
                  "test_timeline", "test_lab", "test_stable_audio", "test_reliability", "test_inputs", "test_memory",
                  "test_families", "test_envelope", "test_stream", "test_comfyui", "test_scale_out"}


def pytest_collection_modifyitems(items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in SLOW_MODULES or any(word in item.name for word in SLOW_WORDS):
            item.add_marker(pytest.mark.slow)
        if module in NUMBER_MODULES:
            item.add_marker(pytest.mark.numbers)


REPOSITORY = Path(__file__).resolve().parents[1]
#: What may appear in the checkout while the suite runs: git's own, the install's and Python's caches.
EXPECTED = {".git", ".venv", ".pytest_cache", "__pycache__", "swapforward.egg-info", "build"}


def tree(root: Path) -> set[str]:
    """Every file and folder under the checkout (empty folders too, which git does not show), less EXPECTED."""
    found = set()
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if name not in EXPECTED]
        base = Path(folder).relative_to(root)
        found.update(f"{base / name}/" for name in folders)
        found.update(str(base / name) for name in files)
    return found


@pytest.fixture(scope="session", autouse=True)
def the_checkout_stays_as_it_was():
    """Tests write only under pytest's temporary folders: after the suite, nothing is new in the checkout, files or
    folders (the check fails the run with an error naming them)."""
    is_checkout = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse"], capture_output=True).returncode == 0
    before = tree(REPOSITORY) if is_checkout else set()
    yield
    if is_checkout:
        new = sorted(tree(REPOSITORY) - before)
        assert not new, f"the tests left these in the checkout: {new[:20]}"


@pytest.fixture(scope="session")
def audioldm():
    return tiny_audioldm_pipeline()


@pytest.fixture(scope="session")
def audioldm2():
    return tiny_audioldm2_pipeline()


@pytest.fixture(scope="session", params=["audioldm", "audioldm2"])
def audio_pipe(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, audioldm):
    """The tiny AudioLDM pipeline saved as a local model folder, as `from_pretrained` and the CLI load it."""
    path = tmp_path_factory.mktemp("models") / "tiny-audioldm"
    audioldm.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def sd():
    from tiny_pipelines import tiny_sd_pipeline

    return tiny_sd_pipeline()


@pytest.fixture(scope="session")
def sdxl():
    from tiny_pipelines import tiny_sdxl_pipeline

    return tiny_sdxl_pipeline()


@pytest.fixture(scope="session")
def sd3():
    from tiny_pipelines import tiny_sd3_pipeline

    return tiny_sd3_pipeline()


@pytest.fixture(scope="session", params=["sd", "sdxl", "sd3"])
def image_pipe(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory, sd):
    path = tmp_path_factory.mktemp("models") / "tiny-sd"
    sd.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def stable_audio():
    from tiny_pipelines import tiny_stable_audio_pipeline

    return tiny_stable_audio_pipeline()


@pytest.fixture(scope="session")
def stable_audio_3():
    from tiny_pipelines import tiny_stable_audio_3_pipeline

    return tiny_stable_audio_3_pipeline()


@pytest.fixture(scope="session")
def stable_audio_3_base():
    from tiny_pipelines import tiny_stable_audio_3_pipeline

    return tiny_stable_audio_3_pipeline(distilled=False)


@pytest.fixture(scope="session")
def flux():
    from tiny_pipelines import tiny_flux_pipeline

    return tiny_flux_pipeline()


@pytest.fixture(scope="session")
def flux_schnell():
    from tiny_pipelines import tiny_flux_pipeline

    return tiny_flux_pipeline(distilled=True)


@pytest.fixture(scope="session")
def z_image():
    from tiny_pipelines import tiny_z_image_pipeline

    return tiny_z_image_pipeline()


@pytest.fixture(scope="session")
def qwen_image():
    from tiny_pipelines import tiny_qwen_image_pipeline

    return tiny_qwen_image_pipeline()


@pytest.fixture(scope="session")
def longcat_audio():
    from tiny_pipelines import tiny_longcat_audio_pipeline

    return tiny_longcat_audio_pipeline()


@pytest.fixture(scope="session")
def ace_step():
    from tiny_pipelines import tiny_ace_step_pipeline

    return tiny_ace_step_pipeline()


@pytest.fixture(scope="session")
def flux2_klein():
    from tiny_pipelines import tiny_flux2_klein_pipeline

    return tiny_flux2_klein_pipeline()

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning)

import pytest  # noqa: E402
import torch  # noqa: E402
from tiny_pipelines import tiny_audioldm2_pipeline, tiny_audioldm_pipeline  # noqa: E402

torch.set_num_threads(2)


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

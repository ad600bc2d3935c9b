"""Nothing rots (issue 36): every script under benchmarks/ and scripts/ runs at its smallest size, in a fresh
process, from a temporary folder, so that the next API change cannot break one silently."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swapforward.frontends.batch import load_jobs

REPOSITORY = Path(__file__).resolve().parents[1]

#: Each script with the arguments of its smallest run, and a word its output must hold.
SMOKE = {
    "benchmarks/startup.py": (["--repeat", "1"], "|"),
    "benchmarks/long_runs.py": (["--minutes", "1", "2", "--steps", "1"], "| 2 min |"),
    "benchmarks/compare.py": (["audio", "--seconds", "0.5", "--steps", "1", "--safa-only"], "|"),
    "benchmarks/eight_hours.py": (["--seconds", "20", "--steps", "1", "--out", "{tmp}"], "|"),
    "benchmarks/stream.py": (["--seconds", "20", "--hour", "40", "--steps", "1"], "first audio"),
    "benchmarks/families.py": (["--repeat", "1"], "|"),
    "benchmarks/gpu_targets.py": (["--tiny", "--steps", "1", "--sections", "audio", "--deadline", "120", "--out",
                                   "{tmp}/gpu"], ""),
    "scripts/tiny_models.py": (["{tmp}/tiny", "audioldm", "sd"], "AudioLDMPipeline"),
    "scripts/reproduce_paper.py": (["audio", "--samples", "1", "--out", "{tmp}/paper"], "swapforward batch"),
    "scripts/compare_revisions.py": (["HEAD"], ""),
    "scripts/app_in_browser.py": (["{tmp}/shots"], ""),
}


def run(script: str, arguments: list[str], tmp: Path, timeout: int = 420) -> subprocess.CompletedProcess:
    arguments = [a.replace("{tmp}", str(tmp)) for a in arguments]
    return subprocess.run([sys.executable, str(REPOSITORY / script), *arguments], capture_output=True, text=True,
                          cwd=tmp, timeout=timeout)


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_script_runs_at_its_smallest_size(script, tmp_path):
    arguments, word = SMOKE[script]
    if script == "scripts/app_in_browser.py" and not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    done = run(script, arguments, tmp_path)
    assert done.returncode == 0, f"{script}: {done.stderr[-2000:]}"
    assert word in done.stdout, done.stdout[-2000:]


def test_every_script_has_a_smoke_run():
    scripts = {str(p.relative_to(REPOSITORY)) for folder in ("benchmarks", "scripts")
               for p in (REPOSITORY / folder).glob("*.py")}
    covered = set(SMOKE) | {"benchmarks/architectures.py", "scripts/update_readme_options.py"}
    assert scripts <= covered, f"give these a smoke run: {sorted(scripts - covered)}"


def test_reproduce_papers_jobs_are_valid_jobs(tmp_path):
    done = run("scripts/reproduce_paper.py", ["panorama", "--samples", "1", "--out", str(tmp_path / "paper")], tmp_path)
    assert done.returncode == 0, done.stderr
    files = list((tmp_path / "paper").glob("*.jsonl"))
    assert files and all(load_jobs(path) for path in files)


def test_update_readme_options_leaves_a_current_readme_as_it_is(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPOSITORY / "scripts/update_readme_options.py", tmp_path / "scripts")
    shutil.copy(REPOSITORY / "README.md", tmp_path)
    done = run(str(tmp_path / "scripts/update_readme_options.py"), [], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "README.md").read_text() == (REPOSITORY / "README.md").read_text()


def test_architectures_builds_the_full_size_models_lazily():
    """benchmarks/architectures.py is a module the GPU scripts import: it imports without building anything."""
    done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'benchmarks'); import architectures"],
                          capture_output=True, text=True, cwd=REPOSITORY, timeout=120)
    assert done.returncode == 0, done.stderr

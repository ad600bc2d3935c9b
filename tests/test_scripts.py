"""Nothing rots (issue 36): every script under benchmarks/ and scripts/ runs at its smallest size, in a fresh
process, from a temporary folder, so that the next API change cannot break one silently."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from comfyui_models import comfyui_missing

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
    "benchmarks/scale_out.py": (["--seconds", "4", "--steps", "1", "--processes", "1", "2"], "speed-up"),
    "benchmarks/gpu_targets.py": (["--tiny", "--steps", "1", "--sections", "audio", "--deadline", "120", "--out",
                                   "{tmp}/gpu"], ""),
    "scripts/tiny_models.py": (["{tmp}/tiny", "audioldm", "sd"], "AudioLDMPipeline"),
    "scripts/reproduce_paper.py": (["audio", "--samples", "1", "--out", "{tmp}/paper"], "swapforward batch"),
    "scripts/compare_revisions.py": (["HEAD"], ""),
    "scripts/app_in_browser.py": (["{tmp}/shots"], ""),
    "scripts/comfyui_screenshots.py": (["{tmp}/graphs"], "panorama-360.png"),
}
#: The scripts that drive headless Chromium.
BROWSER = ("scripts/app_in_browser.py", "scripts/comfyui_screenshots.py")


def command(script: str, arguments: list[str], tmp: Path) -> list[str]:
    return [sys.executable, str(REPOSITORY / script), *(a.replace("{tmp}", str(tmp)) for a in arguments)]


def run(script: str, arguments: list[str], tmp: Path, timeout: int = 420) -> subprocess.CompletedProcess:
    return subprocess.run(command(script, arguments, tmp), capture_output=True, text=True, cwd=tmp, timeout=timeout)


def test_every_script_runs_at_its_smallest_size(tmp_path):
    """Two at a time, one thread each (the build machines have two cores); every failure is named."""
    scripts = sorted(SMOKE)
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        scripts = [script for script in scripts if script not in BROWSER]  # they need chromium and chromedriver
    if comfyui_missing():
        scripts.remove("scripts/comfyui_screenshots.py")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    waiting, running, failures = list(scripts), [], []
    while waiting or running:
        while waiting and len(running) < 2:
            script = waiting.pop(0)
            folder = tmp_path / script.replace("/", "-")
            folder.mkdir()
            process = subprocess.Popen(command(script, SMOKE[script][0], folder), cwd=folder, env=environment,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            running.append((script, process, time.time()))
        script, process, started = running.pop(0)
        try:
            out, err = process.communicate(timeout=max(1, 420 - (time.time() - started)))
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            failures.append(f"{script}: timed out")
            continue
        if process.returncode or SMOKE[script][1] not in out:
            failures.append(f"{script} (exit {process.returncode}): {err[-1500:]}{out[-500:]}")
    assert not failures, "\n\n".join(failures)


def test_every_script_has_a_smoke_run():
    scripts = {str(p.relative_to(REPOSITORY)) for folder in ("benchmarks", "scripts")
               for p in (REPOSITORY / folder).glob("*.py")}
    covered = set(SMOKE) | {"benchmarks/architectures.py", "scripts/update_readme_options.py",
                            "scripts/fit_lab_sounds.py"}  # the last: tests/test_lab_beyond.py
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

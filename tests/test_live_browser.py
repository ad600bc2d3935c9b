"""A real headless browser plays the served stream (issue 35): `swapforward stream --serve`'s page and the web app's
Live tab, on the tiny AudioLDM on the CPU. Needs Debian's chromium and chromium-driver (.ci/run installs them);
without them the tests are skipped and say why."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow
selenium = pytest.importorskip("selenium")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

#: A tiny stream made faster than it plays on two CPU cores: 1 s views, one step, blocks of two views.
FAST = ["--window-seconds", "1.024", "--steps", "1", "--seed", "1"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return urllib.request.urlopen(url, timeout=5).read()
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing answered at {url}")


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def played(driver, audio_id, seconds, change=None):
    """Play the page's `audio_id` and sample its currentTime every half second for `seconds` after it starts;
    `change()` runs once, halfway. Returns the samples."""
    driver.execute_script(f"document.getElementById('{audio_id}').play()")
    times, start, changed = [], None, False
    deadline = time.time() + seconds + 120
    while time.time() < deadline:
        now = driver.execute_script(f"return document.getElementById('{audio_id}').currentTime")
        times.append((time.time(), now))
        if start is None and now > 0:
            start = time.time()
        if start is not None and not changed and change is not None and time.time() - start > seconds / 2:
            change()
            changed = True
        if start is not None and time.time() - start > seconds:
            break
        time.sleep(0.5)
    assert start is not None, f"the audio never started: {times[-3:]}"
    return [(t, c) for t, c in times if t >= start]


def assert_steady(samples, seconds):
    """currentTime advanced by about the time that passed, and never stood still for more than a second."""
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    assert c1 - c0 >= seconds - 1.5, f"played {c1 - c0:.1f} s in {t1 - t0:.1f} s"
    still = 0.0
    for (ta, ca), (tb, cb) in zip(samples, samples[1:], strict=False):
        still = still + (tb - ta) if cb <= ca else 0.0
        assert still <= 1.0, f"stalled at {ca:.2f} s"


def test_served_stream_plays_steadily_in_a_browser_and_a_prompt_change_reaches_the_page(tiny_model_dir, tmp_path,
                                                                                        browser):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "swapforward", "stream", "rain", "--model", tiny_model_dir,
                               *FAST, "--serve", "--port", str(port), "--ahead", "6"],
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/status")
        browser.get(url + "/")

        def change():
            browser.find_element(By.ID, "prompt").clear()
            browser.find_element(By.ID, "prompt").send_keys("thunder")
            browser.find_element(By.ID, "change").click()

        samples = played(browser, "player", 20, change)
        assert_steady(samples, 20)
        assert json.loads(wait_for(url + "/status"))["prompt"] == "thunder"
        assert "thunder" in browser.find_element(By.ID, "status").text
        deadline = time.time() + 10
        while browser.title != "thunder" and time.time() < deadline:
            time.sleep(0.2)
        assert browser.title == "thunder", "the page hears of the change from /status"
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_the_app_live_tab_plays_and_changes(tiny_model_dir, tiny_sd_dir, tmp_path, browser):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "swapforward", "app", "--audio-model", tiny_model_dir,
                               "--image-model", tiny_sd_dir, "--port", str(port), "--output-dir",
                               str(tmp_path / "results")], stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**__import__("os").environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/")
        browser.get(url + "/")

        def field(key):
            return browser.find_element(By.CSS_SELECTOR, f"#live-{key} input, #live-{key} textarea")

        deadline = time.time() + 60
        tab = "//button[@role='tab' and contains(., 'Live')]"
        while time.time() < deadline and not browser.find_elements(By.XPATH, tab):
            time.sleep(0.5)
        browser.find_element(By.XPATH, tab).click()
        time.sleep(1)
        for fold in browser.find_elements(By.CSS_SELECTOR, "button.label-wrap, .label-wrap"):
            if fold.is_displayed() and "more" in fold.text:
                fold.click()
        time.sleep(1)
        field("window_seconds").send_keys("1.024")
        field("steps").send_keys("1")
        browser.find_element(By.ID, "live-start").click()
        deadline = time.time() + 120
        while time.time() < deadline and not browser.find_elements(By.ID, "live-audio"):
            time.sleep(0.5)

        def change():
            field("prompt").clear()
            field("prompt").send_keys("thunder")
            browser.find_element(By.ID, "live-change").click()

        samples = played(browser, "live-audio", 8, change)  # the served test above plays 20 s
        assert_steady(samples, 8)
        assert json.loads(wait_for(url + "/live/status"))["prompt"] == "thunder"
    finally:
        server.terminate()
        server.wait(timeout=60)

"""Drive the web app in headless Chromium as a user would, on tiny random models, and take a screenshot of each state.

Needs Debian's `chromium` and `chromium-driver` and `pip install selenium`. Run from the repository root:
    python scripts/app_in_browser.py docs/app
It fails (exit 1) when a state is not what a user should see: the first Generate refused, Cancel not cancelling,
a refusal wiping the earlier result.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(folder: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from tiny_pipelines import tiny_audioldm_pipeline, tiny_sd_pipeline

    from swapforward.frontends.app import Studio, build_app

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    models = Path(tempfile.mkdtemp())
    tiny_audioldm_pipeline().save_pretrained(models / "audio")
    tiny_sd_pipeline().save_pretrained(models / "image")
    studio = Studio(str(models / "audio"), str(models / "image"), models / "results", device="cpu")
    demo = build_app(studio)
    with socket.socket() as probe:  # a free port: a fixed one may be another server's
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                allowed_paths=[str(studio.output_dir)])
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,2400"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    failures = []

    def field(elem_id: str):
        return browser.find_element(By.CSS_SELECTOR, f"#{elem_id} input, #{elem_id} textarea")

    def type_into(elem_id: str, text: str) -> None:
        box = field(elem_id)
        box.clear()
        box.send_keys(text)
        box.send_keys("\t")

    def open_section(title: str) -> None:
        for button in browser.find_elements(By.CSS_SELECTOR, "button.label-wrap, .label-wrap"):
            if button.is_displayed() and title in button.text:
                button.click()
                time.sleep(0.3)
                return

    def summary(kind: str) -> str:
        return field(f"{kind}-summary").get_attribute("value") or ""

    def wait_for(kind: str, condition, limit: float = 300) -> str:
        end = time.time() + limit
        while time.time() < end:
            text = summary(kind)
            if condition(text):
                return text
            time.sleep(0.5)
        return summary(kind)

    def shot(name: str) -> None:
        browser.save_screenshot(str(out / f"{name}.png"))
        print(f"{out / name}.png")

    def check(ok: bool, what: str) -> None:
        print(("ok: " if ok else "FAILED: ") + what)
        if not ok:
            failures.append(what)

    try:
        browser.get(f"http://127.0.0.1:{port}/")
        time.sleep(4)
        shot("app-audio-form")
        check(field("audio-seconds").get_attribute("value") == "", "the seconds field is empty, not 0")
        check("24 s" in (field("audio-seconds").get_attribute("placeholder") or ""), "it says empty means 24 s")
        type_into("audio-steps", "2")  # the untouched form otherwise; the tiny model's views made shorter for time
        open_section("more: length and loop")
        type_into("audio-window_seconds", "0.256")
        browser.find_element(By.ID, "audio-generate").click()
        text = wait_for("audio", lambda t: t != "")
        check("24.00 s of audio" in text, f"the first Generate makes 24 s of audio: {text!r}")
        time.sleep(1)
        shot("app-audio-result")
        lines = browser.execute_script(
            "const e = document.querySelector('#audio-command .cm-content');"
            "return e ? [getComputedStyle(e).whiteSpace, e.classList.contains('cm-lineWrapping')] : null;")
        check(lines is not None and lines[0] == "pre" and not lines[1],
              f"the command-line box scrolls sideways instead of wrapping: {lines}")
        type_into("audio-steps", "999")
        browser.find_element(By.ID, "audio-generate").click()
        time.sleep(6)
        browser.find_element(By.ID, "audio-cancel").click()
        text = wait_for("audio", lambda t: t.startswith("Cancelled"), 30)
        check(text.startswith("Cancelled"), f"Cancel says so: {text!r}")
        end = time.time() + 60
        while studio._busy.locked() and time.time() < end:
            time.sleep(0.2)
        check(not studio._busy.locked(), "the server's loop stopped")
        shot("app-audio-cancelled")
        type_into("audio-steps", "2")
        type_into("audio-prompt", " ")
        browser.find_element(By.ID, "audio-generate").click()
        text = wait_for("audio", lambda t: t.startswith("Refused"), 30)
        check(text.startswith("Refused: The prompt is empty"), f"a refusal is one sentence: {text!r}")
        time.sleep(1)
        badges = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".error") if e.is_displayed()]
        check(not any(b.strip() == "Error" for b in badges), f"no Error badges over earlier results: {badges}")
        shot("app-audio-refused")
        browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Panorama')]").click()
        time.sleep(1)
        type_into("panorama-steps", "2")
        browser.find_element(By.ID, "panorama-generate").click()
        text = wait_for("panorama", lambda t: t != "")
        check(text.startswith("3200 x"), f"the first panorama Generate makes 3200 px: {text!r}")
        time.sleep(1)
        shot("app-panorama-result")
    finally:
        browser.quit()
        demo.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/app")

"""Screenshots of the example ComfyUI workflows, taken of ComfyUI's own front end in headless Chromium.

Starts the ComfyUI of ../shared/comfyui (or $SWAPFORWARD_COMFYUI) on the loopback with the node pack installed in a
temporary folder, loads each examples/comfyui/*.json graph into the page (the front end's own `loadApiJson`) and saves
a picture of it and the graph in the front end's own format (`NAME.workflow.json`, to drag onto the page). Needs
Debian's chromium and chromium-driver, selenium and the [comfyui] extra. From the repository
root:
    python scripts/comfyui_screenshots.py docs/comfyui && mv docs/comfyui/*.workflow.json examples/comfyui/
It fails (exit 1) when a graph does not load or shows a node the front end does not know.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(folder: str) -> None:
    from comfyui_models import comfyui_server
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from swapforward.frontends.comfyui import install

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp())
    install(base)
    settings = base / "user" / "default" / "comfy.settings.json"  # no first-run templates dialog, no minimap
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}))
    failures = []
    with comfyui_server(base) as url:
        options = webdriver.ChromeOptions()
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=2000,1000"):
            options.add_argument(argument)
        browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            browser.get(url)
            end = time.time() + 60
            while time.time() < end and not browser.execute_script("return !!(window.app && window.app.graph)"):
                time.sleep(0.5)
            time.sleep(3)
            for example in sorted((ROOT / "examples" / "comfyui").glob("*.json")):
                if example.name.endswith(".workflow.json"):
                    continue
                graph = json.loads(example.read_text())
                browser.execute_script("window.app.loadApiJson(arguments[0], arguments[1]);", graph, example.name)
                time.sleep(2)
                shown = browser.execute_script(
                    "return window.app.graph._nodes.map(n => [n.type, !!n.has_errors || n.type === undefined]);")
                types = sorted(t for t, _ in shown)
                if types != sorted(node["class_type"] for node in graph.values()):
                    failures.append(f"{example.name}: the page shows {types}")
                browser.execute_script("const c = window.app.canvas; window.app.graph.arrange();"
                                       "c.ds.scale = 0.7; c.ds.offset = [30, 40]; c.setDirty(true, true);")
                time.sleep(1)
                saved = browser.execute_script("return JSON.stringify(window.app.graph.serialize());")
                (out / f"{example.stem}.workflow.json").write_text(json.dumps(json.loads(saved), indent=1))
                picture = out / f"{example.stem}.png"
                browser.save_screenshot(str(picture))
                print(picture)
        finally:
            browser.quit()
    for failure in failures:
        print("FAILED:", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/comfyui")

"""End to end: MaskEditor in JupyterLab in a real (headless) Chromium.

The other widget tests drive MaskEditor from Python only. This one checks what they cannot:
that the notebook front end shows the controls, that moving a slider in the page reaches the
kernel and changes the mask, that the ipycanvas drawing canvas loads (its front end calls
``on_client_ready``), and that a mouse stroke on it paints the mask and is drawn back.

It needs Debian's Chromium (``apt-get install chromium``; another path with SDLEARN_CHROMIUM)
and the ``playwright`` Python package (in the dev extras); Playwright's own browsers are not
used, so nothing is downloaded. Without either, the test skips and says so.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sdlearn.masks import OVERLAY_COLOR

CHROMIUM = os.environ.get("SDLEARN_CHROMIUM", "/usr/bin/chromium")
# The machine may have no network: without these, Chromium keeps trying to reach Google.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
SLOW_MS = 120_000  # ms, as Playwright counts: kernel start (torch) on a busy 2-core machine
LOG = "mask_log.txt"

PICTURE = (30, 90, 200)  # the editor's picture; the repaint region is tinted half-way to:
TINTED = tuple((p + c) / 2 for p, c in zip(PICTURE, OVERLAY_COLOR, strict=True))
CELL = f"""\
from pathlib import Path
from PIL import Image
from sdlearn.widgets import MaskEditor
editor = MaskEditor(Image.new("RGB", (64, 64), {PICTURE!r}))
out = Path({LOG!r})
def log(_=None):
    out.write_text(f"{{editor.mask.getbbox()}} {{getattr(editor, 'canvas_ready', None)}}")
# Every change of the mask redraws the preview; the status changes when the canvas loads.
editor.view.observe(log, names="value")
editor.status.observe(log, names="value")
log()
editor"""


def _requirements():
    """Chromium's path and Playwright's sync API, or skip saying what is missing."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium "
                    "(or set SDLEARN_CHROMIUM to a Chromium/Chrome executable)")
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip("jupyterlab is missing: pip install jupyterlab (or pip install -e '.[dev]')")
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("the playwright package is missing: pip install playwright "
                    "(or pip install -e '.[dev]'); no browser download is needed")
    return CHROMIUM, sync_api


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(check, timeout: float, what: str, interval: float = 0.2):
    """Poll ``check()`` until it returns something truthy; fail saying ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Lab:
    """A JupyterLab server of this Python, in ``root``, with its own config and data dirs."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        home = root.parent / f"{root.name}-jupyter"
        env = dict(os.environ)
        # The user's config and data stay untouched; the extensions (ipywidgets, ipycanvas)
        # and the kernel are still found in this environment's share/jupyter.
        for name, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                          ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                          ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                          ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]:
            env[name] = str(home / sub)
        env.pop("JUPYTER_PATH", None)
        self.log_path = home / "server.log"
        home.mkdir()
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read()

    def wait_until_up(self, timeout: float = 90):
        def answers():
            if self.process.poll() is not None:
                raise AssertionError(f"jupyter lab exited ({self.process.returncode}):\n"
                                     + self.server_log())
            try:
                return self.api("/api/status")
            except (OSError, urllib.error.URLError):
                return None

        _wait_for(answers, timeout, "jupyter lab to answer", interval=0.5)

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        """Shut the kernels down, then the server (SIGTERM, then SIGKILL)."""
        try:
            if self.process.poll() is None:
                try:
                    for kernel in json.loads(self.api("/api/kernels")):
                        self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
                except (OSError, urllib.error.URLError, ValueError):
                    pass
                self.process.terminate()
                try:
                    self.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            self._log.close()


@pytest.fixture
def tools():
    """(Chromium's path, playwright.sync_api), or a skip that says what to install."""
    return _requirements()


@pytest.fixture
def lab(tools, tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    server = Lab(root)
    try:
        yield server
    finally:
        server.stop()


def _write_notebook(folder: Path) -> str:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, folder / "mask_editor.ipynb")
    return "mask_editor.ipynb"


def _near(seen, expected, tolerance: float = 25) -> bool:
    """A screenshot's pixel against the colour expected (the browser may round it)."""
    return max(abs(a - b) for a, b in zip(seen, expected, strict=True)) < tolerance


def _bbox_log(folder: Path) -> str | None:
    try:
        return (folder / LOG).read_text() or None
    except FileNotFoundError:
        return None


@pytest.mark.browser
def test_mask_editor_in_jupyterlab(tools, lab):
    chromium, sync_api = tools
    name = _write_notebook(lab.root)
    lab.wait_until_up()
    console: list[str] = []

    def log_says(expected: str, what: str, timeout: float = 60):  # seconds
        """Wait until the kernel's log of the mask reads ``expected``."""
        try:
            _wait_for(lambda: _bbox_log(lab.root) == expected, timeout, what)
        except AssertionError as error:
            raise AssertionError(f"{error}; the log reads {_bbox_log(lab.root)!r}") from None

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.goto(f"{lab.base}/lab/tree/{name}?token={lab.token}", timeout=SLOW_MS)

            # Run the cell once the notebook's editor shows it.
            cell = page.locator(".jp-Notebook .jp-Cell").first
            cell.locator(".cm-content").click(timeout=SLOW_MS)
            page.keyboard.press("Shift+Enter")

            # The controls appear once the kernel has started and run the cell.
            x1 = page.locator(".widget-slider", has=page.locator(".widget-label", has_text="x1"))
            sync_api.expect(x1).to_be_visible(timeout=SLOW_MS)
            _wait_for(lambda: (_bbox_log(lab.root) or "").startswith("(16, 0, 48, 64) "), 30,
                      "the cell to log the first mask: x from 16 to 48, y from 0 to 64")
            # The ipycanvas front end loads and says so (on_client_ready reaches the kernel).
            sync_api.expect(page.get_by_text("Draw on the picture")).to_be_visible(timeout=60_000)
            log_says("(16, 0, 48, 64) True", "the canvas to report that it is ready")

            # Move x1 from 48 to 40 in the page: type into its readout, as a learner may.
            readout = x1.locator(".widget-readout")
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("40")
            page.keyboard.press("Enter")
            log_says("(16, 0, 40, 64) True", "x1 = 40 from the readout")

            # And with the keyboard on the slider's handle: End moves it to the maximum, 64.
            x1.locator(".noUi-handle").focus()
            page.keyboard.press("End")
            log_says("(16, 0, 64, 64) True", "x1 = 64 from the slider's handle")

            # Brush only: shape "none" empties the mask; a stroke on the canvas paints it.
            page.get_by_role("button", name="none", exact=True).click()
            log_says("None True", "shape 'none' to empty the mask")
            canvas = page.locator(".jupyter-widgets canvas").last
            box = canvas.bounding_box()
            assert box and round(box["width"]) == 256, box  # 64 px picture shown 4×
            # Canvas (40, 40) → (200, 40) is picture (10, 10) → (50, 10); brush radius 2.
            page.mouse.move(box["x"] + 40, box["y"] + 40)
            page.mouse.down()
            page.mouse.move(box["x"] + 200, box["y"] + 40, steps=8)
            log_says("(8, 8, 52, 12) True", "a brush stroke on the canvas")
            page.mouse.up()

            # The kernel draws the painted mask back onto the canvas (put_image_data).
            def stroke_shown():
                from PIL import Image

                shot = Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")
                scale = shot.width / 256
                inside = shot.getpixel((int(120 * scale), int(40 * scale)))  # on the stroke
                outside = shot.getpixel((int(120 * scale), int(150 * scale)))
                return (_near(inside, TINTED) and _near(outside, PICTURE)
                        and (inside, outside))

            _wait_for(stroke_shown, 30, "the stroke to be drawn on the canvas", interval=0.5)

            # Moves with the button up paint nothing: to picture (2, 50), outside what follows.
            page.mouse.move(box["x"] + 8, box["y"] + 200, steps=4)
            # Back to the rectangle (x 16..64): the mask is the rectangle and the stroke.
            page.get_by_role("button", name="rectangle", exact=True).click()
            log_says("(8, 0, 64, 64) True", "shape 'rectangle' with the stroke kept")
        except BaseException:
            # Shown by pytest with the failure: what the page and the server said.
            print("browser console:", *console[-40:], sep="\n  ")
            print("jupyter server log (end):", lab.server_log(), sep="\n")
            raise
        finally:
            browser.close()
    # Not asserted (JupyterLab's own messages vary), but shown with -s.
    errors = [m for m in console if m.startswith(("error", "pageerror"))]
    if errors:
        print("browser console errors:", *errors, sep="\n  ")

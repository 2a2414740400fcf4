"""JupyterLab as a reader uses it: a headless server, a chapter opened and run through the UI in a
real browser (Debian's chromium, driven by Playwright), and the explorers moved by hand.

Set ``MEMNOTEBOOKS_SCREENSHOTS`` to a folder to keep the screenshots of the explorers there (the
README's come from this test); otherwise they go to the test's temporary folder.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from test_notebooks import CHROMIUM, ROOT

pytestmark = [
    pytest.mark.notebooks,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)"),
]

JUPYTER = Path(sys.executable).with_name("jupyter")
KERNEL_DISPLAY_NAME = "Python (memnotebooks)"
RAW_MYST = re.compile(r"\{(cite|numref|ref|doc|eq|math|term|download)(:[a-z]+)?\}|^:::|^```\{", re.M)
"""MyST syntax a reader must never see as text: roles (``{cite:t}`key```, which plain Markdown
shows as ``{cite:t}key``) and directives."""

SETTINGS = {
    # Every cell in the page, not only those scrolled into view, so that the page can be checked whole.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}

# A notebook with every explorer, on small runs (a chapter's defaults would train for minutes).
EXPLORERS = [
    """from memnotebooks import explorers, relabel, runs
from memnotebooks.data import load_dataset

digits = load_dataset("digits")
small = runs.run_grid(runs.RunConfig(subset=400, max_epochs=60, checkpoint_epochs=(0, 2, 5, 13)), degrees=[0.6], progress=False)
relabelled = relabel.relabel_table(small[0], ["masc_corrupted", "masc_crossfit"], max_epochs=4)""",
    "explorers.corruption_explorer(digits.y_train, digits.n_classes)",
    "explorers.decoding_explorer(small)",
    "explorers.relabel_explorer(small, relabelled, max_epochs=4)",
    "explorers.epoch_explorer(small)",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free local port, with a token, serving a copy of chapter 01 and a
    notebook of every explorer; the server and its kernels are shut down afterwards, whatever
    the tests did."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy2(ROOT / "book" / "01_corruption.ipynb", root)
    cells = [nbformat.v4.new_code_cell(source) for source in EXPLORERS]
    kernelspec = nbformat.read(ROOT / "book" / "01_corruption.ipynb", as_version=4).metadata.kernelspec
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec}), root / "explorers.ipynb")
    settings = root.parent / f"{root.name}-settings"
    for name, values in SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), os.urandom(12).hex()
    env = {"JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(settings / "workspaces"),
           "MEMNOTEBOOKS_ARTIFACTS": str(root.parent / f"{root.name}-artifacts")}
    log_path = root.parent / f"{root.name}-server.log"
    server = start_lab(root, port, token, log_path, env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(server, base, token, log_path)
        yield {"base": base, "token": token, "root": root, "log": log_path}
    finally:
        shut_down(server, base, token)


def start_lab(root: Path, port: int, token: str, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    """``jupyter lab`` on ``root``, headless, on ``port`` only (no retry on the next port), with
    ``token``; its output goes to ``log_path``; in a process group of its own."""
    command = [str(JUPYTER), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"]
    with open(log_path, "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)


def wait_for_server(server, base: str, token: str, log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode} before serving; its log:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout:.0f} s; its log:\n{log_path.read_text()}")


def shut_down(server, base: str, token: str) -> None:
    """Ask the server to shut its kernels and itself down; kill the whole group if it does not."""
    try:
        request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=10).close()
        server.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def wait_for_idle_kernel(lab, notebook: str, timeout: float = 90) -> None:
    """Until the server reports the kernel of ``notebook``'s session started and idle (a Run All
    sent before the page has its kernel runs nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{lab['base']}/api/sessions?token={lab['token']}", timeout=5) as answer:
            if any(s["path"] == notebook and s["kernel"]["execution_state"] == "idle" for s in json.load(answer)):
                time.sleep(1)  # the page's own connection settles
                return
        time.sleep(0.5)
    pytest.fail(f"No idle kernel for {notebook} within {timeout:.0f} s; the server's log:\n{lab['log'].read_text()}")


def open_and_run_all(browser, lab, notebook: str, timeout_s: float):
    """Open ``notebook`` in JupyterLab, run all its cells from the Run menu, and wait until every
    code cell has run; returns the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{lab['base']}/lab/tree/{notebook}?token={lab['token']}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=90_000)
    wait_for_idle_kernel(lab, notebook)
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
    try:
        page.wait_for_function(
            """() => { const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
                       return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
            timeout=timeout_s * 1000,
        )
    except Exception:
        shot = lab["root"].parent / f"{lab['root'].name}-{notebook}.png"
        page.screenshot(path=str(shot), full_page=True)
        pytest.fail(f"{notebook} did not finish running within {timeout_s:.0f} s (the page: {shot}); the server's log:\n{lab['log'].read_text()[-3000:]}")
    return page


def test_a_chapter_runs_in_jupyterlab_on_the_projects_kernel_and_reads_as_in_the_book(browser, lab):
    start = time.perf_counter()
    page = open_and_run_all(browser, lab, "01_corruption.ipynb", timeout_s=300)
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    kernel = page.locator(".jp-KernelName").first.inner_text().strip()
    n_code = notebook.locator(".jp-CodeCell").count()
    errors = notebook.locator("[data-mime-type='application/vnd.jupyter.error']").all_inner_texts()
    stderr = notebook.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    images = notebook.locator(".jp-OutputArea img").evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    n_markdown = notebook.locator(".jp-MarkdownCell").count()
    markdown = notebook.locator(  # the cells (jupyterlab-myst renders them in .myst, plain JupyterLab in .jp-RenderedMarkdown) and the prose's outputs
        ".jp-MarkdownCell .myst, .jp-MarkdownCell .jp-RenderedMarkdown, .jp-OutputArea-output[data-mime-type='text/markdown']").all_inner_texts()
    raw = [text[:120] for text in markdown if RAW_MYST.search(text)]
    cited = notebook.locator(".jp-MarkdownCell .cite-group").count()

    assert kernel == KERNEL_DISPLAY_NAME, f"the chapter opened on {kernel!r}"
    assert not errors, f"error outputs: {errors}"
    assert not [s for s in stderr if "IProgress" in s or "Traceback" in s], stderr
    assert len(images) >= 3 and all(images), f"{len(images)} figures, drawn: {images}"
    assert len(markdown) > n_markdown > 0, f"{len(markdown)} rendered markdown blocks for {n_markdown} markdown cells"
    assert not raw, f"markdown shown as raw MyST: {raw}"
    # jupyterlab-myst parses the citation roles (it cannot read references.bib: it shows the key).
    assert cited > 0, "no citation role rendered as a citation"

    explorer = notebook.locator(".jp-OutputArea-output .widget-vbox").first
    before = explorer.locator("img").get_attribute("src")
    explorer.locator("select").first.select_option("permute")
    page.wait_for_function("([el, src]) => el.querySelector('img') && el.querySelector('img').getAttribute('src') !== src",
                           arg=[explorer.element_handle(), before], timeout=60_000)
    print(f"\nJupyterLab: opened 01_corruption.ipynb on {kernel}, ran its {n_code} code cells, {len(images)} figures drawn, "
          f"{len(markdown)} markdown cells and prose outputs rendered as MyST ({cited} citations), the explorer's mode moved to 'permute' and its figure redrawn, "
          f"in {time.perf_counter() - start:.0f} s")
    page.close()


def test_every_explorer_responds_in_jupyterlab(browser, lab):
    shots = Path(os.environ.get("MEMNOTEBOOKS_SCREENSHOTS") or lab["root"] / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    page = open_and_run_all(browser, lab, "explorers.ipynb", timeout_s=300)
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    assert not notebook.locator("[data-mime-type='application/vnd.jupyter.error']").all_inner_texts()
    explorers = notebook.locator(".jp-OutputArea-output .widget-vbox")
    names = ["corruption", "decoding", "relabel", "epoch"]
    assert explorers.count() == len(names)
    for index, name in enumerate(names):
        explorer = explorers.nth(index)
        explorer.scroll_into_view_if_needed()
        assert explorer.locator("img").count() == 1, f"the {name} explorer drew no figure: {explorer.inner_text()[:300]}"
        explorer.screenshot(path=str(shots / f"explorer_{name}.png"))
    # A slider the reader drags by keyboard: the epoch explorer's, one checkpoint on.
    epoch = explorers.nth(3)
    before = epoch.locator("img").get_attribute("src")
    epoch.locator(".widget-slider .noUi-handle, .widget-slider [role='slider']").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, src]) => el.querySelector('img').getAttribute('src') !== src", arg=[epoch.element_handle(), before], timeout=60_000)
    page.close()


def test_a_server_that_cannot_start_fails_with_its_log(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_lab(tmp_path, port, "token", tmp_path / "server.log")
        try:
            with pytest.raises(pytest.fail.Exception) as failure:
                wait_for_server(server, f"http://127.0.0.1:{port}", "token", tmp_path / "server.log")
        finally:
            shut_down(server, f"http://127.0.0.1:{port}", "token")
    message = str(failure.value)
    assert message.startswith("JupyterLab exited with") and str(port) in message and "already in use" in message

"""Test helpers shared by more than one test module."""

from contextlib import contextmanager

import numpy as np


def random_transfers(rng: np.random.Generator, stores: int, skus: int) -> dict[str, np.ndarray]:
    """Up to five store -> store transfer lines of random SKUs, stores and units (0-29): what a
    fuzzing policy sends the twin (a line to its own store or of 0 units included)."""
    n = int(rng.integers(0, 6))
    return {
        "sku": rng.integers(0, skus, n),
        "src": rng.integers(0, stores, n),
        "dest": rng.integers(0, stores, n),
        "units": rng.integers(0, 30, n),
    }


@contextmanager
def chromium_page(executable: str, args: list[str], width: int, timeout_ms: int, height: int = 1000, headers=None):
    """A page of Debian's Chromium driven by Playwright (nothing downloaded), closed after use;
    `headers` are sent with every request (what an authenticating proxy adds)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=args)
        page = browser.new_page(viewport={"width": width, "height": height}, extra_http_headers=headers)
        page.set_default_timeout(timeout_ms)
        yield page
        browser.close()


@contextmanager
def streamlit_app(script, port: int, env: dict, cwd=None, args=()):
    """`streamlit run script` on 127.0.0.1:port (as `make console`), stopped after use; waits
    until its health endpoint answers."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--client.toolbarMode", "viewer", *args],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def answer_in_console(page, action: str, value: str = "", reason: str = "") -> None:
    """In the planner console's answer form: pick the action, type the override and the reason, send.
    Right after a rerun Streamlit may still show the form it is replacing beside the new one: wait
    until one form is left (two `override` options made the click ambiguous on a loaded machine)."""
    from playwright.sync_api import expect

    option = page.get_by_text(action, exact=True)
    expect(option).to_have_count(1, timeout=30_000)
    option.click()
    page.get_by_role("textbox", name="Override: units or price (one value for every selected decision)").fill(value)
    page.get_by_role("textbox", name="Reason (needed to reject or override)").fill(reason)
    page.get_by_role("button", name="Send answer").click()

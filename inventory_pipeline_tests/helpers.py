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
def chromium_page(executable: str, args: list[str], width: int, timeout_ms: int):
    """A page of Debian's Chromium driven by Playwright (nothing downloaded), closed after use."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=args)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.set_default_timeout(timeout_ms)
        yield page
        browser.close()

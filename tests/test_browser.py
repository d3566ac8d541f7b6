"""The web page in a real headless Chromium (Playwright): upload a photo, see bars and styles.

Needs the `chromium` executable and the `playwright` Python package (no
`playwright install`: the system Chromium is used). Skipped without them,
except under CI (env CI set), where their absence is a failure.
The screenshot goes to tests/artifacts/browser.png.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import LABELS, TINY_TRAIN, draw, make_image_set
from fashionstyle.cli import main

pytestmark = pytest.mark.slow  # a trained run, a server and a real Chromium

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def requirements() -> str:
    """The system Chromium's path, or skip (fail under CI) when it or Playwright is missing."""
    chromium = shutil.which("chromium")
    try:
        import playwright  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        missing = f"{err.name} is not installed"
    else:
        missing = "" if chromium else "no `chromium` executable on PATH"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test under CI: {missing}")
        pytest.skip(missing)
    return chromium


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    return requirements()


@pytest.fixture(scope="module")
def service(chromium, tmp_path_factory):
    """A tiny trained run served by uvicorn in a background thread; yields its base URL."""
    import uvicorn

    from fashionstyle.serve import create_app

    from fashionstyle import Predictor, RunDir

    root = tmp_path_factory.mktemp("browser")
    labels = make_image_set(root / "data", n=32)
    run = root / "tiny_run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN, "--epochs", "1"]) == 0
    # thresholds that leave some styles out, so the page shows both kinds of bar
    photos = [photo(root / "red_striped.jpg", [1, 1, 0]), photo(root / "dotted.jpg", [0, 0, 1])]
    probs = Predictor.from_run(run).predict_proba(photos)
    low, high = probs.min(axis=0), probs.max(axis=0)
    tuner = RunDir(run).thresholds()
    tuner.thresholds_ = np.array([low[0] - 0.1, min(high[1] + 0.1, 0.99), (low[2] + high[2]) / 2])
    RunDir(run).write_thresholds(tuner)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(run), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", run, photos
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def photo(path: Path, flags, size: int = 160) -> Path:
    image = draw(np.random.default_rng(1), np.array(flags), size=32).resize((size, int(size * 1.3)), Image.NEAREST)
    image.save(path, quality=95)
    return path


def test_upload_shows_bars_thresholds_and_styles(service, browser) -> None:
    from playwright.sync_api import expect

    url, run, files = service
    page = browser.new_page(viewport={"width": 1240, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url + "/")
    expect(page.locator("#run-info")).to_contain_text(run.name)
    page.set_input_files("#files", [str(f) for f in files])

    cards = page.locator("article.result")
    expect(cards).to_have_count(2)
    expect(page.locator("article.result .bars .fill")).to_have_count(2 * len(LABELS), timeout=20_000)
    expect(page.locator("article.result .tick")).to_have_count(2 * len(LABELS))
    expect(page.locator("#error")).to_be_hidden()
    assert not errors, errors

    from fashionstyle import Predictor

    predictor = Predictor.from_run(run)
    expected = predictor.predict(files)
    for card_file, flags in zip(files, expected):
        card = cards.filter(has_text=card_file.name)
        chosen = [n for n, f in zip(LABELS, flags) if f]
        chips = card.locator(".predicted .chip")
        assert sorted(chips.all_inner_texts()) == sorted(chosen)
        assert sorted(card.locator(".row-on .name").all_inner_texts()) == sorted(chosen)
        # each tick sits at its label's threshold
        for name, threshold in zip(LABELS, predictor.thresholds):
            left = card.locator(f'[data-label="{name}"] .tick').evaluate("e => parseFloat(e.style.left)")
            assert abs(left - 100 * threshold) < 1e-3  # CSS keeps 4 decimals
        expect(card.locator("img")).to_be_visible()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)
    page.close()


def test_api_errors_are_shown_in_the_page(service, browser, tmp_path) -> None:
    from playwright.sync_api import expect

    url, _, _ = service
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a photo")
    page = browser.new_page()
    page.goto(url + "/")
    page.set_input_files("#files", str(broken))
    box = page.locator("#error")
    expect(box).to_be_visible(timeout=20_000)
    expect(box).to_contain_text("broken.jpg")
    expect(box).to_contain_text("not a readable image")
    expect(page.locator("article.result")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser_error.png"))
    page.close()


def test_clicking_a_predicted_style_overlays_its_heat_map(service, browser) -> None:
    pytest.importorskip("captum")
    from playwright.sync_api import expect

    url, _, files = service
    page = browser.new_page(viewport={"width": 1240, "height": 560})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url + "/")
    expect(page.locator("#run-info")).to_contain_text("torch")
    page.set_input_files("#files", [str(f) for f in files])
    chips = page.locator("article.result .predicted button.chip")
    expect(chips.first).to_be_visible(timeout=20_000)
    expect(page.locator("#maps-hint")).to_be_visible()
    card = page.locator("article.result").filter(has=page.locator(".predicted button.chip")).first
    chip, img = card.locator(".predicted button.chip").first, card.locator("img")
    photo = img.get_attribute("src")
    assert photo.startswith("blob:")
    chip.click()
    expect(chip).to_have_class("chip active")
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    assert img.evaluate("e => e.dataset.map") == chip.inner_text()
    assert img.evaluate("e => e.complete && e.naturalWidth") == 224
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser_maps.png"), full_page=True)
    chip.click()  # again: the photo back
    expect(chip).to_have_class("chip")
    assert img.get_attribute("src") == photo
    assert not errors, errors
    page.close()

"""The web page and /docs in a real headless Chromium (Playwright): upload a photo, see bars and styles.

Needs the `chromium` executable and the `playwright` Python package (no
`playwright install`: the system Chromium is used). Skipped without them,
except under CI (env CI set), where their absence is a failure.
Every page is loaded offline: each request is recorded and any that would leave the machine is
refused (and fails the test). Screenshots (desktop and phone width) go to tests/artifacts/.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from conftest import LABELS, TinyRuns, draw

pytestmark = pytest.mark.slow  # a trained run, a server and a real Chromium

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PHONE = {"width": 390, "height": 844}
DESCRIPTIONS = {"Red": "mostly red clothes", "Striped": "stripes of any colour", "Dotted": "polka dots"}
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
def service(chromium, tiny_runs: TinyRuns, tmp_path_factory):
    """A copy of the tiny run served by uvicorn in a background thread; yields its base URL."""
    import uvicorn

    from fashionstyle.serving.app import create_app

    from fashionstyle import Predictor, RunDir

    root = tmp_path_factory.mktemp("browser")
    run = tiny_runs.copy(root, name="tiny_run").run
    # thresholds that leave some styles out, so the page shows both kinds of bar
    photos = [photo(root / "red_striped.jpg", [1, 1, 0]), photo(root / "dotted.jpg", [0, 0, 1])]
    probs = Predictor.from_run(run).predict_proba(photos)
    low, high = probs.min(axis=0), probs.max(axis=0)
    tuner = RunDir(run).thresholds()
    tuner.thresholds_ = np.array([low[0] - 0.1, min(high[1] + 0.1, 0.99), (low[2] + high[2]) / 2])
    RunDir(run).write_thresholds(tuner)
    info = root / "label_info.csv"
    info.write_text("label,description\n" + "".join(f"{n},{d}\n" for n, d in DESCRIPTIONS.items()), encoding="utf-8")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(run, label_info=info), host="127.0.0.1", port=port,
                                           log_level="warning"))
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


def offline_page(browser, viewport: dict | None = None):
    """A new page whose requests are recorded (the list it returns with it); those that would leave
    the machine are refused."""
    page = browser.new_page(viewport=viewport or {"width": 1240, "height": 760})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.route("**/*", lambda route: route.continue_() if is_local(route.request.url) else route.abort())
    return page, requests


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob") or parsed.hostname in ("127.0.0.1", "localhost")


def photo(path: Path, flags, size: int = 160) -> Path:
    image = draw(np.random.default_rng(1), np.array(flags), size=32).resize((size, int(size * 1.3)), Image.NEAREST)
    image.save(path, quality=95)
    return path


def test_upload_shows_bars_thresholds_and_styles(service, browser) -> None:
    from playwright.sync_api import expect

    url, run, files = service
    page, requests = offline_page(browser)
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

    # each style name explains itself on hover (the run's --label-info)
    card = cards.first
    card.locator('[data-label="Dotted"] .name').hover()
    expect(page.locator("#tip")).to_be_visible()
    expect(page.locator("#tip")).to_have_text(DESCRIPTIONS["Dotted"])
    expect(page.locator("#describe-hint")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)
    page.mouse.move(0, 0)
    expect(page.locator("#tip")).to_be_hidden()
    page.set_viewport_size(PHONE)
    card.locator('[data-label="Red"] .name').focus()  # keyboard focus shows it too (a tap is a hover)
    expect(page.locator("#tip")).to_have_text(DESCRIPTIONS["Red"])
    tip = page.locator("#tip").bounding_box()
    assert tip["x"] >= 0 and tip["x"] + tip["width"] <= PHONE["width"]
    page.screenshot(path=str(ARTIFACTS / "browser_phone.png"), full_page=True)
    assert requests and all(is_local(u) for u in requests), [u for u in requests if not is_local(u)]
    page.close()


def test_docs_render_the_operations_with_no_request_leaving_the_machine(service, browser) -> None:
    from playwright.sync_api import expect

    url, _, _ = service
    page, requests = offline_page(browser)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url + "/")
    page.click("footer a[href='docs']")
    expect(page).to_have_url(url + "/docs")
    operations = page.locator(".opblock-summary-path")
    expect(operations.filter(has_text="/predict")).to_have_count(1, timeout=20_000)
    assert {"/predict", "/labels", "/health"} <= set(operations.all_inner_texts())
    page.locator(".opblock-summary", has_text="/predict").click()  # opens: the form of its parameters
    expect(page.locator(".opblock-body").first).to_contain_text("files")
    responses = page.locator(".opblock-body .responses-wrapper").first  # the answer's schema and example
    for field in ("predictions", "thresholds", "scores", "error"):
        expect(responses).to_contain_text(field)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser_docs.png"))
    assert not errors, errors
    assert any(u.endswith("swagger-ui-bundle.js") for u in requests)
    assert all(is_local(u) for u in requests), [u for u in requests if not is_local(u)]
    page.close()


def test_api_errors_are_shown_in_the_page(service, browser, tmp_path) -> None:
    from playwright.sync_api import expect

    url, _, files = service
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a photo")
    page, requests = offline_page(browser, {"width": 1240, "height": 560})
    page.goto(url + "/")
    page.set_input_files("#files", str(broken))
    box = page.locator("#error")
    expect(box).to_be_visible(timeout=20_000)
    expect(box).to_contain_text("broken.jpg")
    expect(box).to_contain_text("not a readable image")
    expect(page.locator("article.result")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser_error.png"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo either")
    page.set_input_files("#files", [str(files[0]), str(broken), str(notes)])  # with a good one: its result stays
    expect(page.locator("#status")).to_contain_text("1 photo done", timeout=20_000)
    cards = page.locator("article.result")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text(files[0].name)
    expect(cards.first.locator(".bars .fill")).to_have_count(len(LABELS))
    expect(box).to_be_visible()
    expect(box).to_contain_text("broken.jpg: not a readable image")
    expect(box).to_contain_text("1 file skipped (not images): notes.txt")  # named, and one "file"
    assert all(is_local(u) for u in requests), [u for u in requests if not is_local(u)]
    page.close()


def test_clicking_a_predicted_style_overlays_its_heat_map(service, browser) -> None:
    pytest.importorskip("captum")
    from playwright.sync_api import expect

    url, _, files = service
    page, requests = offline_page(browser, {"width": 1240, "height": 560})
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
    expect(chip).to_have_class(re.compile(r"\bactive\b"))
    expect(chip).to_have_attribute("aria-pressed", "true")
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    assert img.evaluate("e => e.dataset.map") == chip.inner_text()
    assert img.evaluate("e => e.complete && e.naturalWidth") == 224
    scale = card.locator(".scale")  # the colour scale under the overlay
    expect(scale).to_be_visible()
    expect(scale).to_contain_text(f"{chip.inner_text()} heat map:")
    expect(scale).to_contain_text("low")
    expect(scale).to_contain_text("high")
    assert "linear-gradient" in scale.locator(".bar").evaluate("e => getComputedStyle(e).backgroundImage")
    page.mouse.move(0, 0)
    expect(page.locator("#tip")).to_be_hidden()  # a click leaves no description behind once the mouse goes
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser_maps.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "browser_maps_phone.png"), full_page=True)
    chip.click()  # again: the photo back
    expect(chip).not_to_have_class(re.compile(r"\bactive\b"))
    expect(scale).to_be_hidden()
    assert img.get_attribute("src") == photo
    assert not errors, errors
    assert all(is_local(u) for u in requests), [u for u in requests if not is_local(u)]
    page.close()

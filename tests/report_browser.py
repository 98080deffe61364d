"""Open a Snakemake report in headless Chromium (Debian's chromium and chromium-driver) and view every figure in it the
way a person does: each category, each subcategory, each label toggle, each result's eye button.

The report is one HTML file; its figures are PNG data URIs that the page's app puts in an <img> when its eye button is
clicked. A figure counts as displayed when that <img> is visible and has decoded (complete, naturalWidth > 0); its
decoded bytes say which figure file it is."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
from pathlib import Path

from needs import missing

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Offline machines refuse Chromium's background connections; without these flags it retries them at every start.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1500,1000"]


def chromium(user_data_dir: Path):
    """A headless Chromium driven by Selenium; skips (fails in CI) without one."""
    absent = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        absent.append("the selenium package")
    if absent:
        message = f"no browser: {', '.join(absent)} missing (apt-get install chromium chromium-driver)"
        missing(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def report_categories(html: str) -> dict[str, dict[str, list[str]]]:
    """{category: {subcategory: [result paths]}}, as the report lists them."""
    start = html.index("var categories = ") + len("var categories = ")
    return json.JSONDecoder().raw_decode(html, start)[0]


def _wait_for(driver, condition, timeout=10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda _: condition())


def _click_text(driver, text: str) -> bool:
    """Click the navigation link showing exactly ``text``; False if there is none."""
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.XPATH, f"//nav//a[normalize-space(.)={json.dumps(text)}]")
    if not links:
        return False
    links[-1].click()  # the breadcrumb shows the current level first; the menu's entry comes after it
    return True


def _shown_figure(driver) -> bytes | None:
    """The PNG the page shows, once it has decoded."""
    from selenium.webdriver.common.by import By

    for image in driver.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']"):
        if image.is_displayed() and driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", image):
            return base64.b64decode(image.get_attribute("src").split("base64,", 1)[1])
    return None


def _next_figure(driver, previous: bytes | None) -> bytes:
    """The next figure the page shows: decoded, and not the one shown before."""
    def changed():
        shown = _shown_figure(driver)
        return shown if shown is not None and shown != previous else None

    return _wait_for(driver, changed)


def view_every_figure(driver, report: Path) -> list[tuple[str, str, bytes]]:
    """Every PNG the report can show, reached by clicks: (category, subcategory, PNG bytes) per eye button."""
    from selenium.webdriver.common.by import By

    seen = []
    for category, subcategories in report_categories(report.read_text()).items():
        for subcategory, paths in subcategories.items():
            if not any(path.endswith(".png") for path in paths):
                continue
            driver.get(report.as_uri())
            _wait_for(driver, lambda: _click_text(driver, category))
            _click_text(driver, subcategory)  # a category's only subcategory is listed directly, without its name
            _wait_for(driver, lambda: driver.find_elements(By.CSS_SELECTOR, "nav a[iconname='eye']"))
            toggles = [fieldset.find_elements(By.TAG_NAME, "label")
                       for fieldset in driver.find_elements(By.CSS_SELECTOR, "nav fieldset")]
            shown = None
            for combination in itertools.product(*[range(len(labels)) for labels in toggles]):
                for labels, choice in zip(toggles, combination):
                    labels[choice].click()
                for eye in driver.find_elements(By.CSS_SELECTOR, "nav a[iconname='eye']"):
                    eye.click()
                    shown = _next_figure(driver, shown)
                    seen.append((category, subcategory, shown))
    return seen

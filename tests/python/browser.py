"""A headless chromium driven by selenium, for the tests of the report's interactive figures
(test_interactive_report.py, test_interactive_figures.py), and what they share: waiting for a page's script,
moving a slider by key, and a console free of errors.

scripts/setup installs chromium, chromium-driver and selenium. Where they are missing the tests that use the
``browser`` fixture fail and say so; ICGT_SKIP_BROWSER_TESTS=1 skips them instead (for machines set up otherwise).
Nothing here downloads a browser: selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver.
"""

import os
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SKIP_BROWSER = "ICGT_SKIP_BROWSER_TESTS"


@pytest.fixture(scope="module")
def browser():
    """A headless chromium through selenium, its console log kept; skipped only on request."""
    if os.environ.get(SKIP_BROWSER) == "1":
        pytest.skip(f"{SKIP_BROWSER}=1: the browser tests of the interactive report are skipped")
    problem = missing_browser(CHROMIUM, CHROMEDRIVER)
    if problem:
        pytest.fail(problem, pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900",
                     # WebGL for the 3-D view, in software: a headless machine has no GPU.
                     "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium then never runs Selenium Manager, which would download a browser.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def missing_browser(chromium, chromedriver):
    """Why the browser tests cannot run here (what is missing and how to get it), or None."""
    missing = [str(path) for path in (chromium, chromedriver) if not Path(path).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium Python package")
    if not missing:
        return None
    return (f"the interactive report's browser test needs {', '.join(missing)}: run scripts/setup (it installs "
            f"Debian's chromium and chromium-driver and selenium), or set {SKIP_BROWSER}=1 to skip these tests")


def wait_for(driver, script, timeout=20.0):
    """Wait until the page's ``script`` returns something true (a failure after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not driver.execute_script(script):
        assert time.monotonic() < deadline, f"timed out waiting for: {script}"
        time.sleep(0.05)


def assert_console_clean(driver):
    """No error in the browser's console since it was last read."""
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def press(driver, element_id, key, times=1):
    """Press a key (a name of selenium's Keys: ARROW_LEFT, HOME, ...) on an element, ``times`` times: how a user
    moves a slider with the keyboard."""
    from selenium.webdriver.common.keys import Keys

    element = driver.find_element("id", element_id)
    for _ in range(times):
        element.send_keys(getattr(Keys, key))

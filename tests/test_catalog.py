"""The static HTML catalog (transpiler/catalog.py, templates/catalog/): files, determinism,
escaping, offline assets, backends that fail; and the pages in headless Chromium."""
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from transpiler import backends
from transpiler.backends.base import Backend
from transpiler.catalog import build, slugs
from transpiler.cli import main
from transpiler.errors import Unsupported
from transpiler.rule import load_paths

from test_analysis import ACCESS_KEY, USER_CREATED, seed_path

EXTRA = {
    "aws_iam_delete_user.yml": """title: IAM User Deleted <script>alert(1)</script>
id: 4a6b8c0d-2e3f-5a7b-9c1d-3e4f5a6b7c8e
status: test
level: low
tags: [attack.impact, attack.t1531]
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventSource: iam.amazonaws.com, eventName: DeleteUser}
    condition: selection
""",
    "win_new_user.yml": """title: Local User Created
id: 5b7c9d1e-3f4a-6b8c-0d2e-4f5a6b7c8d9f
level: medium
tags: [attack.persistence, attack.t1136.001]
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4720}
    condition: selection
""",
    "multi.yml": """title: First
logsource: {product: aws, service: cloudtrail}
detection: {sel: {eventName: StopLogging}, condition: sel}
---
title: Second document
logsource: {product: aws, service: cloudtrail}
detection: {sel: {eventName: DeleteTrail}, condition: sel}
""",
}


@pytest.fixture
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    for name in (USER_CREATED, ACCESS_KEY):
        (d / name).write_text(seed_path(name).read_text())
    for name, text in EXTRA.items():
        (d / name).write_text(text)
    return d


def site_of(rules_dir, out):
    rules, errors = load_paths([rules_dir])
    assert not errors
    return build(rules, out)


def test_site_files(rules_dir, tmp_path):
    stats = site_of(rules_dir, tmp_path / "site")
    site = tmp_path / "site"
    assert stats["rules"] == 6
    pages = sorted(p.name for p in (site / "rules").iterdir())
    assert pages == ["aws_iam_access_key_creation_attempt.html", "aws_iam_delete_user.html",
                     "aws_iam_user_created.html", "multi.html", "multi_1.html", "win_new_user.html"]
    assert (site / "index.html").exists() and (site / "attack.html").exists()
    assert sorted(p.name for p in (site / "assets").iterdir()) == ["catalog.js", "style.css"]


def test_rule_page_content(rules_dir, tmp_path):
    site_of(rules_dir, tmp_path / "site")
    page = (tmp_path / "site" / "rules" / "aws_iam_user_created.html").read_text()
    for text in ("Stage 0: condition", "Stage 1: selection", "Stage 2: not filter", "is_not_null",
                 "(no value, null check)", "T1136.003</a> Create Account: Cloud Account", "AWS-iam",
                 "errorCode|exists: true", "IAM User Deleted"):   # not: same action is CreateUser only
        if text == "IAM User Deleted":
            assert text not in page
        else:
            assert text in page, text
    for name in sorted(backends.BACKENDS):
        assert f'data-target="{name}"' in page
    second = (tmp_path / "site" / "rules" / "multi_1.html").read_text()
    assert "title: Second document" in second and "title: First" not in second


def test_html_is_escaped(rules_dir, tmp_path):
    site_of(rules_dir, tmp_path / "site")
    for page in [tmp_path / "site" / "index.html", tmp_path / "site" / "rules" / "aws_iam_delete_user.html"]:
        html = page.read_text()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_offline_assets_only(rules_dir, tmp_path):
    site_of(rules_dir, tmp_path / "site")
    for page in (tmp_path / "site").rglob("*.html"):
        html = page.read_text()
        assert not re.search(r'<(script|link|img|iframe)[^>]*(src|href)="(https?:)?//', html), page
        assert "@import" not in html and "fonts.googleapis" not in html
    css = (tmp_path / "site" / "assets" / "style.css").read_text()
    assert "url(" not in css and "@import" not in css


def test_build_is_deterministic(rules_dir, tmp_path):
    site_of(rules_dir, tmp_path / "a")
    site_of(rules_dir, tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_rebuild_removes_stale_pages(rules_dir, tmp_path):
    site_of(rules_dir, tmp_path / "site")
    (rules_dir / "win_new_user.yml").unlink()
    site_of(rules_dir, tmp_path / "site")
    assert not (tmp_path / "site" / "rules" / "win_new_user.html").exists()


class Refusing(Backend):
    """A backend that cannot express anything (stands for a real Unsupported)."""
    name = "refusing"

    def convert(self, rule):
        raise Unsupported("refusing: cannot say this")


def test_unsupported_and_missing_backends(rules_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "zz-refusing", "test_catalog:Refusing")
    monkeypatch.setitem(backends.BACKENDS, "zz-missing", "transpiler.backends.no_such_module:Nope")
    stats = site_of(rules_dir, tmp_path / "site")
    assert stats["unsupported"] >= 2 * 6
    page = (tmp_path / "site" / "rules" / "aws_iam_user_created.html").read_text()
    assert "<b>Unsupported:</b> refusing: cannot say this" in page
    assert "<b>Unsupported:</b> backend not available: ModuleNotFoundError" in page


def test_slugs_are_unique_and_stable(tmp_path):
    class R:
        def __init__(self, path, doc=0):
            self.path, self.doc = path, doc
            self.label = path if doc == 0 else f"{path}#{doc}"
    rules = [R("a/x.yml"), R("b/x.yml"), R("c/y.yml"), R("c/y.yml", 1), R("d/Y.yml")]
    got = slugs(rules)
    assert len(set(got.values())) == len(rules)
    assert got["c/y.yml#1"] == "y_1"
    assert got["a/x.yml"].startswith("x-") and got["b/x.yml"].startswith("x-")
    assert slugs(list(reversed(rules))) == got


def test_catalog_cli(rules_dir, tmp_path, capsys):
    assert main(["catalog", str(rules_dir), "-o", str(tmp_path / "site")]) == 0
    assert "6 rule pages" in capsys.readouterr().err
    assert (tmp_path / "site" / "index.html").exists()


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_catalog(tmp_path):
    from conftest import corpus_path
    rules, errors = load_paths([corpus_path("rules")])
    stats = build(rules, tmp_path / "site", errors=errors)
    count = sum(r.kind == "rule" for r in rules)
    assert stats["rules"] == count
    assert len(list((tmp_path / "site" / "rules").glob("*.html"))) == count
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count("<tr data-level=") == count


# --- the pages in a real browser --------------------------------------------------------------

def _browser():
    """A headless Chromium driven by Selenium, or a skip that says what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="catalog-chromium-")
    # The flags that work in this sandbox: no network chatter, no GPU, a fresh profile.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1300,900"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts), profile


def _wait(check, timeout=5.0):
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > end:
            return value
        time.sleep(0.05)


@pytest.fixture
def browser():
    driver, profile = _browser()
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_pages_in_chromium(rules_dir, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    site = tmp_path / "site"
    site_of(rules_dir, site)

    def visible_titles():
        return [row.find_element(By.TAG_NAME, "a").text
                for row in browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr") if row.is_displayed()]

    browser.get((site / "index.html").as_uri())
    assert len(visible_titles()) == 6
    assert browser.find_element(By.ID, "shown").text == "6"

    browser.find_element(By.ID, "q").send_keys("iam user")
    assert _wait(lambda: len(visible_titles()) == 2)
    assert sorted(visible_titles()) == ["IAM User Created", "IAM User Deleted <script>alert(1)</script>"]
    assert browser.find_element(By.ID, "shown").text == "2"

    Select(browser.find_element(By.ID, "level")).select_by_visible_text("high")
    assert _wait(lambda: visible_titles() == ["IAM User Created"])
    browser.find_element(By.ID, "q").clear()
    Select(browser.find_element(By.ID, "level")).select_by_index(0)
    Select(browser.find_element(By.ID, "tactic")).select_by_visible_text("Impact")
    assert _wait(lambda: visible_titles() == ["IAM User Deleted <script>alert(1)</script>"])

    # A filter in the address (the ATT&CK page links here this way) applies on load.
    browser.get((site / "index.html").as_uri() + "#event=CreateAccessKey")
    assert _wait(lambda: visible_titles() == ["IAM Access Key Creation Attempt"])
    browser.get((site / "index.html").as_uri() + "#q=nothing-matches-this")
    assert _wait(lambda: browser.find_element(By.ID, "none").is_displayed())

    # A rule page shows a query for every backend that converts it, each with a copy button.
    browser.get((site / "index.html").as_uri())
    browser.find_element(By.LINK_TEXT, "IAM User Created").click()
    assert _wait(lambda: browser.title.startswith("IAM User Created"))
    blocks = browser.find_elements(By.CSS_SELECTOR, "#queries .query")
    assert [b.get_attribute("data-target") for b in blocks] == sorted(backends.BACKENDS)
    shown = [b for b in blocks if b.find_elements(By.CSS_SELECTOR, "pre code")]
    assert shown, "no backend converted the seed rule"
    for b in shown:
        code = b.find_element(By.CSS_SELECTOR, "pre code").text
        assert "createuser" in code.lower() and b.find_element(By.CSS_SELECTOR, "button.copy").is_displayed()
    for b in blocks:
        if b not in shown:
            assert "Unsupported:" in b.text
    button = shown[0].find_element(By.CSS_SELECTOR, "button.copy")
    button.click()
    assert _wait(lambda: button.text == "Copied")
    assert "Stage 2: not filter" in browser.find_element(By.TAG_NAME, "body").text

    # The matrix links a technique to the index, filtered by it.
    browser.get((site / "attack.html").as_uri())
    browser.find_element(By.CSS_SELECTOR, "#T1531 a").click()
    assert _wait(lambda: visible_titles() == ["IAM User Deleted <script>alert(1)</script>"])

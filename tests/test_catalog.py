"""The static HTML catalog (transpiler/catalog.py, templates/catalog/): files, determinism,
escaping, offline assets, backends that fail, correlations, references, the ATT&CK Navigator
layer, the manifest that keeps a rebuild to its own files; and the pages in headless Chromium
(screenshots go to $CATALOG_SCREENSHOTS when it is set)."""
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from transpiler import backends
from transpiler.analysis import attack_table
from transpiler.backends.base import Backend
from transpiler.catalog import LAYER, MANIFEST, build, slugs
from transpiler.cli import main
from transpiler.errors import TranspileError, Unsupported
from transpiler.rule import load_paths

from conftest import missing_tool
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
    "correlated.yml": """title: Console Login Failed
name: console_login_failed
id: 6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f
status: deprecated
level: informational
references: ["javascript:alert(1)", "https://docs.aws.amazon.com/console-login", "see the runbook"]
falsepositives: [Users mistyping their password]
logsource: {product: aws, service: cloudtrail}
detection: {sel: {eventName: ConsoleLogin, errorMessage: Failed authentication}, condition: sel}
---
title: Many Failed Console Logins
id: 7d2e3f4a-5b6c-4d7e-9f0a-1b2c3d4e5f60
status: experimental
level: high
tags: [attack.credential-access, attack.t1110.001]
references: [https://attack.mitre.org/techniques/T1110/001/]
logsource: {product: aws, service: cloudtrail}
correlation:
    type: event_count
    rules: [console_login_failed]
    group-by: [sourceIPAddress]
    timespan: 10m
    condition: {gte: 5}
""",
}
PAGES = ["aws_iam_access_key_creation_attempt.html", "aws_iam_delete_user.html", "aws_iam_user_created.html",
         "correlated.html", "correlated_1.html", "multi.html", "multi_1.html", "win_new_user.html"]


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
    assert (stats["rules"], stats["correlations"]) == (7, 1)
    assert sorted(p.name for p in (site / "rules").iterdir()) == PAGES
    assert (site / "index.html").exists() and (site / "attack.html").exists() and (site / LAYER).exists()
    assert sorted(p.name for p in (site / "assets").iterdir()) == ["catalog.js", "style.css"]
    manifest = json.loads((site / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(str(p.relative_to(site)) for p in site.rglob("*")
                                               if p.is_file() and p.name != MANIFEST)


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


def test_rule_tests_status_and_samples(rules_dir, tmp_path):
    """Each rule's own tests (issue 18) show on its page and in the index: pass, fail with the
    reason, none; the tests file and event files are linked relative to the page."""
    (rules_dir / "aws_iam_delete_user.tests.yml").write_text(
        "match: [{eventSource: iam.amazonaws.com, eventName: DeleteUser}]\nno_match: [events.json]\n")
    (rules_dir / "events.json").write_text('{"Records": [{"eventSource": "iam.amazonaws.com", "eventName": "DeleteUser"}]}')
    (rules_dir / "win_new_user.tests.yml").write_text("match: [{EventID: 4720}]\nno_match: [{EventID: 4722}]\n")
    site_of(rules_dir, tmp_path / "site")
    site = tmp_path / "site"
    failing = (site / "rules" / "aws_iam_delete_user.html").read_text()
    assert 'class="tests tests-fail">fail<' in failing and "no_match[0]: expected" in failing
    assert 'href="../../rules/events.json"' in failing and 'href="../../rules/aws_iam_delete_user.tests.yml"' in failing
    assert 'class="tests tests-pass">pass<' in (site / "rules" / "win_new_user.html").read_text()
    assert "No tests" in (site / "rules" / "aws_iam_user_created.html").read_text()
    index = (site / "index.html").read_text()
    assert index.count('tests-fail">fail<') == 1 and index.count('tests-pass">pass<') == 1
    assert "tests:fail" in index and "tests:none" in index


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
    assert stats["unsupported"] >= 2 * 8
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
    assert "7 rule pages, 1 correlation pages" in capsys.readouterr().err
    assert (tmp_path / "site" / "index.html").exists()


def test_correlations_and_their_rules_link_both_ways(rules_dir, tmp_path):
    site_of(rules_dir, tmp_path / "site")
    rules = tmp_path / "site" / "rules"
    correlation = (rules / "correlated_1.html").read_text()
    base = (rules / "correlated.html").read_text()
    assert '<a href="correlated.html">Console Login Failed</a>' in correlation
    assert '<a href="correlated_1.html">Many Failed Console Logins</a>' in base
    assert "generate: false" in base and "Sigma correlation" in correlation
    for text in ("event_count", "10m", "sourceIPAddress", "gte 5", "T1110.001"):
        assert text in correlation, text
    assert 'data-target="athena"' in correlation and "WITH selected AS" in correlation
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="rules/correlated_1.html">Many Failed Console Logins</a> <span class="chip kind">correlation</span>' \
        in index


def test_a_correlation_naming_an_unknown_rule_is_reported(rules_dir, tmp_path, capsys):
    (rules_dir / "orphan.yml").write_text(
        "title: Orphan\nlogsource: {product: aws, service: cloudtrail}\n"
        "correlation: {type: event_count, rules: [no_such_rule], group-by: [x], timespan: 1m, condition: {gte: 2}}\n")
    assert main(["catalog", str(rules_dir), "-o", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err
    assert "orphan.yml" in err and "no_such_rule" in err
    assert "1 rule documents have errors" in (tmp_path / "site" / "index.html").read_text()


def test_references_and_false_positives_are_sections(rules_dir, tmp_path):
    """Shown as lists, not only inside the YAML; only http(s) references become links."""
    site_of(rules_dir, tmp_path / "site")
    page = (tmp_path / "site" / "rules" / "aws_iam_user_created.html").read_text()
    refs = page[page.index('<section id="references">'):page.index('<section id="falsepositives">')]
    assert '<a href="https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateUser.html"' in refs
    fps = page[page.index('<section id="falsepositives">'):]
    assert "<li>Automated provisioning systems (Terraform, CloudFormation, SCIM)</li>" in fps.split("</section>")[0]
    other = (tmp_path / "site" / "rules" / "correlated.html").read_text()
    assert 'href="javascript:' not in other and "<li>javascript:alert(1)</li>" in other
    assert "<li>see the runbook</li>" in other and "<li>Users mistyping their password</li>" in other
    assert "None given." in (tmp_path / "site" / "rules" / "win_new_user.html").read_text()


def test_navigator_layer(rules_dir, tmp_path):
    """A layer the ATT&CK Navigator opens: layer format 4.5, enterprise domain, known technique
    ids with a score each (the number of rules tagging them)."""
    site_of(rules_dir, tmp_path / "site")
    layer = json.loads((tmp_path / "site" / LAYER).read_text())
    assert layer["versions"]["layer"] == "4.5" and layer["domain"] == "enterprise-attack"
    assert tuple(int(x) for x in layer["versions"]["navigator"].split(".")) >= (4, 9, 0)
    assert layer["name"] and isinstance(layer["description"], str)
    known = attack_table()["techniques"]
    got = {t["techniqueID"]: t for t in layer["techniques"]}
    assert sorted(got) == ["T1098.001", "T1110.001", "T1136.001", "T1136.003", "T1531"]
    assert all(re.fullmatch(r"T\d{4}(\.\d{3})?", k) and k in known for k in got)
    assert got["T1136.003"]["score"] == 1 and "IAM User Created" in got["T1136.003"]["comment"]
    g = layer["gradient"]
    assert len(g["colors"]) >= 2 and g["maxValue"] > g["minValue"]
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in g["colors"])
    assert layer["layout"]["expandedSubtechniques"] in ("none", "all", "annotated")
    assert 'href="attack-navigator-layer.json"' in (tmp_path / "site" / "attack.html").read_text()


def test_folder_not_written_by_the_catalog_is_refused(rules_dir, tmp_path, capsys):
    """Issue 13.9: a non-empty folder without the manifest is refused with one line, and nothing
    in it is touched."""
    site = tmp_path / "mine"
    (site / "rules").mkdir(parents=True)
    (site / "index.html").write_text("my own page")
    (site / "rules" / "notes.html").write_text("my notes")
    assert main(["catalog", str(rules_dir), "-o", str(site)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not written by sigma-transpile catalog" in err[0] and str(site) in err[0]
    assert (site / "index.html").read_text() == "my own page" and (site / "rules" / "notes.html").exists()
    assert sorted(p.name for p in site.rglob("*")) == ["index.html", "notes.html", "rules"]


def test_rebuild_replaces_only_its_own_files(rules_dir, tmp_path):
    """A second build replaces what the first wrote, removes the pages it no longer writes, and
    leaves the user's own files; a user file in the way of a new page stops the build."""
    site = tmp_path / "site"
    site_of(rules_dir, site)
    (site / "rules" / "my-notes.html").write_text("keep me")
    (site / "README.txt").write_text("keep me too")
    (rules_dir / "win_new_user.yml").unlink()
    site_of(rules_dir, site)
    assert not (site / "rules" / "win_new_user.html").exists()
    assert (site / "rules" / "my-notes.html").read_text() == "keep me" and (site / "README.txt").exists()
    assert "rules/win_new_user.html" not in json.loads((site / MANIFEST).read_text())["files"]
    (rules_dir / "my-notes.yml").write_text(EXTRA["win_new_user.yml"].replace("Local User Created", "Notes"))
    with pytest.raises(TranspileError, match="rules/my-notes.html is not a file an earlier catalog wrote"):
        site_of(rules_dir, site)
    assert (site / "rules" / "my-notes.html").read_text() == "keep me"


def test_a_damaged_manifest_is_not_trusted(rules_dir, tmp_path):
    site = tmp_path / "site"
    site_of(rules_dir, site)
    (site / MANIFEST).write_text(json.dumps({"generator": "sigma-transpile catalog", "files": ["../../etc/passwd"]}))
    with pytest.raises(TranspileError, match="not written by sigma-transpile catalog"):
        site_of(rules_dir, site)


class FakeTty:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_bars_for_catalog_and_match(rules_dir, tmp_path, monkeypatch):
    """On a terminal, catalog and match show a progress bar (and clear it); --no-progress or a
    file as stderr shows none."""
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"eventSource": "iam.amazonaws.com", "eventName": "CreateUser"}] * 3))
    for argv, label in ((["catalog", str(rules_dir), "-o", str(tmp_path / "site")], "pages"),
                        (["match", str(rules_dir), "--events", str(events)], "running rules")):
        tty = FakeTty()
        monkeypatch.setattr(sys, "stderr", tty)
        assert main(argv) == 0
        assert f"\r{label} [" in tty.text and "\r\x1b[K" in tty.text
        tty = FakeTty()
        monkeypatch.setattr(sys, "stderr", tty)
        assert main(argv + ["--no-progress"]) == 0
        assert f"{label} [" not in tty.text


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_catalog(tmp_path):
    from conftest import corpus_path
    rules, errors = load_paths([corpus_path("rules")])
    stats = build(rules, tmp_path / "site", errors=errors)
    count = sum(r.kind == "rule" for r in rules)
    correlations = sum(r.kind == "correlation" for r in rules)
    assert stats["rules"] == count and stats["correlations"] == correlations >= 5
    assert len(list((tmp_path / "site" / "rules").glob("*.html"))) == count + correlations
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count("<tr data-level=") == count + correlations
    assert index.count('<span class="chip kind">correlation</span>') == correlations
    layer = json.loads((tmp_path / "site" / LAYER).read_text())
    assert len(layer["techniques"]) > 300


# --- the pages in a real browser --------------------------------------------------------------

def _browser():
    """A headless Chromium driven by Selenium; without one, a skip that says what is missing,
    or in CI (CI=true, .ci/run) a failure."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing_tool("selenium is not installed (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        missing_tool("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
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


def _shot(browser, name):
    """A screenshot for review, into $CATALOG_SCREENSHOTS when it is set."""
    folder = os.environ.get("CATALOG_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / f"{name}.png"))


def test_pages_in_chromium(rules_dir, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    site = tmp_path / "site"
    site_of(rules_dir, site)
    delete = "IAM User Deleted <script>alert(1)</script>"

    def visible_titles():
        return [row.find_element(By.TAG_NAME, "a").text
                for row in browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr") if row.is_displayed()]

    browser.get((site / "index.html").as_uri())
    assert len(visible_titles()) == 8
    assert browser.find_element(By.ID, "shown").text == "8"
    assert visible_titles() == sorted(visible_titles(), key=str.lower)          # by title at first
    _shot(browser, "index")

    browser.find_element(By.ID, "q").send_keys("iam user")
    assert _wait(lambda: len(visible_titles()) == 2)
    assert sorted(visible_titles()) == ["IAM User Created", delete]
    assert browser.find_element(By.ID, "shown").text == "2"

    Select(browser.find_element(By.ID, "level")).select_by_visible_text("high")
    assert _wait(lambda: visible_titles() == ["IAM User Created"])
    browser.find_element(By.ID, "q").clear()
    Select(browser.find_element(By.ID, "level")).select_by_index(0)
    Select(browser.find_element(By.ID, "tactic")).select_by_visible_text("Impact")
    assert _wait(lambda: visible_titles() == [delete])
    Select(browser.find_element(By.ID, "tactic")).select_by_index(0)

    # The status column and its filter.
    Select(browser.find_element(By.ID, "status")).select_by_visible_text("deprecated")
    assert _wait(lambda: visible_titles() == ["Console Login Failed"])
    Select(browser.find_element(By.ID, "status")).select_by_index(0)
    assert _wait(lambda: len(visible_titles()) == 8)

    # Sorting: by level (critical first), again for the reverse; the address keeps it.
    def levels():
        return [row.get_attribute("data-level") for row in browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr")]
    rank = ["critical", "high", "medium", "low", "informational", ""]
    browser.find_element(By.CSS_SELECTOR, 'button.sort[data-sort="level"]').click()
    assert _wait(lambda: levels() == sorted(levels(), key=rank.index))
    assert levels()[0] == "high" and levels()[-1] == ""
    assert "sort=level" in browser.current_url
    browser.find_element(By.CSS_SELECTOR, 'button.sort[data-sort="level"]').click()
    assert _wait(lambda: levels() == sorted(levels(), key=rank.index, reverse=True))
    th = browser.find_element(By.CSS_SELECTOR, 'button.sort[data-sort="level"]').find_element(By.XPATH, "..")
    assert th.get_attribute("aria-sort") == "descending"
    browser.get((site / "index.html").as_uri() + "#sort=status")
    statuses = [r.get_attribute("data-status") for r in browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr")]
    order = ["stable", "test", "experimental", "deprecated", "unsupported", ""]
    assert _wait(lambda: statuses == sorted(statuses, key=order.index))

    # The "informational" badge stays inside its column, at two window widths.
    for width in (1300, 1000):
        browser.set_window_size(width, 900)
        browser.get((site / "index.html").as_uri() + "#level=informational")
        badge = _wait(lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "td .level-informational")
                               if b.is_displayed()])
        assert badge, "no informational rule shown"
        cell = badge[0].find_element(By.XPATH, "..")
        box = browser.execute_script(
            "var b = arguments[0].getBoundingClientRect(), c = arguments[1].getBoundingClientRect();"
            "return [b.left, b.right, c.left, c.right];", badge[0], cell)
        assert box[2] <= box[0] and box[1] <= box[3], (width, box)
        _shot(browser, f"index-informational-{width}")
    browser.set_window_size(1300, 900)

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
    refs = browser.find_element(By.ID, "references")
    assert refs.is_displayed() and len(refs.find_elements(By.TAG_NAME, "a")) == 3
    assert "Legitimate IAM administrators" in browser.find_element(By.ID, "falsepositives").text
    _shot(browser, "rule")

    # A correlation: in the index, its page lists its rule, which links back.
    browser.get((site / "index.html").as_uri())
    browser.find_element(By.LINK_TEXT, "Many Failed Console Logins").click()
    assert _wait(lambda: browser.title.startswith("Many Failed Console Logins"))
    assert "event_count" in browser.find_element(By.ID, "logic").text
    _shot(browser, "correlation")
    browser.find_element(By.ID, "base-rules").find_element(By.LINK_TEXT, "Console Login Failed").click()
    assert _wait(lambda: browser.title.startswith("Console Login Failed"))
    browser.find_element(By.ID, "correlations").find_element(By.LINK_TEXT, "Many Failed Console Logins").click()
    assert _wait(lambda: browser.title.startswith("Many Failed Console Logins"))

    # The matrix links a technique to the index, filtered by it, and offers the Navigator layer.
    browser.get((site / "attack.html").as_uri())
    _shot(browser, "attack")
    assert browser.find_element(By.LINK_TEXT, LAYER).get_attribute("href").endswith(LAYER)
    browser.find_element(By.CSS_SELECTOR, "#T1531 a").click()
    assert _wait(lambda: visible_titles() == [delete])

"""The scan browser's REST API on a real jupyter-server (pytest-jupyter): what the Lab frontend relies on,
and what it must refuse."""

from __future__ import annotations

import os
import time

import pytest

from devstack.samples.scan import make_large_scan, make_scan

PATTERN = r"lr_(?P<lr>[^/]+)/layers_(?P<layers>\d+)/seed_(?P<seed>\d+)/roc\.png"


@pytest.fixture
def scan_dir(jp_root_dir):
    make_scan(jp_root_dir / "scan")
    return jp_root_dir / "scan"


def match(api, pattern=PATTERN, path="scan", **extra):
    return api("POST", "condorhub/api/scan/match", json_body={"path": path, "pattern": pattern, **extra})


# --- match -----------------------------------------------------------------------------------------------


def test_match_gives_axes_with_numeric_values_sorted_as_numbers_and_the_grid_files(api, scan_dir):
    r = match(api)
    assert r.code == 200, r
    axes = {a["name"]: a for a in r.json["axes"]}
    assert list(axes) == ["lr", "layers", "seed"]  # the pattern's group order
    assert axes["lr"]["numeric"] and axes["lr"]["values"] == ["1e-4", "0.001", "0.01", "0.1"]
    assert axes["layers"]["values"] == ["2", "3", "10"]  # 10 after 3, not between 1 and 2
    assert r.json["total_matches"] == 4 * 3 * 2 and len(r.json["files"]) == 24
    one = next(f for f in r.json["files"] if f["params"] == {"lr": "0.01", "layers": "10", "seed": "2"})
    assert one["path"] == "scan/lr_0.01/layers_10/seed_2/roc.png"  # relative to the Lab root: /files/ URL
    assert one["relative"] == "lr_0.01/layers_10/seed_2/roc.png"
    assert one["kind"] == "image" and one["size"] > 0
    assert r.json["message"] is None and r.json["truncated"] is False


def test_javascript_style_named_groups_give_the_same_axes(api, scan_dir):
    # (?<lr>...) as a browser's regular expressions write it; the lookbehind (?<=...) stays one.
    r = match(api, r"lr_(?<lr>[^/]+)/layers_(?<layers>\d+)/seed_(?<seed>\d+)/(?<=seed_1/)roc\.png")
    assert r.code == 200, r
    assert [a["name"] for a in r.json["axes"]] == ["lr", "layers", "seed"]
    assert r.json["total_matches"] == 4 * 3  # seed 1 only: the lookbehind still applies
    # A mistake in it is answered at the position the user typed, in a sentence.
    bad = match(api, r"lr_(?<lr>[^/]+/x")
    assert bad.code == 400
    assert bad.message == "The pattern is not a valid regular expression: missing ), unterminated subpattern at position 3."


def test_match_kinds_for_the_viewers(api, scan_dir):
    r = match(api, r"lr_(?P<lr>0\.1)/layers_(?P<layers>2)/seed_1/(?P<file>.+)")
    assert r.code == 200, r
    assert {f["relative"].rsplit("/", 1)[1]: f["kind"] for f in r.json["files"]} == {
        "roc.png": "image",
        "metrics.json": "json",
        "train.log": "text",
    }


def test_match_pages_big_answers_and_says_so(api, scan_dir):
    r = match(api, limit=5, offset=20)
    assert r.code == 200, r
    assert len(r.json["files"]) == 4 and r.json["offset"] == 20 and r.json["total_matches"] == 24
    r = match(api, limit=5)
    assert r.json["truncated"] is True and "of 24" in r.json["message"]
    assert len(r.json["axes"][0]["values"]) == 4  # axes always cover every match, not just the page


def test_match_in_the_root_folder_and_non_numeric_axes(api, jp_root_dir):
    for name in ("adam", "sgd", "adamw"):
        (jp_root_dir / f"opt_{name}").mkdir()
        (jp_root_dir / f"opt_{name}" / "loss.txt").write_text(name)
    r = match(api, r"opt_(?P<opt>[^/]+)/loss\.txt", path="")
    assert r.code == 200, r
    assert r.json["axes"] == [{"name": "opt", "numeric": False, "values": ["adam", "adamw", "sgd"]}]
    assert r.json["files"][0]["path"] == "opt_adam/loss.txt"


def test_hidden_files_are_not_listed(api, scan_dir):
    (scan_dir / ".ipynb_checkpoints").mkdir()
    (scan_dir / ".ipynb_checkpoints" / "x.png").write_bytes(b"")
    r = match(api, r"(?P<any>.+)\.png")
    assert r.code == 200 and not any(".ipynb" in f["path"] for f in r.json["files"])


# --- bad patterns: 400, fast, with a message that says what to fix ----------------------------------------


@pytest.mark.parametrize(
    "pattern, words",
    [
        (r"lr_(?P<lr>[^/]+", "missing )"),
        (r"lr_(?P<lr>[^/]+)/(?P<lr>.*)", "redefinition of group name 'lr'"),
        (r"lr_([^/]+)/.*\.png", "(?P<name>"),  # no named group: nothing to make axes of
        ("", "Give a regular expression"),
        ("x" * 3000, "at most 2000"),
        (r"(?P<a>**)", "nothing to repeat"),
    ],
)
def test_bad_regular_expressions_are_answered_400_with_the_problem(api, scan_dir, pattern, words):
    r = match(api, pattern)
    assert r.code == 400, r
    assert words in r.message


def test_a_catastrophic_regular_expression_is_answered_400_within_the_time_budget(api, scan_dir):
    # Nested alternation over a long name: exponential backtracking in any backtracking engine.
    (scan_dir / ("a" * 40 + "!")).write_text("")
    start = time.monotonic()
    r = match(api, r"(?P<name>(a|a)+)")
    took = time.monotonic() - start
    assert r.code == 400, r
    assert "more than 2 s" in r.message and "nested quantifiers" in r.message
    assert took < 6, f"took {took:.1f} s"
    # The server is still there for the next request.
    assert match(api).code == 200


def test_malformed_request_bodies(api, scan_dir, jp_fetch, run):
    r = api("POST", "condorhub/api/scan/match", json_body=["scan"])
    assert r.code == 400 and "JSON object" in r.message
    r = match(api, limit=0)
    assert r.code == 400 and "limit must be" in r.message
    reply = run(jp_fetch("condorhub", "api", "scan", "match", method="POST", body=b"{not json", raise_error=False))
    assert reply.code == 400


# --- confinement ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, code, words",
    [
        ("../", 400, "'..' is not allowed"),
        ("scan/../../etc", 400, "'..' is not allowed"),
        ("/etc", 400, "absolute paths are not accepted"),
        ("missing", 404, "no such file or folder"),
        ("scan/lr_0.1/layers_2/seed_1/roc.png", 400, "is not a folder"),
    ],
)
def test_paths_outside_or_wrong_are_refused(api, scan_dir, path, code, words):
    for r in (match(api, path=path), api("GET", "condorhub/api/scan/suggest", params={"path": path})):
        assert r.code == code, r
        assert words in r.message


def test_a_symlink_out_of_the_root_is_refused_and_not_followed(api, scan_dir, tmp_path):
    outside = tmp_path / "outside-secret"
    outside.mkdir()
    (outside / "lr_9").mkdir()
    (outside / "secret.png").write_bytes(b"x")
    os.symlink(outside, scan_dir / "escape")
    os.symlink(outside / "secret.png", scan_dir / "secret.png")
    r = match(api, path="scan/escape", pattern=r"(?P<x>.*)")
    assert r.code == 403 and "outside the Lab's root" in r.message
    # Walking the scan folder itself neither enters the linked folder nor lists the linked file.
    r = match(api, pattern=r"(?P<x>.*)")
    assert r.code == 200 and not any("secret" in f["path"] or "escape" in f["path"] for f in r.json["files"])
    assert r.json["total_matches"] == 72


def test_unauthenticated_requests_are_refused(api, scan_dir):
    no_token = {"Authorization": ""}
    assert match(api).code == 200
    for method, path, body in [
        ("POST", "condorhub/api/scan/match", {"path": "scan", "pattern": PATTERN}),
        ("GET", "condorhub/api/scan/suggest", None),
        ("GET", "condorhub/api/scan/patterns", None),
        ("PUT", "condorhub/api/scan/patterns", {"path": "scan", "name": "x", "pattern": PATTERN}),
        ("DELETE", "condorhub/api/scan/patterns", None),
    ]:
        r = api(method, path, json_body=body, params={"path": "scan", "name": "x"}, headers=no_token)
        assert r.code == 403, (method, path, r)


def test_a_logged_in_browser_needs_the_xsrf_token_to_post(browser_session, scan_dir):
    """The Lab sends X-XSRFToken; a cross-site form post with the user's cookie cannot."""
    body = {"path": "scan", "pattern": PATTERN}
    assert browser_session("POST", "condorhub/api/scan/match", json_body=body).code == 200
    r = browser_session("POST", "condorhub/api/scan/match", json_body=body, xsrf=False)
    assert r.code == 403 and "_xsrf" in r.message
    r = browser_session("PUT", "condorhub/api/scan/patterns", json_body={**body, "name": "x"}, xsrf=False)
    assert r.code == 403
    assert browser_session("GET", "condorhub/api/scan/suggest", params={"path": "scan"}).code == 200


def test_hidden_folders_are_refused_as_scan_folders(api, scan_dir):
    (scan_dir / ".secret").mkdir()
    r = match(api, path="scan/.secret", pattern="(?P<x>.*)")
    assert r.code == 403 and "hidden" in r.message


# --- suggestion, presets, saved patterns ----------------------------------------------------------------------


def test_suggest_reads_name_value_folders(api, scan_dir):
    r = api("GET", "condorhub/api/scan/suggest", params={"path": "scan"})
    assert r.code == 200, r
    # Three files per leaf with different types: the image is what the grid shows best.
    assert r.json["pattern"] == r"lr_(?P<lr>[^/]+)/layers_(?P<layers>[^/]+)/seed_(?P<seed>[^/]+)/roc\.png"
    names = [p["name"] for p in r.json["presets"]]
    assert names[0] == "name_value folders (suggested)" and len(names) >= 3
    # Every suggestion and preset is a pattern the match endpoint accepts and that finds files.
    for preset in r.json["presets"][:3]:
        m = match(api, preset["pattern"])
        assert m.code == 200 and m.json["total_matches"] > 0, (preset, m)


def test_suggest_keeps_the_sign_and_exponent_in_values(api, jp_root_dir):
    for v in ("1e-3", "1e-4", "-1"):
        (jp_root_dir / "s" / f"lr_{v}").mkdir(parents=True)
        (jp_root_dir / "s" / f"lr_{v}" / "plot.png").write_bytes(b"")
    r = api("GET", "condorhub/api/scan/suggest", params={"path": "s"})
    assert r.json["pattern"] == r"lr_(?P<lr>[^/]+)/plot\.png"
    m = match(api, r.json["pattern"], path="s")
    assert m.json["axes"][0]["values"] == ["-1", "1e-4", "1e-3"]


def test_patterns_are_saved_per_folder_listed_and_deleted(api, scan_dir, jp_root_dir):
    (jp_root_dir / "other").mkdir()
    assert api("GET", "condorhub/api/scan/patterns", params={"path": "scan"}).json == {"path": "scan", "patterns": []}
    r = api("PUT", "condorhub/api/scan/patterns", json_body={"path": "scan/", "name": "roc by lr", "pattern": PATTERN})
    assert r.code == 200, r
    assert [p["name"] for p in r.json["patterns"]] == ["roc by lr"]
    # Saving under the same name replaces; another folder has its own list.
    api("PUT", "condorhub/api/scan/patterns", json_body={"path": "scan", "name": "roc by lr", "pattern": PATTERN + "$"})
    listed = api("GET", "condorhub/api/scan/patterns", params={"path": "scan"}).json["patterns"]
    assert [(p["name"], p["pattern"]) for p in listed] == [("roc by lr", PATTERN + "$")]
    assert api("GET", "condorhub/api/scan/patterns", params={"path": "other"}).json["patterns"] == []
    # A broken pattern is not saved.
    bad = api("PUT", "condorhub/api/scan/patterns", json_body={"path": "scan", "name": "bad", "pattern": "(?P<x>"})
    assert bad.code == 400 and "not a valid regular expression" in bad.message
    assert api("PUT", "condorhub/api/scan/patterns", json_body={"path": "scan", "name": " ", "pattern": PATTERN}).code == 400
    r = api("DELETE", "condorhub/api/scan/patterns", params={"path": "scan", "name": "roc by lr"})
    assert r.code == 200 and r.json["patterns"] == []
    r = api("DELETE", "condorhub/api/scan/patterns", params={"path": "scan", "name": "roc by lr"})
    assert r.code == 404 and "no saved pattern" in r.message


def test_saved_patterns_are_kept_in_the_users_jupyter_data_dir(api, scan_dir, jp_data_dir):
    api("PUT", "condorhub/api/scan/patterns", json_body={"path": "scan", "name": "keep", "pattern": PATTERN})
    stored = list(jp_data_dir.rglob("scan-patterns.json"))
    assert stored and "keep" in stored[0].read_text()


# --- a big tree -----------------------------------------------------------------------------------------------


def test_a_10000_file_tree_is_listed_completely_and_quickly(api, jp_root_dir):
    assert make_large_scan(jp_root_dir / "big", 10_000) == 10_000
    start = time.monotonic()
    r = match(api, r"a_(?P<a>\d+)/b_(?P<b>\d+)/c_(?P<c>\d+)/plot_(?P<k>\d+)\.png", path="big")
    took = time.monotonic() - start
    assert r.code == 200, r
    assert r.json["total_files"] == 10_000 and r.json["total_matches"] == 10_000
    assert len(r.json["files"]) == 10_000 and r.json["truncated"] is False
    assert [a["values"][-1] for a in r.json["axes"]][-1] == "9"
    assert took < 5, f"took {took:.2f} s"


def test_a_tree_beyond_the_cap_is_cut_with_a_message(jp_serverapp, api, jp_root_dir):
    jp_serverapp.extension_manager.extension_apps["condorhub.lab"]  # loaded
    app = next(iter(jp_serverapp.extension_manager.extension_apps["condorhub.lab"]))
    app.max_files = 500
    make_large_scan(jp_root_dir / "big", 800)
    r = match(api, r"(?P<path>.+)", path="big")
    assert r.code == 200, r
    assert r.json["total_files"] == 500 and r.json["truncated"] is True
    assert "more than 500 files" in r.json["message"] and "sub-folder" in r.json["message"]


# --- files for the grid's frames -------------------------------------------------------------------------


def test_frame_files_are_served_framable_by_the_lab_only_and_sandboxed(api, scan_dir, tmp_path):
    (scan_dir / "page.html").write_text("<h1>report</h1><script>alert(1)</script>")
    (scan_dir / "paper.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    png = api("GET", "condorhub/scan/file/scan/lr_0.1/layers_2/seed_1/roc.png")
    assert png.code == 200 and png.raw.body.startswith(b"\x89PNG") and png.raw.headers["Content-Type"] == "image/png"
    html = api("GET", "condorhub/scan/file/scan/page.html")
    assert html.code == 200 and "<h1>report</h1>" in html.text
    # Framed only by the Lab's own pages, and the HTML's scripts do not run.
    assert html.raw.headers["Content-Security-Policy"] == "frame-ancestors 'self'; sandbox"
    # PDFs too (a PDF may carry JavaScript): Chromium's viewer renders under this header (the browser test).
    pdf = api("GET", "condorhub/scan/file/scan/paper.pdf")
    assert pdf.code == 200 and pdf.raw.headers["Content-Security-Policy"] == "frame-ancestors 'self'; sandbox"


def test_frame_files_need_no_xsrf_token_in_the_url_but_refuse_other_sites(browser_session, scan_dir):
    """The Lab's frames carry no _xsrf in their URL; the browser's own word (Sec-Fetch-Site) or the Referer
    says the Lab's page asked. Another site including the file is refused."""
    (scan_dir / "page.html").write_text("<h1>report</h1>")
    path = "condorhub/scan/file/scan/page.html"
    same = browser_session("GET", path, xsrf=False, headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"})
    assert same.code == 200 and "<h1>report</h1>" in same.text, same
    cross = browser_session("GET", path, xsrf=False, headers={"Sec-Fetch-Site": "cross-site", "Referer": "http://evil.example/"})
    assert cross.code == 403 and "report" not in cross.text, cross
    assert browser_session("GET", path, xsrf=False).code == 403  # no token, no origin at all


def test_frame_files_refuse_escapes_hidden_files_and_strangers(api, scan_dir, tmp_path):
    (tmp_path / "secret.html").write_text("secret")
    os.symlink(tmp_path / "secret.html", scan_dir / "link.html")
    (scan_dir / ".hidden.html").write_text("hidden")
    assert api("GET", "condorhub/scan/file/scan/link.html").code == 404
    assert api("GET", "condorhub/scan/file/scan/.hidden.html").code == 404
    assert api("GET", "condorhub/scan/file/scan/%2E%2E/%2E%2E/etc/passwd").code in (403, 404)
    stranger = api("GET", "condorhub/scan/file/scan/lr_0.1/layers_2/seed_1/roc.png", headers={"Authorization": ""})
    assert stranger.code in (302, 403) and not stranger.raw.body.startswith(b"\x89PNG")

"""`just bench` report: result parsing, goal checks and the page it writes."""

from __future__ import annotations

from tests.support.scripts import load_script

report = load_script("bench/report.py", "bench_report")


def test_the_last_key_value_line_is_the_result() -> None:
    lines = [
        "loaded 100 events",
        "crm_replay_ratio=0.1 x=1",
        "note: a=b c",
        "crm_replay_ratio=0.52 e2e_p99_ms=80.1",
    ]
    assert report.parse_results(lines) == {"crm_replay_ratio": "0.52", "e2e_p99_ms": "80.1"}
    assert report.parse_results(["no results here"]) == {}


def test_goals_are_checked_numerically() -> None:
    assert report.meets("0.52", ">= 0.5") == "yes"
    assert report.meets("0.49", ">= 0.5") == "no"
    assert report.meets("0", "== 0") == "yes"
    assert report.meets("nan", "<= 1.05") == "no"
    assert report.meets("12", "") == ""


def test_the_page_names_machine_results_goals_and_output() -> None:
    run = report.Run("crm", {"crm_replay_ratio": "0.3"}, "baseline: 20,000 events/s", 12.0, 0)
    broken = report.Run("outbound", {}, "Traceback ...", 1.0, 1)
    page = report.render([run, broken], {"cores": "2", "cpu": "test cpu"})
    assert "- cores: 2" in page
    assert "- cpu: test cpu" in page
    assert "| crm | `crm_replay_ratio` | 0.3 | >= 0.5 | no |" in page
    assert "| outbound | (no result; exit 1) |" in page
    assert "baseline: 20,000 events/s" in page


def test_the_long_suite_section_shows_summaries_and_failures() -> None:
    ok = report.LongRun("soak", {"SOAK_SECONDS": "600"}, ["soak 600s memory: {...}"], 640, True, "")
    bad = report.LongRun("chaos", {"CHAOS_SCALE": "10"}, [], 300, False, "E   AssertionError: x")
    page = report.render([], {"cores": "2"}, [ok, bad])
    assert "### soak: passed in 10.7 min (`SOAK_SECONDS=600`)" in page
    assert "- soak 600s memory: {...}" in page
    assert "### chaos: FAILED" in page
    assert "E   AssertionError: x" in page


def test_summaries_are_found_after_pytest_progress_dots() -> None:
    """With -q -s, a test's printed line follows the dots of the tests before it: the
    platform chaos line came out as ".chaos platform: ..." and was missed."""
    lines = [
        "chaos nats: node n1 killed under traffic; webhooks=3000",
        ".chaos platform: webhooks=2400 (each once in CONV, CRM, analytics)",
        ".",
        "2 passed in 600.0s",
        "soak 600s memory: {}",
    ]
    assert report.summaries(lines) == [
        "chaos nats: node n1 killed under traffic; webhooks=3000",
        "chaos platform: webhooks=2400 (each once in CONV, CRM, analytics)",
        "soak 600s memory: {}",
    ]

"""The examples of "The Best Dog Trainer in the World" do what the essay says.

* The XmR block computes the natural process limits the prose quotes, finds
  the one signal (week 13), and tells a week effect from a person effect.
* The funnel experiment, simulated here, shows what the prose claims of
  Deming's four rules: rule 2 doubles the variance, rules 3 and 4 drift.
* The paging rules are valid Prometheus rules, and ``promtool test rules``
  replays synthetic traffic through them: a busy node with no errors pages
  through the cause-based rule only; a 2% error rate pages through the
  burn-rate rule only; 1% errors, or a ten-minute spike, page through neither.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import random
import shutil
import subprocess
from statistics import pvariance
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from conftest import named_block

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Site

DOC = "essays/teams/the-best-dog-trainer-in-the-world"


# -- The XmR chart -----------------------------------------------------------


def xmr_namespace(site: Site) -> dict[str, Any]:
    """The XmR block's functions and data, run as an imported module."""
    namespace: dict[str, Any] = {"__name__": "xmr_example"}
    exec(
        compile(
            named_block(site, DOC, "the-best-dog-trainer-in-the-world-xmr"),
            "xmr",
            "exec",
        ),
        namespace,
    )
    return namespace


def test_xmr_limits_are_the_ones_the_prose_quotes(site: Site) -> None:
    ns = xmr_namespace(site)
    limits = ns["xmr_limits"](ns["PAGES"][:12])
    assert round(limits["centre"], 1) == 40.6
    assert round(limits["upper"] - limits["centre"], 1) == round(2.66 * 6.09, 1)
    assert round(limits["lower"], 1) == 24.4
    assert round(limits["upper"], 1) == 56.8
    assert round(limits["upper_range"], 1) == 19.9
    # Twelve baseline weeks between 35 and 47 are one process: no signal.
    baseline = ns["PAGES"][:12]
    assert (min(baseline), max(baseline)) == (35, 47)
    assert ns["signals"](baseline, limits) == []


def test_the_only_signal_follows_the_week_not_the_person(site: Site) -> None:
    ns = xmr_namespace(site)
    pages, rota = ns["PAGES"], ns["ROTA"]
    limits = ns["xmr_limits"](pages[:12])
    assert ns["signals"](pages, limits) == [13]
    assert pages[13] == 63
    assert rota[13 % len(rota)] == "ben"
    bens_other_weeks = [
        p for week, p in enumerate(pages) if rota[week % 4] == "ben" and week != 13
    ]
    assert bens_other_weeks == [44, 39, 40]
    assert all(limits["lower"] <= p <= limits["upper"] for p in bens_other_weeks)
    # Week 13's neighbours in the moving-range chart jump too (22 and 24,
    # above the upper range limit of 19.9): one spike, not a shifted level.
    moving = [abs(b - a) for a, b in itertools.pairwise(pages)]
    assert [w + 1 for w, r in enumerate(moving) if r > limits["upper_range"]] == [
        13,
        14,
    ]


def test_a_person_effect_shows_up_when_the_chart_is_split_by_person(
    site: Site,
) -> None:
    ns = xmr_namespace(site)
    rota = ns["ROTA"]
    # Same data, except that every week dev holds the pager runs 25 high.
    pages = [p + 25 if rota[w % 4] == "dev" else p for w, p in enumerate(ns["PAGES"])]
    others = [p for w, p in enumerate(pages[:12]) if rota[w % 4] != "dev"]
    limits = ns["xmr_limits"](others)
    devs = [p for w, p in enumerate(pages) if rota[w % 4] == "dev"]
    assert len(ns["signals"](devs, limits)) == len(devs) == 4
    rest = [p for w, p in enumerate(pages) if rota[w % 4] != "dev" and w != 13]
    assert ns["signals"](rest, limits) == []


def test_the_xmr_block_runs_as_a_script(site: Site) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(
            compile(
                named_block(site, DOC, "the-best-dog-trainer-in-the-world-xmr"),
                "xmr",
                "exec",
            ),
            {"__name__": "__main__"},
        )
    printed = out.getvalue().splitlines()
    assert printed[0] == str(
        {"centre": 40.6, "lower": 24.4, "upper": 56.8, "upper_range": 19.9}
    )
    assert printed[1:] == ["week 13: 63 pages, on call: ben"]


# -- The funnel experiment -----------------------------------------------------


def funnel(rule: int, drops: int = 20_000, seed: int = 7) -> list[float]:
    """Where marbles land (target at 0) when the funnel is moved by *rule*.

    1: never move it. 2: move it from where it is by minus the last miss.
    3: set it at minus the last miss, measured from the target.
    4: set it over the spot where the last marble landed.
    """
    rng = random.Random(seed)
    aim, landed = 0.0, []
    for _ in range(drops):
        x = aim + rng.gauss(0.0, 1.0)
        landed.append(x)
        if rule == 2:
            aim -= x
        elif rule == 3:
            aim = -x
        elif rule == 4:
            aim = x
    return landed


def test_rule_two_doubles_the_variance() -> None:
    one, two = pvariance(funnel(1)), pvariance(funnel(2))
    assert 0.95 < one < 1.05
    assert 1.9 < two / one < 2.1


@pytest.mark.parametrize("rule", [3, 4])
def test_rules_three_and_four_drift_without_limit(rule: int) -> None:
    landed = funnel(rule)
    early, late = pvariance(landed[:500]), pvariance(landed[-5_000:])
    assert late > 20 * pvariance(funnel(1))
    assert late > early


# -- The paging rules ------------------------------------------------------------


def paging_rules(site: Site) -> str:
    return named_block(site, DOC, "the-best-dog-trainer-in-the-world-paging-rules")


def test_the_rules_page_on_a_cause_and_on_a_fast_burn(site: Site) -> None:
    doc = yaml.safe_load(paging_rules(site))
    (group,) = doc["groups"]
    rules = {rule["alert"]: rule for rule in group["rules"]}
    assert set(rules) == {"NodeHighCPU", "CheckoutErrorBudgetFastBurn"}
    assert all(rule["labels"]["severity"] == "page" for rule in rules.values())
    burn = rules["CheckoutErrorBudgetFastBurn"]["expr"]
    assert burn.count("> (14.4 * 0.001)") == 2
    assert burn.count("[1h]") == 2 and burn.count("[5m]") == 2
    # The short window is a twelfth of the long one, as the Workbook advises.
    assert 60 / 5 == 12
    # 14.4x for one hour of a 30-day (720-hour) budget spends 2% of it.
    assert round(14.4 * 1 / (30 * 24), 4) == 0.02
    # At 2,000 requests per second that is about 29 failed requests a second.
    assert round(2000 * 14.4 * 0.001) == 29


PROMTOOL_TESTS = """
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  # A node at 90% CPU while checkout serves 2,000 req/s with no errors.
  - interval: 1m
    input_series:
      - series: 'node_cpu_seconds_total{instance="node-a",cpu="0",mode="idle"}'
        values: '0+6x90'
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+120000x90'
    alert_rule_test:
      - eval_time: 30m
        alertname: NodeHighCPU
        exp_alerts:
          - exp_labels: {severity: page, instance: node-a}
      - eval_time: 30m
        alertname: CheckoutErrorBudgetFastBurn
        exp_alerts: []
  # A quiet node while 2% of checkout requests fail for over an hour.
  - interval: 1m
    input_series:
      - series: 'node_cpu_seconds_total{instance="node-a",cpu="0",mode="idle"}'
        values: '0+54x90'
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+117600x90'
      - series: 'http_requests_total{job="checkout",code="500"}'
        values: '0+2400x90'
    alert_rule_test:
      - eval_time: 75m
        alertname: CheckoutErrorBudgetFastBurn
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations:
              summary: "Checkout is spending its monthly error budget about 14x too fast"
      - eval_time: 75m
        alertname: NodeHighCPU
        exp_alerts: []
  # 1% errors burn the budget 10x too fast: below the 14.4x page threshold.
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+118800x90'
      - series: 'http_requests_total{job="checkout",code="500"}'
        values: '0+1200x90'
    alert_rule_test:
      - eval_time: 75m
        alertname: CheckoutErrorBudgetFastBurn
        exp_alerts: []
  # A ten-minute burst of 2% errors after an hour of none: the five-minute
  # window is hot, but the one-hour window stays under the threshold.
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+120000x60 7200000+117600x10'
      - series: 'http_requests_total{job="checkout",code="500"}'
        values: '0x60 0+2400x10'
    alert_rule_test:
      - eval_time: 70m
        alertname: CheckoutErrorBudgetFastBurn
        exp_alerts: []
"""


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, (
        "promtool is not installed (nox -s tests installs Debian's prometheus)"
    )
    return found


def test_promtool_accepts_the_rules(site: Site, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(paging_rules(site), encoding="utf-8")
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rules found" in result.stdout


def test_promtool_replays_traffic_through_the_rules(site: Site, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(paging_rules(site), encoding="utf-8")
    (tmp_path / "tests.yml").write_text(PROMTOOL_TESTS, encoding="utf-8")
    result = subprocess.run(
        [promtool(), "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_would_catch_a_wrong_expectation(site: Site, tmp_path: Path) -> None:
    """The replay can fail: expecting no page at 2% errors is rejected."""
    (tmp_path / "rules.yml").write_text(paging_rules(site), encoding="utf-8")
    wrong = PROMTOOL_TESTS.replace(
        """        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations:
              summary: "Checkout is spending its monthly error budget about 14x too fast"
""",
        "        exp_alerts: []\n",
    )
    assert wrong != PROMTOOL_TESTS
    (tmp_path / "tests.yml").write_text(wrong, encoding="utf-8")
    result = subprocess.run(
        [promtool(), "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode != 0

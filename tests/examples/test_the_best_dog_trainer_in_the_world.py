"""The examples of "The Best Dog Trainer in the World" do what the essay says.

* The XmR block computes the limits the prose quotes and finds the one
  point signal (week 14; the full rule set adds its moving-range echo in
  week 15, printed without a name), and the tests measure how often the rule
  sets raise false alarms on stable data.
* A person effect on an interleaved rotation hides from the whole-team chart
  and shows on the per-person chart, whoever carries it, once the explained
  week 14 is set aside; a four-week calendar effect reads as a person effect
  until the rotation order changes; the tests measure how large an effect
  four weeks a person can show.
* The funnel block shows what the prose claims of Deming's four rules, over
  many seeds rather than one lucky one.
* The paging rules carry the SRE Workbook's four burn-rate tiers, and
  ``promtool test rules`` replays synthetic traffic through them.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import random
import re
import shutil
import subprocess
from statistics import fmean, pvariance
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from conftest import named_block

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conftest import Site

DOC = "essays/teams/the-best-dog-trainer-in-the-world"
XMR = "the-best-dog-trainer-in-the-world-xmr"
FUNNEL = "the-best-dog-trainer-in-the-world-funnel"
RULES = "the-best-dog-trainer-in-the-world-paging-rules"


def run_block(site: Site, name: str, module: str = "example") -> dict[str, Any]:
    """A code block's functions and data, run as an imported module."""
    namespace: dict[str, Any] = {"__name__": module}
    exec(compile(named_block(site, DOC, name), name, "exec"), namespace)
    return namespace


def with_effect(ns: dict[str, Any], who: str, extra: float) -> list[float]:
    """The block's page counts with *extra* pages in every week *who* is on call."""
    return [
        p + extra if name == who else p
        for p, name in zip(ns["PAGES"], ns["ON_CALL"], strict=True)
    ]


def limits_of(
    chart: dict[str, tuple[float, float, float]], who: str
) -> tuple[float, float]:
    """*who*'s limits on a person chart, rounded as the prose quotes them."""
    _, low, high = chart[who]
    return (round(low, 1), round(high, 1))


# -- The whole-team XmR chart ------------------------------------------------


def test_xmr_limits_are_the_ones_the_prose_quotes(site: Site) -> None:
    ns = run_block(site, XMR)
    baseline = ns["PAGES"][:12]
    limits = ns["xmr_limits"](baseline)
    moving = [abs(b - a) for a, b in itertools.pairwise(baseline)]
    assert round(fmean(moving), 1) == 6.2
    assert round(limits["centre"], 1) == 40.8
    assert (round(limits["lower"], 1), round(limits["upper"], 1)) == (24.3, 57.2)
    assert round(limits["sigma"], 1) == 5.5
    assert (min(baseline), max(baseline)) == (35, 46)
    # Twelve baseline weeks are one process under every detection rule.
    assert ns["signals"](baseline, limits, ns["ALL_RULES"]) == []


def test_the_only_point_signal_is_week_14(site: Site) -> None:
    ns = run_block(site, XMR)
    pages, on_call = ns["PAGES"], ns["ON_CALL"]
    limits = ns["xmr_limits"](pages[:12])
    # The default, recommended rule: points outside the limits only.
    assert ns["signals"](pages, limits) == [(14, "outside the limits")]
    # The full set adds the moving-range echo of week 14 and nothing else.
    assert ns["signals"](pages, limits, ns["ALL_RULES"]) == [
        (14, "outside the limits"),
        (15, "moving range"),
    ]
    assert pages[13] == 63
    assert on_call[13] == "ben"
    bens_other_weeks = [
        p
        for w, (p, name) in enumerate(zip(pages, on_call, strict=True))
        if name == "ben" and w != 13
    ]
    assert bens_other_weeks == [39, 39, 45]


def test_the_run_rules_can_fire(site: Site) -> None:
    """Each Western Electric run test flags a pattern made to trip it."""
    ns = run_block(site, XMR)
    limits = {
        "centre": 40.0,
        "sigma": 5.0,
        "lower": 25.0,
        "upper": 55.0,
        "upper_range": 99,
    }
    found, rules = ns["signals"], ns["ALL_RULES"]
    assert (3, "2 of 3 beyond 2 sigma") in found([51, 40, 52], limits, rules)
    assert (5, "4 of 5 beyond 1 sigma") in found([46, 46, 40, 46, 46], limits, rules)
    assert (8, "8 in a row on one side") in found([41] * 8, limits, rules)
    assert found([41] * 7 + [39], limits, rules) == []
    # ...and only when asked for: the default checks the limits alone.
    assert found([41] * 8, limits) == []
    assert (2, "moving range") in found([30, 54], {**limits, "upper_range": 20}, rules)


def test_the_xmr_block_runs_as_a_script(site: Site) -> None:
    """The script names the on-call engineer only beside a point signal."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_block(site, XMR, "__main__")
    assert out.getvalue().splitlines() == [
        str(
            {
                "centre": 40.8,
                "lower": 24.3,
                "upper": 57.2,
                "sigma": 5.5,
                "upper_range": 20.2,
            }
        ),
        "week 14: 63 pages (outside the limits), on call: ben",
        "week 15: 37 pages (moving range)",
        "ana: average 41.0, limits 34.2 to 47.8",
        "ben: average 41.0, limits 33.2 to 48.8",
        "chen: average 41.0, limits 34.2 to 47.8",
        "dev: average 41.0, limits 34.2 to 47.8",
    ]


def stable_histories(
    ns: dict[str, Any], runs: int, seed: int = 2026
) -> Iterator[list[float]]:
    """Sixteen normal weeks at a time, with the rotation's centre and sigma."""
    rng = random.Random(seed)
    baseline = ns["xmr_limits"](ns["PAGES"][:12])
    for _ in range(runs):
        yield [rng.gauss(baseline["centre"], baseline["sigma"]) for _ in range(16)]


def test_the_false_alarm_rates_in_the_prose(site: Site) -> None:
    """On stable histories, the full rule set cries wolf about one time in five.

    Limits come from the first twelve weeks, as in the essay; points outside
    the limits alone raise a false alarm in about one history in eleven.
    """
    ns = run_block(site, XMR)
    runs, full, point = 20_000, 0, 0
    for pages in stable_histories(ns, runs):
        limits = ns["xmr_limits"](pages[:12])
        full += bool(ns["signals"](pages, limits, ns["ALL_RULES"]))
        point += bool(ns["signals"](pages, limits))
    assert 0.18 < full / runs < 0.23  # "about one history in five"
    assert 0.075 < point / runs < 0.105  # "about one in eleven"


# -- Person effects -----------------------------------------------------------


def test_the_whole_team_chart_misses_a_20_page_person_effect(site: Site) -> None:
    """A person effect on a rotation widens the limits and hides itself."""
    ns = run_block(site, XMR)
    pages = with_effect(ns, "dev", 20)
    limits = ns["xmr_limits"](pages[:12])
    assert (round(limits["lower"], 1), round(limits["upper"], 1)) == (15.8, 75.7)
    assert ns["signals"](pages, limits, ns["ALL_RULES"]) == []  # not even ben's 63


@pytest.mark.parametrize("who", ["ana", "ben", "chen", "dev"])
def test_the_person_chart_finds_whoever_carries_the_effect(
    site: Site, who: str
) -> None:
    """No suspect is chosen in advance: every person is charted at once."""
    ns = run_block(site, XMR)
    chart, outside, on_call = ns["person_chart"], ns["outside"], ns["ON_CALL"]
    assert outside(chart(ns["PAGES"], on_call, {14})) == []
    found = chart(with_effect(ns, who, 20), on_call, {14})
    assert outside(found) == [who]
    average, _, high = found[who]
    assert average > high


def test_the_person_chart_numbers_in_the_prose(site: Site) -> None:
    ns = run_block(site, XMR)
    chart, outside, on_call = ns["person_chart"], ns["outside"], ns["ON_CALL"]
    left_in = chart(ns["PAGES"], on_call)
    set_aside = chart(ns["PAGES"], on_call, {14})
    assert limits_of(left_in, "ana") == (32.5, 52.2)
    assert limits_of(set_aside, "ana") == (34.2, 47.8)
    assert {round(avg, 1) for avg, _, _ in set_aside.values()} == {41.0}
    dev = chart(with_effect(ns, "dev", 20), on_call, {14})
    assert dev["dev"][0] == 61
    assert outside(dev) == ["dev"]
    # Week 14 left in hides a 10-page effect that shows once it is set aside.
    ten = with_effect(ns, "dev", 10)
    assert outside(chart(ten, on_call)) == []
    assert outside(chart(ten, on_call, {14})) == ["dev"]


def test_a_four_week_cycle_reads_as_a_person_effect(site: Site) -> None:
    """A monthly job in the second week of each cycle is pinned on ben.

    With the rotation order shifted by one each cycle, everyone holds that
    week once and nobody is flagged.
    """
    ns = run_block(site, XMR)
    chart, outside, rota = ns["person_chart"], ns["outside"], ns["ROTA"]
    monthly = [p + 10 if w % 4 == 1 else p for w, p in enumerate(ns["PAGES"])]
    assert outside(chart(monthly, ns["ON_CALL"], {14})) == ["ben"]
    shifted = [rota[(w + w // 4) % 4] for w in range(16)]
    assert sorted(shifted) == sorted(ns["ON_CALL"])  # four weeks each
    holders = [shifted[w] for w in range(1, 16, 4)]
    assert sorted(holders) == sorted(rota)  # each holds the monthly week once
    assert outside(chart(monthly, shifted, {14})) == []


def detection_rates(
    ns: dict[str, Any], extra: float, runs: int = 4000
) -> tuple[float, float]:
    """How often the person chart flags dev, and the team chart flags anything.

    Weekly pages are drawn from a normal distribution with the rotation's
    own centre and sigma, and dev gets *extra* pages in each of his weeks.
    """
    on_call, person_hits, team_hits = ns["ON_CALL"], 0, 0
    for noise in stable_histories(ns, runs):
        pages = [
            p + (extra if name == "dev" else 0.0)
            for p, name in zip(noise, on_call, strict=True)
        ]
        chart = ns["person_chart"](pages, on_call)
        person_hits += "dev" in ns["outside"](chart)
        limits = ns["xmr_limits"](pages[:12])
        team_hits += bool(ns["signals"](pages, limits, ns["ALL_RULES"]))
    return person_hits / runs, team_hits / runs


def test_how_large_an_effect_four_weeks_a_person_can_show(site: Site) -> None:
    ns = run_block(site, XMR)
    none, five, ten, fifteen, twenty = (
        detection_rates(ns, e) for e in (0, 5, 10, 15, 20)
    )
    assert none[0] < 0.01  # the per-person chart rarely accuses anyone
    assert five[0] < 0.10
    assert 0.33 < ten[0] < 0.47  # "about 40%"
    assert 0.80 < fifteen[0] < 0.90  # "about 85%"
    assert twenty[0] > 0.95
    # The whole-team chart grows quieter as the person effect grows.
    assert none[1] > five[1] > ten[1] > fifteen[1] > twenty[1]


def expected_range(n: int, steps: int = 20_000) -> float:
    """d2: the expected range of n standard normal values, by integration."""

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    width = 16 / steps
    return sum(
        (1 - (1 - cdf(x)) ** n - cdf(x) ** n) * width
        for x in (-8 + (i + 0.5) * width for i in range(steps))
    )


def test_the_chart_constants_follow_from_the_normal_distribution(site: Site) -> None:
    """2.66, 3.27 and the block's d2 values are not magic numbers."""
    d2 = run_block(site, XMR)["D2"]
    assert {n: round(expected_range(n), 3) for n in d2} == d2
    d2_2, d2_4 = expected_range(2), expected_range(4)
    assert round(3 / d2_2, 2) == 2.66
    # With all four weeks each, the person chart is an average chart with
    # A2 = 3 / (d2 sqrt 4) = 0.729: the same limits as the textbook's table.
    assert round(3 / (d2_4 * math.sqrt(4)), 3) == 0.729
    # The moving-range limit: 1 + 3 d3 / d2, with d3 the spread of the range.
    rng = random.Random(1)
    ranges = [abs(rng.gauss(0, 1) - rng.gauss(0, 1)) for _ in range(200_000)]
    assert abs((1 + 3 * math.sqrt(pvariance(ranges)) / d2_2) - 3.27) < 0.02


# -- The funnel experiment -----------------------------------------------------


def landings(site: Site, rule: int, seeds: range) -> list[list[float]]:
    funnel = run_block(site, FUNNEL)["funnel"]
    return [funnel(rule, drops=400, seed=seed) for seed in seeds]


def mean_square_at(runs: list[list[float]], drop: int) -> float:
    return fmean(run[drop] ** 2 for run in runs)


def lag_one_correlation(run: list[float]) -> float:
    x, y = run[:-1], run[1:]
    mx, my = fmean(x), fmean(y)
    cov = fmean((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return cov / math.sqrt(pvariance(x) * pvariance(y))


@pytest.mark.parametrize("first_seed", [0, 1000, 5000])
def test_rule_two_doubles_the_variance(site: Site, first_seed: int) -> None:
    seeds = range(first_seed, first_seed + 50)
    one = fmean(pvariance(run) for run in landings(site, 1, seeds))
    two = fmean(pvariance(run) for run in landings(site, 2, seeds))
    assert 0.9 < one < 1.1
    assert 1.8 < two / one < 2.2


@pytest.mark.parametrize("first_seed", [0, 1000, 5000])
def test_rules_three_and_four_grow_without_limit(site: Site, first_seed: int) -> None:
    """Rule 3 swings with growing amplitude; rule 4 is a random walk.

    In both, the spread after t drops grows like t: the mean square landing
    across many runs is about 100 at drop 100 and about 400 at drop 400.
    """
    seeds = range(first_seed, first_seed + 400)
    for rule in (3, 4):
        runs = landings(site, rule, seeds)
        assert 75 < mean_square_at(runs, 99) < 125
        assert 300 < mean_square_at(runs, 399) < 500
    # Rule 3 flips side on almost every drop; rule 4 stays where it wandered.
    assert all(lag_one_correlation(r) < -0.9 for r in landings(site, 3, seeds[:20]))
    assert all(lag_one_correlation(r) > 0.9 for r in landings(site, 4, seeds[:20]))


# -- The paging rules ------------------------------------------------------------


def paging_rules(site: Site) -> str:
    return named_block(site, DOC, RULES)


def burn_clauses(expr: str) -> list[dict[str, Any]]:
    """Each ``and`` clause of an alert as its windows and burn-rate factor."""
    clauses = []
    for clause in re.split(r"\bor\b", expr):
        found = re.findall(
            r"checkout:error_ratio:rate(\w+) > \(([\d.]+) \* 0\.001\)", clause
        )
        assert len(found) == 2, clause
        (long_w, factor), (short_w, factor2) = found
        assert factor == factor2
        clauses.append({"long": long_w, "short": short_w, "factor": float(factor)})
    return clauses


HOURS = {"5m": 5 / 60, "30m": 0.5, "1h": 1, "2h": 2, "6h": 6, "1d": 24, "3d": 72}


def test_the_rules_carry_the_workbooks_four_tiers(site: Site) -> None:
    doc = yaml.safe_load(paging_rules(site))
    (group,) = doc["groups"]
    records = {r["record"]: r["expr"] for r in group["rules"] if "record" in r}
    for name, expr in records.items():
        window = name.removeprefix("checkout:error_ratio:rate")
        assert expr.count(f"[{window}]") == 2, name
    alerts = {r["alert"]: r for r in group["rules"] if "alert" in r}
    assert set(alerts) == {
        "NodeHighCPU",
        "CheckoutErrorBudgetBurn",
        "CheckoutErrorBudgetSlowBurn",
    }
    assert alerts["CheckoutErrorBudgetBurn"]["labels"]["severity"] == "page"
    assert alerts["CheckoutErrorBudgetSlowBurn"]["labels"]["severity"] == "ticket"
    tiers = burn_clauses(alerts["CheckoutErrorBudgetBurn"]["expr"]) + burn_clauses(
        alerts["CheckoutErrorBudgetSlowBurn"]["expr"]
    )
    for tier in tiers:
        assert f"checkout:error_ratio:rate{tier['long']}" in records
        assert f"checkout:error_ratio:rate{tier['short']}" in records
    # Share of a 30-day (720-hour) budget each tier has spent when it fires.
    spent = [round(t["factor"] * HOURS[t["long"]] / 720, 4) for t in tiers]
    assert spent == [0.02, 0.05, 0.10, 0.10]
    assert [t["long"] for t in tiers] == ["1h", "6h", "1d", "3d"]
    # Each short window is a twelfth of its long one (3 days : 6 hours).
    assert [round(HOURS[t["long"]] / HOURS[t["short"]]) for t in tiers] == [12] * 4
    # At 2,000 requests per second the page tiers trip at about 29 and 12
    # failed requests a second.
    assert [round(2000 * t["factor"] * 0.001) for t in tiers] == [29, 12, 6, 2]


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
        alertname: CheckoutErrorBudgetBurn
        exp_alerts: []
      - eval_time: 30m
        alertname: CheckoutErrorBudgetSlowBurn
        exp_alerts: []
  # A quiet node while 2% of checkout requests fail (a 20x burn).
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
        alertname: CheckoutErrorBudgetBurn
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations:
              summary: "Checkout is burning its 30-day error budget fast enough to page"
      - eval_time: 75m
        alertname: NodeHighCPU
        exp_alerts: []
  # Six clean hours, then 1% errors (a 10x burn): too slow for the one-hour
  # clause, but the six-hour clause pages once about 5% of the budget is gone.
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+120000x360 43320000+118800x240'
      - series: 'http_requests_total{job="checkout",code="500"}'
        values: '0x360 0+1200x240'
    alert_rule_test:
      - eval_time: 9h30m
        alertname: CheckoutErrorBudgetBurn
        exp_alerts: []
      - eval_time: 9h45m
        alertname: CheckoutErrorBudgetBurn
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations:
              summary: "Checkout is burning its 30-day error budget fast enough to page"
  # 0.15% errors (a 1.5x burn) for seven hours: a ticket, never a page.
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+119820x420'
      - series: 'http_requests_total{job="checkout",code="500"}'
        values: '0+180x420'
    alert_rule_test:
      - eval_time: 7h
        alertname: CheckoutErrorBudgetSlowBurn
        exp_alerts:
          - exp_labels: {severity: ticket}
      - eval_time: 7h
        alertname: CheckoutErrorBudgetBurn
        exp_alerts: []
  # 0.4% errors (a 4x burn) for seven hours: the one-day tier tickets,
  # and neither page tier fires.
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+119520x420'
      - series: 'http_requests_total{job="checkout",code="500"}'
        values: '0+480x420'
    alert_rule_test:
      - eval_time: 7h
        alertname: CheckoutErrorBudgetSlowBurn
        exp_alerts:
          - exp_labels: {severity: ticket}
      - eval_time: 7h
        alertname: CheckoutErrorBudgetBurn
        exp_alerts: []
  # 0.05% errors (half the budgeted rate) for seven hours: nothing fires.
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+119940x420'
      - series: 'http_requests_total{job="checkout",code="500"}'
        values: '0+60x420'
    alert_rule_test:
      - eval_time: 7h
        alertname: CheckoutErrorBudgetSlowBurn
        exp_alerts: []
      - eval_time: 7h
        alertname: CheckoutErrorBudgetBurn
        exp_alerts: []
  # A ten-minute burst of 2% errors after an hour of none: the short windows
  # are hot, but neither long window reaches its threshold.
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="checkout",code="200"}'
        values: '0+120000x60 7320000+117600x10'
      - series: 'http_requests_total{job="checkout",code="500"}'
        values: '0x60 0+2400x10'
    alert_rule_test:
      - eval_time: 70m
        alertname: CheckoutErrorBudgetBurn
        exp_alerts: []
"""


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, (
        "promtool is not installed (nox -s tests installs Debian's prometheus)"
    )
    return found


def promtool_test(
    site: Site, tmp_path: Path, tests: str, rules: str | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yml").write_text(rules or paging_rules(site), encoding="utf-8")
    (tmp_path / "tests.yml").write_text(tests, encoding="utf-8")
    return subprocess.run(
        [promtool(), "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


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
    assert "10 rules found" in result.stdout


def test_promtool_replays_traffic_through_the_rules(site: Site, tmp_path: Path) -> None:
    result = promtool_test(site, tmp_path, PROMTOOL_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_fast_burn_page_alone_misses_a_one_percent_burn(
    site: Site, tmp_path: Path
) -> None:
    """The replay fails for the old rule that paged on the one-hour tier only."""
    rules = paging_rules(site)
    slow_tier = re.search(
        r"\n\s*or\n\s*\(\n[^()]*rate6h[^()]*\(6 \* 0\.001\)[^()]*\(6 \* 0\.001\)\n\s*\)",
        rules,
    )
    assert slow_tier, "the six-hour page tier is missing"
    fast_only = rules.replace(slow_tier.group(0), "")
    result = promtool_test(site, tmp_path, PROMTOOL_TESTS, rules=fast_only)
    assert result.returncode != 0
    assert "time: 9h45m" in result.stdout + result.stderr


def test_promtool_would_catch_a_wrong_expectation(site: Site, tmp_path: Path) -> None:
    """The replay can fail: expecting no ticket at a 1.5x burn is rejected."""
    wrong = PROMTOOL_TESTS.replace(
        "          - exp_labels: {severity: ticket}\n", ""
    ).replace(
        "        alertname: CheckoutErrorBudgetSlowBurn\n        exp_alerts:\n      - eval_time",
        "        alertname: CheckoutErrorBudgetSlowBurn\n        exp_alerts: []\n      - eval_time",
    )
    assert wrong != PROMTOOL_TESTS
    result = promtool_test(site, tmp_path, wrong)
    assert result.returncode != 0

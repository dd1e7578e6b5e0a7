"""The examples of "Security Is Infrastructure" do what the essay says they do.

Each test reads a code block as built (``named_block``), so it checks exactly
what a reader sees. Kyverno cannot run here, so the admission policy is
evaluated faithfully instead: Kubernetes' rule matching for resources and
subresources, Kyverno's own image extractors and glob matching, and the
policy's CEL validation run by a real CEL interpreter (cel-python) with
``verifyImageSignatures`` replaced by a fake that knows which images are
signed.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import celpy  # cel-python: a CEL interpreter, to run the policy's expression
import pytest
import yaml

from conftest import Site, named_block

DOC = "essays/security/security-is-infrastructure"


def block(site: Site, what: str) -> str:
    return named_block(site, DOC, f"security-is-infrastructure-{what}")


def run_module(code: str) -> dict[str, Any]:
    """Execute an example as an imported module (its ``__main__`` part skipped)."""
    namespace: dict[str, Any] = {"__name__": "essay_example"}
    exec(compile(code, "<essay>", "exec"), namespace)
    return namespace


# -- OIDC trust policy and its lint -------------------------------------------

PROVIDER = "token.actions.githubusercontent.com"
PRODUCTION = "repo:example-org/payments:environment:production"


def with_condition(policy: dict, condition: dict) -> dict:
    changed = json.loads(json.dumps(policy))
    changed["Statement"][0]["Condition"] = condition
    return changed


def test_the_lint_accepts_the_essays_trust_policy(site: Site) -> None:
    lint = run_module(block(site, "trust-lint"))
    policy = json.loads(block(site, "trust-policy"))
    assert lint["problems"](policy) == []


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        # What IAM's own guardrail still accepts: a wildcard that is not bare.
        (
            {
                "StringEquals": {f"{PROVIDER}:aud": "sts.amazonaws.com"},
                "StringLike": {f"{PROVIDER}:sub": "repo:example-org/*"},
            },
            "StringLike",
        ),
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:sub": "repo:*",
                }
            },
            "does not name",
        ),
        # One good value does not excuse a bad one in the same list.
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:sub": [
                        PRODUCTION,
                        "repo:example-org/*",
                    ],
                }
            },
            "does not name",
        ),
        # Pull requests are not a deployment job.
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:sub": "repo:example-org/payments:pull_request",
                }
            },
            "does not name",
        ),
        ({"StringEquals": {f"{PROVIDER}:aud": "sts.amazonaws.com"}}, "None"),
        (
            {
                "ForAllValues:StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:sub": PRODUCTION,
                }
            },
            "ForAllValues",
        ),
        (
            {"StringEquals": {f"{PROVIDER}:sub": PRODUCTION}},
            "aud",
        ),
    ],
)
def test_the_lint_rejects_over_broad_subjects(
    site: Site, condition: dict, why: str
) -> None:
    lint = run_module(block(site, "trust-lint"))
    policy = with_condition(json.loads(block(site, "trust-policy")), condition)
    found = lint["problems"](policy)
    assert found and any(why in p for p in found), found


def test_the_lint_accepts_both_subject_formats(site: Site) -> None:
    lint = run_module(block(site, "trust-lint"))
    policy = json.loads(block(site, "trust-policy"))
    for subject in (
        "repo:example-org/payments:ref:refs/heads/main",
        "repo:example-org@4512380/payments@982274061:environment:production",
    ):
        condition = {
            "StringEquals": {
                f"{PROVIDER}:aud": "sts.amazonaws.com",
                f"{PROVIDER}:sub": subject,
            }
        }
        assert lint["problems"](with_condition(policy, condition)) == [], subject


def test_the_lint_ignores_other_principals(site: Site) -> None:
    lint = run_module(block(site, "trust-lint"))
    other = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
    }
    assert lint["problems"](other) == []


def test_the_lint_command_fails_ci_on_a_bad_policy(site: Site, tmp_path: Path) -> None:
    script = tmp_path / "lint.py"
    script.write_text(block(site, "trust-lint"))
    good = tmp_path / "good.json"
    good.write_text(block(site, "trust-policy"))
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            with_condition(
                json.loads(good.read_text()),
                {"StringLike": {f"{PROVIDER}:sub": "repo:example-org/*"}},
            )
        )
    )
    ok = subprocess.run(
        [sys.executable, script, good], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    fail = subprocess.run(
        [sys.executable, script, bad], capture_output=True, text=True, check=False
    )
    assert fail.returncode == 1 and "bad.json" in fail.stdout


# -- The release workflow ------------------------------------------------------

PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")


def unpinned(workflow: dict) -> list[str]:
    return [
        step["uses"]
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step and not PINNED.fullmatch(step["uses"])
    ]


def test_every_action_is_pinned_by_full_sha(site: Site) -> None:
    workflow = yaml.safe_load(block(site, "workflow"))
    assert unpinned(workflow) == []
    # The check itself catches the tj-actions pattern: a movable tag.
    workflow["jobs"]["release"]["steps"].append(
        {"uses": "tj-actions/changed-files@v45"}
    )
    assert unpinned(workflow) == ["tj-actions/changed-files@v45"]


def test_the_workflow_grants_nothing_by_default_and_only_what_the_job_needs(
    site: Site,
) -> None:
    workflow = yaml.safe_load(block(site, "workflow"))
    assert workflow["permissions"] == {}
    job = workflow["jobs"]["release"]
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert "secrets" not in job


def test_the_workflow_and_the_trust_policy_are_one_control(site: Site) -> None:
    workflow = yaml.safe_load(block(site, "workflow"))
    policy = json.loads(block(site, "trust-policy"))
    statement = policy["Statement"][0]
    subject = statement["Condition"]["StringEquals"][f"{PROVIDER}:sub"]
    job = workflow["jobs"]["release"]
    # The job's environment is what GitHub writes into the token's subject.
    assert subject.endswith(f":environment:{job['environment']}")
    # The role lives in the account whose OIDC provider the policy trusts.
    account = statement["Principal"]["Federated"].split(":")[4]
    credentials = next(
        s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")
    )
    assert credentials["with"]["role-to-assume"].startswith(
        f"arn:aws:iam::{account}:role/"
    )


# -- NetworkPolicy ---------------------------------------------------------------


def test_the_default_deny_selects_every_pod_and_allows_nothing(site: Site) -> None:
    deny, dns = yaml.safe_load_all(block(site, "netpol"))
    assert deny["kind"] == dns["kind"] == "NetworkPolicy"
    assert deny["metadata"]["namespace"] == dns["metadata"]["namespace"] == "payments"
    assert deny["spec"]["podSelector"] == {}
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


def test_the_only_exception_is_dns_to_kube_dns(site: Site) -> None:
    _deny, dns = yaml.safe_load_all(block(site, "netpol"))
    assert dns["spec"]["policyTypes"] == ["Egress"]
    (rule,) = dns["spec"]["egress"]
    (peer,) = rule["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {
        ("UDP", 53),
        ("TCP", 53),
    }


# -- Signing and verification -------------------------------------------------------


def test_cosign_verifies_a_workflow_identity_by_digest(site: Site) -> None:
    script = block(site, "cosign")
    assert (
        subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode
        == 0
    )
    verify = script[script.index("cosign verify") :]
    identity = re.search(r'--certificate-identity "([^"]+)"', verify).group(1)
    issuer = re.search(r'--certificate-oidc-issuer "([^"]+)"', verify).group(1)
    assert issuer == "https://token.actions.githubusercontent.com"
    assert identity.endswith("/.github/workflows/release.yml@refs/heads/main")
    # Sign and verify by digest, never by a tag that can move.
    images = re.findall(r'"(ghcr\.io/[^"]+)"', script)
    assert len(images) == 2 and all(image.endswith("@${DIGEST}") for image in images)


# -- The Kyverno ImageValidatingPolicy, evaluated faithfully -----------------------


# The previous version of the essay, and the shape of Kyverno's doc examples.
OLD_EXPRESSION = (
    "images.containers.map(image, verifyImageSignatures(image, [attestors.release]))"
    ".all(e, e > 0)"
)
SIGNED = {
    "ghcr.io/example-org/payments@sha256:" + "a" * 64,
    "ghcr.io/example-org/migrate@sha256:" + "b" * 64,
}
UNSIGNED = "ghcr.io/example-org/debug-tools@sha256:" + "c" * 64


def rule_matches(
    rules: list[dict], resource: str, subresource: str, operation: str
) -> bool:
    """Kubernetes admission matching: 'pods' is the pod itself, never its
    subresources; 'pods/x' is subresource x; 'pods/*' is every subresource."""
    for rule in rules:
        if operation not in rule["operations"] and "*" not in rule["operations"]:
            continue
        if "" not in rule["apiGroups"] or "v1" not in rule["apiVersions"]:
            continue
        for entry in rule["resources"]:
            name, _, sub = entry.partition("/")
            if name not in (resource, "*"):
                continue
            if (sub == "" and subresource == "") or (
                sub and sub in (subresource, "*") and subresource
            ):
                return True
    return False


def extract_images(pod: dict) -> dict[str, list[str]]:
    """Kyverno's pod extractors: three lists, absent fields as empty lists."""
    spec = pod.get("spec", {})
    return {
        kind: [c["image"] for c in spec.get(kind, [])]
        for kind in ("containers", "initContainers", "ephemeralContainers")
    }


def glob_match(pattern: str, image: str) -> bool:
    # Kyverno compiles globs without separators, so '*' also matches '/'.
    return fnmatch.fnmatchcase(image, pattern)


def verify_image_signatures(failed_as_error: bool):
    def verify(image, attestors):
        assert list(attestors) == ["release"]
        if str(image) in SIGNED:
            return celpy.celtypes.IntType(1)
        if failed_as_error:  # what Kyverno does when verification fails
            return celpy.CELEvalError(f"failed to verify {image}")
        return celpy.celtypes.IntType(0)

    return verify


def decide(
    policy: dict,
    pod: dict,
    subresource: str = "",
    operation: str = "CREATE",
    expression: str | None = None,
    rules: list[dict] | None = None,
    failed_as_error: bool = True,
) -> str:
    spec = policy["spec"]
    if not rule_matches(
        rules or spec["matchConstraints"]["resourceRules"],
        "pods",
        subresource,
        operation,
    ):
        return "not matched"
    globs = [m["glob"] for m in spec["matchImageReferences"]]
    images = {
        kind: [i for i in found if any(glob_match(g, i) for g in globs)]
        for kind, found in extract_images(pod).items()
    }
    env = celpy.Environment()
    program = env.program(
        env.compile(expression or spec["validations"][0]["expression"]),
        functions={"verifyImageSignatures": verify_image_signatures(failed_as_error)},
    )
    attestors = {a["name"]: a["name"] for a in spec["attestors"]}
    try:
        result = program.evaluate(
            {
                "images": celpy.json_to_cel(images),
                "attestors": celpy.json_to_cel(attestors),
            }
        )
    except celpy.CELEvalError:
        result = None
    if isinstance(result, celpy.CELEvalError):
        result = None
    if result is None:  # an evaluation error: failurePolicy Fail denies
        assert spec["failurePolicy"] == "Fail"
        return "deny"
    assert spec["validationActions"] == ["Deny"]
    return "admit" if bool(result) else "deny"


def pod(containers=(), init=(), ephemeral=()) -> dict:
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{n}", "image": i} for n, i in enumerate(containers)]
    }
    if init:
        spec["initContainers"] = [
            {"name": f"i{n}", "image": i} for n, i in enumerate(init)
        ]
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": f"e{n}", "image": i} for n, i in enumerate(ephemeral)
        ]
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec}


@pytest.fixture
def policy(site: Site) -> dict:
    return yaml.safe_load(block(site, "ivpol"))


PAYMENTS, MIGRATE = sorted(SIGNED, reverse=True)


@pytest.mark.parametrize(
    "failed_as_error", [True, False], ids=["verify-error", "verify-zero"]
)
@pytest.mark.parametrize(
    ("the_pod", "subresource", "operation", "expected"),
    [
        (pod([PAYMENTS]), "", "CREATE", "admit"),
        (pod([PAYMENTS], init=[MIGRATE]), "", "CREATE", "admit"),
        (pod([UNSIGNED]), "", "CREATE", "deny"),
        (pod([PAYMENTS], init=[UNSIGNED]), "", "CREATE", "deny"),
        (
            pod([PAYMENTS], ephemeral=[UNSIGNED]),
            "ephemeralcontainers",
            "UPDATE",
            "deny",
        ),
        (
            pod([PAYMENTS], ephemeral=[MIGRATE]),
            "ephemeralcontainers",
            "UPDATE",
            "admit",
        ),
        # Outside the registry glob: not this policy's business (the essay's caveat).
        (pod(["docker.io/library/busybox:latest"]), "", "CREATE", "admit"),
    ],
    ids=[
        "signed",
        "signed-init",
        "unsigned",
        "unsigned-init",
        "unsigned-ephemeral",
        "signed-ephemeral",
        "other-registry",
    ],
)
def test_the_policy_checks_all_three_kinds_of_container(
    policy: dict,
    the_pod: dict,
    subresource: str,
    operation: str,
    expected: str,
    failed_as_error: bool,
) -> None:
    assert (
        decide(policy, the_pod, subresource, operation, failed_as_error=failed_as_error)
        == expected
    )


def test_the_policy_sees_the_ephemeral_containers_subresource(policy: dict) -> None:
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule_matches(rules, "pods", "", "CREATE")
    assert rule_matches(rules, "pods", "ephemeralcontainers", "UPDATE")
    assert not rule_matches(rules, "pods", "status", "UPDATE")
    # A rule naming only 'pods' never sees `kubectl debug`.
    assert not rule_matches(
        [{**rules[0], "resources": ["pods"]}], "pods", "ephemeralcontainers", "UPDATE"
    )


def test_the_old_policy_admitted_what_the_new_one_denies(policy: dict) -> None:
    only_pods = [
        {
            **policy["spec"]["matchConstraints"]["resourceRules"][0],
            "resources": ["pods"],
        }
    ]
    init = pod([PAYMENTS], init=[UNSIGNED])
    debug = pod([PAYMENTS], ephemeral=[UNSIGNED])
    assert decide(policy, init, expression=OLD_EXPRESSION) == "admit"
    assert decide(policy, init) == "deny"
    assert (
        decide(policy, debug, "ephemeralcontainers", "UPDATE", rules=only_pods)
        == "not matched"
    )
    assert decide(policy, debug, "ephemeralcontainers", "UPDATE") == "deny"


def test_the_policy_fails_closed_and_trusts_only_the_release_workflow(
    policy: dict,
) -> None:
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail" and spec["validationActions"] == ["Deny"]
    (identity,) = spec["attestors"][0]["cosign"]["keyless"]["identities"]
    assert identity["issuer"] == "https://token.actions.githubusercontent.com"
    subject = re.compile(identity["subjectRegExp"])
    ok = "https://github.com/example-org/payments/.github/workflows/release.yml@refs/heads/main"
    assert subject.search(ok)
    for bad in (
        "https://github.com/example-org/payments/.github/workflows/release.yml@refs/heads/feature",
        "https://github.com/example-org/payments/.github/workflows/ci.yml@refs/heads/main",
        "https://github.com/evil-org/payments/.github/workflows/release.yml@refs/heads/main",
    ):
        assert not subject.search(bad), bad
    # Listing the subresource is why Kyverno no longer autogenerates rules for
    # Deployments: it does so only for one rule naming exactly 'pods'.
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["pods", "pods/ephemeralcontainers"]


def test_the_cosign_identity_satisfies_the_admission_policy(
    site: Site, policy: dict
) -> None:
    script = block(site, "cosign")
    identity = re.search(r'--certificate-identity "([^"]+)"', script).group(1)
    (attestor,) = policy["spec"]["attestors"][0]["cosign"]["keyless"]["identities"]
    assert re.search(attestor["subjectRegExp"], identity)


# -- Policy exceptions expire -------------------------------------------------------


def test_exceptions_without_owner_or_date_or_past_date_fail(
    site: Site, tmp_path: Path
) -> None:
    check = run_module(block(site, "exceptions"))

    def exception(name: str, **notes: str) -> dict:
        return {
            "apiVersion": "policies.kyverno.io/v1",
            "kind": "PolicyException",
            "metadata": {"name": name, "annotations": notes},
        }

    owner = "security.example.com/owner"
    expires = "security.example.com/expires"
    (tmp_path / "a.yaml").write_text(
        yaml.safe_dump_all(
            [
                exception(
                    "current", **{owner: "payments-oncall", expires: "2027-03-01"}
                ),
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "ignored"},
                },
                exception("stale", **{owner: "payments-oncall", expires: "2026-06-30"}),
            ]
        )
    )
    (tmp_path / "b.yaml").write_text(
        yaml.safe_dump(exception("orphan", **{expires: "2027-01-01"}))
    )
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(exception("forever", **{owner: "someone"}))
    )
    found = check["problems"](tmp_path, datetime.date(2026, 12, 1))
    assert found == [
        f"{tmp_path / 'a.yaml'}: stale expired on 2026-06-30",
        f"{tmp_path / 'b.yaml'}: orphan has no {owner}",
        f"{tmp_path / 'c.yaml'}: forever has no {expires}",
    ]


# -- The patch-latency error budget ----------------------------------------------------


def test_the_error_budget_arithmetic(site: Site) -> None:
    budget = run_module(block(site, "budget"))["budget_left"]
    today = datetime.date(2026, 12, 1)
    day = datetime.timedelta(days=1)
    on_time = [(today - 30 * day, today - 25 * day)] * 20
    late = (today - 40 * day, today - 10 * day)
    assert budget([], today) == 1.0
    assert budget(on_time, today) == pytest.approx(1.0)
    assert budget([*on_time[:19], late], today) == pytest.approx(
        0.0
    )  # 20 due, 1 allowed late
    assert budget([*on_time, *on_time[:19], late], today) == pytest.approx(
        0.5
    )  # 40 due, 2 allowed
    never_fixed = (today - 20 * day, None)
    assert budget([*on_time[:19], never_fixed], today) == pytest.approx(0.0)
    # Not yet due, or due before the 90-day window: not counted.
    assert budget(
        [*on_time, (today - 5 * day, None), (today - 200 * day, None)], today
    ) == pytest.approx(1.0)

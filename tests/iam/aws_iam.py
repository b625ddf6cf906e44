"""AWS IAM policy evaluation, as AWS does it, for the statements our policies use.

moto can enforce IAM, but it ignores ``Resource`` (it always checks ``*``) and evaluates every
``Condition`` against an empty request context, so a tag-conditioned Allow becomes an explicit Deny.
A least-privilege policy scoped by tags cannot be tested with that. This module is the stand-in:

* :func:`evaluate` follows AWS's logic for identity-based (and role trust) policies: an explicit
  Deny wins, then any Allow, else the implicit deny; ``Action``/``NotAction``, ``Resource``/
  ``NotResource`` with ``*`` and ``?`` wildcards; ``Condition`` blocks where every operator and
  every key must hold, several values of one key are ORed (NORed for the negated operators), and
  a key absent from the request fails the positive operators and satisfies the negated ones;
* :func:`authorization_requests` turns one API call (action and query parameters) into what AWS
  authorizes for it: the action on every resource the call names, with the request context
  (``aws:RequestTag/*``, ``aws:TagKeys``, ``aws:ResourceTag/*``), plus the extra tag-on-create
  authorization (``ec2:CreateTags`` with ``ec2:CreateAction``, ``elasticloadbalancing:AddTags``
  with ``elasticloadbalancing:CreateAction``) when a create call carries tags.

Anything it does not model (an operator, a condition key, an API action, a policy element) raises
:class:`UnsupportedPolicy` or :class:`UnknownAction`: a test must fail loudly, never pass because
the evaluator quietly allowed something it did not understand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ContextValue = str | tuple[str, ...]
TagLookup = Callable[[str], Mapping[str, str] | None]  # resource ARN → its tags (None: no such resource)

MULTIVALUED_KEYS = frozenset({"aws:tagkeys"})
STRING_OPERATORS = frozenset({"StringEquals", "StringNotEquals", "StringLike", "StringNotLike"})
NEGATED_OPERATORS = frozenset({"StringNotEquals", "StringNotLike"})


class UnsupportedPolicy(Exception):
    """A policy uses something this evaluator does not model (it must never guess)."""


class UnknownAction(Exception):
    """An API call whose authorization (resources, context) this evaluator does not model."""


@dataclass(frozen=True)
class Check:
    """One authorization AWS makes for a call: an action on one resource, with its context."""

    action: str  # service:Action, as in policies
    resource: str  # an ARN, or "*" for actions without resource-level permissions
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal: Mapping[str, str] = field(default_factory=dict)  # trust policies: {"Federated": arn}


@dataclass(frozen=True)
class Decision:
    check: Check
    allowed: bool
    reason: str  # "allowed", "explicit deny", "implicit deny"
    statements: tuple[str, ...] = ()  # Sids (or indexes) of the statements that decided


# -- matching -----------------------------------------------------------------------------------


def _glob(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    # IAM has only * and ? (fnmatch would also give [ and ] a meaning)
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _as_list(value: Any, what: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, str):
            raise UnsupportedPolicy(f"{what}: expected strings, got {v!r}")
    return values


def _normalise_key(key: str) -> str:
    """Condition key names are case-insensitive; a tag key after the prefix is kept as written."""
    head, sep, tail = key.partition("/")
    return head.lower() + sep + tail


def _known_key(key: str, extra: frozenset[str]) -> bool:
    return (
        key.startswith(("aws:requesttag/", "aws:resourcetag/"))
        or key in MULTIVALUED_KEYS
        or key in {"ec2:createaction", "elasticloadbalancing:createaction", "iam:awsservicename"}
        or key in extra
    )


def _condition_holds(
    operator: str, key: str, expected: Any, context: Mapping[str, ContextValue], extra_keys: frozenset[str]
) -> bool:
    qualifier, _, op = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise UnsupportedPolicy(f"condition operator {operator!r}")
    if_exists = op.endswith("IfExists")
    base = op.removesuffix("IfExists")
    name = _normalise_key(key)
    if not _known_key(name, extra_keys):
        raise UnsupportedPolicy(f"condition key {key!r} is not modelled")
    present = name in context
    actual = context.get(name)

    if base == "Null":
        if qualifier or if_exists:
            raise UnsupportedPolicy(f"{operator} is not a valid use of Null")
        values = _as_list(expected if not isinstance(expected, bool) else str(expected).lower(), operator)
        if len(values) != 1 or values[0] not in ("true", "false"):
            raise UnsupportedPolicy(f"Null takes 'true' or 'false', got {expected!r}")
        is_null = not present or actual in ((), "")
        return is_null == (values[0] == "true")

    if base not in STRING_OPERATORS:
        raise UnsupportedPolicy(f"condition operator {operator!r}")
    wanted = _as_list(expected, f"{operator} {key}")
    like = base.endswith("Like")
    negated = base in NEGATED_OPERATORS

    def matches(value: str) -> bool:
        hit = any(
            _glob(w, value, case_sensitive=True) if like else w == value for w in wanted
        )  # values of one key are ORed
        return not hit if negated else hit

    if qualifier:
        if not present and if_exists:
            return True
        members = (actual,) if isinstance(actual, str) else tuple(actual or ())
        if qualifier == "ForAllValues":
            return all(matches(v) for v in members)  # an empty set satisfies ForAllValues
        return any(matches(v) for v in members)
    if name in MULTIVALUED_KEYS:
        raise UnsupportedPolicy(f"{key} is multivalued: use ForAnyValue: or ForAllValues: with {operator}")
    if not present:
        return if_exists or negated
    assert isinstance(actual, str)
    return matches(actual)


def _conditions_hold(
    conditions: Any, context: Mapping[str, ContextValue], extra_keys: frozenset[str]
) -> bool:
    if conditions is None:
        return True
    if not isinstance(conditions, dict):
        raise UnsupportedPolicy(f"Condition must be an object, got {conditions!r}")
    for operator, block in conditions.items():
        if not isinstance(block, dict):
            raise UnsupportedPolicy(f"Condition {operator} must be an object")
        for key, expected in block.items():
            if not _condition_holds(operator, key, expected, context, extra_keys):
                return False
    return True


def _validate_conditions(conditions: Any, extra_keys: frozenset[str]) -> None:
    if conditions is None:
        return
    if not isinstance(conditions, dict) or not all(isinstance(b, dict) for b in conditions.values()):
        raise UnsupportedPolicy(f"Condition must map operators to objects, got {conditions!r}")
    for operator, block in conditions.items():
        for key, expected in block.items():
            _condition_holds(operator, key, expected, {}, extra_keys)


_STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition", "Principal"}
)


def _principal_matches(principal: Any, request: Mapping[str, str]) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        raise UnsupportedPolicy(f"Principal {principal!r}")
    for kind, values in principal.items():
        if kind not in ("AWS", "Federated", "Service"):
            raise UnsupportedPolicy(f"Principal type {kind!r}")
        if request.get(kind) in _as_list(values, f"Principal {kind}"):
            return True
    return False


def _statement_applies(
    statement: Mapping[str, Any], check: Check, *, trust: bool, extra_keys: frozenset[str]
) -> bool:
    unknown = set(statement) - _STATEMENT_KEYS
    if unknown:
        raise UnsupportedPolicy(f"statement elements {sorted(unknown)}")
    if ("Action" in statement) == ("NotAction" in statement):
        raise UnsupportedPolicy("a statement needs exactly one of Action and NotAction")
    if "Action" in statement:
        acts = _as_list(statement["Action"], "Action")
        if not any(_glob(a, check.action, case_sensitive=False) for a in acts):
            return False
    elif any(
        _glob(a, check.action, case_sensitive=False) for a in _as_list(statement["NotAction"], "NotAction")
    ):
        return False
    if trust:
        if "Principal" not in statement or "Resource" in statement or "NotResource" in statement:
            raise UnsupportedPolicy("a trust policy statement has a Principal and no Resource")
        if not _principal_matches(statement["Principal"], check.principal):
            return False
    else:
        if "Principal" in statement:
            raise UnsupportedPolicy("an identity-based policy has no Principal")
        if ("Resource" in statement) == ("NotResource" in statement):
            raise UnsupportedPolicy("a statement needs exactly one of Resource and NotResource")
        if "Resource" in statement:
            if not any(
                _glob(r, check.resource, case_sensitive=True)
                for r in _as_list(statement["Resource"], "Resource")
            ):
                return False
        elif any(
            _glob(r, check.resource, case_sensitive=True)
            for r in _as_list(statement["NotResource"], "NotResource")
        ):
            return False
    context = {_normalise_key(k): v for k, v in check.context.items()}
    return _conditions_hold(statement.get("Condition"), context, extra_keys)


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if policy.get("Version") != "2012-10-17":
        raise UnsupportedPolicy("policies must say Version 2012-10-17 (else ${...} is not a variable)")
    unknown = set(policy) - {"Version", "Id", "Statement"}
    if unknown:
        raise UnsupportedPolicy(f"policy elements {sorted(unknown)}")
    statements = policy["Statement"]
    statements = statements if isinstance(statements, list) else [statements]
    for statement in statements:
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise UnsupportedPolicy(f"Effect {statement.get('Effect')!r}")
        text = repr(statement)
        if "${" in text:
            raise UnsupportedPolicy(f"policy variables are not modelled: {text[:120]}")
    return list(statements)


def evaluate(
    policies: Sequence[Mapping[str, Any]],
    check: Check,
    *,
    trust: bool = False,
    extra_condition_keys: Iterable[str] = (),
) -> Decision:
    """AWS's decision for one check against a principal's policies (or one role trust policy)."""
    extra = frozenset(_normalise_key(k) for k in extra_condition_keys)
    statements = [(index, s) for policy in policies for index, s in enumerate(_statements(policy))]
    for _, statement in statements:  # every condition is understood, also in statements that will not apply
        _validate_conditions(statement.get("Condition"), extra)
    allows: list[str] = []
    denies: list[str] = []
    for index, statement in statements:
        if _statement_applies(statement, check, trust=trust, extra_keys=extra):
            sid = str(statement.get("Sid", f"#{index}"))
            (allows if statement["Effect"] == "Allow" else denies).append(sid)
    if denies:
        return Decision(check, False, "explicit deny", tuple(denies))
    if allows:
        return Decision(check, True, "allowed", tuple(allows))
    return Decision(check, False, "implicit deny")


def actions_of(policy: Mapping[str, Any], sid: str) -> list[str]:
    """The actions (patterns) of one statement, by Sid."""
    for statement in _statements(policy):
        if statement.get("Sid") == sid:
            return _as_list(statement.get("Action", []), "Action")
    raise KeyError(sid)


def action_matches(pattern: str, action: str) -> bool:
    return _glob(pattern, action, case_sensitive=False)


# -- what AWS authorizes for an API call ---------------------------------------------------------

Params = Mapping[str, str]


def _members(params: Params, prefix: str) -> list[str]:
    """``Prefix.1``, ``Prefix.2``... (ec2) or ``Prefix.member.1``... (elbv2), in order."""
    found: dict[int, str] = {}
    for key, value in params.items():
        match = re.fullmatch(re.escape(prefix) + r"(?:\.member)?\.(\d+)", key)
        if match:
            found[int(match.group(1))] = value
    return [found[i] for i in sorted(found)]


def _tag_pairs(params: Params, prefix: str) -> list[tuple[str, str | None]]:
    """``Prefix[.member].N.Key`` / ``.Value`` pairs, in order; the value is None when not given."""
    keys: dict[int, str] = {}
    values: dict[int, str] = {}
    pattern = re.compile(re.escape(prefix) + r"(?:\.member)?\.(\d+)\.(Key|Value)")
    for key, value in params.items():
        match = pattern.fullmatch(key)
        if match:
            (keys if match.group(2) == "Key" else values)[int(match.group(1))] = value
    return [(keys[i], values.get(i)) for i in sorted(keys)]


def _tag_context(pairs: Sequence[tuple[str, str | None]]) -> dict[str, ContextValue]:
    context: dict[str, ContextValue] = {f"aws:RequestTag/{k}": v for k, v in pairs if v is not None}
    if pairs:
        context["aws:TagKeys"] = tuple(k for k, _ in pairs)
    return context


def _tag_on_create(
    *, service: str, arn: str, pairs: Sequence[tuple[str, str | None]], create_action: str
) -> Check:
    """The extra check AWS makes when a create call carries tags: the service's tagging action, with
    ``<service>:CreateAction`` naming the create."""
    action = "ec2:CreateTags" if service == "ec2" else f"{service}:AddTags"
    return Check(action, arn, {**_tag_context(pairs), f"{service}:CreateAction": create_action})


def _resource_context(arn: str, tags: TagLookup) -> dict[str, ContextValue]:
    return {f"aws:ResourceTag/{k}": v for k, v in (tags(arn) or {}).items()}


_EC2_ID_TYPES = {"sg-": "security-group", "vpc-": "vpc", "subnet-": "subnet", "i-": "instance"}


def ec2_arn(resource_id: str, *, partition: str, region: str, account: str) -> str:
    for prefix, kind in _EC2_ID_TYPES.items():
        if resource_id.startswith(prefix):
            return f"arn:{partition}:ec2:{region}:{account}:{kind}/{resource_id}"
    raise UnknownAction(f"no ARN model for the EC2 resource id {resource_id!r}")


def _read_only(prefix: str, name: str) -> bool:
    if prefix in ("ec2", "elasticloadbalancing") and name.startswith("Describe"):
        return True  # neither supports resource-level permissions on Describe*: Resource must be "*"
    return prefix == "tag" and name in ("GetResources", "GetTagKeys", "GetTagValues")


_LB_ACTIONS = frozenset(
    {
        "DeleteLoadBalancer",
        "ModifyLoadBalancerAttributes",
        "SetIpAddressType",
        "SetSecurityGroups",
        "SetSubnets",
    }
)
_TG_ACTIONS = frozenset(
    {
        "DeleteTargetGroup",
        "ModifyTargetGroup",
        "ModifyTargetGroupAttributes",
        "RegisterTargets",
        "DeregisterTargets",
    }
)
_LISTENER_ACTIONS = frozenset({"DeleteListener", "ModifyListener", "ModifyListenerAttributes"})
_SG_ACTIONS = frozenset(
    {"AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "DeleteSecurityGroup"}
)


def authorization_requests(
    action: str, params: Params, *, partition: str, region: str, account: str, tags: TagLookup
) -> list[Check]:
    """Every authorization AWS makes for one API call (all must be allowed for the call to pass)."""
    prefix, _, name = action.partition(":")
    if _read_only(prefix, name):
        return [Check(action, "*")]
    elb = f"arn:{partition}:elasticloadbalancing:{region}:{account}"

    def ec2(resource_id: str) -> str:
        return ec2_arn(resource_id, partition=partition, region=region, account=account)

    def on_existing(arn: str, extra: Mapping[str, ContextValue] | None = None) -> Check:
        return Check(action, arn, {**_resource_context(arn, tags), **(extra or {})})

    if prefix == "ec2":
        if name == "CreateSecurityGroup":
            if "VpcId" not in params or "GroupName" not in params:
                raise UnknownAction("CreateSecurityGroup without VpcId (a default VPC) is not modelled")
            pairs: list[tuple[str, str | None]] = []
            spec_indexes = sorted(
                {int(m.group(1)) for k in params if (m := re.fullmatch(r"TagSpecification\.(\d+)\..*", k))}
            )
            for index in spec_indexes:
                kind = params.get(f"TagSpecification.{index}.ResourceType")
                if kind != "security-group":
                    raise UnknownAction(f"CreateSecurityGroup tags for resource type {kind!r}")
                pairs.extend(_tag_pairs(params, f"TagSpecification.{index}.Tag"))
            group = f"arn:{partition}:ec2:{region}:{account}:security-group/*"
            checks = [
                Check(action, group, _tag_context(pairs)),
                on_existing(ec2(params["VpcId"])),
            ]
            if pairs:
                checks.append(
                    _tag_on_create(service="ec2", arn=group, pairs=pairs, create_action="CreateSecurityGroup")
                )
            return checks
        if name in ("CreateTags", "DeleteTags"):
            pairs = _tag_pairs(params, "Tag")
            resources = _members(params, "ResourceId")
            if not resources:
                raise UnknownAction(f"{name} without ResourceId")
            return [on_existing(ec2(r), _tag_context(pairs)) for r in resources]
        if name in _SG_ACTIONS:
            if "GroupId" not in params:
                raise UnknownAction(f"{name} by GroupName is not modelled")
            return [on_existing(ec2(params["GroupId"]))]
        raise UnknownAction(action)

    if prefix == "elasticloadbalancing":
        if any(key.startswith("LoadBalancerName") for key in params):
            return _classic_elb(action, name, params, elb=elb, on_existing=on_existing)
        pairs = _tag_pairs(params, "Tags")
        if name in ("CreateLoadBalancer", "CreateTargetGroup"):
            if name == "CreateLoadBalancer":
                kind = {"network": "net", "application": "app", "gateway": "gwy"}[
                    params.get("Type", "application")
                ]
                arn = f"{elb}:loadbalancer/{kind}/{params['Name']}/*"
            else:
                arn = f"{elb}:targetgroup/{params['Name']}/*"
            checks = [Check(action, arn, _tag_context(pairs))]
            if pairs:  # tag-on-create: AddTags is authorized too, with the create action named
                checks.append(
                    _tag_on_create(service="elasticloadbalancing", arn=arn, pairs=pairs, create_action=name)
                )
            return checks
        if name == "CreateListener":
            lb_arn = params["LoadBalancerArn"]
            checks = [on_existing(lb_arn, _tag_context(pairs))]
            if pairs:
                listener = lb_arn.replace(":loadbalancer/", ":listener/", 1) + "/*"
                checks.append(
                    _tag_on_create(
                        service="elasticloadbalancing", arn=listener, pairs=pairs, create_action=name
                    )
                )
            return checks
        if name == "AddTags":
            return [on_existing(arn, _tag_context(pairs)) for arn in _members(params, "ResourceArns")]
        if name == "RemoveTags":
            keys = _members(params, "TagKeys")
            return [
                on_existing(arn, {"aws:TagKeys": tuple(keys)}) for arn in _members(params, "ResourceArns")
            ]
        if name in _LB_ACTIONS:
            return [on_existing(params["LoadBalancerArn"])]
        if name in _TG_ACTIONS:
            return [on_existing(params["TargetGroupArn"])]
        if name in _LISTENER_ACTIONS:
            return [on_existing(params["ListenerArn"])]
        raise UnknownAction(action)

    raise UnknownAction(action)


_CLASSIC_WRITES = frozenset(
    {
        "ApplySecurityGroupsToLoadBalancer",
        "AttachLoadBalancerToSubnets",
        "ConfigureHealthCheck",
        "CreateLoadBalancerListeners",
        "CreateLoadBalancerPolicy",
        "DeleteLoadBalancer",
        "DeleteLoadBalancerListeners",
        "DeleteLoadBalancerPolicy",
        "DeregisterInstancesFromLoadBalancer",
        "DetachLoadBalancerFromSubnets",
        "ModifyLoadBalancerAttributes",
        "RegisterInstancesWithLoadBalancer",
        "SetLoadBalancerPoliciesForBackendServer",
        "SetLoadBalancerPoliciesOfListener",
    }
)


def _classic_elb(
    action: str,
    name: str,
    params: Params,
    *,
    elb: str,
    on_existing: Callable[[str, Mapping[str, ContextValue] | None], Check],
) -> list[Check]:
    """A Classic ELB call (API version 2012-06-01: load balancers named, not ARNs), authorized on
    ``arn:<partition>:elasticloadbalancing:<region>:<account>:loadbalancer/<name>``.

    Classic ELB and ELBv2 share the IAM prefix ``elasticloadbalancing`` and the action names
    (Service Authorization Reference, "Actions, resources, and condition keys for AWS Elastic Load
    Balancing", docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancing.html,
    the Classic API's page; ELBv2 has list_awselasticloadbalancingv2.html: resource type
    ``loadbalancer``, ARN ``loadbalancer/${LoadBalancerName}``). On that page every Classic write
    (``ApplySecurityGroupsToLoadBalancer`` … ``SetLoadBalancerPoliciesOfListener``) requires the
    ``loadbalancer*`` resource, whose condition keys are ``aws:ResourceTag/${TagKey}``: its tags, as for
    ELBv2. ``CreateLoadBalancer`` names the load balancer it makes and takes ``aws:RequestTag`` and
    ``aws:TagKeys``; ``AddTags`` lists ``elasticloadbalancing:CreateAction``, the tag-on-create check the
    ELBv2 creates make as well (:func:`_tag_on_create`). ``AddTags`` and ``RemoveTags`` name their load
    balancers in ``LoadBalancerNames``. kops fences the upstream provider's Classic writes by
    ``aws:ResourceTag/KubernetesCluster`` (kubernetes/kops ``pkg/model/iam/iam_builder.go``,
    ``AddCCMPermissions``). Describe* never gets here: no resource-level permissions.
    """

    def arn(lb: str) -> str:
        return f"{elb}:loadbalancer/{lb}"

    if name == "CreateLoadBalancer" and "LoadBalancerName" in params:
        pairs = _tag_pairs(params, "Tags")
        created = arn(params["LoadBalancerName"])
        checks = [Check(action, created, _tag_context(pairs))]
        if pairs:
            checks.append(
                _tag_on_create(service="elasticloadbalancing", arn=created, pairs=pairs, create_action=name)
            )
        return checks
    if name == "AddTags":
        pairs = _tag_pairs(params, "Tags")
        return [on_existing(arn(lb), _tag_context(pairs)) for lb in _members(params, "LoadBalancerNames")]
    if name == "RemoveTags":
        keys = [k for k, _ in _tag_pairs(params, "Tags")]
        return [
            on_existing(arn(lb), {"aws:TagKeys": tuple(keys)}) for lb in _members(params, "LoadBalancerNames")
        ]
    if name in _CLASSIC_WRITES and "LoadBalancerName" in params:
        return [on_existing(arn(params["LoadBalancerName"]), None)]
    raise UnknownAction(f"{action} of the Classic ELB API is not modelled")


# -- the service-linked role ----------------------------------------------------------------------

ELB_SERVICE = "elasticloadbalancing.amazonaws.com"
ELB_SERVICE_LINKED_ROLE = "AWSServiceRoleForElasticLoadBalancing"


def service_linked_role_check(
    action: str, *, partition: str, account: str, role_exists: bool
) -> Check | None:
    """The extra authorization of the first load balancer in an account, or None.

    Elastic Load Balancing creates its service-linked role ``AWSServiceRoleForElasticLoadBalancing`` the
    first time a load balancer is created in an account, as the caller: the caller needs
    ``iam:CreateServiceLinkedRole`` with ``iam:AWSServiceName = elasticloadbalancing.amazonaws.com``
    (ELB user guide, "Service-linked role for Elastic Load Balancing"; aws-load-balancer-controller
    docs/install/iam_policy.json grants exactly that). Once the role exists, nothing more is checked.
    """
    if action != "elasticloadbalancing:CreateLoadBalancer" or role_exists:
        return None
    return Check(
        "iam:CreateServiceLinkedRole",
        f"arn:{partition}:iam::{account}:role/aws-service-role/{ELB_SERVICE}/{ELB_SERVICE_LINKED_ROLE}",
        {"iam:AWSServiceName": ELB_SERVICE},
    )

"""The moto internals tests/iam patches and reads, checked up front so that a moto which moved them fails
loudly, with one message saying what moved, instead of deep inside moto's server thread.

IAM enforcement (:mod:`tests.iam.aws_enforcement`) replaces moto's authorization hook and reads its IAM,
elbv2, elb (Classic) and ec2 backends; none of that is moto's public API, and it moves between minor
releases (moto 5.1 has no ``moto.core.authorization`` and no ``_RESTError``). pyproject.toml pins the
test extra's moto to :data:`TESTED`, the range these patches were run with (5.2.0 and 5.2.5). Importing
this module imports every internal used and :func:`require` checks the names and signatures the patches
depend on; either raises :class:`MotoInternalsMoved` naming the moto version and the piece.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from typing import Any

TESTED = ">=5.2,<5.3"  # the moto[server] specifier of the test extra in pyproject.toml
MOTO_VERSION = metadata.version("moto")


class MotoInternalsMoved(RuntimeError):
    """The installed moto lacks an internal that tests/iam patches or reads."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"moto {MOTO_VERSION}: {what}. tests/iam patches moto's internals and is tested with "
            f"moto{TESTED} (the pin in pyproject.toml): install a moto in that range "
            f"(.venv/bin/pip install 'moto[server]{TESTED}'), or adapt tests/iam/aws_enforcement.py and "
            "tests/iam/moto_internals.py to this one and move the pin"
        )


try:
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError, _RESTError
    from moto.core.responses import BaseResponse
    from moto.ec2.models import EC2Backend, ec2_backends
    from moto.elb.models import ELBBackend, elb_backends
    from moto.elb.models import LoadBalancer as ClassicLoadBalancer
    from moto.elbv2 import models as elbv2_models
    from moto.elbv2 import utils as elbv2_utils
    from moto.elbv2.models import ELBv2Backend, elbv2_backends
    from moto.iam import access_control
    from moto.iam.access_control import IAMRequestBase
    from moto.iam.models import IAMBackend, Policy, PolicyVersion, iam_backends
    from moto.utilities.tagging_service import TaggingService
except ImportError as exc:
    raise MotoInternalsMoved(f"cannot import {exc.name or ''} ({exc})") from exc

__all__ = [
    "ActionAuthenticatorMixin",
    "ELBv2Backend",
    "IAMRequestBase",
    "JsonRESTError",
    "MotoInternalsMoved",
    "Policy",
    "_RESTError",
    "ec2_backends",
    "elb_backends",
    "elbv2_backends",
    "elbv2_models",
    "elbv2_utils",
    "iam_backends",
    "moto_settings",
    "require",
]


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def _init_names(cls: type) -> set[str]:
    """The names the ``__init__`` of the class or of its bases mentions (the attributes it sets, too)."""
    return {
        name
        for base in cls.__mro__
        for name in getattr(getattr(vars(base).get("__init__"), "__code__", None), "co_names", ())
    }


def _assigns(cls: type, *names: str) -> list[str]:
    """Which of ``names`` no ``__init__`` of the class mentions (it sets them as attributes)."""
    mentioned = _init_names(cls)
    return [name for name in names if name not in mentioned]


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise MotoInternalsMoved(what)


def require() -> None:
    """Every name and signature the patches rely on is where they expect it; else MotoInternalsMoved."""
    _check(
        isinstance(getattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", None), int | float),
        "moto.settings.INITIAL_NO_AUTH_ACTION_COUNT is gone",
    )
    _check(
        isinstance(getattr(ActionAuthenticatorMixin, "request_count", None), int),
        "ActionAuthenticatorMixin.request_count is gone",
    )
    authorize = getattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", None)
    _check(
        authorize is not None and _parameters(authorize) == ["self", "iam_request_cls", "resource"],
        "ActionAuthenticatorMixin._authenticate_and_authorize_action(self, iam_request_cls, resource) "
        "is gone or takes other parameters",
    )
    setup = getattr(getattr(BaseResponse, "setup_class", None), "__code__", None)
    missing = [
        n for n in ("headers", "querystring", "current_account") if n not in getattr(setup, "co_names", ())
    ]
    _check(
        hasattr(BaseResponse, "_get_action") and not missing,
        f"BaseResponse._get_action is gone, or setup_class no longer sets {', '.join(missing) or '-'}",
    )
    permitted = getattr(IAMRequestBase, "check_action_permitted", None)
    _check(
        permitted is not None and _parameters(permitted) == ["self", "resource"],
        "IAMRequestBase.check_action_permitted(self, resource) is gone or takes other parameters",
    )
    missing = _assigns(IAMRequestBase, "account_id", "_data", "_region", "_action", "_access_key")
    _check(not missing, f"IAMRequestBase no longer sets {', '.join(missing)}")
    keys = [getattr(access_control, n, None) for n in ("IAMUserAccessKey", "AssumedRoleAccessKey")]
    _check(
        all(k is not None and hasattr(k, "arn") and hasattr(k, "collect_policies") for k in keys),
        "IAMUserAccessKey/AssumedRoleAccessKey (.arn, .collect_policies) are gone",
    )
    _check(not _assigns(Policy, "versions"), "Policy no longer keeps .versions")
    missing = _assigns(PolicyVersion, "document", "is_default")
    _check(not missing, f"PolicyVersion no longer sets {', '.join(missing)}")
    methods = ("get_roles", "create_service_linked_role", "get_role_by_arn", "get_open_id_connect_provider")
    missing = [name for name in methods if not hasattr(IAMBackend, name)]
    _check(not missing, f"IAMBackend has no {', '.join(missing)}")
    _check(not _assigns(ELBv2Backend, "tagging_service"), "ELBv2Backend no longer has .tagging_service")
    _check(
        hasattr(TaggingService, "get_tag_dict_for_resource"),
        "TaggingService.get_tag_dict_for_resource is gone",
    )
    _check(not _assigns(EC2Backend, "tags"), "EC2Backend no longer keeps .tags")
    _check(
        not _assigns(ELBBackend, "load_balancers") and not _assigns(ClassicLoadBalancer, "tags"),
        "the Classic ELB backend no longer keeps .load_balancers by name, or a load balancer its .tags",
    )
    _check(
        hasattr(elbv2_utils, "make_arn_for_load_balancer")
        and hasattr(elbv2_models, "make_arn_for_load_balancer"),
        "moto.elbv2.models no longer calls make_arn_for_load_balancer from moto.elbv2.utils",
    )
    create = getattr(ELBv2Backend, "create_load_balancer", None)
    _check(
        create is not None and "loadbalancer_type" in _parameters(create),
        "ELBv2Backend.create_load_balancer has no loadbalancer_type parameter",
    )

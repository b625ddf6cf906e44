"""``ccm migrate``: before switching a cluster from the upstream cloud provider's service controller to
this one, say what would happen to every LoadBalancer Service, for a change ticket.

For each Service this instance would handle (its ``--load-balancer-class``), the provider's read-only
:meth:`~ccm.cloudprovider.MigrationPlanner.plan_migration` says whether its load balancer is kept,
created, refused (another controller's serves the address: the Service keeps it until it asks for a new
one) or replaced, what of the other controller's would be deleted, and whether clients would have to
move to a new address. Nothing is changed unless ``--dry-run=false``: then the plan is applied once,
Service by Service, by the controller's own sync under its leader Lease (:mod:`ccm.migrate_apply`), and
the result of each is printed; otherwise the controller (``ccm run``) applies it when it runs.

The rows are built by :func:`plan_rows` (I/O: the API and the provider), printed by :func:`render_text`
or :func:`render_json` (pure).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubernetes import client

from ccm import connect, logs, migrate_apply
from ccm.cloudprovider import REPLACE_FOREIGN_ANNOTATION, ForeignPart, MigrationPlan, MigrationPlanner
from ccm.controllers import predicates
from ccm.controllers.request import build_request
from ccm.k8s.core import CoreV1
from ccm.k8s.leader import validate_timings

logger = logging.getLogger(__name__)

EXIT_USAGE = 2
EXIT_FAILED = 1  # some Service could not be planned (a cloud or API error): the report is incomplete

ACTIONS = ("keep", "adopt", "create", "refuse", "replace", "invalid", "elsewhere", "error")


@dataclass(frozen=True)
class Row:
    """One Service's plan, as printed."""

    service: str  # namespace/name
    uid: str
    plan: MigrationPlan


def run(args: argparse.Namespace) -> int:
    """``ccm migrate``: print the plan of every LoadBalancer Service; exit 1 if one could not be read."""
    logs.setup(verbosity=args.v, fmt=args.logging_format)
    try:
        if not args.dry_run:
            validate_timings(
                lease_duration=args.leader_elect_lease_duration,
                renew_deadline=args.leader_elect_renew_deadline,
                retry_period=args.leader_elect_retry_period,
            )
    except ValueError as exc:
        sys.stderr.write(f"ccm migrate: error: {exc}\n")
        return EXIT_USAGE
    try:
        provider = connect.provider_from_flags(args)
        if not isinstance(provider, MigrationPlanner):
            raise connect.UsageError(
                f"--cloud-provider={args.cloud_provider}: this provider cannot plan a migration; "
                "accepted: aws, gce"
            )
        api = connect.api_client_from_flags(args)
    except connect.UsageError as exc:
        sys.stderr.write(f"ccm migrate: error: {exc}\n")
        return EXIT_USAGE
    rows = plan_rows(
        api=api,
        planner=provider,
        cluster_name=args.cluster_name,
        load_balancer_class=args.load_balancer_class,
    )
    if args.dry_run:
        sys.stdout.write(render_json(rows) if args.output == "json" else render_text(rows))
        return EXIT_FAILED if any(r.plan.action == "error" for r in rows) else 0
    if args.output != "json":
        sys.stdout.write(render_text(rows))
        sys.stdout.flush()
    try:
        outcomes = migrate_apply.apply_plan(
            api=api,
            provider=provider,
            cluster_name=args.cluster_name,
            load_balancer_class=args.load_balancer_class,
            actions={r.service: r.plan.action for r in rows},
            lease_name=args.leader_elect_resource_name,
            lease_namespace=args.leader_elect_resource_namespace,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
        )
    except migrate_apply.LeaseHeld as exc:
        sys.stderr.write(f"ccm migrate: error: --dry-run=false: {exc}\n")
        logs.exit_at_once(EXIT_FAILED)
    applied = {o.service: o for o in outcomes}
    if args.output == "json":
        sys.stdout.write(render_json(rows, applied=applied))
    else:
        sys.stdout.write(migrate_apply.render_outcomes_text(outcomes))
    logs.exit_at_once(  # the election's daemon thread, started by apply_plan, cannot be stopped
        EXIT_FAILED if any(o.result == "failed" for o in outcomes) else 0
    )


def plan_rows(
    *, api: client.ApiClient, planner: MigrationPlanner, cluster_name: str, load_balancer_class: str
) -> list[Row]:
    """Every LoadBalancer Service of the instance's class with its plan, sorted by namespace/name."""
    core = CoreV1(api)
    # the API's own JSON (camelCase), which the predicates and the request builder read
    services = migrate_apply.items_of(core.list_service_for_all_namespaces(_preload_content=False))
    nodes = migrate_apply.items_of(core.list_node(_preload_content=False))
    targets = [n for n in nodes if predicates.is_load_balancer_target(n)]
    rows: list[Row] = []
    for service in services:
        if not predicates.wants_load_balancer(service, load_balancer_class=load_balancer_class):
            continue
        request = build_request(service=service, nodes=targets, cluster_name=cluster_name)
        try:
            plan = planner.plan_migration(request=request)
        except Exception as exc:  # a cloud or credentials error: say it on the row, go on with the others
            logger.warning("%s: could not plan: %s", request.key, exc, exc_info=True)
            plan = MigrationPlan(
                action="error",
                address=next(iter(request.status_addresses), ""),
                address_changes=False,
                reason=f"{type(exc).__name__}: {exc}",
            )
        rows.append(Row(service=request.key, uid=request.uid, plan=plan))
    return sorted(rows, key=lambda r: r.service)


# -- printing (pure) -------------------------------------------------------------------------------------


def summary(rows: Sequence[Row]) -> dict[str, int]:
    """How many Services take each action, and how many would change their address."""
    counts = Counter(r.plan.action for r in rows)
    out = {action: counts.get(action, 0) for action in ACTIONS}
    out["addressChanges"] = sum(1 for r in rows if r.plan.address_changes)
    return out


def render_json(rows: Sequence[Row], *, applied: Mapping[str, migrate_apply.Outcome] | None = None) -> str:
    """``-o json``: the rows and the summary, stable keys, one document; with ``applied`` (after
    ``--dry-run=false``) each row also says what applying it did."""
    return (
        json.dumps(
            {
                "services": [
                    {
                        "service": r.service,
                        "uid": r.uid,
                        "action": r.plan.action,
                        "address": r.plan.address,
                        "addressChanges": r.plan.address_changes,
                        "foreign": [_part_json(p) for p in r.plan.foreign],
                        "reason": r.plan.reason,
                        **(
                            migrate_apply.outcome_json(applied[r.service])
                            if applied is not None and r.service in applied
                            else {}
                        ),
                    }
                    for r in rows
                ],
                "summary": summary(rows),
            },
            indent=2,
        )
        + "\n"
    )


def _part_json(part: ForeignPart) -> dict[str, str]:
    return {"kind": part.kind, "name": part.name, "detail": part.detail}


WHAT = {
    "keep": "kept: already this controller's",
    "adopt": "the other controller's load balancer is taken over in place: the address stays",
    "create": "a new load balancer is made",
    "refuse": "left alone: another controller's load balancer serves the address",
    "replace": "a new load balancer, then the other controller's is deleted",
    "invalid": "nothing is made: the Service's spec cannot be built",
    "elsewhere": "left to another controller (for example the AWS Load Balancer Controller)",
    "error": "could not be planned",
}


def _part_line(part: ForeignPart) -> str:
    return f"    {part.kind} {part.name}" + (f"  {part.detail}" if part.detail else "")


def render_text(rows: Sequence[Row]) -> str:
    """The review table: one line per Service, then what each refusal or replacement involves."""
    if not rows:
        return "No LoadBalancer Service for this controller instance.\n"
    table = [("SERVICE", "ACTION", "ADDRESS", "ADDRESS CHANGES")]
    table += [
        (r.service, r.plan.action, r.plan.address or "-", "YES" if r.plan.address_changes else "no")
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in table]
    for r in rows:
        if r.plan.action == "keep" and not r.plan.address_changes:
            continue
        lines += ["", f"{r.service}: {WHAT.get(r.plan.action, r.plan.action)}"]
        if r.plan.reason:
            lines.append(f"  {r.plan.reason}")
        if r.plan.foreign:
            verb = {
                "replace": "deleted",
                "adopt": f'taken over; deleted instead if annotated {REPLACE_FOREIGN_ANNOTATION}: "true"',
            }.get(r.plan.action, f'deleted once annotated {REPLACE_FOREIGN_ANNOTATION}: "true"')
            lines.append(f"  the other controller's parts ({verb}):")
            lines += [
                f"    {p.kind} {p.name}" + (f"  {p.detail}" if p.detail else "") for p in r.plan.foreign
            ]
    counts = summary(rows)
    told = ", ".join(f"{counts[a]} {a}" for a in ACTIONS if counts[a])
    lines += ["", f"{len(rows)} Services: {told}; {counts['addressChanges']} would change address."]
    return "\n".join(lines) + "\n"

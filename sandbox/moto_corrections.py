"""Where moto's models differ from AWS in ways the AWS provider meets, patched on moto's classes in the
process that serves moto: the sandbox's (:mod:`sandbox.aws`), the tests' (``tests/plugins/moto_server.py``,
in-process) and the benchmark's (``bench/moto_corrected.py``). site-packages is not touched. It lives in
the sandbox because without it a Classic ELB is never found by its tags there, and the sandbox is the one
of the three that ships.

Each correction names its source; the tests' further ones, made with botocore event hooks on the
provider's own clients, are in ``tests/providers/aws/aws_behaviour.py``.

* **Classic ELBs in the tagging API.** moto lists them under the resource type ``elb:loadbalancer``
  (moto/elb/models.py, ``ELBBackend.iter_tagged_resources``); AWS lists them under
  ``elasticloadbalancing:loadbalancer``, the type of NLBs and ALBs too: the Service Authorization
  Reference, "Actions, resources, and condition keys for Elastic Load Balancing", resource type
  ``loadbalancer`` with the ARN ``arn:${Partition}:elasticloadbalancing:${Region}:${Account}:loadbalancer/
  ${LoadBalancerName}``, and the Resource Groups Tagging API's resource-type filters
  (``service[:resourceType]``, here ``elasticloadbalancing:loadbalancer``).
* **The default health check of a Classic ELB.** AWS gives a new Classic ELB a health check (TCP on the
  first listener's instance port, interval 30 s, timeout 5 s, healthy threshold 10, unhealthy threshold
  2: the defaults of "Health checks for your Classic Load Balancer",
  https://docs.aws.amazon.com/elasticloadbalancing/latest/classic/elb-healthchecks.html, with the TCP
  target on the instance port); moto gives it none (the same text as ``bench/moto_corrected.py``).
* **A Classic ELB listener's instance protocol.** moto describes every listener's ``InstanceProtocol``
  as its front-end ``Protocol`` (moto/elb/models.py, ``FakeListener.instance_protocol``); AWS keeps the
  one it was given (botocore elb service-2.json, ``Listener.InstanceProtocol``: "The protocol to use
  for routing traffic to instances: HTTP, HTTPS, TCP, or SSL"), so an SSL listener to TCP instances
  stays SSL → TCP.
* **Backend policies on any instance port.** moto's ``SetLoadBalancerPoliciesForBackendServer`` fails
  (an internal error) for an instance port that was not among the listeners at ``CreateLoadBalancer``;
  AWS takes "the port on which the EC2 instance is listening" (Classic ELB API reference,
  SetLoadBalancerPoliciesForBackendServer), a listener added later included.
* **The DNS name of a Classic ELB.** AWS names a Classic ELB ``<name>-<digits>.<region>.elb.amazonaws.com``
  (``internal-`` first for an internal one; the CreateLoadBalancer example of the Classic ELB API
  reference, ``my-loadbalancer-1234567890.us-west-2.elb.amazonaws.com``,
  https://docs.aws.amazon.com/elasticloadbalancing/2012-06-01/APIReference/API_CreateLoadBalancer.html);
  moto leaves the ``-<digits>`` and ``internal-`` out and always says ``us-east-1``. Here the digits come
  from a hash of the name (as in ``bench/moto_corrected.py``).
* **Deleting several Classic ELB listeners at once.** moto's ``DeleteLoadBalancerListeners`` with more
  than one port keeps every listener (moto/elb/models.py, ``ELBBackend.delete_load_balancer_listeners``
  rebuilds the list once per port, from the listeners that differ from that one port); AWS deletes the
  listeners of every port given ("Deletes the specified listeners from the specified load balancer",
  ``LoadBalancerPorts``: "The client port numbers of the listeners", Classic ELB API reference,
  DeleteLoadBalancerListeners).
* **Tags per Classic ELB.** moto refuses an eleventh tag (moto/elb/models.py, ``LoadBalancer.add_tag``);
  AWS allows 50 ("Tag your Classic Load Balancer", Tag restrictions: "Maximum number of tags per
  resource—50", https://docs.aws.amazon.com/elasticloadbalancing/latest/classic/add-remove-tags.html).
  A Service's Classic ELB carries about seven of ours plus the user's ``additional-resource-tags``.
* **DNS names of NLBs.** moto names every ELBv2 load balancer ``<name>-1.<region>.elb.amazonaws.com``,
  the Classic ELB pattern, which upstream (and this provider) read as a Classic ELB by the suffix
  ``.elb.amazonaws.com``. AWS names an NLB ``<name>-<16 hex>.elb.<region>.amazonaws.com``; here the 16
  hex digits are the load balancer ID that ends its ARN. Sources: the AWS CLI example of
  ``create-load-balancer --type network`` (DNS name
  ``my-network-load-balancer-5d1b75f4f1cee11e.elb.us-west-2.amazonaws.com``, ARN ending
  ``/net/my-network-load-balancer/5d1b75f4f1cee11e``; aws/aws-cli
  ``awscli/examples/elbv2/create-load-balancer.rst``) and a real NLB of the AWS Load Balancer Controller
  in the EKS workshop (``k8s-ui-uinlb-e1c1ebaeb4-28a0d1a388d43825.elb.us-west-2.amazonaws.com``;
  aws-samples/eks-workshop-v2 ``website/docs/fundamentals/exposing/loadbalancer/adding-lb.md``), as in
  ``bench/moto_corrected.py``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from typing import Any

LB_TYPE = "elasticloadbalancing:loadbalancer"
MAX_CLASSIC_TAGS = 50
_done = False


def nlb_dns_name(*, name: str, arn: str, region: str) -> str:
    """AWS's DNS name of an NLB: ``<name>-<16 hex>.elb.<region>.amazonaws.com`` (the hex from the ARN)."""
    return f"{name}-{arn.rsplit('/', 1)[-1][:16]}.elb.{region}.amazonaws.com"


def correct_moto() -> None:
    """Patch moto's ELB and ELBv2 models in this process (once). The wrappers keep the signatures of
    moto's methods (``functools.wraps``): tests/iam reads them to check the moto it patches."""
    global _done  # noqa: PLW0603 - patching classes is process-wide by nature
    if _done:
        return
    _done = True
    _correct_classic()
    _correct_nlb_dns_names()


def _correct_classic() -> None:
    from moto.core.resource_tagging import TaggedResource  # noqa: PLC0415 - moto imports slowly
    from moto.elb.exceptions import TooManyTagsError  # noqa: PLC0415
    from moto.elb.models import (  # noqa: PLC0415
        ELBBackend,
        FakeBackend,
        FakeHealthCheck,
        FakeListener,
        LoadBalancer,
    )

    def iter_tagged_resources(self: Any) -> Iterator[Any]:
        for elb in self.load_balancers.values():
            arn = f"arn:aws:elasticloadbalancing:{self.region_name}:{self.account_id}:loadbalancer/{elb.name}"
            yield TaggedResource(arn=arn, tags=dict(elb.tags or {}), resource_type=LB_TYPE)

    def instance_protocol(self: Any) -> str:
        return str(getattr(self, "_instance_protocol", "") or self.protocol)

    def keep_instance_protocols(balancer: Any, ports: list[dict[str, Any]]) -> None:
        asked = {int(p["LoadBalancerPort"]): p.get("InstanceProtocol") for p in ports}
        for listener in balancer.listeners:
            wanted = asked.get(int(listener.load_balancer_port))
            if wanted:
                listener._instance_protocol = str(wanted).upper()

    create_classic = ELBBackend.create_load_balancer
    create_listeners = ELBBackend.create_load_balancer_listeners
    set_backend_policies = ELBBackend.set_load_balancer_policies_for_backend_server

    @functools.wraps(create_classic)
    def create_clb(self: Any, *args: Any, **kwargs: Any) -> Any:
        balancer = create_classic(self, *args, **kwargs)
        ports = kwargs.get("ports") if "ports" in kwargs else args[2]
        keep_instance_protocols(balancer, list(ports or []))
        first = balancer.listeners[0] if balancer.listeners else None
        digits = int(hashlib.sha256(balancer.name.encode()).hexdigest()[:8], 16) % 10**10
        prefix = "internal-" if balancer.scheme == "internal" else ""
        balancer.dns_name = f"{prefix}{balancer.name}-{digits}.{self.region_name}.elb.amazonaws.com"
        if balancer.health_check is None and first is not None:
            balancer.health_check = FakeHealthCheck(
                timeout="5",
                healthy_threshold="10",
                unhealthy_threshold="2",
                interval="30",
                target=f"TCP:{first.instance_port}",
            )
        return balancer

    @functools.wraps(create_listeners)
    def create_clb_listeners(self: Any, name: str, ports: list[dict[str, Any]]) -> Any:
        balancer = create_listeners(self, name, ports)
        if balancer is not None:
            keep_instance_protocols(balancer, ports)
        return balancer

    @functools.wraps(set_backend_policies)
    def set_backend(self: Any, load_balancer_name: str, instance_port: int, policies: list[str]) -> Any:
        balancer = self.get_load_balancer(load_balancer_name)
        if balancer is not None and not any(
            int(b.instance_port) == int(instance_port) for b in balancer.backends
        ):
            balancer.backends.append(FakeBackend(instance_port=str(instance_port)))
        return set_backend_policies(self, load_balancer_name, instance_port, policies)

    def delete_clb_listeners(self: Any, name: str, ports: list[Any]) -> Any:
        balancer = self.get_load_balancer(name)
        if balancer is not None:
            gone = {int(port) for port in ports}
            balancer.listeners = [x for x in balancer.listeners if int(x.load_balancer_port) not in gone]
        return balancer

    def add_tag(self: Any, key: str, value: str) -> None:
        if len(self.tags) >= MAX_CLASSIC_TAGS and key not in self.tags:
            raise TooManyTagsError()
        self.tags[key] = value

    setattr(LoadBalancer, "add_tag", add_tag)  # noqa: B010
    setattr(ELBBackend, "iter_tagged_resources", iter_tagged_resources)  # noqa: B010
    setattr(ELBBackend, "create_load_balancer", create_clb)  # noqa: B010
    setattr(ELBBackend, "create_load_balancer_listeners", create_clb_listeners)  # noqa: B010
    setattr(ELBBackend, "delete_load_balancer_listeners", delete_clb_listeners)  # noqa: B010
    setattr(ELBBackend, "set_load_balancer_policies_for_backend_server", set_backend)  # noqa: B010
    setattr(FakeListener, "instance_protocol", property(instance_protocol))  # noqa: B010


def _correct_nlb_dns_names() -> None:
    from moto.elbv2.models import ELBv2Backend  # noqa: PLC0415

    create_load_balancer = ELBv2Backend.create_load_balancer

    @functools.wraps(create_load_balancer)
    def create_lb(self: Any, *args: Any, **kwargs: Any) -> Any:
        balancer = create_load_balancer(self, *args, **kwargs)
        if balancer.type == "network":
            balancer.dns_name = nlb_dns_name(name=balancer.name, arn=balancer.arn, region=self.region_name)
        return balancer

    setattr(ELBv2Backend, "create_load_balancer", create_lb)  # noqa: B010

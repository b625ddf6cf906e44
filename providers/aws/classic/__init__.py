"""Classic Load Balancers (the ``elb`` API, 2012-06-01): what the upstream provider builds for a Service
without ``aws-load-balancer-type``, and what a Service gets here when it asks for ``classic``/``clb``
(or the cloud config makes that the default).

Kept apart from the NLB path (:mod:`providers.aws.build`, :mod:`providers.aws.deploy`) because a Classic
ELB is one resource with everything inline (listeners, health check, attributes, policies, instances),
where an NLB is a graph of parts; the two share the account facts (subnets, the backend security group)
and the tags that say what is whose.

* :mod:`.model`: the desired state, frozen data;
* :mod:`.build`: request + config + network facts → :class:`.model.ClassicStack` (pure);
* :mod:`.deploy`: compare with what AWS has and converge, with bounded calls; node syncs, delete,
  drift and orphans (on the NLB sweep's listing);
* :mod:`.live`: a described Classic ELB in the model's terms, and what differs (pure);
* :mod:`.converge`: the writes of one Classic ELB (create, and each difference);
* :mod:`.takeover`: the upstream provider's Classic ELB taken over in place;
* :mod:`.refusals`: no type change NLB ↔ Classic ELB in place (the address would change).
"""

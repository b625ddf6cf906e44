"""Classic Load Balancers (the ``elb`` API, 2012-06-01): what the upstream provider builds for a Service
without ``aws-load-balancer-type``, and what a Service gets here when it asks for ``classic``/``clb``
(or the cloud config makes that the default).

Kept apart from the NLB path (:mod:`providers.aws.build`, :mod:`providers.aws.deploy`) because a Classic
ELB is one resource with everything inline (listeners, health check, attributes, policies, instances),
where an NLB is a graph of parts; the two share the account facts (subnets, the backend security group)
and the tags that say what is whose.

* :mod:`.model`: the desired state, frozen data;
* :mod:`.build`: request + config + network facts → :class:`.model.ClassicStack` (pure);
* :mod:`.deploy`: compare with what AWS has and converge, with bounded calls.
"""

"""Deploying a :class:`~providers.aws.model.Stack`: one synthesizer per resource kind, run in order.

The aws-load-balancer-controller's ``pkg/deploy/elbv2`` is the model: each resource kind has a module
with a pure matcher (desired vs actual → what to do, tested without any AWS: ``tests/unit/
test_aws_matchers.py``) and a small class that carries the plan out with as few calls as it can.

* :mod:`.parts`: what was found (tags API listing), what is remembered per Service, what an ensure returns;
* :mod:`.context`: the cluster, scope and ownership rules every part applies;
* :mod:`.discovery`: the VPC and subnets, the tagging API listing, confirming what it lists;
* :mod:`.backend_security_group`: the cluster's shared backend group and its rule on node groups;
* :mod:`.security_groups`: a Service's frontend security group and its rules;
* :mod:`.target_groups`, :mod:`.load_balancer`, :mod:`.listeners`, :mod:`.targets`;
* :mod:`.sweep`: the bulk drift check and the orphan sweep;
* :mod:`.deployer`: runs them in dependency order (security groups, target groups, load balancer,
  listeners, targets, then the spec hash) and deletes in reverse.
"""

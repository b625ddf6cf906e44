"""``ccm sandbox``: the real controller against an embedded cluster and a fake AWS or GCE, on one machine.

Trying the controller should not need a cloud account or a cluster. The sandbox starts the same
etcd + kube-apiserver the tests use (:mod:`ccm.envtest`), a fake cloud seeded like a cluster's account
(moto as an AWS endpoint, :mod:`sandbox.aws`; or :mod:`fakegce` as the Compute Engine API,
:mod:`sandbox.gce`), and ``ccm run --cloud-provider=aws|gce`` as a separate process, exactly as it runs
in production. It lives outside the ``ccm`` package because it needs boto3, moto and fakegce, which the
controller core must never import (import-linter contracts): ``ccm`` finds the command through the
``ccm.commands`` entry point (:mod:`sandbox.command`), and the rest is imported when it runs.
"""

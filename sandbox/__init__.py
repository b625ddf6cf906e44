"""``ccm sandbox``: the real controller against an embedded cluster and a fake AWS, on one machine.

Trying the controller should not need a cloud account or a cluster. The sandbox starts the same
etcd + kube-apiserver the tests use (:mod:`ccm.envtest`), moto as an AWS endpoint seeded like a
cluster's account, and ``ccm run --cloud-provider=aws`` as a separate process, exactly as it runs in
production. It lives outside the ``ccm`` package because it needs boto3 and moto, which the controller
core must never import (an import-linter contract); ``ccm sandbox`` imports it only when called.
"""

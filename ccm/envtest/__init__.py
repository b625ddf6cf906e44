"""A real etcd + kube-apiserver on loopback, the envtest way.

The tests and ``ccm sandbox`` both need a real API server without a cluster. This package finds the
binaries (:mod:`.assets`), makes the certificates (:mod:`.pki`) and runs the two processes
(:mod:`.controlplane`). Nothing here is used by ``ccm run`` in production.
"""

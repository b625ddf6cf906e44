"""ccm: the Kubernetes side of the LoadBalancer provisioner.

It watches Services and Nodes, drives a cloud provider through the contract in
:mod:`ccm.cloudprovider`, and writes Service status. It knows no cloud SDK.
"""

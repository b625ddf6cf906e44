"""A checkpoint that cannot be reached is no checkpoint: the new leader ensures every Service.

A soak run killed the apiserver just as a leader started: the checkpoint's read raised a TLS error
(``SSLEOFError``) instead of answering None, the controller's start-up thread died before starting its
workers, and the leader never synced a Service.
"""

from __future__ import annotations

import socket

from kubernetes import client

from ccm.k8s.checkpoint import Checkpoint


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there any more: connections are refused


def test_a_checkpoint_the_apiserver_cannot_be_reached_for_reads_as_none() -> None:
    configuration = client.Configuration()
    configuration.host = f"https://127.0.0.1:{_closed_port()}"
    configuration.verify_ssl = False
    configuration.retries = 0
    with client.ApiClient(configuration) as api:
        checkpoint = Checkpoint(api=api, namespace="kube-system", name="ccm-lb-controller-state")

        assert checkpoint.read() is None

"""pytest plugin: moto as a real HTTP server on loopback, reached by boto3 through AWS_ENDPOINT_URL.

One server for the session (starting it costs a second); every test that uses ``aws`` starts from
an empty account because the fixture resets moto's state before the test.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from ccm.envtest.controlplane import free_port
from sandbox.moto_corrections import correct_moto

REGION = "us-east-1"
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server on 127.0.0.1, in this process, with moto's models corrected
    where they differ from AWS (:mod:`sandbox.moto_corrections`)."""
    correct_moto()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto account; boto3 clients made in the test reach it through standard configuration."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_server

"""The image works: the controller runs from the archive's file system as the chart runs it.

The archive hack/build-image wrote is loaded with buildah (as ``podman load`` would) and the chart's
container is started from it with ``buildah run --isolation=chroot``, as a kubelet would start the pod: the
chart's command and arguments (nothing from this checkout's virtualenv), its user and dropped capabilities,
its volumes (an emptyDir at /tmp, the cloud config's ConfigMap at /etc/ccm) and the ServiceAccount's token
where in-cluster configuration finds it, with the API server as the Kubernetes Service's address. Only two
things differ from a pod: the network is the host's, so the secure port is a free one on loopback, and AWS
is moto, reached with static credentials. The controller must elect itself on the chart's Lease, answer
the probes, and take a Service through create, a node change and delete; it must run as uid 65532 inside
the image's root, and write nothing into the image's file system.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane, free_port
from tests.deploy import chart
from tests.deploy.chart import FINALIZER, Release, lease
from tests.deploy.image import BUILD_TIMEOUT, Image
from tests.support import kube
from tests.support.aws import Network, register_node, seed_network, service_resources, targets_of
from tests.support.ccm_run import https_get

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT + 600)


@pytest.fixture
def network(aws: str) -> Network:
    """The seeded VPC, subnets and instances in the test's empty moto account."""
    return seed_network()


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def buildah(*args: str, check: bool = True) -> str:
    result = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=600, check=False)
    if check:
        assert result.returncode == 0, f"buildah {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture
def container(built_image: Image) -> Iterator[str]:
    """A working container of the archive's image (``buildah from oci-archive:``, what podman load reads)."""
    name = f"ccm-lb-test-{uuid.uuid4().hex[:10]}"
    buildah("from", "--name", name, f"oci-archive:{built_image.archive}")
    image_id = buildah("inspect", "--format", "{{.FromImageID}}", name)
    yield name
    buildah("rm", name, check=False)
    buildah("rmi", image_id, check=False)  # refused while another session's container uses it


def inside(container: str, path: str) -> str:
    """``path`` in the container with the image's symbolic links resolved (/var/run → /run in Debian).

    With chroot isolation buildah resolves a mount destination's links against the host's file system,
    so a volume for /var/run/... must be given as /run/... (a kubelet's runtime resolves them in the
    container).
    """
    root = Path(buildah("mount", container))
    try:
        resolved = Path("/")
        for part in Path(path).parts[1:]:
            candidate = root / str(resolved / part).lstrip("/")
            if candidate.is_symlink():
                target = Path(os.readlink(candidate))
                resolved = target if target.is_absolute() else resolved / target
            else:
                resolved = resolved / part
        return str(resolved)
    finally:
        buildah("umount", container, check=False)


def pod_mounts(
    release: Release, kube_api: client.ApiClient, control_plane: ControlPlane, pod: Path, container: str
) -> list[str]:
    """What the kubelet would mount into the chart's container, as ``host:container[:ro]`` volumes."""
    spec = chart.workload(release.docs)["spec"]["template"]["spec"]
    uid, gid = spec["securityContext"]["runAsUser"], spec["securityContext"]["fsGroup"]
    hosts: dict[str, Path] = {}
    for volume in spec["volumes"]:
        host = pod / volume["name"]
        host.mkdir(parents=True)
        if "emptyDir" in volume:
            os.chown(host, uid, gid)
        elif "configMap" in volume:
            config_map = next(
                d
                for d in chart.of_kind(release.docs, "ConfigMap")
                if d["metadata"]["name"] == volume["configMap"]["name"]
            )
            for key, value in config_map["data"].items():
                (host / key).write_text(value)
        else:
            raise AssertionError(f"the chart has a volume this test does not provide: {volume}")
        hosts[volume["name"]] = host
    mounts = [
        f"{hosts[m['name']]}:{m['mountPath']}{':ro' if m.get('readOnly') else ''}"
        for m in chart.container(release.docs)["volumeMounts"]
    ]
    # automountServiceAccountToken: the token, the cluster's CA and the namespace, where in-cluster
    # configuration reads them.
    assert spec["automountServiceAccountToken"] is True
    account = pod / "serviceaccount"
    account.mkdir()
    token = client.CoreV1Api(kube_api).create_namespaced_service_account_token(
        spec["serviceAccountName"],
        release.namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    )
    (account / "token").write_text(token.status.token)
    shutil.copy(control_plane.ca_cert, account / "ca.crt")
    (account / "namespace").write_text(release.namespace)
    for path in account.iterdir():
        path.chmod(0o644)
    return [*mounts, f"{account}:{inside(container, SERVICE_ACCOUNT_DIR)}:ro"]


def controller_process(port: int) -> int | None:
    """The pid of the controller's Python (``python3 /opt/ccm/bin/ccm run ... --secure-port=port``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        python = argv[0].endswith((b"/python3", b"/python"))
        if (
            python
            and len(argv) > 2
            and argv[1] == b"/opt/ccm/bin/ccm"
            and f"--secure-port={port}".encode() in argv
        ):
            return int(entry.name)
    return None


def ids(pid: int) -> dict[str, list[int]]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {
        line.split(":")[0]: [int(v) for v in line.split()[1:]]
        for line in status
        if line.startswith(("Uid:", "Gid:"))
    }


def test_the_controller_in_the_image_with_the_charts_arguments_takes_a_service_through_its_life(
    built_image: Image,
    container: str,
    release: Release,
    kube_api: client.ApiClient,
    control_plane: ControlPlane,
    aws: str,
    network: Network,
    tmp_path: Path,
) -> None:
    ns = release.namespace
    spec = chart.workload(release.docs)["spec"]["template"]["spec"]
    pod_container: dict[str, Any] = chart.container(release.docs)
    security = pod_container["securityContext"]
    args = chart.args_of(release.docs)
    assert chart.flag(args, "leader-elect") == "true"
    assert pod_container["ports"][0]["containerPort"] == int(chart.flag(args, "secure-port") or 0)
    port = free_port()
    args = [
        *(f"--secure-port={port}" if a.startswith("--secure-port=") else a for a in args),
        "--bind-address=127.0.0.1",
    ]
    server = urlparse(control_plane.server)
    env = {
        "KUBERNETES_SERVICE_HOST": str(server.hostname),
        "KUBERNETES_SERVICE_PORT": str(server.port),
        **{e["name"]: e["value"] for e in pod_container.get("env", [])},
        "AWS_ENDPOINT_URL": aws,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    hostname = f"{chart.workload(release.docs)['metadata']['name']}-5d8f7c-x2k4q"
    command = [
        "buildah",
        "run",
        "--isolation=chroot",
        f"--user={security['runAsUser']}:{security['runAsGroup']}",
        *(f"--cap-drop={c}" for c in security["capabilities"]["drop"]),
        f"--hostname={hostname}",
        *(f"--volume={m}" for m in pod_mounts(release, kube_api, control_plane, tmp_path / "pod", container)),
        *(f"--env={k}={v}" for k, v in env.items()),
        container,
        "--",
        *pod_container["command"],
        *args,
    ]
    nodes = [register_node(kube_api, instance) for instance in network.instances[:2]]
    log_path = tmp_path / "ccm.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def running() -> bool:
        assert proc.poll() is None, f"ccm exited with {proc.returncode}"
        return True

    try:
        # Running as the chart's user, inside the image's root file system.
        pid = kube.eventually(lambda: running() and controller_process(port), timeout=60, message="ccm")
        assert ids(pid) == {"Uid": [security["runAsUser"]] * 4, "Gid": [security["runAsGroup"]] * 4}
        # Its root is the image's: the virtualenv is there, this checkout and its virtualenv are not.
        root = Path(f"/proc/{pid}/root")
        assert os.readlink(root) != "/"
        assert (root / "opt/ccm/bin/ccm").is_file()
        assert not (root / str(chart.REPO).lstrip("/")).exists()

        held = kube.eventually(
            lambda: running() and (lease(kube_api, release) or {}).get("spec", {}).get("holderIdentity"),
            timeout=60,
            message=f"the Lease {ns}/{release.lease} held",
        )
        assert held.startswith(f"{hostname}_")

        def probe(path: str) -> bool:
            running()
            try:
                return https_get(port, path)[0] == 200
            except OSError:
                return False

        kube.eventually(lambda: probe("/healthz") and probe("/readyz"), timeout=60, message="the probes 200")

        # Create: the NLB's name in the status, the finalizer, the two nodes as targets.
        kube.create_service(kube_api, ns, "web")
        points = kube.eventually(
            lambda: kube.ingress(kube.get_service(kube_api, ns, "web")), timeout=60, message="an address"
        )
        lbs = boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]
        assert [lb["DNSName"] for lb in lbs] == [points[0]["hostname"]]
        assert FINALIZER in kube.get_service(kube_api, ns, "web")["metadata"]["finalizers"]
        assert targets_of(80) == sorted(iid for iid, _ in network.instances[:2])

        # A node change: the third instance becomes a target.
        nodes.append(register_node(kube_api, network.instances[2]))
        everyone = sorted(iid for iid, _ in network.instances)
        kube.eventually(lambda: targets_of(80) == everyone, timeout=60, message="the new node as a target")

        # Delete: the load balancer and everything of the Service go, then the finalizer.
        kube.delete_service(kube_api, ns, "web")
        kube.eventually(
            lambda: kube.get_service(kube_api, ns, "web") is None, timeout=60, message="the Service gone"
        )
        assert service_resources() == []
        assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
        assert proc.poll() is None
    finally:
        for name in nodes:
            kube.delete_node(kube_api, name)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        lines = log_path.read_text(errors="replace").splitlines()
        sys.stderr.write(f"--- {log_path.name} (last lines)\n" + "\n".join(lines[-30:]) + "\n")

    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text and "forbidden" not in text.lower(), text[-5000:]
    assert spec["securityContext"]["runAsNonRoot"] is True
    # readOnlyRootFilesystem: the controller wrote nothing into the image's file system.
    assert security["readOnlyRootFilesystem"] is True
    mounted = Path(buildah("mount", container))
    try:
        written = [
            str(Path(d, f).relative_to(mounted))
            for d, dirs, files in os.walk(mounted)
            for f in [*dirs, *files]
            if os.lstat(Path(d, f)).st_uid == security["runAsUser"]
        ]
    finally:
        buildah("umount", container, check=False)
    assert written == []

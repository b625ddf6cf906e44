"""How creation scales with workers: the AWS provider called by K threads, as K service workers do.

moto answers in a millisecond or two and, at its core, one request at a time; real AWS answers in tens
of milliseconds and many at once. A small threaded proxy in front of moto adds ``--latency`` to every
request, so that the figure shows whether the provider itself (its client pool, per-stack state, the
shared backend security group set-up) lets K workers overlap their waits, or serialises them.

    .venv/bin/python bench/provider_concurrency.py                       # 60 Services, K = 1, 4, 10
    .venv/bin/python bench/provider_concurrency.py --services 100 --latency 0.08 --workers 1 10 20

Not a test: it asserts nothing and does not run in hack/test.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import os
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType

import boto3
from moto.server import ThreadedMotoServer

from ccm.cloudprovider import LoadBalancerRequest, Node, ServicePort
from ccm.envtest.controlplane import free_port
from providers.aws.config import AWSConfig
from providers.aws.provider import AWSProvider

CLUSTER = "bench"


def latency_proxy(*, target_port: int, latency: float) -> tuple[http.server.ThreadingHTTPServer, int]:
    """Forward every request to moto after ``latency`` seconds, one thread per connection."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            time.sleep(latency)
            upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in {"connection", "host"}}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            upstream.close()

        do_GET = do_POST = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def seed(endpoint: str, *, nodes: int) -> tuple[Node, ...]:
    ec2 = boto3.client("ec2", endpoint_url=endpoint)
    tag = f"kubernetes.io/cluster/{CLUSTER}"
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    subnets = {}
    for index, az in enumerate(("us-east-1a", "us-east-1b")):
        subnets[az] = ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.0.{index + 1}.0/24",
            AvailabilityZone=az,
            TagSpecifications=[
                {
                    "ResourceType": "subnet",
                    "Tags": [{"Key": tag, "Value": "owned"}, {"Key": "kubernetes.io/role/elb", "Value": "1"}],
                }
            ],
        )["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(
        GroupName="nodes",
        Description="nodes",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": tag, "Value": "owned"}]}],
    )["GroupId"]
    made = []
    for i in range(nodes):
        az = ("us-east-1a", "us-east-1b")[i % 2]
        iid = ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnets[az], SecurityGroupIds=[sg]
        )["Instances"][0]["InstanceId"]
        made.append(Node(name=f"node-{i}", provider_id=f"aws:///{az}/{iid}", zone=az))
    return tuple(made)


def request(i: int, nodes: tuple[Node, ...]) -> LoadBalancerRequest:
    return LoadBalancerRequest(
        cluster_name=CLUSTER,
        namespace="bench",
        name=f"svc-{i}",
        uid=f"00000000-0000-0000-0000-{i:012d}",
        ports=(ServicePort(name="http", protocol="TCP", port=80, node_port=30000 + i),),
        nodes=nodes,
        annotations=MappingProxyType({}),
    )


def run(*, workers: int, services: int, nodes: int, moto_url: str, proxy_url: str) -> tuple[float, int]:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).read()
    members = seed(moto_url, nodes=nodes)
    os.environ["AWS_ENDPOINT_URL"] = proxy_url
    provider = AWSProvider(cluster_name=CLUSTER, config=AWSConfig())
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda i: provider.ensure_load_balancer(request=request(i, members)), range(services)))
    return time.monotonic() - started, provider.clients.total_calls()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=60)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every AWS request")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 10])
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    proxy, proxy_port = latency_proxy(target_port=port, latency=args.latency)
    try:
        base = None
        out = sys.stdout.write
        out(f"{args.services} Services x {args.nodes} nodes, {args.latency * 1000:.0f} ms per AWS request\n")
        out(f"{'workers':>8} {'seconds':>8} {'calls':>6} {'Services/s':>10} {'speed-up':>8}\n")
        for workers in args.workers:
            seconds, calls = run(
                workers=workers,
                services=args.services,
                nodes=args.nodes,
                moto_url=f"http://127.0.0.1:{port}",
                proxy_url=f"http://127.0.0.1:{proxy_port}",
            )
            base = base or seconds
            rate, speed_up = args.services / seconds, base / seconds
            out(f"{workers:>8} {seconds:>8.1f} {calls:>6} {rate:>10.1f} {speed_up:>7.1f}x\n")
    finally:
        proxy.shutdown()
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

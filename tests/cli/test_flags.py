"""Flags of ``ccm run``: Go-style values as upstream manifests write them, and bad flags.

Parsing is tested on the parser; every bad flag is tested through the real process, which must exit 2
with exactly one line on stderr naming the flag and the bad value (no traceback, no log lines).
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ccm import flags
from ccm.envtest.controlplane import ControlPlane
from tests.support.ccm_run import REPO, ccm_command

# -- parsing -----------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return flags.new_parser().parse_args(["run", "--cloud-provider=fake", *argv])


def test_go_style_values_from_upstream_manifests_are_parsed() -> None:
    args = parse(
        "--leader-elect=false",
        "--leader-elect-lease-duration=15s",
        "--leader-elect-renew-deadline=10s",
        "--leader-elect-retry-period=2s",
        "--v=2",
        "--concurrent-service-syncs=3",
        "--configure-cloud-routes=false",
        "--allocate-node-cidrs=true",
        "--cluster-cidr=10.0.0.0/16",
        "--use-service-account-credentials=true",
        "--load-balancer-resync-period=10m",
    )

    assert args.leader_elect is False
    assert args.leader_elect_lease_duration == 15.0
    assert args.leader_elect_renew_deadline == 10.0
    assert args.leader_elect_retry_period == 2.0
    assert args.v == 2
    assert args.concurrent_service_syncs == 3
    assert args.configure_cloud_routes is False
    assert args.allocate_node_cidrs is True
    assert args.load_balancer_resync_period == 600.0


def test_defaults_are_upstreams() -> None:
    args = parse()

    assert args.leader_elect is True
    assert (args.leader_elect_lease_duration, args.leader_elect_renew_deadline) == (15.0, 10.0)
    assert args.leader_elect_retry_period == 2.0
    assert args.leader_elect_resource_lock == "leases"
    assert args.secure_port == 10258
    assert args.bind_address == "0.0.0.0"
    assert args.concurrent_service_syncs == 1
    assert (args.kube_api_qps, args.kube_api_burst) == (20.0, 30)
    assert args.cluster_name == "kubernetes"
    assert args.load_balancer_resync_period == 600.0
    assert args.load_balancer_orphan_grace_period == 600.0


def test_the_resync_period_and_the_orphan_grace_are_settable() -> None:
    args = parse("--load-balancer-resync-period=1s", "--load-balancer-orphan-grace-period=2m30s")

    assert (args.load_balancer_resync_period, args.load_balancer_orphan_grace_period) == (1.0, 150.0)


def test_a_boolean_flag_without_a_value_is_true() -> None:
    assert parse("--leader-elect").leader_elect is True
    assert parse("--allocate-node-cidrs").allocate_node_cidrs is True


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_every_spelling_go_accepts_for_true_is_true(value: str) -> None:
    assert flags.go_bool(value) is True


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_every_spelling_go_accepts_for_false_is_false(value: str) -> None:
    assert flags.go_bool(value) is False


@pytest.mark.parametrize("value", ["yes", "no", "on", "", "tRuE", "maybe"])
def test_spellings_go_rejects_are_rejected_as_booleans(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid boolean"):
        flags.go_bool(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("15s", 15.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("2", 2.0),
        ("0", 0.0),
        ("-1s", -1.0),
        ("100us", 1e-4),
        ("100µs", 1e-4),
    ],
)
def test_go_durations_are_read_in_seconds(value: str, seconds: float) -> None:
    assert flags.go_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["abc", "", "-", "15x", "s", "nan", "inf", "1e3", "15 s", "1m-3s", "0x10"])
def test_what_is_not_a_go_duration_is_rejected(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        flags.go_duration(value)


# -- bad flags, through the process --------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A command line that must fail; ``names`` must all appear in the one line of stderr."""

    flags: tuple[str, ...]
    names: tuple[str, ...]
    with_cloud_provider: bool = True


# The process must be tested for each kind of failure: argparse's (unknown flags, bad values) and each
# check ``ccm run`` makes itself. More bad values of the argparse kind are checked in-process below.
BAD = {
    "unknown flag": Bad(("--no-such-flag=1",), ("unrecognized arguments", "--no-such-flag=1")),
    "unknown flag before a missing provider": Bad(
        ("--no-such-flag",), ("unrecognized arguments", "--no-such-flag"), with_cloud_provider=False
    ),
    "boolean that is not one": Bad(("--leader-elect=maybe",), ("--leader-elect", "'maybe'")),
    "duration that is not one": Bad(
        ("--leader-elect-lease-duration=abc",), ("--leader-elect-lease-duration", "'abc'")
    ),
    "port out of range": Bad(("--secure-port=70000",), ("--secure-port", "'70000'")),
    "missing cloud provider": Bad((), ("--cloud-provider", "required"), with_cloud_provider=False),
    "unknown cloud provider": Bad(("--cloud-provider=nope",), ("--cloud-provider", "'nope'")),
    "unknown controller": Bad(("--controllers=*,bogus",), ("--controllers", "'bogus'")),
    "lease shorter than the renew deadline": Bad(
        ("--leader-elect-lease-duration=5s", "--leader-elect-renew-deadline=10s"),
        ("--leader-elect-lease-duration=5s", "--leader-elect-renew-deadline=10s"),
    ),
    "renew deadline within the retry period": Bad(
        ("--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=2s"),
        ("--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=2s"),
    ),
    "retry period under a second": Bad(
        ("--leader-elect-retry-period=500ms",), ("--leader-elect-retry-period=0.5s",)
    ),
    "missing kubeconfig": Bad(
        ("--kubeconfig=/nonexistent/kubeconfig",), ("--kubeconfig=/nonexistent/kubeconfig",)
    ),
    "missing cloud config": Bad(
        ("--cloud-config=/nonexistent/gce.conf",), ("--cloud-config=/nonexistent/gce.conf",)
    ),
    "key without a certificate": Bad(
        ("--tls-private-key-file=/nonexistent/tls.key",), ("--tls-private-key-file=/nonexistent/tls.key",)
    ),
}


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--cloud-provider=fake", "surplus"], ("unrecognized arguments", "surplus")),
        (
            ["--cloud-provider=fake", "--leader-elect-renew-deadline=nan"],
            ("--leader-elect-renew-deadline", "'nan'"),
        ),
        (["--cloud-provider=fake", "--secure-port=-1"], ("--secure-port", "'-1'")),
        (["--cloud-provider=fake", "--v=abc"], ("--v", "'abc'")),
        (["--cloud-provider=fake", "--concurrent-service-syncs=0"], ("--concurrent-service-syncs", "'0'")),
        (
            ["--cloud-provider=fake", "--load-balancer-resync-period=0s"],
            ("--load-balancer-resync-period", "'0s'"),
        ),
        (
            ["--cloud-provider=fake", "--load-balancer-orphan-grace-period=soon"],
            ("--load-balancer-orphan-grace-period", "'soon'"),
        ),
        (
            ["--cloud-provider=fake", "--leader-elect-resource-lock=configmaps"],
            ("--leader-elect-resource-lock", "'configmaps'"),
        ),
        (["--cloud-provider=fake", "--logging-format=xml"], ("--logging-format", "'xml'")),
        (["--cloud-provider=fake", "--allocate-node-cidrs=yes"], ("--allocate-node-cidrs", "'yes'")),
        (["--cloud-provider=fake", "--kube-api-burst=0"], ("--kube-api-burst", "'0'")),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag_and_the_value_and_exit_2(
    argv: list[str], names: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        flags.new_parser().parse_args(["run", *argv])

    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.splitlines()) == 1, err
    for name in names:
        assert name in err, err


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def outcomes(control_plane: ControlPlane) -> Iterator[dict[str, Outcome]]:
    """Run every bad command line at once (each is a Python start-up, about a second)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, bad in BAD.items():
            base = ["--cloud-provider=fake"] if bad.with_cloud_provider else []
            argv = [*base, f"--kubeconfig={control_plane.kubeconfig}", "--secure-port=0", *bad.flags]
            procs[name] = subprocess.Popen(
                ccm_command(*argv),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        results = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            results[name] = Outcome(
                proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
            )
        yield results
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def assert_one_line_naming(outcome: Outcome, names: tuple[str, ...]) -> None:
    lines = outcome.stderr.splitlines()
    assert outcome.code == 2, outcome
    assert len(lines) == 1, f"expected one line on stderr, got:\n{outcome.stderr}"
    assert lines[0].startswith("ccm"), lines[0]
    assert "error:" in lines[0], lines[0]
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    assert outcome.stdout == ""


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_flag_exits_2_with_one_line_naming_the_flag_and_the_value(
    case: str, outcomes: dict[str, Outcome]
) -> None:
    assert_one_line_naming(outcomes[case], BAD[case].names)


# -- the fake provider's --cloud-config ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("hostname-suffix = x.invalid\n", "line 1: expected a section header"),
        ("[Global]\nhostname-suffix\n", "line 2: expected key = value, got 'hostname-suffix'"),
        ("[Global]\nhostname-suffix = Not_A_DNS_Name\n", "hostname-suffix='Not_A_DNS_Name'"),
        ("[Global]\nhostname-suffix = a\n[Global]\n", "section 'Global' already exists"),
    ],
)
def test_a_malformed_cloud_config_exits_2_with_one_line_naming_the_file_and_the_problem(
    tmp_path: Path, control_plane: ControlPlane, text: str, problem: str
) -> None:
    path = tmp_path / "gce.conf"
    path.write_text(text)

    proc = subprocess.run(
        ccm_command(
            "--cloud-provider=fake",
            f"--cloud-config={path}",
            f"--kubeconfig={control_plane.kubeconfig}",
            "--secure-port=0",
        ),
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )

    outcome = Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    assert_one_line_naming(outcome, (f"--cloud-config={path}", problem))


def test_the_fake_provider_reads_the_hostname_suffix_from_the_global_section(tmp_path: Path) -> None:
    from providers.fake import new

    path = tmp_path / "gce.conf"
    path.write_text('; comment\n[global]\nHostname-Suffix = "a.fake.invalid"  ; inline\nzone = z\n')

    assert new(cluster_name="c", cloud_config=str(path)).hostname_suffix == "a.fake.invalid"
    assert new(cluster_name="c").hostname_suffix == "lb.fake.invalid"


def test_the_fake_provider_rejects_a_cloud_config_it_cannot_read(tmp_path: Path) -> None:
    from providers.fake import new

    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe[Global]\n")

    with pytest.raises(ValueError, match=f"--cloud-config={tmp_path}: cannot read: Is a directory"):
        new(cluster_name="c", cloud_config=str(tmp_path))
    with pytest.raises(ValueError, match=f"--cloud-config={binary}: not UTF-8 text"):
        new(cluster_name="c", cloud_config=str(binary))

"""Fixtures: IAM enforced in the test's moto account (``aws_iam``) and the network the policy is tried on
(``aws_network``), both defined in :mod:`tests.iam.aws_policy` (tests/deploy uses them too)."""

from tests.iam.aws_policy import aws_iam_fixture, aws_network_fixture

__all__ = ["aws_iam_fixture", "aws_network_fixture"]

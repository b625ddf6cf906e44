# The AWS identity of the ccm-lb controller: IAM policies with exactly the calls the AWS provider
# makes, limited to this cluster's resources by the kubernetes.io/cluster/<cluster_name> tag
# (policy.json; classic-policy.json for Classic ELBs; upstream-policy.json for the upstream provider's
# load balancers of Services it replaces or takes over; proven against the provider by
# tests/iam/test_aws_*.py), and an IAM role for the controller's ServiceAccount (IRSA) with all three.

data "aws_partition" "current" {}

locals {
  # arn:<partition>:iam::<account>:oidc-provider/<host>/<path> → <host>/<path>, the prefix of the
  # token's condition keys (<host>/<path>:sub and :aud).
  oidc_host   = element(split(":oidc-provider/", var.oidc_provider_arn), 1)
  role_name   = coalesce(var.role_name, substr("ccm-lb-${var.cluster_name}", 0, 64))
  policy_name = coalesce(var.policy_name, substr("ccm-lb-${var.cluster_name}", 0, 128))

  policy = templatefile("${path.module}/policy.json", {
    cluster_name = var.cluster_name
    partition    = data.aws_partition.current.partition
  })
  # A second managed policy: deleting what the upstream cloud provider built for a Service this
  # controller replaced (upstream-policy.json); policy.json has no room left (6,144 characters).
  upstream_policy = templatefile("${path.module}/upstream-policy.json", {
    cluster_name = var.cluster_name
    partition    = data.aws_partition.current.partition
  })
  # A third: the Classic ELBs of Services that ask for one (or that the upstream provider built and this
  # controller took over), classic-policy.json.
  classic_policy = templatefile("${path.module}/classic-policy.json", {
    cluster_name = var.cluster_name
    partition    = data.aws_partition.current.partition
  })
  trust_policy = templatefile("${path.module}/trust-policy.json", {
    oidc_provider_arn = var.oidc_provider_arn
    oidc_host         = local.oidc_host
    namespace         = var.namespace
    service_account   = var.service_account
  })
}

resource "aws_iam_policy" "controller" {
  name        = local.policy_name
  path        = var.iam_path
  description = "ccm-lb load balancer controller of cluster ${var.cluster_name}: NLBs, target groups and security groups tagged kubernetes.io/cluster/${var.cluster_name}=owned."
  policy      = local.policy
  tags        = var.tags
}

resource "aws_iam_policy" "upstream" {
  name        = "${substr(local.policy_name, 0, 119)}-upstream"
  path        = var.iam_path
  description = "ccm-lb load balancer controller of cluster ${var.cluster_name}: deleting the upstream cloud provider's load balancers, target groups and security group rules of Services it replaced."
  policy      = local.upstream_policy
  tags        = var.tags
}

resource "aws_iam_policy" "classic" {
  name        = "${substr(local.policy_name, 0, 120)}-classic"
  path        = var.iam_path
  description = "ccm-lb load balancer controller of cluster ${var.cluster_name}: Classic ELBs tagged kubernetes.io/cluster/${var.cluster_name}=owned."
  policy      = local.classic_policy
  tags        = var.tags
}

resource "aws_iam_role" "controller" {
  name                 = local.role_name
  path                 = var.iam_path
  description          = "ccm-lb load balancer controller of cluster ${var.cluster_name}, assumed by ${var.namespace}/${var.service_account} through IRSA."
  assume_role_policy   = local.trust_policy
  permissions_boundary = var.permissions_boundary
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "controller" {
  role       = aws_iam_role.controller.name
  policy_arn = aws_iam_policy.controller.arn
}

resource "aws_iam_role_policy_attachment" "upstream" {
  role       = aws_iam_role.controller.name
  policy_arn = aws_iam_policy.upstream.arn
}

resource "aws_iam_role_policy_attachment" "classic" {
  role       = aws_iam_role.controller.name
  policy_arn = aws_iam_policy.classic.arn
}

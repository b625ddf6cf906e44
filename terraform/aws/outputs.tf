output "role_arn" {
  description = "ARN of the controller's IAM role: the eks.amazonaws.com/role-arn annotation of its ServiceAccount."
  value       = aws_iam_role.controller.arn
}

output "role_name" {
  description = "Name of the controller's IAM role."
  value       = aws_iam_role.controller.name
}

output "policy_arn" {
  description = "ARN of the controller's IAM policy (attached to the role)."
  value       = aws_iam_policy.controller.arn
}

output "upstream_policy_arn" {
  description = "ARN of the controller's second IAM policy, for the upstream cloud provider's load balancers of replaced Services (attached to the role)."
  value       = aws_iam_policy.upstream.arn
}

output "policy_json" {
  description = "The rendered policy document, as attached."
  value       = local.policy
}

output "service_account_annotations" {
  description = "Annotations for the controller's ServiceAccount (Helm: serviceAccount.annotations)."
  value = {
    "eks.amazonaws.com/role-arn" = aws_iam_role.controller.arn
  }
}

output "upstream_policy_json" {
  description = "The rendered upstream-policy.json, as attached."
  value       = local.upstream_policy
}

output "classic_policy_arn" {
  description = "ARN of the controller's third IAM policy, for Classic ELBs (attached to the role)."
  value       = aws_iam_policy.classic.arn
}

output "classic_policy_json" {
  description = "The rendered classic-policy.json, as attached."
  value       = local.classic_policy
}

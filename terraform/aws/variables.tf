variable "cluster_name" {
  description = "Name of the cluster, exactly as the controller's --cluster-name (or ClusterID in --cloud-config): the policy only reaches resources tagged kubernetes.io/cluster/<cluster_name>."
  type        = string

  validation {
    condition     = can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be 1 to 100 letters, digits, hyphens or underscores, starting with a letter or digit (as EKS cluster names)."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC identity provider (EKS: aws_iam_openid_connect_provider, or the eks module's oidc_provider_arn); its host is taken from the ARN."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/[^/].*$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN: arn:<partition>:iam::<account>:oidc-provider/<host>/<path>."
  }
}

variable "namespace" {
  description = "Kubernetes namespace the controller runs in (the Helm release namespace)."
  type        = string
  default     = "kube-system"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label."
  }
}

variable "service_account" {
  description = "Name of the controller's Kubernetes ServiceAccount (the chart's serviceAccount.name, by default the release's full name)."
  type        = string
  default     = "ccm-lb"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.service_account))
    error_message = "service_account must be a DNS-1123 subdomain."
  }
}

variable "role_name" {
  description = "Name of the IAM role; null means ccm-lb-<cluster_name> (cut to 64 characters)."
  type        = string
  default     = null

  validation {
    condition     = var.role_name == null || can(regex("^[\\w+=,.@-]{1,64}$", var.role_name))
    error_message = "role_name must be null or 1 to 64 letters, digits or +=,.@_- characters."
  }
}

variable "policy_name" {
  description = "Name of the IAM policy; null means ccm-lb-<cluster_name> (cut to 128 characters)."
  type        = string
  default     = null

  validation {
    condition     = var.policy_name == null || can(regex("^[\\w+=,.@-]{1,128}$", var.policy_name))
    error_message = "policy_name must be null or 1 to 128 letters, digits or +=,.@_- characters."
  }
}

variable "iam_path" {
  description = "IAM path of the role and the policy."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([\\x21-\\x7e]{0,510}/)?$", var.iam_path))
    error_message = "iam_path must be / or start and end with /."
  }
}

variable "permissions_boundary" {
  description = "ARN of a managed policy to set as the role's permissions boundary; null for none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", var.permissions_boundary))
    error_message = "permissions_boundary must be null or an IAM policy ARN."
  }
}

variable "tags" {
  description = "Tags for the role and the policy (the AWS resources the controller creates are tagged by the controller, not here)."
  type        = map(string)
  default     = {}
}

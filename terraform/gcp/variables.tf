variable "project_id" {
  description = "The project of the load balancers (and of the controller's Google service account)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "role_id" {
  description = "ID of the custom role (in each project it is created in)."
  type        = string
  default     = "ccmLbController"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.]{3,64}$", var.role_id))
    error_message = "role_id must be 3 to 64 letters, digits, underscores or periods."
  }
}

variable "service_account_id" {
  description = "Account ID of the controller's Google service account (the part before @)."
  type        = string
  default     = "ccm-lb"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.service_account_id))
    error_message = "service_account_id must be 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
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

variable "kubernetes_service_account" {
  description = "Name of the controller's Kubernetes service account (the chart's default is the release's full name)."
  type        = string
  default     = "ccm-lb"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.kubernetes_service_account))
    error_message = "kubernetes_service_account must be a DNS-1123 subdomain."
  }
}

variable "cluster_project_id" {
  description = "Project of the GKE cluster, whose workload identity pool (<project>.svc.id.goog) holds the Kubernetes service account; null means project_id."
  type        = string
  default     = null

  validation {
    condition     = var.cluster_project_id == null || can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.cluster_project_id))
    error_message = "cluster_project_id must be null or a project ID."
  }
}

variable "network_project_id" {
  description = "Shared VPC host project of the network (gce.conf network-project-id); null means project_id. When it differs, the network permissions go to a role in that project and the others stay in project_id."
  type        = string
  default     = null

  validation {
    condition     = var.network_project_id == null || can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.network_project_id))
    error_message = "network_project_id must be null or a project ID."
  }
}

# The Google identity of the ccm-lb controller: a custom role with exactly the Compute Engine permissions
# the GCP provider uses (permissions.json, checked against the provider by tests/iam/test_gcp_role.py),
# a service account holding it, and the Workload Identity binding that lets the controller's Kubernetes
# service account act as that service account.

locals {
  permissions     = jsondecode(file("${path.module}/permissions.json"))
  network_project = coalesce(var.network_project_id, var.project_id)
  cluster_project = coalesce(var.cluster_project_id, var.project_id)
  shared_vpc      = local.network_project != var.project_id

  # One project: one role with everything. Shared VPC: the network's part goes to the host project.
  project_permissions = local.shared_vpc ? local.permissions.project : sort(concat(local.permissions.project, local.permissions.network_project))
}

resource "google_project_iam_custom_role" "controller" {
  project     = var.project_id
  role_id     = var.role_id
  title       = "ccm-lb load balancer controller"
  description = "Passthrough L4 load balancers for Kubernetes Services (ccm-lb): exactly the permissions the controller uses."
  stage       = "GA"
  permissions = local.project_permissions
}

resource "google_service_account" "controller" {
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "ccm-lb load balancer controller"
  description  = "Used by the ccm-lb controller through Workload Identity (${var.namespace}/${var.kubernetes_service_account})."
}

resource "google_project_iam_member" "controller" {
  project = var.project_id
  role    = google_project_iam_custom_role.controller.id
  member  = "serviceAccount:${google_service_account.controller.email}"
}

resource "google_project_iam_custom_role" "network" {
  count = local.shared_vpc ? 1 : 0

  project     = local.network_project
  role_id     = var.role_id
  title       = "ccm-lb load balancer controller (network)"
  description = "Firewall rules and network use of ccm-lb load balancers in service project ${var.project_id}."
  stage       = "GA"
  permissions = local.permissions.network_project
}

resource "google_project_iam_member" "network" {
  count = local.shared_vpc ? 1 : 0

  project = local.network_project
  role    = google_project_iam_custom_role.network[0].id
  member  = "serviceAccount:${google_service_account.controller.email}"
}

# Workload Identity: the Kubernetes service account <namespace>/<name> may act as the Google one.
resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = google_service_account.controller.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.cluster_project}.svc.id.goog[${var.namespace}/${var.kubernetes_service_account}]"
}

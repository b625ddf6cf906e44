output "service_account_email" {
  description = "Email of the controller's Google service account."
  value       = google_service_account.controller.email
}

output "service_account_annotations" {
  description = "Annotations for the controller's Kubernetes service account (Helm value serviceAccount.annotations)."
  value = {
    "iam.gke.io/gcp-service-account" = google_service_account.controller.email
  }
}

output "helm_set_argument" {
  description = "The same annotation as a helm --set argument."
  value       = "serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account=${google_service_account.controller.email}"
}

output "role_id" {
  description = "ID of the custom role in project_id (projects/<project>/roles/<role_id>)."
  value       = google_project_iam_custom_role.controller.id
}

output "network_role_id" {
  description = "ID of the custom role in the shared VPC host project, or null without shared VPC."
  value       = local.shared_vpc ? google_project_iam_custom_role.network[0].id : null
}

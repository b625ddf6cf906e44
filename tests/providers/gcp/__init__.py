"""GCP provider tests: the pure builder, the cloud-config reader, the annotation registry."""

"""GCP provider: passthrough L4 load balancers on backend services (filled in by the GCP provider work)."""

"""GCP provider: passthrough L4 load balancers on backend services.

Every module here imports ``google.cloud.compute_v1``; :mod:`providers.gcp.lazy_compute` makes that
import load only what the provider uses (0.46 s of CPU and ~40 MiB less per process start), so it is
installed before any of them is imported.
"""

from providers.gcp import lazy_compute

lazy_compute.install()

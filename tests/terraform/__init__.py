"""Static checks of every Terraform module under terraform/: parsing, formatting, checkov, conventions."""

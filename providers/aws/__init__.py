"""AWS provider: NLBs with instance targets on the NodePorts (filled in by the AWS provider work)."""

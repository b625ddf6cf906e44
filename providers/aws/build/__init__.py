"""Building the desired AWS resources of one Service, one module per concern (see :mod:`providers.aws.builder`).

Every module is pure: no AWS call, no I/O. :mod:`.stack` puts the pieces together.
"""

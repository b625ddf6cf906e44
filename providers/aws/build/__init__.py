"""Building the desired AWS resources of one Service, one module per concern.

:mod:`providers.aws.builder` is the public face.

Every module is pure: no AWS call, no I/O. :mod:`.stack` puts the pieces together.
"""

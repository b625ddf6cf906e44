"""What tests share: helpers any test module may import, in one place.

The rule: a module of the tests imports shared code from here (or from a helper module of its own
directory, such as ``tests/deploy/chart.py``), never from a ``conftest.py`` or a ``test_*.py`` module
(``tests/unit/test_test_layout.py`` checks it). Fixtures live in conftest files, which may take them
from a helper module (``tests/iam/aws_policy.py``'s serve tests/iam and tests/deploy), and, when every
area needs them, in the pytest plugins of ``tests/plugins`` (``ccm_run``: the processes of a test).

* :mod:`tests.support.kube`: the real API server: builders, waiting, reading events;
* :mod:`tests.support.ccm_run`: ``ccm run`` as a process (the command line, starting, probing, stopping);
* :mod:`tests.support.aws`: the moto account seeded like a cluster's, its inspection, the AWS provider;
* :mod:`tests.support.gcp`: the fake GCE project seeded like a cluster's, the GCP provider;
* :mod:`tests.support.fakegce`: the real compute_v1 clients on the fake GCE server, and request bodies;
* :mod:`tests.support.golden`: golden files of built objects (stacks, requests);
* :mod:`tests.support.tcp_proxy`: a proxy in front of the API server that a test can cut off;
* :mod:`tests.support.controller`: the type of the controller tests' ``make_controller`` fixture;
* :mod:`tests.support.checkov`: running checkov and reading its reports.
"""

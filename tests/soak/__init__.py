"""The chaos soak of issue 17: the whole system (controller replicas, apiserver, cloud, users) shaken at once.

``hack/soak`` (``python -m tests.soak``) runs it for as long as asked; ``tests/soak/test_soak.py`` runs a
short variant with a fixed seed in the normal suite. Modules: :mod:`tests.soak.runner` (phases, figures),
:mod:`tests.soak.workload` (the seeded Services and Nodes), :mod:`tests.soak.faults` (what breaks, when),
:mod:`tests.soak.clouds` (moto behind :mod:`tests.soak.awsproxy`, or the fake GCE), :mod:`tests.soak.replicas`
(two leader-elected ``ccm run``), :mod:`tests.soak.apiproxy` (the path to the apiserver that can be cut) and
:mod:`tests.soak.invariants` (what must hold, continuously and at the end).
"""

"""The AWS provider (``--cloud-provider=aws``): an NLB per Service, or a Classic ELB when the Service asks
(:mod:`providers.aws.kind`), with instance targets on the NodePorts; the upstream provider's load
balancers are taken over in place. :mod:`.provider` is the contract; :mod:`.build` and
:mod:`.deploy` the NLB's pure model and its deployer, :mod:`.classic` the same for Classic ELBs."""

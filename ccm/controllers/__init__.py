"""Controllers: today the service controller (``service-lb-controller``, alias ``service``)."""

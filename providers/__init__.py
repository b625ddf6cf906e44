"""Cloud providers, one package per cloud, found through the ``ccm.providers`` entry points."""

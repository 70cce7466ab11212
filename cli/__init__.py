"""Command line of geometry-probe, installed as ``geometry_probe.cli`` (``geoprobe``)."""

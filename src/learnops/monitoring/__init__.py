"""Monitoring of the decision service: rolling metrics, drift tests, alerts (``metrics``) and their
figures (``plots``)."""

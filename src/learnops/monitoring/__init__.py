"""Monitoring of the decision service: rolling metrics and alerts (``metrics``), the feature-drift
test shared by alerts, the report, ``learnops monitor drift`` (``cli``) and the server's
``/metrics`` gauges (``drift``: :func:`~learnops.monitoring.drift.drift_gauges`), and their
figures (``plots``)."""

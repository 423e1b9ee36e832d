"""Model lifecycle: the version registry, the deploy gates and the retrain loop
(export → train → evaluate → gate → deploy)."""

"""staticsite-operator: a CRD-first operator (StaticSite -> ConfigMap, Deployment, Service)."""

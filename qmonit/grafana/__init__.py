"""Grafana: the dashboards as code (grafanalib), their delivery and provisioning."""

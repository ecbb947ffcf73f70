"""What Flywheel exports for operators: the Prometheus metric catalog shared by serving, the drift exporter,
the deploy kit's alert rules and the Grafana dashboards."""

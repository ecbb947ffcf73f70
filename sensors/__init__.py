"""Sensors: Kafka lag, drift, canary analysis, run failure."""

SENSORS: list = []

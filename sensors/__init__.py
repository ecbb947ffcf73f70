"""Sensors: Kafka lag, drift, canary analysis, run failure."""

from sensors.kafka_lag import kafka_lag_sensor

SENSORS: list = [kafka_lag_sensor]

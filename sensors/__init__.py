"""Sensors: Kafka lag, drift, canary analysis, run failure."""

from sensors.canary import canary_analysis_sensor
from sensors.drift import drift_sensor, retrain_failure_sensor
from sensors.kafka_lag import kafka_lag_sensor

SENSORS: list = [kafka_lag_sensor, drift_sensor, retrain_failure_sensor, canary_analysis_sensor]

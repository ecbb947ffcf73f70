"""Drift monitoring: the latest window of the events (and predictions) topic against the champion's training data.

stats      PSI, KS, chi-squared, Jensen-Shannon, multiple-testing corrections, AUC (vectorized)
profile    reference profiles (bins, categories, sorted samples) and current counts, types from the spec
check      per-column statistics and the dataset-level decision (the rule is stated there)
reference  the champion (MLflow alias) -> its lakeFS commit -> the train split, profiled once and cached
window     the latest events / predictions from Kafka, checked against the spec like ingestion does
report     the self-contained HTML report (inline SVG)
guard      when a drift may launch a retraining run (cooldown, daily budget, breaker; pipelines.guard)
stage      run_check (the asset's and sensor's entry) and the evidence snapshot on lakeFS
"""

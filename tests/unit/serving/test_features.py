"""Serving's DataFrame-free featurizer gives exactly what training's Preprocessor.transform gives."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipelines.serving.features import RowFeaturizer
from pipelines.training.preprocess import Preprocessor
from pipelines.training.synthetic import synthetic_table
from tests.unit.serving.models import SPEC


def _plain(value: object) -> object:
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def test_rows_give_the_preprocessors_inputs_nulls_unknowns_and_extremes_included() -> None:
    table = synthetic_table(SPEC, 2000, seed=4)
    prep = Preprocessor.fit(SPEC, table)
    frame = table.head(300).copy()
    frame.loc[frame.index[:5], "merchant_category"] = "not-a-category"  # unknown -> index 0
    frame.loc[frame.index[5:10], "amount"] = 1e12  # clipped at +20 standard deviations
    frame["device_age_days"] = frame["device_age_days"].astype("Int64")
    rows = [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
    expected_dense, expected_cats = prep.transform(frame)
    dense, cats = RowFeaturizer(prep).transform(rows)
    assert dense.dtype == expected_dense.dtype and cats.dtype == expected_cats.dtype
    np.testing.assert_array_equal(cats, expected_cats)
    np.testing.assert_allclose(dense, expected_dense, rtol=0, atol=1e-6)
    assert (cats[:5, list(prep.vocabularies).index("merchant_category")] == 0).all()
    assert any(row["device_age_days"] is None for row in rows)  # the null indicator path ran

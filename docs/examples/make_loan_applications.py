"""Write a CSV of synthetic loan applications for docs/examples/loan_applications.yaml.

    python docs/examples/make_loan_applications.py --rows 5000 --out loans.csv [--seed 4]

Learnable on purpose: the larger the loan against the income, the likelier a default. Event times are spread
over the days before now, so the drift window and training window see recent data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


def applications(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.uniform(20_000, 200_000, rows).round(2)
    amount = rng.uniform(1_000, 120_000, rows).round(2)
    risk = amount / income + rng.normal(0, 0.15, rows)
    end = pd.Timestamp(time.time(), unit="s", tz="UTC").floor("s")
    times = pd.date_range(end=end, periods=rows, freq="17s")
    return pd.DataFrame(
        {
            "application_id": [f"app-{seed}-{i:06d}" for i in range(rows)],
            "applied_at": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "defaulted": (risk > 0.9).astype(int),
            "income": income,
            "loan_amount": amount,
            "term": rng.choice(["36", "60"], rows),
            "employed": rng.random(rows) < 0.8,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("loans.csv"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    applications(args.rows, args.seed).to_csv(args.out, index=False)
    print(f"wrote {args.rows} applications to {args.out}")


if __name__ == "__main__":
    main()

"""Model optimization: every candidate form (fp32, torch int8, pruned, distilled, ONNX fp32/int8) of the spec's
default model and of a larger one, side by side in one run. Writes benchmarks/results/optimize.json and .md.

    .venv/bin/python -m benchmarks.optimize_bench [--rows 60000] [--large-epochs 3] [--repeats 50]

Each model is trained on the same synthetic transactions table (pipelines.training.synthetic), then
pipelines.optimize.build_and_measure builds, saves and measures every candidate on the test split: latency is
model-only (preprocessed arrays in), p50/p99 over `--repeats` timed calls per setting, interleaved over the
candidates so load on the shared machine hits them alike. Goals on the larger model (issue 12): int8 at most
0.5x the fp32 latency with test AUC within 0.005; the student at most 0.3x with AUC within 0.01.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run_facts import run_facts  # noqa: E402
from pipelines import layout  # noqa: E402
from pipelines.optimize import build_and_measure  # noqa: E402
from pipelines.optimize.candidates import export_onnx  # noqa: E402
from pipelines.optimize.data import cpu_context, split_tensors  # noqa: E402
from pipelines.optimize.forms import OnnxCandidate  # noqa: E402
from pipelines.optimize.measure import latency, latency_key, quality, score  # noqa: E402
from pipelines.spec import load_spec  # noqa: E402
from pipelines.training.loop import LoopConfig, train  # noqa: E402
from pipelines.training.model import TabularNet, count_parameters  # noqa: E402
from pipelines.training.preprocess import Preprocessor  # noqa: E402
from pipelines.training.synthetic import synthetic_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# The larger model: hidden layers of 1.6M parameters (37 inputs -> 1024 -> 1024 -> 512 -> 1).
LARGE_HIDDEN = [1024, 1024, 512]
GOALS = {"int8": (0.5, 0.005), "distilled": (0.3, 0.01)}  # candidate: (max latency vs fp32, max AUC drop)
# Where the goals are judged: one request on one core (how the model is served, and what selection uses),
# and a batch of 256 on one core.
GOAL_SETTINGS = [(1, "1t"), (256, "1t")]


def run_model(
    label: str, spec, table, epochs: int, repeats: int, workdir: Path, student_onnx: bool = False
) -> dict[str, Any]:
    spec = spec.model_copy(update={"optimize": spec.optimize.model_copy(update={"latency_repeats": repeats})})
    settings = spec.model
    splits = {name: table[table[layout.SPLIT_COLUMN] == name] for name in layout.SPLITS}
    prep = Preprocessor.fit(spec, splits["train"])
    data = split_tensors(spec, prep, splits)
    architecture = {
        "numeric_width": prep.numeric_width,
        "cardinalities": prep.cardinalities,
        "hidden_dims": list(settings.hidden_dims),
        "embedding_dim": settings.embedding_dim,
        "dropout": settings.dropout,
    }
    torch.manual_seed(settings.seed)
    teacher = TabularNet(**architecture)
    cfg = LoopConfig(
        epochs=epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        patience=settings.early_stopping_patience,
        seed=settings.seed,
        bf16=False,
    )
    start = time.perf_counter()
    train(teacher, data["train"], data["validation"], cfg, cpu_context())
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    result = build_and_measure(teacher.eval(), architecture, prep, splits, spec, workdir / label)
    optimize_s = time.perf_counter() - start
    hidden_params = sum(m.weight.numel() + m.bias.numel() for m in teacher.modules() if isinstance(m, torch.nn.Linear))
    print(f"{label}: trained in {train_s:.0f} s, optimized in {optimize_s:.0f} s, chosen {result.chosen}", flush=True)
    extra = exported_student(result, data["test"], repeats) if student_onnx and "distilled" in result.built else None
    return {
        "model": label,
        "hidden_dims": list(settings.hidden_dims),
        "parameters": count_parameters(teacher),
        "linear_parameters": hidden_params,
        "rows": {name: len(df) for name, df in splits.items()},
        "epochs": epochs,
        "train_seconds": train_s,
        "optimize_seconds": optimize_s,
        "threads_all": result.threads_all,
        "chosen": result.chosen,
        "reason": result.reason,
        "candidates": result.candidates,
        "student_onnx": extra,
    }


def exported_student(result, test, repeats: int) -> dict[str, Any]:
    """Beyond the spec's candidates: the distilled student exported to ONNX Runtime, timed against fp32 and the
    eager student in one interleaved measurement, to show what removes eager torch's per-call floor."""
    student = result.built["distilled"]
    graph = export_onnx(student.module, student.preprocessor)
    onnx_student = OnnxCandidate(
        name="onnx-distilled", architecture=student.architecture, preprocessor=student.preprocessor, model_bytes=graph
    )
    trio = {"fp32": result.built["fp32"], "distilled": student, "onnx-distilled": onnx_student}
    numeric, categorical = test.numeric.numpy(), test.categorical.numpy()
    timings = latency(trio, numeric, categorical, repeats)
    probs = score(onnx_student, numeric, categorical)
    agreement = quality(test.labels.numpy(), probs, score(student, numeric, categorical))
    return {
        "latency": timings,
        "auc": agreement["auc"],
        "max_abs_diff_vs_eager_student": agreement["max_abs_diff_vs_fp32"],
    }


def goals(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal at each setting, for the candidate it names and its ONNX Runtime form (onnx-int8, onnx-distilled)."""
    rows = {r["name"]: r for r in model["candidates"]}
    fp32 = rows["fp32"]
    out = []
    for goal_name, (max_ratio, max_drop) in GOALS.items():
        forms = [goal_name, {"int8": "onnx-int8", "distilled": "onnx-distilled"}[goal_name]]
        for form in forms:
            if form not in rows:
                continue
            for batch, threads in GOAL_SETTINGS:
                key = latency_key(batch, threads, "p50")
                ratio = rows[form][key] / fp32[key]
                drop = fp32["auc"] - rows[form]["auc"]
                out.append(
                    {
                        "goal": goal_name,
                        "form": form,
                        "setting": f"batch {batch}, {threads[:-1]} thread",
                        "latency_ratio": ratio,
                        "max_ratio": max_ratio,
                        "auc_drop": drop,
                        "max_auc_drop": max_drop,
                        "met": ratio <= max_ratio and drop <= max_drop,
                    }
                )
    extra = model.get("student_onnx")
    if extra:
        max_ratio, max_drop = GOALS["distilled"]
        for batch, threads in GOAL_SETTINGS:
            key = latency_key(batch, threads, "p50")
            ratio = extra["latency"]["onnx-distilled"][key] / extra["latency"]["fp32"][key]
            drop = fp32["auc"] - extra["auc"]
            out.append(
                {
                    "goal": "distilled",
                    "form": "onnx-distilled (not a spec candidate)",
                    "setting": f"batch {batch}, {threads[:-1]} thread",
                    "latency_ratio": ratio,
                    "max_ratio": max_ratio,
                    "auc_drop": drop,
                    "max_auc_drop": max_drop,
                    "met": ratio <= max_ratio and drop <= max_drop,
                }
            )
    return out


def floors(models: list[dict[str, Any]]) -> list[str]:
    """What bounds the batch-1 ratios, from this run's own numbers."""
    b1 = latency_key(1, "1t", "p50")
    default = {r["name"]: r for r in models[0]["candidates"]}
    large = {r["name"]: r for r in models[1]["candidates"]}
    floor, big = default["fp32"][b1], large["fp32"][b1]
    lines = [
        "## What bounds the batch-1 ratios",
        "",
        f"- Eager PyTorch pays a fixed cost per call (embedding lookups, concat, Linear/ReLU layers, sigmoid: about "
        f"15 dispatched ops). The default model's fp32 (4.8k parameters) takes {floor:.3f} ms at batch 1, "
        f"{floor / big:.2f}x of the large fp32's {big:.3f} ms: no eager-torch form of this architecture gets below "
        "that ratio at batch 1, whatever its size.",
    ]
    if "int8" in large:
        lines.append(
            f"- torch int8 adds a quantize/dequantize of the activations per layer to that floor "
            f"({large['int8'][b1]:.3f} ms at batch 1); its gain is in the matrix products and shows at batch 256 "
            f"({large['int8'][latency_key(256, '1t', 'p50')] / large['fp32'][latency_key(256, '1t', 'p50')]:.2f}x)."
        )
    if "onnx-fp32" in default and "onnx-int8" in large:
        ratio = large["onnx-int8"][b1] / big
        lines.append(
            f"- ONNX Runtime's per-call cost is far lower (the default model's onnx-fp32: "
            f"{default['onnx-fp32'][b1]:.3f} ms), so the ONNX forms reach ratios eager torch cannot: onnx-int8 runs "
            f"at {ratio:.2f}x of fp32 at batch 1 ({'within' if ratio <= GOALS['int8'][0] else 'above'} the int8 goal)."
        )
    extra = models[1].get("student_onnx")
    if extra:
        t = extra["latency"]
        ratio = t["onnx-distilled"][b1] / t["fp32"][b1]
        lines.append(
            f"- The student exported to ONNX Runtime, timed with fp32 in its own interleaved run: "
            f"{t['onnx-distilled'][b1]:.3f} vs {t['fp32'][b1]:.3f} ms at batch 1, {ratio:.2f}x "
            f"({'within' if ratio <= GOALS['distilled'][0] else 'above'} the student goal; the same scores as the "
            f"eager student within {extra['max_abs_diff_vs_eager_student']:.0e}). It is not one of the spec's "
            "candidate names today: OptimizeSpec.candidates would need an 'onnx-distilled' entry "
            "(pipelines.optimize.candidates.export_onnx on the student builds it)."
        )
    lines.append(
        f"- The {models[0]['threads_all']}-thread columns share the 2 cores with whatever else runs (load average "
        "above): when another job holds a core, torch's OpenMP threads wait for it, so multi-thread torch numbers "
        "can be far above the one-thread ones here. Compare the one-thread columns."
    )
    return lines


def table(model: dict[str, Any]) -> list[str]:
    n = model["threads_all"]
    lines = [
        f"### {model['model']} model: hidden {model['hidden_dims']}, {model['parameters']:,} parameters "
        f"({model['linear_parameters']:,} in Linear layers)",
        "",
        f"Trained {model['epochs']} epochs on {model['rows']['train']:,} rows in {model['train_seconds']:.0f} s; "
        f"candidates built and measured on {model['rows']['test']:,} test rows in {model['optimize_seconds']:.0f} s. "
        f"Chosen: {model['reason']}.",
        "",
        f"| candidate | test AUC | max abs diff vs fp32 | b1 1t p50 / p99 | b1 {n}t p50 | b256 1t p50 / p99 "
        f"| b256 {n}t p50 | size (KiB) | b1 1t vs fp32 | b256 1t vs fp32 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    fp32 = next(r for r in model["candidates"] if r["name"] == "fp32")
    for r in model["candidates"]:
        name = f"**{r['name']}**" if r["chosen"] else r["name"]

        def ms(batch: int, threads: str, stat: str, row: dict = r) -> float:
            return row[latency_key(batch, threads, stat)]

        lines.append(
            f"| {name} | {r['auc']:.4f} | {r['max_abs_diff_vs_fp32']:.1e} | {ms(1, '1t', 'p50'):.3f} / "
            f"{ms(1, '1t', 'p99'):.3f} | {ms(1, 'allt', 'p50'):.3f} | {ms(256, '1t', 'p50'):.2f} / "
            f"{ms(256, '1t', 'p99'):.2f} | {ms(256, 'allt', 'p50'):.2f} | {r['size_bytes'] / 1024:,.1f} | "
            f"{ms(1, '1t', 'p50') / fp32[latency_key(1, '1t', 'p50')]:.2f}x | "
            f"{ms(256, '1t', 'p50') / fp32[latency_key(256, '1t', 'p50')]:.2f}x |"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=60_000)
    p.add_argument("--epochs", type=int, default=None, help="default model: the spec's epochs")
    p.add_argument("--large-epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    spec = load_spec("transactions")
    table_df = synthetic_table(spec, args.rows, seed=11)
    large = spec.model_copy(update={"model": spec.model.model_copy(update={"hidden_dims": LARGE_HIDDEN})})
    with tempfile.TemporaryDirectory() as tmp:
        models = [
            run_model("default", spec, table_df, args.epochs or spec.model.epochs, args.repeats, Path(tmp)),
            run_model("large", large, table_df, args.large_epochs, args.repeats, Path(tmp)),
        ]
    judged = goals(models[1])
    report = {
        **run_facts(load_before),
        "onnxruntime": __import__("onnxruntime").__version__,
        "rows": args.rows,
        "latency_repeats": args.repeats,
        "wall_seconds": time.perf_counter() - started,
        "models": models,
        "goals_large_model": judged,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "optimize.json").write_text(json.dumps(report, indent=2))
    md = [
        "# Model optimization benchmark",
        "",
        f"{report['when']} on {report['machine']} (load average {load_before:.1f} before, "
        f"{report['load_average_after']:.1f} after), Python {report['python']}, torch {report['torch']}, "
        f"onnxruntime {report['onnxruntime']}. Synthetic transactions table, {args.rows:,} rows; whole run "
        f"{report['wall_seconds']:.0f} s. Latency in ms, model only (preprocessed inputs), p50 / p99 of "
        f"{args.repeats} timed calls per setting after warm-up, interleaved over the candidates; `1t` one "
        "intra-op thread, `Nt` every CPU. Size: the saved model file.",
        "",
    ]
    for model in models:
        md += [*table(model), ""]
    md += [
        "## Goals on the larger model",
        "",
        "| goal | form | setting | latency vs fp32 (goal) | AUC drop (goal) | met |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for g in judged:
        md.append(
            f"| {g['goal']} | {g['form']} | {g['setting']} | {g['latency_ratio']:.2f}x (<= {g['max_ratio']}x) | "
            f"{g['auc_drop']:+.4f} (<= {g['max_auc_drop']}) | {'yes' if g['met'] else '**no**'} |"
        )
    md += ["", *floors(models), ""]
    (RESULTS / "optimize.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()

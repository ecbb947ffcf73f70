"""The benchmark collector on the real results files: every benchmark has rows, goals are judged from the
numbers in the file, and an unknown or broken file is reported instead of dropped."""

import json
import shutil
from pathlib import Path

from benchmarks import results_md

RESULTS = Path(results_md.__file__).parent / "results"


def test_every_real_results_file_has_read_rows_with_load() -> None:
    rows = results_md.collect(RESULTS)
    names = {p.stem for p in RESULTS.glob("*.json")}
    assert names and {r.benchmark for r in rows} == names
    assert not [r for r in rows if r.measure.startswith("(")], "a results file did not match its reader"
    assert all(r.load and r.load != "not recorded" for r in rows)
    assert any(r.met is True for r in rows) and any(r.met is False for r in rows)


def test_goal_verdict_follows_the_file(tmp_path: Path) -> None:
    shutil.copy(RESULTS / "training.json", tmp_path / "training.json")
    data = json.loads((tmp_path / "training.json").read_text())
    data["trainer_vs_bare_loop"]["ratio"] = 0.90
    (tmp_path / "training.json").write_text(json.dumps(data))
    row = next(r for r in results_md.collect(tmp_path) if r.goal)
    assert (row.measured, row.met) == ("0.900x", False)
    data["trainer_vs_bare_loop"]["ratio"] = 0.96
    (tmp_path / "training.json").write_text(json.dumps(data))
    assert next(r for r in results_md.collect(tmp_path) if r.goal).met is True


def test_unknown_and_broken_files_get_a_row(tmp_path: Path) -> None:
    (tmp_path / "newbench.json").write_text("{}")
    (tmp_path / "drift.json").write_text("{not json")
    (tmp_path / "online.json").write_text(json.dumps({"latency": {}}))
    rows = {r.benchmark: r for r in results_md.collect(tmp_path)}
    assert rows["newbench"].measure == "(no reader)"
    assert rows["drift"].measure == "(unreadable)"
    assert rows["online"].measure == "(unexpected shape)"


def test_markdown_table_and_main(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    assert results_md.main(["--results", str(RESULTS), "--output", str(out)]) == 0
    text = out.read_text()
    assert "| benchmark | measure | measured | goal | met | load | when |" in text
    assert "goals met" in text
    assert results_md.main(["--results", str(tmp_path / "none"), "--output", str(out)]) == 1


def test_stack_reader_sums_services(tmp_path: Path) -> None:
    mem = {"kafka": {"rss_mib": 400.0, "uss_mib": 380.0, "processes": 1}, "mlflow": {"rss_mib": 300.0, "uss_mib": 20.0}}
    data = {"up_seconds": 12.5, "idle": mem, "after_queries": mem, "facts": {"load_average_before": 1.0,
            "load_average_after": 2.0, "when": "now"}}  # fmt: skip
    (tmp_path / "stack.json").write_text(json.dumps(data))
    rows = results_md.collect(tmp_path)
    assert [r.measured for r in rows] == ["12.5 s", "400 / 400 MiB"] and rows[0].load == "1.0 -> 2.0"

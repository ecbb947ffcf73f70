"""`flywheel produce` without a broker: --stdout output, file replay, typing, throttling and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.cli import main
from pipelines.config import kafka_bootstrap
from pipelines.devstack.produce import producer as producer_mod
from pipelines.devstack.produce.encode import frame_to_events
from pipelines.devstack.produce.producer import LineSink, Progress, produce_events
from pipelines.devstack.produce.replay import read_replay_frame
from pipelines.devstack.simulate import generate_events
from pipelines.errors import FlywheelError
from pipelines.spec import load_spec
from pipelines.spec.events import EventChecker

SPEC = load_spec("transactions")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    """Run `flywheel produce ARGS` in-process: (exit code, stdout lines, stderr)."""
    code = main(["produce", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.fixture
def events_table() -> pd.DataFrame:
    """Simulated rows in shuffled order, the way a table exported from a warehouse may come."""
    frame = generate_events(300, "baseline", seed=9)
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.fixture(autouse=True)
def no_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No broker configured unless a test says so (and no .flywheel/stack.env of a running stack)."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("FLYWHEEL_SPEC", raising=False)
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path / "state"))


# --- simulated events on stdout ------------------------------------------------------------------------------


def test_stdout_is_deterministic_valid_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(capsys, "--count", "200", "--seed", "4", "--stdout", "--format", "json")
    assert code == 0 and len(lines) == 200
    checker = EventChecker(SPEC)
    assert all(checker.check(line).ok for line in lines)
    summary = json.loads(err.strip().splitlines()[-1])  # with --stdout the summary goes to stderr
    assert summary["produced"] == 200 and summary["malformed"] == 0
    assert summary["scenario"] == "baseline" and summary["seed"] == 4 and summary["destination"] == "stdout"
    assert {"events_per_second", "seconds", "topic"} <= summary.keys()
    assert run(capsys, "--count", "200", "--seed", "4", "--stdout")[1] == lines
    assert run(capsys, "--count", "200", "--seed", "5", "--stdout")[1] != lines


def test_malformed_count_is_exact_and_every_one_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(
        capsys, "--count", "1000", "--scenario", "drift", "--malformed-rate", "0.03", "--stdout", "--format", "json"
    )
    assert code == 0 and len(lines) == 1000
    summary = json.loads(err.strip().splitlines()[-1])
    assert summary["malformed"] == 30 and sum(summary["malformed_kinds"].values()) == 30
    checker = EventChecker(SPEC)
    assert sum(not checker.check(line).ok for line in lines) == 30


def test_text_summary_names_scenario_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--count", "50", "--scenario", "drift", "--malformed-rate", "0.1", "--stdout")
    assert code == 0
    assert "Produced 50 events (5 malformed:" in err and "scenario 'drift', seed 0" in err


def test_start_moves_event_time(capsys: pytest.CaptureFixture[str]) -> None:
    _, lines, _ = run(capsys, "--count", "20", "--stdout", "--start", "2030-06-01")
    times = [json.loads(line)["event_time"] for line in lines]
    assert all(t.startswith("2030-06-") and t.endswith("Z") for t in times)


# --- file replay ------------------------------------------------------------------------------------------


def _emitted(lines: list[str]) -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in lines])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_replay_emits_rows_in_event_time_order(
    fmt: str, tmp_path: Path, events_table: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"events.{fmt}"
    table = events_table.assign(note="ignored extra column")
    if fmt == "csv":
        table.assign(event_time=table.event_time.dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")).to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    assert not events_table.event_time.is_monotonic_increasing  # the file really is out of order

    code, lines, _ = run(capsys, "--from-file", str(path), "--spec", "transactions", "--stdout")
    assert code == 0
    out = _emitted(lines)
    expected = events_table.sort_values("event_time", kind="stable").reset_index(drop=True)
    assert out.event_id.tolist() == expected.event_id.tolist()
    assert list(out.columns) == SPEC.event_fields  # only spec fields, in spec order
    assert pd.to_datetime(out.event_time, utc=True).is_monotonic_increasing
    assert all(t.endswith("Z") for t in out.event_time)
    # Typed per spec: integers as int, null device age for card-present payments, booleans as bool.
    first = json.loads(lines[0])
    assert isinstance(first["customer_tenure_days"], int) and isinstance(first["card_present"], bool)
    present = out[out.card_present]
    assert present.device_age_days.isna().all()
    checker = EventChecker(SPEC)
    assert all(checker.check(line).ok for line in lines)


def test_replay_limit_keeps_the_earliest_rows(tmp_path: Path, events_table: pd.DataFrame) -> None:
    path = tmp_path / "events.parquet"
    events_table.to_parquet(path, index=False)
    frame = read_replay_frame(path, SPEC, limit=10)
    assert frame.event_id.tolist() == events_table.sort_values("event_time").event_id.head(10).tolist()


def test_replay_accepts_epoch_and_naive_timestamps(tmp_path: Path, events_table: pd.DataFrame) -> None:
    seconds = events_table.assign(event_time=events_table.event_time.astype("int64") / 1e3)  # ms -> s
    naive = events_table.assign(event_time=events_table.event_time.dt.strftime("%Y-%m-%d %H:%M:%S.%f"))
    millis = events_table.assign(event_time=events_table.event_time.astype("int64"))
    expected = events_table.event_time.sort_values().reset_index(drop=True)
    for name, table in [("s.csv", seconds), ("naive.csv", naive), ("ms.parquet", millis)]:
        path = tmp_path / name
        table.to_csv(path, index=False) if name.endswith(".csv") else table.to_parquet(path, index=False)
        got = read_replay_frame(path, SPEC).event_time
        pd.testing.assert_series_equal(got, expected, check_names=False, check_dtype=False)


def test_replay_without_event_ids_derives_stable_ones(tmp_path: Path, events_table: pd.DataFrame) -> None:
    path = tmp_path / "no_ids.csv"
    events_table.drop(columns="event_id").to_csv(path, index=False)
    first = read_replay_frame(path, SPEC).event_id
    assert first.is_unique and first.tolist() == read_replay_frame(path, SPEC).event_id.tolist()


def test_replay_types_values_per_spec_and_keeps_bad_values_for_quarantine(tmp_path: Path) -> None:
    rows = frame_to_events(generate_events(3, seed=1), SPEC)
    table = pd.DataFrame(rows).astype({"amount": object, "is_fraud": object})
    table.loc[0, "amount"] = "abc"  # a bad value is passed through for the checker to reject
    table.loc[1, "is_fraud"] = 1  # 0/1 labels are fine
    table.loc[2, "customer_tenure_days"] = 12.0
    path = tmp_path / "typed.csv"
    table.to_csv(path, index=False)
    events = frame_to_events(read_replay_frame(path, SPEC), SPEC)
    by_id = {e["event_id"]: e for e in events}
    assert by_id[rows[0]["event_id"]]["amount"] == "abc"
    assert by_id[rows[1]["event_id"]]["is_fraud"] in (1, True)
    assert by_id[rows[2]["event_id"]]["customer_tenure_days"] == 12
    assert isinstance(by_id[rows[2]["event_id"]]["customer_tenure_days"], int)
    checker = EventChecker(SPEC)
    verdicts = {e["event_id"]: checker.check_obj(json.loads(json.dumps(e))) for e in events}
    assert not verdicts[rows[0]["event_id"]].ok and "amount must be a number" in verdicts[rows[0]["event_id"]].reason
    assert verdicts[rows[1]["event_id"]].ok and verdicts[rows[2]["event_id"]].ok


def test_encoding_turns_numpy_values_and_missing_values_into_json() -> None:
    frame = pd.DataFrame(
        {
            "event_id": ["a", "b"],
            "customer_id": np.array([7, 8], dtype=np.int64),
            "event_time": pd.to_datetime(
                ["2026-01-01T00:00:00.123Z", "2026-01-01T01:00:00Z"], utc=True, format="ISO8601"
            ),
            "is_fraud": np.array([True, False]),
            "amount": [np.float32(1.5), np.nan],
            "merchant_category": ["grocery", None],
            "country": ["US", "GB"],
            "channel": ["online", "chip"],
            "device_age_days": pd.array([3, None], dtype="Int64"),
            "customer_tenure_days": np.array([10, 20], dtype=np.int32),
            "hour_of_day": [0, 1],
            "distance_from_home_km": [np.inf, 2.0],
            "card_present": [False, True],
            "is_international": [np.bool_(False), np.bool_(True)],
        }
    )
    a, b = frame_to_events(frame, SPEC)
    assert a["event_time"] == "2026-01-01T00:00:00.123Z" and b["event_time"] == "2026-01-01T01:00:00.000Z"
    assert a["customer_id"] == 7 and type(a["customer_id"]) is int
    assert a["amount"] == 1.5 and b["amount"] is None and b["merchant_category"] is None
    assert a["device_age_days"] == 3 and type(a["device_age_days"]) is int and b["device_age_days"] is None
    assert a["distance_from_home_km"] is None  # infinity is not JSON
    assert type(a["is_international"]) is bool and a["is_fraud"] is True
    json.dumps([a, b], allow_nan=False)


# --- errors -----------------------------------------------------------------------------------------------


def test_missing_column_is_named(
    tmp_path: Path, events_table: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "partial.csv"
    events_table.drop(columns=["amount", "channel"]).to_csv(path, index=False)
    code, lines, err = run(capsys, "--from-file", str(path), "--stdout")
    assert code == 2 and lines == []
    assert "needs columns 'amount', 'channel'" in err and "Traceback" not in err


def test_bad_timestamp_names_the_row(tmp_path: Path, events_table: pd.DataFrame) -> None:
    table = events_table.assign(event_time=events_table.event_time.astype(str))
    table.loc[4, "event_time"] = "last tuesday"
    path = tmp_path / "bad_time.csv"
    table.to_csv(path, index=False)
    with pytest.raises(FlywheelError, match=r"column 'event_time' row 5 has 'last tuesday', not a timestamp"):
        read_replay_frame(path, SPEC)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-file", "/nonexistent/events.csv", "--stdout"], "no such file"),
        (["--count", "5", "--spec", "no_such_spec", "--stdout"], "neither a readable file nor a built-in spec"),
        (["--stdout"], "--count N"),
        (["--from-file", "x.csv", "--scenario", "drift", "--stdout"], "drop them when replaying"),
        (["--count", "5"], "no Kafka broker configured"),
    ],
)
def test_cli_errors_are_one_clear_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(capsys, *args)
    assert code == 2 and lines == []
    assert message in err and err.startswith("flywheel: ") and "Traceback" not in err


def test_unknown_file_type_and_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "events.json").write_text("{}")
    assert "unknown file type" in run(capsys, "--from-file", str(tmp_path / "events.json"), "--stdout")[2]
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    code, _, err = run(capsys, "--from-file", str(tmp_path / "broken.parquet"), "--stdout")
    assert code == 2 and "cannot read" in err and "as PARQUET" in err


def test_unreachable_broker_fails_within_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--count", "5", "--bootstrap-servers", "127.0.0.1:1", "--timeout", "1")
    assert code == 2
    assert "cannot reach Kafka at 127.0.0.1:1 within 1s" in err and "flywheel up" in err


@pytest.mark.parametrize(
    "args", [["--count", "-3"], ["--count", "x"], ["--malformed-rate", "1.5"], ["--rate", "0"], ["--seed", "-1"]]
)
def test_bad_numbers_are_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["produce", *args, "--stdout"])
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_simulating_for_another_schema_points_to_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {
        "name": "churn",
        "topic": {"name": "churn"},
        "event_id": "id",
        "entity_key": "user",
        "timestamp": "ts",
        "label": "churned",
        "features": [{"name": "visits", "type": "numeric"}],
    }
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, _, err = run(capsys, "--count", "5", "--spec", str(path), "--stdout")
    assert code == 2 and "--from-file PATH --spec churn" in err


def test_bootstrap_comes_from_flag_then_env_then_stack_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "stack.env").write_text("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092\n")
    assert kafka_bootstrap() == "127.0.0.1:19092"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    assert kafka_bootstrap() == "10.0.0.1:9092"
    assert kafka_bootstrap("h:1") == "h:1"


# --- throttling and progress ----------------------------------------------------------------------------------


class FakeClock:
    """Stands in for the `time` module: sleeping advances the clock, sending costs 1 ms."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def monotonic(self) -> float:
        self.now += 0.001
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def test_rate_limits_events_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    clock = FakeClock()
    monkeypatch.setattr(producer_mod, "time", clock)
    events = frame_to_events(generate_events(101, seed=1), SPEC)
    reports: list[Progress] = []
    result = produce_events(events, SPEC, LineSink(io.BytesIO()), count=101, rate=50.0, progress=reports.append)
    assert result.produced == 101
    # 100 gaps of 1/50 s: two seconds in all, whatever the cost of each send.
    assert result.seconds == pytest.approx(2.0, abs=0.01)
    assert result.events_per_second == pytest.approx(50.0, rel=0.02)
    # One progress line per second of sending, not one per event.
    assert len(reports) == 2 and [r.sent for r in reports] == [51, 101]


def test_unthrottled_progress_reports_about_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    clock = FakeClock()
    monkeypatch.setattr(producer_mod, "time", clock)
    events = frame_to_events(generate_events(3_000, seed=1), SPEC)
    reports: list[Progress] = []
    produce_events(events, SPEC, LineSink(io.BytesIO()), count=3_000, progress=reports.append)
    assert clock.slept == 0
    # Each event reads the fake clock once (1 ms): a second passes every 1,000 events.
    assert [r.sent for r in reports] == [1_000, 2_000, 3_000]
    assert all(r.total == 3_000 for r in reports)


def test_a_missing_compression_library_is_reported_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    from kafka import codec

    if codec.has_lz4():
        pytest.skip("lz4 is installed here")
    code, _, err = run(capsys, "--count", "5", "--bootstrap-servers", "127.0.0.1:1", "--compression", "lz4")
    assert code == 2 and "compression 'lz4' needs a library" in err


def test_a_rejected_malformed_rate_still_closes_the_sink() -> None:
    import io

    class ClosingSink(LineSink):
        closed = False

        def close(self) -> None:
            self.closed = True

    sink = ClosingSink(io.BytesIO())
    with pytest.raises(FlywheelError, match="malformed rate must be between 0 and 1"):
        produce_events(frame_to_events(generate_events(3, seed=1), SPEC), SPEC, sink, count=3, malformed_rate=2.0)
    assert sink.closed

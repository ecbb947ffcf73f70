"""A seeded, vectorized simulator of card-payment events for the built-in `transactions` spec.

The world it simulates:
- A customer population with stable traits: home country, spending level, affinity for online shopping,
  usual in-store channel, tenure, age of the usual device, appetite for travel, activity level. Customer
  traits depend on the seed only (not on the scenario or on n, as far as the population overlaps), so a
  `drift` run meets the same customers as the `baseline` run of the same seed.
- Normal payments: a diurnal clock, a merchant-category mix with a log-normal amount per category scaled by
  the customer's spending level, card-present channels for shops and online/manual entry otherwise, merchant
  abroad now and then, distance from home, device age for card-not-present payments only.
- Fraud sessions: account takeovers (bursts of night-time, cross-border, high-value card-not-present payments
  from new devices) and, in `drift`, card testing (bursts of tiny digital-goods payments from new devices).
- The label: Bernoulli of a latent risk that reads only the event's features and the customer's habits
  (amount against the customer's usual spending, night, abroad, channel, new device, distance, category,
  new customer). Fraud sessions are where the risk is high, so fraud clusters in time per customer and the
  per-customer history aggregates carry signal.

Everything is drawn with numpy in whole arrays: 100k events take a fraction of a second.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from pipelines.devstack.simulate.scenarios import Scenario, get_scenario
from pipelines.errors import FlywheelError
from pipelines.spec.model import DatasetSpec

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

# The value lists follow the built-in spec's order; `check_spec` makes sure a spec still matches them.
CATEGORIES = [
    "grocery",
    "restaurants",
    "fuel",
    "travel",
    "electronics",
    "fashion",
    "digital_goods",
    "gambling",
    "health",
    "utilities",
]
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "BR", "IN", "NG", "RU", "CN", "OTHER"]
CHANNELS = ["chip", "contactless", "online", "swipe", "manual"]

_cat = {name: i for i, name in enumerate(CATEGORIES)}
_country = {name: i for i, name in enumerate(COUNTRIES)}
CHIP, CONTACTLESS, ONLINE, SWIPE, MANUAL = range(5)
DIGITAL_GOODS = _cat["digital_goods"]

# Per category:             share  median  log-sd  online  fraud log-odds
_CATEGORY_TABLE = np.array(
    [
        [0.26, 38.0, 0.70, 0.04, -0.7],  # grocery
        [0.17, 27.0, 0.60, 0.12, -0.5],  # restaurants
        [0.10, 48.0, 0.40, 0.01, -0.2],  # fuel
        [0.04, 320.0, 0.90, 0.65, 0.4],  # travel
        [0.05, 160.0, 1.00, 0.45, 0.9],  # electronics
        [0.10, 62.0, 0.80, 0.40, 0.2],  # fashion
        [0.08, 11.0, 0.90, 0.95, 0.3],  # digital_goods
        [0.02, 45.0, 1.10, 0.80, 0.9],  # gambling
        [0.10, 36.0, 0.80, 0.15, -0.6],  # health
        [0.08, 85.0, 0.50, 0.70, -1.0],  # utilities
    ]
)
CAT_SHARE, CAT_MEDIAN, CAT_SIGMA, CAT_ONLINE, CAT_RISK = _CATEGORY_TABLE.T
# Account takeovers go for goods that resell: electronics, gift cards, travel, gambling credit.
TAKEOVER_CATEGORY_SHARE = np.array([0.03, 0.02, 0.04, 0.12, 0.30, 0.14, 0.12, 0.15, 0.04, 0.04])

#                              US    GB    DE    FR    ES    IT    NL    CA    BR    IN    NG    RU    CN    OTHER
HOME_SHARE = np.array([0.34, 0.10, 0.09, 0.07, 0.05, 0.05, 0.03, 0.05, 0.06, 0.07, 0.02, 0.02, 0.03, 0.02])
FOREIGN_SHARE = np.array([0.20, 0.14, 0.10, 0.12, 0.10, 0.09, 0.05, 0.05, 0.02, 0.02, 0.01, 0.01, 0.04, 0.05])
TAKEOVER_FOREIGN_SHARE = np.array([0.10, 0.08, 0.04, 0.04, 0.03, 0.03, 0.04, 0.03, 0.10, 0.08, 0.12, 0.14, 0.10, 0.07])

#                 chip contactless online swipe manual
CHANNEL_RISK = np.array([-0.3, -0.5, 0.6, 0.5, 1.4])
PRESENT_CHANNELS = np.array([CHIP, CONTACTLESS, SWIPE])
PRESENT_SHARE = np.array([0.45, 0.45, 0.10])

# Payments by hour of day (UTC, which is the simulated customers' clock): quiet nights, lunch and evening peaks.
DIURNAL = np.concatenate(
    [
        [0.8, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.8, 3.0, 3.8, 4.2, 4.8],  # 00:00-11:59
        [5.6, 5.4, 4.8, 4.6, 4.9, 5.6, 6.2, 6.0, 5.0, 3.8, 2.6, 1.6],  # 12:00-23:59
    ]
)
DIURNAL = DIURNAL / DIURNAL.sum()
# Takeovers run on the fraudster's clock, far from the victim's day.
TAKEOVER_HOURS = np.array([5, 5, 5, 5, 5, 4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 4, 5], dtype=float)
TAKEOVER_HOURS = TAKEOVER_HOURS / TAKEOVER_HOURS.sum()

# Latent fraud risk: log-odds = intercept + weighted evidence. The intercept puts baseline fraud near 2%.
RISK_INTERCEPT = -6.0
RISK_AMOUNT_VS_HABIT = 1.1
RISK_NIGHT = 1.2
RISK_ABROAD = 1.4
RISK_NEW_DEVICE = 1.6
RISK_DISTANCE = 0.35
RISK_NEW_CUSTOMER = 0.5
NEW_DEVICE_DAYS = 2
NIGHT_HOURS = 6  # hours 0..5
CARD_TESTING_MAX_AMOUNT = 20.0

_POPULATION_KEY = 1
_EVENTS_KEY = 2

AFFINITY_A, AFFINITY_B = 2.0, 5.0
_AFFINITY_MEAN_LOGIT = np.log(AFFINITY_A / AFFINITY_B)  # logit of the Beta mean a / (a + b)

AMOUNT_MIN, AMOUNT_MAX = 0.01, 50_000.0
DISTANCE_MAX = 20_000.0
DEVICE_AGE_MAX = 3650
TENURE_MAX = 20_000


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _pick(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn with probability proportional to `weights` (inverse CDF: one uniform per draw)."""
    cdf = np.cumsum(weights, dtype=float)
    idx = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return np.minimum(idx, len(weights) - 1)


@dataclass(frozen=True, slots=True)
class Population:
    """Stable traits, one array entry per customer (customer i is `c{i:06d}`)."""

    home: np.ndarray  # index into COUNTRIES
    spend: np.ndarray  # multiplier of every amount
    online_affinity: np.ndarray  # in (0, 1)
    present_channel: np.ndarray  # usual in-store channel (index into CHANNELS)
    tenure_days: np.ndarray  # at the start of the simulated span
    device_age_days: np.ndarray  # of the usual device, at the start
    travel: np.ndarray  # chance an in-store payment is abroad
    activity: np.ndarray  # relative payment frequency

    @property
    def size(self) -> int:
        return len(self.home)


def make_population(seed: int, size: int) -> Population:
    """Customer traits from the seed. Each trait has its own random stream, so customer i's traits are the
    same for any population size above i."""
    seeds = np.random.SeedSequence(seed, spawn_key=(_POPULATION_KEY,)).spawn(10)
    home, spend, affinity, channel, is_new, new_tenure, old_tenure, device, travel, activity = (
        np.random.default_rng(s) for s in seeds
    )
    tenure_days = np.where(
        is_new.random(size) < 0.12,
        new_tenure.uniform(0, 120, size),
        np.minimum(old_tenure.lognormal(np.log(1400), 0.8, size), TENURE_MAX - 1000),
    )
    return Population(
        home=_pick(home, HOME_SHARE, size),
        spend=spend.lognormal(0.0, 0.5, size),
        online_affinity=affinity.beta(AFFINITY_A, AFFINITY_B, size),
        present_channel=PRESENT_CHANNELS[_pick(channel, PRESENT_SHARE, size)],
        tenure_days=np.floor(tenure_days),
        device_age_days=np.floor(np.minimum(device.lognormal(np.log(220), 1.0, size), 3000)),
        travel=travel.beta(1.2, 40.0, size),
        activity=activity.gamma(2.0, 1.0, size),
    )


def _foreign(rng: np.random.Generator, home: np.ndarray, share: np.ndarray) -> np.ndarray:
    """A merchant country different from each customer's home, drawn from `share`."""
    out = _pick(rng, share, len(home))
    for _ in range(20):
        clash = out == home
        if not clash.any():
            return out
        out[clash] = _pick(rng, share, int(clash.sum()))
    clash = out == home
    out[clash] = (home[clash] + 1) % len(COUNTRIES)  # vanishingly rare; any other country will do
    return out


def _clock(rng: np.random.Generator, size: int, hours: np.ndarray, start_ms: int, days: int) -> np.ndarray:
    """Epoch-ms times in [start, start + days) whose UTC hour follows `hours`."""
    midnight = start_ms - start_ms % DAY_MS
    t = midnight + rng.integers(0, days, size) * DAY_MS + _pick(rng, hours, size) * HOUR_MS
    t = t + rng.integers(0, HOUR_MS, size)
    # Days are whole, so wrapping the slice before `start` to the end keeps every hour of day as drawn.
    return np.where(t < start_ms, t + days * DAY_MS, t)


def _sessions(
    rng: np.random.Generator, n_events: int, extra_mean: float, min_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split n_events into bursts: (session index of each event, position of the event in its session)."""
    if n_events == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    sizes = min_size + rng.poisson(extra_mean, n_events)
    n_sessions = int(np.searchsorted(np.cumsum(sizes), n_events)) + 1
    session = np.repeat(np.arange(n_sessions), sizes[:n_sessions])[:n_events]
    first = np.searchsorted(session, session, side="left")
    return session, np.arange(n_events) - first


def _burst_times(
    rng: np.random.Generator,
    session: np.ndarray,
    position: np.ndarray,
    hours: np.ndarray,
    gap_minutes: float,
    start_ms: int,
    days: int,
) -> np.ndarray:
    n_sessions = int(session.max()) + 1 if len(session) else 0
    t0 = _clock(rng, n_sessions, hours, start_ms, days)[session]
    gaps = np.where(position == 0, 0, rng.exponential(gap_minutes * MINUTE_MS, len(session))).astype(np.int64)
    # Cumulative gap within each session: global cumsum minus the cumsum at the session's first event.
    total = np.cumsum(gaps)
    offset = total - total[np.flatnonzero(position == 0)][session]
    span = days * DAY_MS
    return start_ms + (t0 + offset - start_ms) % span


def _distance(rng: np.random.Generator, median_km: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return rng.lognormal(np.log(median_km), sigma)


@dataclass
class _Part:
    """Columns of one kind of traffic before they are merged and labelled."""

    customer: np.ndarray
    time_ms: np.ndarray
    category: np.ndarray
    channel: np.ndarray
    country: np.ndarray
    amount: np.ndarray
    habit: np.ndarray  # the customer's usual amount in this category (what "unusual amount" is measured by)
    distance: np.ndarray
    new_device: np.ndarray  # card-not-present payment from a device first seen in the last days
    device_age_start: np.ndarray  # usual device age at the start of the span (used when not new_device)


def _normal(rng: np.random.Generator, n: int, pop: Population, sc: Scenario, start_ms: int) -> _Part:
    home_boost = np.array([sc.home_activity_multipliers.get(c, 1.0) for c in COUNTRIES])
    customer = _pick(rng, pop.activity * home_boost[pop.home], n)
    time_ms = _clock(rng, n, DIURNAL, start_ms, sc.days)
    cat_share = CAT_SHARE * np.array([sc.category_multipliers.get(c, 1.0) for c in CATEGORIES])
    category = _pick(rng, cat_share, n)

    affinity = _logit(pop.online_affinity[customer]) - _AFFINITY_MEAN_LOGIT
    p_online = _sigmoid(_logit(CAT_ONLINE[category]) + 1.5 * affinity + sc.online_shift)
    not_present = rng.random(n) < p_online
    manual = rng.random(n) < 0.06
    usual = rng.random(n) < 0.8
    other_present = PRESENT_CHANNELS[_pick(rng, PRESENT_SHARE, n)]
    channel = np.where(
        not_present,
        np.where(manual, MANUAL, ONLINE),
        np.where(usual, pop.present_channel[customer], other_present),
    )

    p_abroad = np.where(not_present, 0.08, pop.travel[customer]) * sc.international_multiplier
    abroad = rng.random(n) < np.minimum(p_abroad, 0.9)
    foreign_share = FOREIGN_SHARE * np.array([sc.foreign_country_multipliers.get(c, 1.0) for c in COUNTRIES])
    home = pop.home[customer]
    country = np.where(abroad, _foreign(rng, home, foreign_share), home)

    habit = CAT_MEDIAN[category] * pop.spend[customer] * np.exp(sc.amount_log_shift)
    amount = habit * np.exp(rng.normal(0.0, CAT_SIGMA[category]))
    # Shops are near home, travellers far away; online "distance" is where the IP address geolocates.
    median = np.select([abroad & not_present, abroad, not_present], [3500.0, 1800.0, 25.0], default=6.0)
    sigma = np.select([abroad & not_present, abroad, not_present], [0.6, 0.7, 1.3], default=1.0)
    new_device = not_present & (rng.random(n) < sc.new_device_rate)
    return _Part(
        customer=customer,
        time_ms=time_ms,
        category=category,
        channel=channel,
        country=country,
        amount=amount,
        habit=habit,
        distance=_distance(rng, median, sigma),
        new_device=new_device,
        device_age_start=pop.device_age_days[customer] * sc.device_age_scale,
    )


def _takeover(rng: np.random.Generator, n: int, pop: Population, sc: Scenario, start_ms: int) -> _Part:
    """Stolen credentials or a cloned card: bursts of high-value payments, mostly abroad and at night."""
    session, position = _sessions(rng, n, extra_mean=1.5, min_size=1)
    n_sessions = int(session.max()) + 1 if n else 0
    victim = rng.integers(0, pop.size, n_sessions)
    customer = victim[session]
    time_ms = _burst_times(rng, session, position, TAKEOVER_HOURS, 12.0, start_ms, sc.days)
    # One channel, place and device per session; a cloned magstripe card is swiped in a shop.
    s_channel = np.array([ONLINE, MANUAL, SWIPE, CHIP])[_pick(rng, np.array([0.6, 0.15, 0.2, 0.05]), n_sessions)]
    s_abroad = rng.random(n_sessions) < 0.55
    s_country = np.where(s_abroad, _foreign(rng, pop.home[victim], TAKEOVER_FOREIGN_SHARE), pop.home[victim])
    s_new_device = rng.random(n_sessions) < 0.7
    s_distance = _distance(rng, np.where(s_abroad, 4000.0, 350.0), np.where(s_abroad, 0.6, 1.0))
    channel = s_channel[session]
    category = _pick(rng, TAKEOVER_CATEGORY_SHARE, n)
    habit = CAT_MEDIAN[category] * pop.spend[customer] * np.exp(sc.amount_log_shift)
    amount = habit * np.exp(rng.normal(1.0, 0.8, n))
    not_present = (channel == ONLINE) | (channel == MANUAL)
    return _Part(
        customer=customer,
        time_ms=time_ms,
        category=category,
        channel=channel,
        country=s_country[session],
        amount=amount,
        habit=habit,
        distance=s_distance[session] * rng.lognormal(0.0, 0.1, n),
        new_device=s_new_device[session] & not_present,
        device_age_start=pop.device_age_days[customer] * sc.device_age_scale,
    )


def _card_testing(rng: np.random.Generator, n: int, pop: Population, sc: Scenario, start_ms: int) -> _Part:
    """Bots checking stolen card numbers: rapid bursts of tiny digital-goods payments from fresh devices,
    mostly domestic and in daytime, so that nothing but the device, the size and the pace stands out."""
    session, position = _sessions(rng, n, extra_mean=3.0, min_size=2)
    n_sessions = int(session.max()) + 1 if n else 0
    victim = rng.integers(0, pop.size, n_sessions)
    customer = victim[session]
    time_ms = _burst_times(rng, session, position, DIURNAL, 3.0, start_ms, sc.days)
    s_abroad = rng.random(n_sessions) < 0.1
    s_country = np.where(s_abroad, _foreign(rng, pop.home[victim], FOREIGN_SHARE), pop.home[victim])
    s_distance = _distance(rng, np.where(s_abroad, 3500.0, 25.0), np.where(s_abroad, 0.6, 1.3))
    category = np.full(n, DIGITAL_GOODS)
    return _Part(
        customer=customer,
        time_ms=time_ms,
        category=category,
        channel=np.full(n, ONLINE),
        country=s_country[session],
        amount=rng.lognormal(np.log(2.5), 0.7, n),
        habit=CAT_MEDIAN[category] * pop.spend[customer] * np.exp(sc.amount_log_shift),
        distance=s_distance[session],
        new_device=np.ones(n, dtype=bool),
        device_age_start=pop.device_age_days[customer] * sc.device_age_scale,
    )


def risk_logit(
    sc: Scenario,
    *,
    amount: np.ndarray,
    habit: np.ndarray,
    category: np.ndarray,
    channel: np.ndarray,
    hour: np.ndarray,
    abroad: np.ndarray,
    device_age: np.ndarray,
    distance: np.ndarray,
    tenure: np.ndarray,
) -> np.ndarray:
    """Log-odds of fraud from an event's features and the customer's usual amount (NaN device age: in store)."""
    new_device = device_age <= NEW_DEVICE_DAYS  # NaN compares False: card-present payments have no device
    # An app or a game bought from a new phone is routine: in normal times a new device raises no risk
    # for small digital goods. That blind spot is what card testers exploit in `drift`.
    small_digital = (category == DIGITAL_GOODS) & (amount < CARD_TESTING_MAX_AMOUNT)
    z = (
        RISK_INTERCEPT
        + RISK_AMOUNT_VS_HABIT * np.clip(np.log(amount / habit), -3.0, 4.0)
        + RISK_NIGHT * (hour < NIGHT_HOURS)
        + RISK_ABROAD * abroad
        + CHANNEL_RISK[channel]
        + RISK_NEW_DEVICE * (new_device & ~small_digital)
        + RISK_DISTANCE * np.log1p(distance / 50.0)
        + CAT_RISK[category]
        + RISK_NEW_CUSTOMER * (tenure < 90)
    )
    if sc.card_testing_risk:
        z = z + sc.card_testing_risk * (small_digital & new_device)
    return z


def _concat(parts: list[_Part]) -> _Part:
    return _Part(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in _Part.__dataclass_fields__})


def _event_ids(rng: np.random.Generator, n: int) -> list[str]:
    """Random (version 4) UUIDs drawn from the seeded stream: unique in practice, identical per seed."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    h = raw.tobytes().hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def _start_ms(start: datetime) -> int:
    if start.tzinfo is None:
        raise FlywheelError(f"start time {start.isoformat()} has no time zone; pass an aware datetime (UTC)")
    return int(start.timestamp() * 1000)


def generate_events(
    n: int,
    scenario: str | Scenario = "baseline",
    seed: int = 0,
    start: datetime | None = None,
) -> pd.DataFrame:
    """`n` transactions events of a scenario, ordered by event time, one column per spec field.

    Columns (dtypes): event_id, customer_id, merchant_category, country, channel (str); event_time
    (datetime64[ms, UTC]); is_fraud, card_present, is_international (bool); amount, distance_from_home_km
    (float64); customer_tenure_days, hour_of_day (int64); device_age_days (Int64, null when card present).
    The same (n, scenario, seed, start) gives the same frame, byte for byte.
    """
    if n < 0:
        raise FlywheelError(f"the number of events must be zero or more, got {n}")
    if seed < 0:
        raise FlywheelError(f"the seed must be zero or more, got {seed}")
    sc = get_scenario(scenario)
    start_ms = _start_ms(start or sc.start)
    # A few dozen customers at least, so that even a small sample is not one customer's story.
    pop = make_population(seed, max(1, int(np.ceil(n / sc.events_per_customer)), min(n, 25)))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_EVENTS_KEY, zlib.crc32(sc.name.encode()))))

    n_takeover = round(n * sc.takeover_rate)
    n_testing = round(n * sc.card_testing_rate)
    n_normal = n - n_takeover - n_testing
    ev = _concat(
        [
            _normal(rng, n_normal, pop, sc, start_ms),
            _takeover(rng, n_takeover, pop, sc, start_ms),
            _card_testing(rng, n_testing, pop, sc, start_ms),
        ]
    )
    order = np.argsort(ev.time_ms, kind="stable")
    ev = _Part(**{k: getattr(ev, k)[order] for k in _Part.__dataclass_fields__})

    elapsed_days = (ev.time_ms - start_ms) // DAY_MS
    hour = (ev.time_ms // HOUR_MS) % 24
    not_present = (ev.channel == ONLINE) | (ev.channel == MANUAL)
    device_age = np.where(
        ev.new_device,
        np.minimum(rng.geometric(0.6, n) - 1, NEW_DEVICE_DAYS),
        np.floor(ev.device_age_start) + elapsed_days,
    )
    device_age = np.where(not_present, np.minimum(device_age, DEVICE_AGE_MAX), np.nan)
    tenure = np.minimum(pop.tenure_days[ev.customer] + elapsed_days, TENURE_MAX)
    amount = np.clip(np.round(ev.amount, 2), AMOUNT_MIN, AMOUNT_MAX)
    distance = np.clip(np.round(ev.distance, 1), 0.0, DISTANCE_MAX)
    abroad = ev.country != pop.home[ev.customer]

    z = risk_logit(
        sc,
        amount=amount,
        habit=ev.habit,
        category=ev.category,
        channel=ev.channel,
        hour=hour,
        abroad=abroad,
        device_age=device_age,
        distance=distance,
        tenure=tenure,
    )
    is_fraud = rng.random(n) < _sigmoid(z)

    width = max(6, len(str(pop.size - 1)))
    customer_ids = np.array([f"c{i:0{width}d}" for i in range(pop.size)], dtype=object)
    return pd.DataFrame(
        {
            "event_id": pd.Series(_event_ids(rng, n), dtype=object),
            "customer_id": customer_ids[ev.customer],
            "event_time": pd.to_datetime(ev.time_ms, unit="ms", utc=True).as_unit("ms"),
            "is_fraud": is_fraud,
            "amount": amount,
            "merchant_category": np.array(CATEGORIES, dtype=object)[ev.category],
            "country": np.array(COUNTRIES, dtype=object)[ev.country],
            "channel": np.array(CHANNELS, dtype=object)[ev.channel],
            "device_age_days": pd.Series(device_age).astype("Int64"),  # NaN becomes <NA>
            "customer_tenure_days": tenure.astype(np.int64),
            "hour_of_day": hour.astype(np.int64),
            "distance_from_home_km": distance,
            "card_present": ~not_present,
            "is_international": abroad,
        }
    )


def check_spec(spec: DatasetSpec) -> None:
    """The simulator writes the built-in transactions schema; fail clearly for a spec that differs."""
    from pipelines.spec.loader import load_spec

    builtin = load_spec("transactions")

    def schema(s: DatasetSpec) -> tuple[object, ...]:
        features = tuple(
            tuple(sorted(f.model_dump(exclude={"description"}).items(), key=lambda kv: kv[0])) for f in s.features
        )
        return (s.event_id, s.entity_key, s.timestamp, s.label, features)

    if schema(spec) != schema(builtin):
        raise FlywheelError(
            f"the simulator only generates events of the built-in 'transactions' schema, and spec "
            f"{spec.name!r} has other fields or constraints; replay your own data with "
            f"`flywheel produce --from-file PATH --spec {spec.name}` instead"
        )

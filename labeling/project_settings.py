"""A project's settings and label set, cleaned: text from forms and command lines, or typed
values from JSON, become the model's types, or are refused with a sentence naming the field.
``labeling.project_setup`` applies them."""

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.utils.text import slugify

from labeling.errors import ServiceError
from labeling.models import CostMode, Project, ReusePolicy, ThresholdScope

MAX_LABELS = 20
# Keys offered in order when a label names none; u, s and z stay free for the inspector page's
# undo, skip and zoom.
DEFAULT_KEYS = "1234567890qwertyiopadfghjklxcvbnm"
KEY_CHARS = set(string.ascii_lowercase + string.digits)


class ProjectSettingsInvalid(ServiceError):
    status, code = 400, "invalid_project_settings"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class LabelSpec:
    name: str
    display_name: str = ""
    key: str = ""


@dataclass(frozen=True)
class Setting:
    """One editable project setting: its type, bounds and what it means (shown on the form)."""

    kind: str  # int, float, money, bool, text, choice, rules
    help: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    max_length: int = 0


SETTINGS: dict[str, Setting] = {
    "name": Setting("text", "The project's name as people see it.", max_length=200),
    "description": Setting("text", "What inspectors are asked to do.", max_length=2000),
    "min_answers": Setting(
        "int", "Fewest answers per image before its consensus may decide it.", 1, 20
    ),
    "max_answers": Setting(
        "int", "Most answers per image; still undecided after that, it is disputed.", 1, 20
    ),
    "consensus_target": Setting(
        "float",
        "How sure the consensus must be to label an image (e.g. 0.95).",
        0.5,
        1.0,
        high_open=True,
    ),
    "lease_seconds": Setting(
        "int", "How long an inspector holds an image before it returns to the queue.", 30, 3600
    ),
    "show_model_suggestion": Setting("bool", "Show the model's guess to inspectors."),
    "audit_rate": Setting(
        "float", "Share of auto-labeled images also sent to inspectors to check the model.", 0, 1
    ),
    "gold_rate": Setting(
        "float", "Share of an inspector's images that have a known answer (gold).", 0, 1
    ),
    "retrain_every": Setting(
        "int", "Train a new model after this many new human labels (0: never).", 0, 10**7
    ),
    "cost_mode": Setting("choice", "Pay inspectors per answer or by the hour."),
    "price_per_answer": Setting("money", "Price of one answer.", 0, 99_999),
    "hourly_rate": Setting("money", "Price of one hour of an inspector's time.", 0, 99_999),
    "machine_price_per_1000": Setting("money", "Price of 1,000 model predictions.", 0, 99_999),
    "currency": Setting("text", "Three-letter currency code, e.g. USD.", max_length=3),
    "credit_rules": Setting(
        "rules", "Review type → the label that earns its credit, e.g. product → product."
    ),
    "credit_grant_threshold": Setting(
        "float", "Grant a credit automatically when P(credited label) is at least this.", 0, 1
    ),
    "credit_deny_threshold": Setting(
        "float", "Deny automatically when P(credited label) is at most this.", 0, 1
    ),
    "reuse_policy": Setting("choice", "What a photo found reused does to its review credit."),
    "calibration_share": Setting(
        "float",
        "Share of new images sent to inspectors whatever the model says: the random sample the "
        "auto-label thresholds are certified on (each costs its answers).",
        0,
        1,
    ),
    "threshold_scope": Setting(
        "choice",
        "What the precision promise covers: each class's auto-labels, or all of them together.",
    ),
    "train_on_machine_labels": Setting(
        "bool", "Also train on auto-labels of classes whose audits show them at the target."
    ),
}
# The model's choices behind each "choice" setting (values and the names people see).
CHOICE_TYPES = {
    "cost_mode": CostMode,
    "reuse_policy": ReusePolicy,
    "threshold_scope": ThresholdScope,
}
CHOICES = {name: kind.values for name, kind in CHOICE_TYPES.items()}
MONEY_PLACES = {"price_per_answer": 4, "hourly_rate": 2, "machine_price_per_1000": 4}


# --- cleaning ----------------------------------------------------------------------------------


def _number(name: str, raw: object, kind: str) -> int | float | Decimal:
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, bool) or text is None or text == "":
        raise ProjectSettingsInvalid(f"{title(name)} needs a number.", field=name)
    try:
        if kind == "int":
            if isinstance(text, float) and not text.is_integer():
                raise ValueError
            value = int(text) if not isinstance(text, str) else int(text, 10)
        elif kind == "money":
            value = Decimal(str(text))
            if not value.is_finite():
                raise ValueError
        else:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
    except (ValueError, TypeError, InvalidOperation):
        what = "a whole number" if kind == "int" else "a number"
        raise ProjectSettingsInvalid(
            f"{title(name)} must be {what}, not {raw!r}.", field=name
        ) from None
    return value


def title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _clean_one(name: str, raw: object, labels: Sequence[str]) -> object:
    spec = SETTINGS[name]
    if spec.kind == "bool":
        if isinstance(raw, str):
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
                raise ProjectSettingsInvalid(f"{title(name)} must be true or false.", field=name)
            return lowered in ("true", "1", "yes", "on")
        if not isinstance(raw, bool):
            raise ProjectSettingsInvalid(f"{title(name)} must be true or false.", field=name)
        return raw
    if spec.kind == "text":
        if not isinstance(raw, str):
            raise ProjectSettingsInvalid(f"{title(name)} must be text.", field=name)
        value = raw.strip()
        if name == "name" and not value:
            raise ProjectSettingsInvalid("A project needs a name.", field=name)
        if name == "currency":
            value = value.upper()
            if len(value) != 3 or not value.isalpha() or not value.isascii():
                raise ProjectSettingsInvalid(
                    "Currency must be a three-letter code such as USD or EUR.", field=name
                )
        if len(value) > spec.max_length:
            raise ProjectSettingsInvalid(
                f"{title(name)} is {len(value)} characters long; at most {spec.max_length}.",
                field=name,
            )
        return value
    if spec.kind == "choice":
        if raw not in CHOICES[name]:
            raise ProjectSettingsInvalid(
                f"{title(name)} must be one of: {', '.join(CHOICES[name])}.", field=name
            )
        return raw
    if spec.kind == "rules":
        return _clean_rules(raw, labels)
    value = _number(name, raw, spec.kind)
    too_high = value >= spec.high if spec.high_open else value > spec.high
    if value < spec.low or too_high:
        upper = f"below {spec.high:g}" if spec.high_open else f"at most {spec.high:g}"
        raise ProjectSettingsInvalid(
            f"{title(name)} must be at least {spec.low:g} and {upper}; got {value}.", field=name
        )
    if spec.kind == "money":
        places = MONEY_PLACES[name]
        if value != value.quantize(Decimal(1).scaleb(-places)):
            raise ProjectSettingsInvalid(
                f"{title(name)} has at most {places} decimal places; got {value}.", field=name
            )
    return value


def _clean_rules(raw: object, labels: Sequence[str]) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ProjectSettingsInvalid(
            'Credit rules must map a review type to a label, e.g. {"product": "product"}.',
            field="credit_rules",
        )
    rules = {}
    for review_type, label in raw.items():
        kind = str(review_type).strip()
        if not kind or len(kind) > 40:
            raise ProjectSettingsInvalid(
                "A review type needs a name of 1 to 40 characters.", field="credit_rules"
            )
        if label not in labels:
            raise ProjectSettingsInvalid(
                f"The credit rule for '{kind}' names '{label}', which is not a label of this "
                f"project ({', '.join(labels)}).",
                field="credit_rules",
            )
        rules[kind] = label
    return rules


def project_settings_clean(
    *, values: Mapping[str, object], labels: Sequence[str], current: Project | None = None
) -> dict[str, object]:
    """The given settings in the model's types, checked one by one and together (answer range,
    credit thresholds' order) against the ``current`` values of the ones not given."""
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise ProjectSettingsInvalid(
            f"Unknown setting {', '.join(unknown)}; the settings are {', '.join(SETTINGS)}.",
            field=unknown[0],
        )
    cleaned = {name: _clean_one(name, raw, labels) for name, raw in values.items()}

    def final(name: str):
        if name in cleaned:
            return cleaned[name]
        if current is not None:
            return getattr(current, name)
        return Project._meta.get_field(name).get_default()

    if final("max_answers") < final("min_answers"):
        raise ProjectSettingsInvalid(
            f"Max answers ({final('max_answers')}) must be at least min answers "
            f"({final('min_answers')}).",
            field="max_answers",
        )
    if final("credit_deny_threshold") > final("credit_grant_threshold"):
        raise ProjectSettingsInvalid(
            f"The deny threshold ({final('credit_deny_threshold')}) must not be above the grant "
            f"threshold ({final('credit_grant_threshold')}).",
            field="credit_deny_threshold",
        )
    if "credit_rules" not in cleaned and current is not None:
        _clean_rules(current.credit_rules or {}, labels)  # the labels may have changed
    return cleaned


def labels_clean(labels: Sequence[LabelSpec | str | Mapping]) -> list[LabelSpec]:
    """An ordered label set: names as slugs, unique; display names default to the name; keys
    unique (case-insensitive), defaulting to the first free key of DEFAULT_KEYS."""
    if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
        raise ProjectSettingsInvalid("Labels must be a list.", field="labels")
    specs = []
    for position, raw in enumerate(labels, start=1):
        if isinstance(raw, str):
            raw = LabelSpec(raw)
        elif isinstance(raw, Mapping):
            extra = set(raw) - {"name", "display_name", "key"}
            if extra:
                raise ProjectSettingsInvalid(
                    f"Label {position} has unknown fields: {', '.join(sorted(extra))}.",
                    field="labels",
                )
            raw = LabelSpec(
                **{k: v if v is not None else "" for k, v in raw.items()}  # type: ignore[arg-type]
            )
        if not isinstance(raw, LabelSpec) or not all(
            isinstance(v, str) for v in (raw.name, raw.display_name, raw.key)
        ):
            raise ProjectSettingsInvalid(
                f"Label {position} needs a name, and optionally a display name and a key.",
                field="labels",
            )
        name = slugify(raw.name.strip())
        if not name:
            raise ProjectSettingsInvalid(
                f"Label {position} needs a name made of letters, digits, - or _.", field="labels"
            )
        if len(name) > 60 or len(raw.display_name.strip()) > 120:
            raise ProjectSettingsInvalid(
                f"Label {position}: names are at most 60 characters, display names 120.",
                field="labels",
            )
        key = raw.key.strip().lower()
        if key and (len(key) != 1 or key not in KEY_CHARS):
            raise ProjectSettingsInvalid(
                f"The key of {name} must be one letter or digit, not {raw.key!r}.", field="labels"
            )
        specs.append(LabelSpec(name, raw.display_name.strip() or raw.name.strip(), key))
    if len(specs) < 2:
        raise ProjectSettingsInvalid("A project needs at least two labels.", field="labels")
    if len(specs) > MAX_LABELS:
        raise ProjectSettingsInvalid(f"At most {MAX_LABELS} labels.", field="labels")
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ProjectSettingsInvalid(
            f"Each label needs its own name; used twice: {', '.join(twice)}.", field="labels"
        )
    keys = [spec.key for spec in specs if spec.key]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ProjectSettingsInvalid(
            f"Each label needs its own key; used twice: {', '.join(twice)}.", field="labels"
        )
    free = iter(key for key in DEFAULT_KEYS if key not in keys)
    return [
        spec if spec.key else LabelSpec(spec.name, spec.display_name, next(free)) for spec in specs
    ]

"""What a marketer or a sync may write to a contact, checked and normalised before anything is stored.

- email: valid, lower-cased domain, ASCII local part only (SES cannot send to an SMTPUTF8 address);
- phone: parsed with `phonenumbers` and stored as E.164 (national numbers use the stack's region);
- language: a BCP 47 tag (`nl`, `nl-BE`), time zone: an IANA name;
- custom fields: typed by their definitions (text, number, date, boolean, choice);
- consent per channel with its source and time, the proof a marketer must be able to show.

Everything raises `InputError` with a list of (path, code, message) so the API answers every problem at
once. Pure: no AWS, only validation libraries.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib.schema import Model

FieldType = Literal["text", "number", "date", "boolean", "choice"]
ConsentStatus = Literal["granted", "denied", "withdrawn"]
CHANNELS = ("email", "sms")

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LABEL = re.compile(r"^[^\x00-\x1f]{1,128}$")
MAX_TEXT = 2048
MAX_NUMBER = 1e38
MIN_NUMBER = 1e-130


@dataclass(frozen=True)
class Problem:
    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


class InputError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class FieldDefinition:
    name: str
    field_type: FieldType
    options: tuple[str, ...] = ()
    label: str | None = None


class FieldDefinitionIn(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: str = Field(pattern=_NAME.pattern, description="Lower-case letters, digits and `_`; starts with a letter.")
    type: FieldType
    label: str | None = Field(default=None, max_length=128)
    options: list[str] = Field(default_factory=list, max_length=200, description="The choices of a `choice` field.")


class Consent(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    status: ConsentStatus
    source: str = Field(min_length=1, max_length=256, description="Where it was given, e.g. `form:newsletter`.")
    at: dt.datetime | None = Field(default=None, description="When; defaults to the time of the request.")


class ConsentIn(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    email: Consent | None = None
    sms: Consent | None = None


_Text = Field(default=None, max_length=256)
_Tag = Field(default=None, max_length=100)


class ContactIn(Model):
    """A contact as given to `POST`/`PUT /contacts` and (every field optional) `PATCH /contacts/{id}`."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    email: str | None = Field(default=None, max_length=254)
    external_id: str | None = Field(default=None, min_length=1, max_length=128)
    phone: str | None = Field(default=None, max_length=32)
    first_name: str | None = _Text
    last_name: str | None = _Text
    company: str | None = _Text
    language: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    category: str | None = Field(default=None, max_length=64, description="Lifecycle stage: lead, customer, …")
    owner_email: str | None = Field(default=None, max_length=254)
    fields: dict[str, Any] | None = Field(default=None, description="Custom fields by name, typed by definitions.")
    tags: list[str] | None = _Tag
    lists: list[str] | None = _Tag
    consent: ConsentIn | None = None


class ContactPatch(ContactIn):
    """Partial change: given fields are set (`null` clears), tags and lists can be added or removed."""

    add_tags: list[str] | None = _Tag
    remove_tags: list[str] | None = _Tag
    add_lists: list[str] | None = _Tag
    remove_lists: list[str] | None = _Tag


@dataclass
class ContactWrite:
    """A checked change: `values` are standard attributes (None clears), the rest as named."""

    values: dict[str, Any]
    fields: dict[str, Any]
    clear_fields: list[str]
    tags: set[str] | None = None
    lists: set[str] | None = None
    add_tags: set[str] | None = None
    remove_tags: set[str] | None = None
    add_lists: set[str] | None = None
    remove_lists: set[str] | None = None
    consent: dict[str, dict[str, Any]] | None = None

    @property
    def email(self) -> str | None:
        return self.values.get("email")

    @property
    def external_id(self) -> str | None:
        return self.values.get("external_id")


def parse_model(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InputError(_problems(exc)) from None


def _parse_partly(model: type[BaseModel], body: Any) -> tuple[Any, list[Problem]]:
    """The model of the parts of `body` that are well-formed, and the problems of the others.

    A body with a misspelt key and a bad address gets both reported, not only the first.
    """
    try:
        return model.model_validate(body), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = _problems(exc)
    if not isinstance(body, dict) or any(not e["loc"] for e in errors):
        raise InputError(problems)
    bad = {e["loc"][0] for e in errors}
    try:
        return model.model_validate({k: v for k, v in body.items() if k not in bad}), problems
    except ValidationError:
        raise InputError(problems) from None


def _problems(exc: ValidationError) -> list[Problem]:
    return [
        Problem("".join(f"/{x}" for x in e["loc"]), _code(e["type"]), _message(e["type"], e["msg"]))
        for e in exc.errors(include_url=False)
    ]


def _code(pydantic_type: str) -> str:
    return {"extra_forbidden": "unknown_field", "missing": "required"}.get(pydantic_type, "invalid")


def _message(pydantic_type: str, message: str) -> str:
    return "not a field of this body" if pydantic_type == "extra_forbidden" else message


def normalise_email(raw: str, path: str = "/email") -> str:
    # Imported when first needed: both libraries load large tables, which the app's cold start skips.
    from email_validator import EmailNotValidError, validate_email

    try:
        # SES needs an ASCII local part; international domains are converted to their ASCII form.
        checked = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InputError([Problem(path, "invalid_email", f"{raw!r} is not an address we can send to: {exc}")]) from None
    return checked.ascii_email.casefold() if checked.ascii_email else checked.normalized.casefold()


def normalise_phone(raw: str, region: str, path: str = "/phone") -> str:
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InputError([Problem(path, "invalid_phone", f"{raw!r} is not a phone number: {exc}")]) from None
    if not phonenumbers.is_valid_number(number):
        raise InputError([Problem(path, "invalid_phone", f"{raw!r} is not a valid phone number")])
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def coerce_field(defn: FieldDefinition, value: Any, path: str) -> Any:
    """A custom field's value in its stored form; raises InputError when it does not fit the type."""

    def bad(expected: str) -> InputError:
        return InputError([Problem(path, "wrong_type", f"{defn.name} is a {defn.field_type} field: {expected}")])

    match defn.field_type:
        case "text":
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise bad("give text")
            text = str(value)
            if len(text) > MAX_TEXT:
                raise bad(f"at most {MAX_TEXT} characters")
            return text
        case "number":
            if isinstance(value, bool):
                raise bad("give a number")
            if isinstance(value, int | float):
                number = value
            elif isinstance(value, str):
                try:
                    number = float(value.strip().replace(",", "."))
                except ValueError:
                    raise bad("give a number") from None
            else:
                raise bad("give a number")
            if number != number or number in (float("inf"), float("-inf")):
                raise bad("give a finite number")
            if not (number == 0 or MIN_NUMBER <= abs(number) < MAX_NUMBER):
                # Beyond what a DynamoDB number holds (38 digits, exponents down to -130).
                raise bad(f"give a number of at most 38 digits, 0 or between {MIN_NUMBER} and {MAX_NUMBER:.0e}")
            return int(number) if float(number).is_integer() and abs(number) < 2**53 else number
        case "date":
            if not isinstance(value, str):
                raise bad("give a date as YYYY-MM-DD")
            text = value.strip()
            try:
                # A date, or a moment of which the date is kept (as spreadsheets and CRMs export them).
                day = dt.date.fromisoformat(text) if len(text) <= 10 else dt.datetime.fromisoformat(text).date()
            except ValueError:
                raise bad("give a date as YYYY-MM-DD") from None
            return day.isoformat()
        case "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in (
                "true",
                "yes",
                "1",
                "on",
                "false",
                "no",
                "0",
                "off",
            ):
                return value.strip().lower() in ("true", "yes", "1", "on")
            raise bad("give true or false")
        case "choice":
            if not isinstance(value, str):
                raise bad(f"give one of {list(defn.options)}")
            for option in defn.options:
                if option.casefold() == value.strip().casefold():
                    return option
            raise bad(f"give one of {list(defn.options)}")
    raise AssertionError(defn.field_type)


def _labels(values: list[str], path: str, problems: list[Problem]) -> set[str]:
    out = set()
    for i, value in enumerate(values):
        label = value.strip()
        if not _LABEL.match(label):
            problems.append(Problem(f"{path}/{i}", "invalid", "1-128 printable characters"))
        out.add(label)
    return out


def check_contact(
    body: Any,
    definitions: dict[str, FieldDefinition],
    *,
    phone_region: str,
    now: dt.datetime,
    partial: bool = False,
) -> ContactWrite:
    """Validate and normalise a contact body; every problem is reported, nothing is half-applied."""
    model: ContactIn
    model, problems = _parse_partly(ContactPatch if partial else ContactIn, body)
    given = model.model_fields_set
    values: dict[str, Any] = {}

    def attempt(path: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except InputError as exc:
            problems.extend(exc.problems)
            return None

    for name in ("first_name", "last_name", "company", "category"):
        if name in given:
            value = getattr(model, name)
            values[name] = value.strip() or None if isinstance(value, str) else None
    if "category" in given and values.get("category"):
        values["category"] = values["category"].casefold()
    if "email" in given:
        values["email"] = attempt("/email", normalise_email, model.email) if model.email else None
    if "owner_email" in given:
        values["owner_email"] = (
            attempt("/owner_email", normalise_email, model.owner_email, "/owner_email") if model.owner_email else None
        )
    if "external_id" in given:
        values["external_id"] = (model.external_id or "").strip() or None
    if "phone" in given:
        values["phone"] = attempt("/phone", normalise_phone, model.phone, phone_region) if model.phone else None
    if "language" in given:
        lang = (model.language or "").strip()
        if lang and not _LANGUAGE.match(lang):
            problems.append(
                Problem("/language", "invalid_language", f"{lang!r} is not a language tag like nl or nl-BE")
            )
        values["language"] = lang.lower() or None
    if "timezone" in given:
        zone = (model.timezone or "").strip()
        if zone and zone not in _zones():
            problems.append(
                Problem("/timezone", "invalid_timezone", f"{zone!r} is not a time zone like Europe/Amsterdam")
            )
        values["timezone"] = zone or None

    fields: dict[str, Any] = {}
    clear: list[str] = []
    for name, value in (model.fields or {}).items():
        path = f"/fields/{name}"
        defn = definitions.get(name)
        if defn is None:
            problems.append(Problem(path, "unknown_field", f"no custom field {name!r}; define it at /fields first"))
        elif value is None:
            clear.append(name)
        else:
            coerced = attempt(path, coerce_field, defn, value, path)
            if coerced is not None:
                fields[name] = coerced

    write = ContactWrite(values=values, fields=fields, clear_fields=clear)
    for name in ("tags", "lists", "add_tags", "remove_tags", "add_lists", "remove_lists"):
        raw = getattr(model, name, None)
        if raw is not None:
            setattr(write, name, _labels(raw, f"/{name}", problems))
    if model.consent is not None:
        write.consent = {}
        for channel in CHANNELS:
            consent = getattr(model.consent, channel)
            if consent is not None:
                at = consent.at or now
                at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
                write.consent[channel] = {"status": consent.status, "source": consent.source, "at": at.isoformat()}
    if not partial and not (values.get("email") or values.get("external_id")) and not problems:
        problems.append(Problem("", "identifier_required", "a contact needs an `email` or an `external_id`"))
    if problems:
        raise InputError(problems)
    return write

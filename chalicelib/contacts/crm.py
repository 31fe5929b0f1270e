"""CRM objects of a contact as a marketer or a CRM sync writes them: activities, sales and requests.

- activity (a follow-up): type follow_up, call, meeting or task; subject, due date, done, owner, notes;
- sale: amount (≥ 0, a decimal string or number, at most the currency's minor-unit decimals), ISO 4217
  currency, product, status open, won or lost, expected and actual close dates;
- request (a service request): subject, status open, in_progress or closed, category, priority.

`*In` models check a new object whole; `*Patch` models a partial change, which is merged into the
stored object and checked again whole (`merge`), so a patch can never leave an invalid object behind.
Pure: pydantic and the standard library only.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from chalicelib.contacts.input import InputError, Problem, normalise_email, parse_model
from chalicelib.schema import Model

CrmKind = Literal["activity", "sale", "request"]
KINDS: tuple[CrmKind, ...] = ("activity", "sale", "request")

# ISO 4217 codes of currencies in use, with their minor units where these are not 2 (funds, metals,
# the SDR and the test codes are left out: nobody sells in them).
_MINOR_UNITS: dict[str, int] = {"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0}
_MINOR_UNITS |= {"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0}
_MINOR_UNITS |= {"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3, "CLF": 4, "UYW": 4}
_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN
    BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF
    KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
    MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU
    UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
CURRENCIES: frozenset[str] = frozenset(_CODES.split())
MAX_NOTES = 4000


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def _plain(value: Decimal) -> Decimal:
    # `1e3` is stored and answered as `1000`, never in exponent form.
    return Decimal(format(value, "f"))


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in CURRENCIES:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code like EUR or USD")
    return code


def _owner(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalise_email(value, "/owner_email")
    except InputError as exc:
        raise ValueError(exc.problems[0].message) from None


Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=4),
    AfterValidator(_plain),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^[0-9]{1,14}(\.[0-9]{1,4})?$"},
            ],
            "description": 'Zero or more, as a decimal string (`"1250.00"`) or a number.',
        },
        mode="validation",
    ),
]
Currency = Annotated[
    str,
    Field(min_length=3, max_length=3, description="ISO 4217 code, e.g. EUR."),
    AfterValidator(_currency),
]
Owner = Annotated[str | None, Field(default=None, max_length=254), AfterValidator(_owner)]
Subject = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str | None, Field(default=None, max_length=256)]
Notes = Annotated[str | None, Field(default=None, max_length=MAX_NOTES)]

ActivityType = Literal["follow_up", "call", "meeting", "task"]
SaleStatus = Literal["open", "won", "lost"]
RequestStatus = Literal["open", "in_progress", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]


class _Body(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")


class ActivityIn(_Body):
    """A follow-up activity: a call to make, a meeting, a task for the contact's owner."""

    type: ActivityType = "follow_up"
    subject: Subject
    due_date: dt.date | None = Field(default=None, description="When it is due (YYYY-MM-DD).")
    done: bool = False
    owner_email: Owner = None
    notes: Notes = None


class ActivityPatch(_Body):
    type: ActivityType | None = None
    subject: Subject | None = None
    due_date: dt.date | None = None
    done: bool | None = None
    owner_email: Owner = None
    notes: Notes = None


class SaleIn(_Body):
    """A sale (or a deal while it is open)."""

    amount: Amount
    currency: Currency
    product: Text = None
    status: SaleStatus = "open"
    expected_close_date: dt.date | None = None
    close_date: dt.date | None = Field(default=None, description="When it was won or lost.")
    owner_email: Owner = None
    notes: Notes = None


class SalePatch(_Body):
    amount: Amount | None = None
    currency: Currency | None = None
    product: Text = None
    status: SaleStatus | None = None
    expected_close_date: dt.date | None = None
    close_date: dt.date | None = None
    owner_email: Owner = None
    notes: Notes = None


class ServiceRequestIn(_Body):
    """A service request the contact made."""

    subject: Subject
    status: RequestStatus = "open"
    category: Text = None
    priority: Priority = "normal"
    owner_email: Owner = None
    description: Notes = None


class ServiceRequestPatch(_Body):
    subject: Subject | None = None
    status: RequestStatus | None = None
    category: Text = None
    priority: Priority | None = None
    owner_email: Owner = None
    description: Notes = None


NEW: dict[str, type[BaseModel]] = {"activity": ActivityIn, "sale": SaleIn, "request": ServiceRequestIn}
PATCH: dict[str, type[BaseModel]] = {"activity": ActivityPatch, "sale": SalePatch, "request": ServiceRequestPatch}


def check_new(kind: CrmKind, body: Any) -> dict[str, Any]:
    """The stored form of a new object (JSON values, absent fields left out); raises InputError."""
    model = parse_model(NEW[kind], body)
    if isinstance(model, SaleIn):
        places = max(0, -int(model.amount.as_tuple().exponent))
        if places > minor_units(model.currency):
            most = f"{model.currency} amounts have at most {minor_units(model.currency)} decimal(s)"
            raise InputError([Problem("/amount", "invalid", most)])
    return dict(model.model_dump(mode="json", exclude_none=True))


def merge(kind: CrmKind, current: dict[str, Any], body: Any) -> dict[str, Any]:
    """The stored object after a partial change: given fields replace, `null` clears; raises InputError."""
    problems: list[Problem] = []
    try:
        patch = parse_model(PATCH[kind], body)
    except InputError as exc:
        # Report the malformed fields and what the well-formed rest would break, all at once.
        problems = exc.problems
        if not isinstance(body, dict) or any(not p.path for p in problems):
            raise
        bad = {p.path.split("/")[1] for p in problems}
        patch = parse_model(PATCH[kind], {k: v for k, v in body.items() if k not in bad})
    given = patch.model_dump(mode="json", include=patch.model_fields_set)
    merged = {k: v for k, v in {**current, **given}.items() if v is not None}
    try:
        result = check_new(kind, merged)
    except InputError as exc:
        reported = {p.path for p in problems}
        raise InputError(problems + [p for p in exc.problems if p.path not in reported]) from None
    if problems:
        raise InputError(problems)
    return result

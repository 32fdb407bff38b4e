"""Typed records for the common HighLevel webhook kinds.

    msg = highlevel.InboundMessage.from_event(event)
    if msg.message_type == "SMS":
        ...

Each record reads the payload's camelCase fields into snake_case attributes. Tolerant by design:
extra fields are ignored (HighLevel adds fields without notice) and missing ones are `None`, so
check what your handler relies on. `raw` keeps the whole payload for anything not listed.
`from_event` raises `Fail` when the event's kind is not one the record describes.
"""

import re
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from .errors import Fail

_CAMEL = re.compile(r"_([a-z])")


def _camel(name):
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


class _Record:
    KINDS = ()

    @classmethod
    def from_payload(cls, payload):
        """The record read from a parsed payload (a dict)."""
        values = {}
        for f in fields(cls):
            if f.name != "raw":
                values[f.name] = payload.get(_camel(f.name))
        return cls(raw=payload, **values)

    @classmethod
    def from_event(cls, event):
        """The record read from `event`'s payload; `Fail` if its kind is not in `KINDS`."""
        if event.kind not in cls.KINDS:
            raise Fail(f"{cls.__name__} reads {', '.join(cls.KINDS)} events, not `{event.kind}`")
        return cls.from_payload(event.json())


@dataclass
class Contact(_Record):
    """ContactCreate, ContactUpdate, ContactDelete, ContactDndUpdate, ContactTagUpdate."""

    KINDS = ("ContactCreate", "ContactUpdate", "ContactDelete", "ContactDndUpdate", "ContactTagUpdate")
    id: Optional[str] = None
    location_id: Optional[str] = None
    first_name: Optional[str] = None
    last_name: Optional[str] = None
    email: Optional[str] = None
    phone: Optional[str] = None
    tags: Optional[list] = None
    assigned_to: Optional[str] = None
    source: Optional[str] = None
    date_added: Optional[str] = None
    raw: Any = field(default=None, repr=False)


@dataclass
class Opportunity(_Record):
    """OpportunityCreate, OpportunityUpdate, OpportunityStatusUpdate, OpportunityStageUpdate,
    OpportunityAssignedToUpdate, OpportunityMonetaryValueUpdate, OpportunityDelete. `status`
    is `open`, `won`, `lost` or `abandoned`."""

    KINDS = (
        "OpportunityCreate",
        "OpportunityUpdate",
        "OpportunityStatusUpdate",
        "OpportunityStageUpdate",
        "OpportunityAssignedToUpdate",
        "OpportunityMonetaryValueUpdate",
        "OpportunityDelete",
    )
    id: Optional[str] = None
    location_id: Optional[str] = None
    name: Optional[str] = None
    status: Optional[str] = None
    pipeline_id: Optional[str] = None
    pipeline_stage_id: Optional[str] = None
    contact_id: Optional[str] = None
    assigned_to: Optional[str] = None
    monetary_value: Optional[float] = None
    source: Optional[str] = None
    date_added: Optional[str] = None
    raw: Any = field(default=None, repr=False)


@dataclass
class Appointment(_Record):
    """AppointmentCreate, AppointmentUpdate, AppointmentDelete: the fields live under
    `appointment` in the payload."""

    KINDS = ("AppointmentCreate", "AppointmentUpdate", "AppointmentDelete")
    id: Optional[str] = None
    location_id: Optional[str] = None
    calendar_id: Optional[str] = None
    contact_id: Optional[str] = None
    title: Optional[str] = None
    appointment_status: Optional[str] = None
    assigned_user_id: Optional[str] = None
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    raw: Any = field(default=None, repr=False)

    @classmethod
    def from_payload(cls, payload):
        inner = payload.get("appointment")
        record = super().from_payload(inner if isinstance(inner, dict) else {})
        record.location_id = payload.get("locationId")
        record.raw = payload
        return record


@dataclass
class Message(_Record):
    """InboundMessage and OutboundMessage (SMS, email, calls, chat). `message_type` is e.g.
    `SMS` or `Email`; `direction` `inbound` or `outbound`."""

    KINDS = ("InboundMessage", "OutboundMessage")
    location_id: Optional[str] = None
    contact_id: Optional[str] = None
    conversation_id: Optional[str] = None
    message_id: Optional[str] = None
    message_type: Optional[str] = None
    direction: Optional[str] = None
    body: Optional[str] = None
    status: Optional[str] = None
    date_added: Optional[str] = None
    raw: Any = field(default=None, repr=False)


# The inbound side under its webhook name.
InboundMessage = Message


@dataclass
class Install(_Record):
    """INSTALL and UNINSTALL of the app, for a location or a company (agency)."""

    KINDS = ("INSTALL", "UNINSTALL")
    app_id: Optional[str] = None
    location_id: Optional[str] = None
    company_id: Optional[str] = None
    user_id: Optional[str] = None
    install_type: Optional[str] = None
    raw: Any = field(default=None, repr=False)

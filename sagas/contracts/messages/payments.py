"""Messages of the payments participant: commands on ``payments.commands`` and its replies."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from sagas.contracts.record import Record


class DeclineReason(StrEnum):
    """Why a payment authorization was declined."""

    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    FRAUD_SUSPECTED = "FRAUD_SUSPECTED"


@dataclass(frozen=True, kw_only=True)
class AuthorizePayment(Record):
    """Authorize (hold) a payment for an order.

    Attributes:
        order_id: Identifier of the order (the business key).
        customer_id: Identifier of the customer who placed the order.
        amount: Amount to authorize.
        currency: ISO 4217 currency code, e.g. EUR.
    """

    SCHEMA: ClassVar[str] = "payments.AuthorizePayment"

    order_id: str
    customer_id: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, kw_only=True)
class VoidPayment(Record):
    """Void an authorization (compensation of AuthorizePayment).

    Attributes:
        order_id: Identifier of the order (the business key).
        authorization_id: The authorization to void.
    """

    SCHEMA: ClassVar[str] = "payments.VoidPayment"

    order_id: str
    authorization_id: str


@dataclass(frozen=True, kw_only=True)
class PaymentAuthorized(Record):
    """The payment is authorized.

    Attributes:
        order_id: Identifier of the order (the business key).
        authorization_id: Identifier of the authorization, needed to void it.
        amount: Amount authorized.
        currency: ISO 4217 currency code, e.g. EUR.
    """

    SCHEMA: ClassVar[str] = "payments.PaymentAuthorized"

    order_id: str
    authorization_id: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, kw_only=True)
class PaymentDeclined(Record):
    """The payment provider declined the authorization.

    Attributes:
        order_id: Identifier of the order (the business key).
        reason: Why it was declined.
    """

    SCHEMA: ClassVar[str] = "payments.PaymentDeclined"

    order_id: str
    reason: DeclineReason


@dataclass(frozen=True, kw_only=True)
class PaymentVoided(Record):
    """An authorization was voided.

    Attributes:
        order_id: Identifier of the order (the business key).
        authorization_id: The voided authorization.
    """

    SCHEMA: ClassVar[str] = "payments.PaymentVoided"

    order_id: str
    authorization_id: str


@dataclass(frozen=True, kw_only=True)
class CapturePayment(Record):
    """Capture an authorized payment: the held amount becomes a charge.

    Attributes:
        order_id: Identifier of the order (the business key).
        authorization_id: The authorization to capture.
        amount: Amount to capture, at most the amount authorized.
    """

    SCHEMA: ClassVar[str] = "payments.CapturePayment"

    order_id: str
    authorization_id: str
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class PaymentCaptured(Record):
    """The payment is captured: the customer is charged.

    Attributes:
        order_id: Identifier of the order (the business key).
        authorization_id: The authorization that was captured.
        capture_id: Identifier of the capture (the charge).
    """

    SCHEMA: ClassVar[str] = "payments.PaymentCaptured"

    order_id: str
    authorization_id: str
    capture_id: str


@dataclass(frozen=True, kw_only=True)
class PaymentCaptureFailed(Record):
    """The payment could not be captured.

    Attributes:
        order_id: Identifier of the order (the business key).
        reason: Why, for people.
    """

    SCHEMA: ClassVar[str] = "payments.PaymentCaptureFailed"

    order_id: str
    reason: str

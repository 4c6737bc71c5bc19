"""The typed message classes, one module per domain, and the default class map.

Every class here has a schema of the same full name under ``schemas/``; `sagas check`
and the unit tests prove they agree field by field.
"""

from __future__ import annotations

from sagas.contracts.classmap import ClassMap
from sagas.contracts.messages import (
    access,
    assets,
    directory,
    hr,
    inventory,
    licensing,
    mail,
    orders,
    payments,
    sagas,
    shipping,
)
from sagas.contracts.record import Record

ALL_MESSAGES: tuple[type[Record], ...] = (
    access.GrantCloudAccess,
    access.RevokeCloudAccess,
    access.CloudAccessGranted,
    access.CloudAccessDenied,
    access.CloudAccessRevoked,
    assets.ProvisionLaptop,
    assets.ReclaimLaptop,
    assets.LaptopProvisioned,
    assets.LaptopUnavailable,
    assets.LaptopReclaimed,
    assets.LaptopDelivered,
    directory.CreateAccount,
    directory.DisableAccount,
    directory.AccountCreated,
    directory.AccountRejected,
    directory.AccountDisabled,
    hr.EmployeeHired,
    hr.EmployeeOnboarded,
    hr.OnboardingCancelled,
    inventory.ReserveStock,
    inventory.ReleaseStock,
    inventory.StockReserved,
    inventory.StockUnavailable,
    inventory.StockReleased,
    licensing.AssignLicences,
    licensing.UnassignLicences,
    licensing.LicencesAssigned,
    licensing.LicencesUnavailable,
    licensing.LicencesUnassigned,
    mail.CreateMailbox,
    mail.DeleteMailbox,
    mail.MailboxCreated,
    mail.MailboxRejected,
    mail.MailboxDeleted,
    orders.OrderPlaced,
    orders.OrderFulfilled,
    orders.OrderCancelled,
    payments.AuthorizePayment,
    payments.VoidPayment,
    payments.PaymentAuthorized,
    payments.PaymentDeclined,
    payments.PaymentVoided,
    payments.CapturePayment,
    payments.PaymentCaptured,
    payments.PaymentCaptureFailed,
    sagas.SagaStarted,
    sagas.StepSucceeded,
    sagas.StepFailed,
    sagas.SagaCompleted,
    sagas.SagaCompensated,
    sagas.SagaFailed,
    sagas.CommandFailed,
    sagas.OperatorAction,
    shipping.ScheduleShipment,
    shipping.CancelShipment,
    shipping.ShipmentScheduled,
    shipping.ShipmentFailed,
    shipping.ShipmentCancelled,
)
"""Every message class of the project, sorted by domain."""


def default_class_map() -> ClassMap:
    """A class map holding every message class of the project."""
    return ClassMap(ALL_MESSAGES)

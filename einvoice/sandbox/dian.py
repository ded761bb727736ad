"""The DIAN side of the simulator: which rule rejects a document, which notifications a validated
one carries, and the 422 body of a rejection.

Sources: FACTUS_API.md §5.4 and its "Rule codes worth simulating" (rule texts as Factus relays
them from DIAN), §7.1 for credit notes, and the DOC1 examples.

- FAK24 rejects a document whose NIT customer carries a wrong check digit (``dv``, DIAN modulo 11);
  the document is stored (its number is used) and stays not validated.
- FAD06 (CUFE miscalculated) stands for any other DIAN rejection: the ``dian_rejection`` fault.
- Validated documents carry notifications, not rejections: FAJ43b for NIT customers (the sandbox
  name never matches the RUT); for credit notes CBF02 without a referenced bill and CAK55
  without the customer's e-mail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stdnum.co import nit as co_nit

from einvoice.sandbox import catalogs

if TYPE_CHECKING:
    from einvoice.sandbox.documents import SandboxDocument

# DIAN rule texts (FACTUS_API.md §5.4 and §5.4 "Rule codes worth simulating").
FAK24 = "Regla: FAK24, Rechazo: DV no corresponde al NIT informado"
FAD06 = "Regla: FAD06, Rechazo: Valor del CUFE no está calculado correctamente"
FAJ43B = (
    "Regla: FAJ43b, Notificación: Nombre informado No corresponde al registrado en el RUT "
    "con respecto al Nit suministrado."
)
CAK55 = "Regla: CAK55, Notificación: Correo electrónico no informado"
CBF02 = "Regla: CBF02, Notificación: No se informo el numero de la factura referenciada"


def dian_rejection(document: SandboxDocument, outcome_fault: str | None) -> str | None:
    """The rule text DIAN rejects ``document`` with, or None when it validates.

    FAK24 for a NIT customer whose ``dv`` is not the NIT's check digit; else FAD06 when the
    ``dian_rejection`` fault was drawn (``outcome_fault``).
    """
    customer = document.customer
    if (
        customer.identification_document_id == catalogs.NIT_DOCUMENT_ID
        and customer.dv is not None
        and customer.dv != co_nit.calc_check_digit(customer.identification)
    ):
        return FAK24
    if outcome_fault == "dian_rejection":
        return FAD06
    return None


def notifications(document: SandboxDocument) -> list[str]:
    """DIAN notifications (not rejections) a validated document carries (§5.4, DOC1 examples).

    FAJ43b for NIT customers (the sandbox name never matches the RUT); for credit notes CBF02 when no
    bill is referenced and CAK55 when the customer has no e-mail.
    """
    notes: list[str] = []
    if document.customer.identification_document_id == catalogs.NIT_DOCUMENT_ID:
        notes.append(FAJ43B)
    if document.kind == "credit_note":
        if document.bill is None:
            notes.append(CBF02)
        if not document.customer.email:
            notes.append(CAK55)
    return notes


def dian_rejection_body(errors: list[str]) -> dict[str, Any]:
    """The 422 body of a DIAN rejection (FACTUS_API.md §5.4): ``data.errors`` keyed by rule code."""
    keyed = {message.split(",")[0].removeprefix("Regla: ").strip(): message for message in errors}
    return {
        "status": "Validation error",
        "message": "El documento contiene errores de validación",
        "data": {"message": "El documento contiene errores de validación", "errors": keyed},
    }


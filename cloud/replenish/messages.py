"""What the restocking run tells people and the ERP, in the reader's language, with units.

- :func:`rule_notifications`: one message per purchase draft whose rules say ``notify``, in every
  language the channels speak (the cold-chain runtime picks each channel's own).
- :func:`proposal_message`: an approved proposal for the export webhook; its ``payload`` is the
  machine-readable record, the title and text follow ``[cloud.replenish] webhook_language``.

Wording comes from :mod:`cloud.notify.catalogue`, as every alert's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloud.core import db
from cloud.notify.base import AlertMessage
from cloud.notify.catalogue import LANGUAGES, number, word
from cloud.replenish.money import money
from cloud.replenish.proposals import Plan

# One message per channel language: a rule's notify action reaches channels of several languages.
Localised = Mapping[str, AlertMessage]


def _line(row: Mapping[str, Any], lang: str) -> str:
    return word(
        "proposal.line",
        lang,
        id=row["id"],
        quantity=word("units", lang, n=number(float(row["quantity"]))),
        sku=row["sku"],
        location=row["location_id"],
    )


def rule_notifications(
    site_id: str, plan: Plan, created: Sequence[Mapping[str, Any]], group: str, currency: str = "EUR"
) -> list[tuple[tuple[str, ...], Localised]]:
    """One message per purchase draft whose rules say ``notify``, about the lines actually created."""
    out: list[tuple[tuple[str, ...], Localised]] = []
    for draft in plan.purchases:
        if draft.decision is None or not draft.decision.notify:
            continue
        ref = f"{group}:{site_id}:{draft.supplier}"
        lines = [r for r in created if r["kind"] == "purchase" and r["group_ref"] == ref]
        if not lines:
            continue  # another run created them first: it told people
        ids = sorted(int(r["id"]) for r in lines)
        rules = ", ".join(sorted({rule for names in draft.decision.notify.values() for rule in names}))
        value = f"{money(draft.value, currency):g} {currency}"
        at = db.utcnow()
        messages: dict[str, AlertMessage] = {
            lang: AlertMessage(
                alert_id=f"proposals-{ids[0]}",
                site_id=site_id,
                kind="purchase_proposal",
                state="proposed",
                title=word("proposal.draft_title", lang, supplier=draft.supplier, value=value, rules=rules),
                text="; ".join(_line(r, lang) for r in lines),
                at=at,
                severity="info",
                # stable across retries; one per language, as the alert transitions' messages
                delivery_id=f"proposals-{'-'.join(map(str, ids))}-{lang}"[:200],
                language=lang,
            )
            for lang in LANGUAGES
        }
        out.append((tuple(sorted(draft.decision.notify)), messages))
    return out


@dataclass(frozen=True, slots=True)
class ProposalMessage(AlertMessage):
    """An approved proposal as a :class:`cloud.notify` message: the webhook POSTs ``payload``."""

    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "replenishment_proposal",
            "delivery_id": self.delivery_id,
            "title": self.title,
            "text": self.text,
            "language": self.language,
            "proposal": self.payload,
        }


def proposal_message(record: Mapping[str, Any], language: str = "en") -> ProposalMessage:
    kind = word(f"kind.{record['kind']}", language)
    return ProposalMessage(
        alert_id=f"proposal-{record['id']}",
        site_id=str(record["site_id"]),
        kind=f"{record['kind']}_proposal",
        state="approved",
        title=word("proposal.title", language, kind=kind, id=record["id"]),
        text=word(
            "proposal.text",
            language,
            quantity=word("units", language, n=number(float(record["quantity"]))),
            sku=record["sku"],
            location=record["location_id"],
        ),
        at=db.utcnow(),
        severity="info",
        # The same on every attempt and every replica: receivers de-duplicate on it.
        delivery_id=f"proposal-{record['id']}",
        language=language,
        payload=dict(record),
    )


__all__ = ["Localised", "ProposalMessage", "proposal_message", "rule_notifications"]

"""Message templates in English and Arabic, and rendering to text and HTML.

English is what the producing service wrote (``subject`` and ``body`` of the event); Arabic
comes from the templates here, by the event's ``template`` id, filled from its ``data``. An
id with no Arabic template is sent in English (``language`` says so), never half-translated.

Right to left: Arabic text is rendered with ``dir="rtl"`` (and ``lang="ar"``) in HTML, and
every value that reads left to right inside it (an application id, a visa number, a date) is
wrapped in Unicode isolates, FIRST STRONG ISOLATE (U+2068) ... POP DIRECTIONAL ISOLATE
(U+2069), so "W000000123" keeps its order and does not drag the punctuation around it. HTML
is built from escaped text only.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["FSI", "PDI", "Language", "Rendered", "isolate", "render"]

Language = Literal["en", "ar"]
FSI: Final = "\u2068"
PDI: Final = "\u2069"

_VISA_STATES_AR: Final = {
    "submitted": "تم استلام الطلب",
    "awaiting_payment": "بانتظار دفع الرسوم",
    "in_review": "قيد المراجعة",
    "approved": "تمت الموافقة",
    "issued": "صدرت التأشيرة",
    "rejected": "رُفض الطلب",
    "cancelled": "أُلغي الطلب",
    "expired": "انتهت صلاحية التأشيرة",
    "lapsed": "انتهت مهلة الطلب",
}
_VISA_BODIES_AR: Final = {
    "submitted": "تم استلام طلب التأشيرة رقم {application_id}.",
    "awaiting_payment": "اجتاز الطلب رقم {application_id} الفحوصات، وهو بانتظار دفع الرسوم.",
    "in_review": "تم دفع رسوم الطلب رقم {application_id}، وسيراجعه موظف مختص.",
    "approved": "تمت الموافقة على الطلب رقم {application_id}.",
    "issued": "صدرت التأشيرة رقم {visa_number} للطلب رقم {application_id}.",
    "rejected": "رُفض الطلب رقم {application_id}.",
    "cancelled": "أُلغي الطلب رقم {application_id}.",
    "expired": "انتهت صلاحية التأشيرة رقم {visa_number}.",
    "lapsed": "انتهت مهلة الطلب رقم {application_id} لعدم دفع الرسوم.",
}

#: Arabic (subject, body) by template id; ``{name}`` is filled from the event's data.
ARABIC: Final[Mapping[str, tuple[str, str]]] = {
    f"visa.application.{state}": (f"طلب التأشيرة رقم {{application_id}}: {label}", body)
    for state, label in _VISA_STATES_AR.items()
    for body in (_VISA_BODIES_AR[state],)
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """One message in one language: the subject, the plain text and the HTML e-mail."""

    language: Language
    subject: str
    text: str
    html: str

    @property
    def dir(self) -> Literal["ltr", "rtl"]:
        return "rtl" if self.language == "ar" else "ltr"


def isolate(value: object) -> str:
    """``value`` between FSI and PDI: it keeps its own direction inside right-to-left text."""
    return f"{FSI}{value}{PDI}"


class _Isolated(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return isolate("-")


def _fill(template: str, data: Mapping[str, Any]) -> str | None:
    values = _Isolated({k: isolate(v) for k, v in data.items() if v is not None})
    try:
        return template.format_map(values)
    except (ValueError, IndexError, AttributeError):
        return None


def _html(language: Language, subject: str, text: str) -> str:
    direction = "rtl" if language == "ar" else "ltr"
    paragraphs = "".join(
        f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line.strip()
    )
    return (
        f'<!DOCTYPE html><html lang="{language}" dir="{direction}"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>"
        f'<body dir="{direction}" style="text-align:{"right" if direction == "rtl" else "left"}">'
        f"{paragraphs}</body></html>"
    )


def render(
    template: str,
    language: Language,
    *,
    subject: str,
    body: str,
    data: Mapping[str, Any],
) -> Rendered:
    """The message for ``language``: the template's Arabic, or the producer's English."""
    if language == "ar" and template in ARABIC:
        subject_ar, body_ar = ARABIC[template]
        filled_subject, filled_body = _fill(subject_ar, data), _fill(body_ar, data)
        if filled_subject is not None and filled_body is not None:
            return Rendered(
                language="ar",
                subject=filled_subject,
                text=filled_body,
                html=_html("ar", filled_subject, filled_body),
            )
    return Rendered(language="en", subject=subject, text=body, html=_html("en", subject, body))

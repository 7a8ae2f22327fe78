"""A contract as a document people read: HTML (escaped) and PDF (a minimal writer, no library).

Both are rendered from the same lines (:func:`lines_of`): the stored document (the signed
terms), the state and the signatures with their hashes. The PDF is PDF 1.4 with the standard
Helvetica font (WinAnsi encoding; a character outside Latin-1 prints as ``?``), one content
stream per page and a correct cross-reference table: small, and readable by any viewer.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["lines_of", "render_html", "render_pdf"]

_WIDTH: Final = 95  # characters per line at 10 pt Helvetica on A4 with 50 pt margins (about)
_LINES_PER_PAGE: Final = 58
_PAGE: Final = (595, 842)  # A4 in points
_TOP: Final = 792
_LEFT: Final = 50


def _money(amount: int, currency: str) -> str:
    return f"{amount:,} {currency}"


def lines_of(
    document: dict[str, Any], *, state: str, signatures: Sequence[dict[str, Any]], digest: str
) -> list[tuple[str, str]]:
    """``(kind, text)`` lines: ``h`` a heading, ``p`` a paragraph line."""
    currency = document["salary"]["currency"]
    employee = document["employee"]
    establishment = document["establishment"]
    terms = document["terms"]
    out: list[tuple[str, str]] = [
        ("h", f"Employment contract {document['contract_id']}"),
        ("p", f"Version {document['version']}, state: {state}"),
        ("h", "Parties"),
        (
            "p",
            f"Employer: {establishment.get('name') or establishment['id']} "
            f"(CR {establishment['cr_number']})",
        ),
        (
            "p",
            f"Employee: {employee['name']} ({employee['nationality']}, "
            f"{'citizen' if employee['citizen'] else 'foreign worker'}"
            + (f", work visa {employee['visa_number']}" if employee.get("visa_number") else "")
            + ")",
        ),
        ("h", "Work"),
        (
            "p",
            f"Occupation: {document['occupation']['title']} "
            f"(ISCO-08 {document['occupation']['code']})",
        ),
        ("p", f"Monthly salary: {_money(document['salary']['monthly'], currency)}"),
    ]
    out.extend(
        ("p", f"Allowance, {name.replace('_', ' ')}: {_money(amount, currency)}")
        for name, amount in document["allowances"].items()
    )
    out += [
        ("p", f"Starts on {document['start_date']}"),
        (
            "p",
            f"Ends on {document['end_date']}" if document["end_date"] else "Of indefinite duration",
        ),
        ("h", "Terms"),
        ("p", f"Probation: {terms['probation_days']} days; notice: {terms['notice_days']} days"),
        (
            "p",
            f"Annual leave: {terms['annual_leave_days']} days; "
            f"working week: {terms['weekly_hours']} hours",
        ),
    ]
    out.extend(("p", f"{n}. {clause}") for n, clause in enumerate(terms["clauses"], start=1))
    out += [("h", "Signatures"), ("p", f"Document hash (SHA-256): {digest}")]
    if not signatures:
        out.append(("p", "Not signed yet."))
    for signature in signatures:
        signer = signature["signer"]
        behalf = f" for {signer['on_behalf_of']}" if signer.get("on_behalf_of") else ""
        out.append(
            (
                "p",
                f"{signature['party'].capitalize()}: {signer['kind']} {signer['id']}{behalf}, "
                f"signed at {signature['signed_at']}, hub-signed",
            )
        )
    return out


def render_html(lines: Sequence[tuple[str, str]]) -> str:
    """The document as one HTML page; every value escaped."""
    title = html.escape(lines[0][1]) if lines else "Employment contract"
    body: list[str] = []
    for kind, text in lines:
        tag = "h2" if kind == "h" else "p"
        if kind == "h" and not body:
            tag = "h1"
        body.append(f"<{tag}>{html.escape(text)}</{tag}>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _pdf_text(text: str) -> bytes:
    raw = text.encode("latin-1", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def render_pdf(lines: Sequence[tuple[str, str]], *, title: str = "Employment contract") -> bytes:
    """The document as a PDF 1.4 file."""
    rows: list[tuple[str, str]] = []
    for kind, text in lines:
        if kind == "h" and rows:
            rows.append(("p", ""))
        for part in textwrap.wrap(text, _WIDTH) or [""]:
            rows.append((kind, part))
    pages = [rows[i : i + _LINES_PER_PAGE] for i in range(0, len(rows), _LINES_PER_PAGE)] or [[]]
    # objects: 1 catalog, 2 page tree, 3 regular font, 4 bold font, 5 info, then per page
    # a page and its content stream
    count = 5 + 2 * len(pages)
    kids = " ".join(f"{6 + 2 * i} 0 R" for i in range(len(pages)))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Title (" + _pdf_text(title) + b") /Producer (hub contracts service) >>",
    ]
    for index, page in enumerate(pages):
        content = index * 2 + 7
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE[0]} {_PAGE[1]}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {content} 0 R >>".encode()
        )
        stream = bytearray(f"BT 14 TL {_LEFT} {_TOP} Td\n".encode())
        for kind, text in page:
            font = b"/F2 11 Tf" if kind == "h" else b"/F1 10 Tf"
            stream += font + b" (" + _pdf_text(text) + b") Tj T*\n"
        stream += b"ET"
        objects.append(
            f"<< /Length {len(stream)} >>\nstream\n".encode() + bytes(stream) + b"\nendstream"
        )
    assert len(objects) == count
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {count + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {count + 1} /Root 1 0 R /Info 5 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)

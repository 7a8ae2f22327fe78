"""Obligations on JSON answers: masking and dropping fields, and failing closed on the rest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.errors import ObligationFailed
from hub.policy.model import MaskSpec, ObligationSpec
from hub.policy.obligations import ObligatedSend, compile_obligations, parse_field_path

OBLIGATIONS = compile_obligations(
    ObligationSpec(
        mask=(
            MaskSpec(field="$.person.national_id", keep_last=4),
            MaskSpec(field="$.people[*].national_id", keep_last=4),
        ),
        drop=("$.person.phone", "$.people[*].phone"),
    )
)


def test_masks_and_drops_fields_in_place() -> None:
    document = {
        "person": {"national_id": "1234567890", "phone": "+966500000000", "name": "Sara"},
        "people": [{"national_id": 2234567891, "phone": "x"}, {"name": "no id"}, "odd"],
    }
    OBLIGATIONS.apply(document)
    assert document == {
        "person": {"national_id": "******7890", "name": "Sara"},
        "people": [{"national_id": "******7891"}, {"name": "no id"}, "odd"],
    }


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("1234567890", "******7890"),
        ("1234", "****"),  # no longer than keep_last: masked whole
        ("12", "**"),
        (None, None),
        (1234567890, "******7890"),
        ({"nested": "secret"}, None),  # never reveals a structure
        (True, None),
    ],
)
def test_mask_reveals_at_most_the_last_characters(value: Any, masked: Any) -> None:
    document = {"person": {"national_id": value}}
    OBLIGATIONS.apply(document)
    assert document["person"]["national_id"] == masked


def test_paths_that_find_nothing_change_nothing() -> None:
    document = {"other": 1, "person": "not an object", "people": {"not": "a list"}}
    assert OBLIGATIONS.apply(json.loads(json.dumps(document))) == document


@pytest.mark.parametrize("bad", ["person.id", "$", "$.a[*]", "$.a..b", "$.a[0]"])
def test_bad_field_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"\$|field|unexpected"):
        parse_field_path(bad)


class Sink:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


def start(
    status: int = 200, content_type: bytes = b"application/json", **extra: bytes
) -> dict[str, Any]:
    headers = [(b"content-type", content_type), (b"content-length", b"999"), (b"etag", b'"x"')]
    headers += [(k.replace("_", "-").encode(), v) for k, v in extra.items()]
    return {"type": "http.response.start", "status": status, "headers": headers}


async def relay(send: ObligatedSend, head: dict[str, Any], *chunks: bytes) -> None:
    await send(head)
    for index, chunk in enumerate(chunks):
        await send(
            {"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1}
        )


BODY = json.dumps({"person": {"national_id": "1234567890", "phone": "5"}}).encode()


async def test_a_json_answer_is_sent_transformed_with_a_new_length() -> None:
    sink = Sink()
    send = ObligatedSend(sink, OBLIGATIONS, limit=1 << 20, method="GET")
    await relay(send, start(), BODY[:10], BODY[10:])
    head, body = sink.messages
    assert json.loads(body["body"]) == {"person": {"national_id": "******7890"}}
    headers = dict(head["headers"])
    assert headers[b"content-length"] == str(len(body["body"])).encode()
    assert b"etag" not in headers
    assert send.sent


async def test_problem_json_error_bodies_are_transformed_too() -> None:
    sink = Sink()
    send = ObligatedSend(sink, OBLIGATIONS, limit=1 << 20, method="GET")
    await relay(send, start(404, b"application/problem+json; charset=utf-8"), BODY)
    assert b"1234567890" not in sink.messages[1]["body"]


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (start(200, b"text/html"), b"<p>1234567890</p>"),
        (start(200, b"application/json", content_encoding=b"gzip"), b"\x1f\x8b..."),
        (start(200), b"{not json"),
    ],
    ids=["not-json", "compressed", "unparsable"],
)
async def test_a_success_that_cannot_be_inspected_fails_closed(
    head: dict[str, Any], body: bytes
) -> None:
    sink = Sink()
    send = ObligatedSend(sink, OBLIGATIONS, limit=1 << 20, method="GET")
    with pytest.raises(ObligationFailed):
        await relay(send, head, body)
    assert sink.messages == []
    assert not send.sent


async def test_a_too_large_answer_fails_closed_before_anything_is_sent() -> None:
    sink = Sink()
    send = ObligatedSend(sink, OBLIGATIONS, limit=16, method="GET")
    with pytest.raises(ObligationFailed, match="larger than 16 bytes"):
        await relay(send, start(), BODY[:10], BODY[10:])
    assert sink.messages == []


@pytest.mark.parametrize(
    ("method", "head", "body"),
    [
        ("GET", start(502, b"text/plain"), b"bad gateway"),  # a non-JSON error passes
        ("GET", start(204), b""),
        ("HEAD", start(200), b""),
    ],
)
async def test_answers_without_inspectable_data_pass_unchanged(
    method: str, head: dict[str, Any], body: bytes
) -> None:
    sink = Sink()
    send = ObligatedSend(sink, OBLIGATIONS, limit=1 << 20, method=method)
    await relay(send, head, body)
    assert sink.messages[0] is head
    assert sink.messages[1]["body"] == body

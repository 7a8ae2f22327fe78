"""The pure rules of the occupations, certificates and compliance services (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.certificates.domain import Claim, judge
from services.compliance.domain import BANDS, size_band, standing
from services.occupations.catalogue import catalogue, occupation
from services.occupations.domain import ChangeRequest, Employment, decide

_RANK = {band: index for index, band in enumerate(reversed(BANDS))}  # red 0 ... exempt 4
SECTORS = st.sampled_from(["retail", "construction", "education", "unknown-sector"])


@given(sector=SECTORS, total=st.integers(10, 2000), data=st.data())
def test_more_citizens_never_lower_the_band(sector: str, total: int, data: st.DataObject) -> None:
    fewer = data.draw(st.integers(0, total))
    more = data.draw(st.integers(fewer, total))
    low, high = (standing(sector=sector, citizens=c, total=total) for c in (fewer, more))
    assert low.band != "exempt"
    assert _RANK[high.band] >= _RANK[low.band]
    assert high.size_band == size_band(total) != "micro"


@given(sector=SECTORS, total=st.integers(0, 9), data=st.data())
def test_fewer_than_ten_employees_are_exempt(sector: str, total: int, data: st.DataObject) -> None:
    citizens = data.draw(st.integers(0, total))
    assert standing(sector=sector, citizens=citizens, total=total).band == "exempt"


def test_a_workforce_is_consistent() -> None:
    with pytest.raises(ValueError, match="citizens"):
        standing(sector="retail", citizens=3, total=2)


CLAIM = Claim(number="QC-2010-000001", national_id="1000000001", degree="bachelor",
              institution="King Saud University", year=2010)  # fmt: skip
RECORD = {"number": CLAIM.number, "holder_national_id": "1000000001", "degree": "Bachelor",
          "institution": "king  saud university", "year": 2010, "status": "valid"}  # fmt: skip
CHANGES = {
    "holder": ("holder_national_id", "1000000002"),
    "degree": ("degree", "master"),
    "institution": ("institution", "Cairo University"),
    "year": ("year", 2011),
}


@given(wrong=st.sets(st.sampled_from(sorted(CHANGES))))
def test_the_verdict_names_exactly_the_fields_that_differ(wrong: set[str]) -> None:
    record = dict(RECORD)
    for name in wrong:
        key, value = CHANGES[name]
        record[key] = value
    verdict = judge(CLAIM, record)
    assert set(verdict.mismatches) == wrong
    assert verdict.state == ("mismatch" if wrong else "verified")


def test_no_record_revoked_and_unknown_statuses() -> None:
    assert judge(CLAIM, None).state == "not_found"
    assert judge(CLAIM, {**RECORD, "status": "revoked"}).state == "revoked"
    with pytest.raises(ValueError, match="unknown status"):
        judge(CLAIM, {**RECORD, "status": "suspended"})  # no verdict is guessed


@given(
    code=st.sampled_from(sorted(catalogue())),
    current=st.sampled_from(sorted(catalogue())),
    citizen=st.booleans(),
    degrees=st.lists(st.sampled_from(["diploma", "bachelor", "master", "doctorate"]), max_size=3),
)
def test_the_change_rules(code: str, current: str, citizen: bool, degrees: list[str]) -> None:
    target = occupation(code)
    assert target is not None
    request = ChangeRequest(person_id="p", to=target, reason=None)
    decision = decide(
        request, Employment(contract_id="c", occupation=current, citizen=citizen), degrees
    )
    if code == current:
        assert "same_occupation" in decision.refusals
    if target.reserved_for_citizens and not citizen:
        assert "occupation_reserved_for_citizens" in decision.refusals
    if decision.refusals:
        assert not decision.review
        return
    degree_ok = bool(set(degrees) - {"diploma"})
    assert decision.state == ("in_review" if target.professional and not degree_ok else "approved")
    assert decide(request, None, degrees).refusals == ("no_active_contract",)

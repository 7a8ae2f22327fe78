"""Checking a second factor: a TOTP code (never the same one twice) or a single-use recovery code.

The last accepted time step of each person is kept in the ephemeral store (``totp-step:``) and
passed to the verifier, so an older or equal code is refused. Because two requests could both
read the same last step, the accepted step is also claimed with an atomic ``add``
(``totp-used:<person>:<step>``): of two concurrent posts of one code only one wins. Recovery codes
are claimed the same way before the stored list shrinks.
"""

from __future__ import annotations

from typing import Final

from hub.db.person_store import Person
from hub.identity.login._web import identity_of
from hub.identity.totp import PERIOD, TotpVerifier, hash_recovery_code, use_recovery_code
from hub.runtime import Runtime

__all__ = ["TOTP_VERIFIER", "check_recovery_code", "check_totp", "looks_like_totp"]

#: One step either side of now: 30 s of clock drift between phone and server.
TOTP_VERIFIER: Final = TotpVerifier(window=1)
# Longer than any step the verifier accepts (now ± window) stays claimable.
_STEP_MEMORY_SECONDS: Final = 4 * PERIOD * (TOTP_VERIFIER.window + 1)
_RECOVERY_CLAIM_SECONDS: Final = 24 * 3600


def looks_like_totp(code: str) -> bool:
    """Whether ``code`` is shaped like a 6-digit TOTP code (else try it as a recovery code)."""
    digits = code.replace(" ", "").replace("-", "")
    return len(digits) == 6 and digits.isascii() and digits.isdigit()


async def check_totp(runtime: Runtime, person_id: str, secret: str, code: str) -> bool:
    """Whether ``code`` is a current TOTP code for ``secret`` not used before; spends it."""
    store = runtime.ephemeral
    remembered = await store.get("totp-step:" + person_id)
    last = remembered.get("step") if remembered else None
    try:
        step = TOTP_VERIFIER.verify(
            secret, code, last_used_step=last if isinstance(last, int) else None
        )
    except ValueError:  # a stored secret that is not base32
        return False
    if step is None:
        return False
    if not await store.add(f"totp-used:{person_id}:{step}", {}, _STEP_MEMORY_SECONDS):
        return False
    await store.put("totp-step:" + person_id, {"step": step}, _STEP_MEMORY_SECONDS)
    return True


async def check_recovery_code(runtime: Runtime, person: Person, code: str) -> bool:
    """Whether ``code`` is one of the person's unused recovery codes; spends it."""
    remaining = use_recovery_code(code, person.recovery_code_hashes)
    if remaining is None:
        return False
    claim = f"recovery-used:{person.id}:{hash_recovery_code(code)}"
    if not await runtime.ephemeral.add(claim, {}, _RECOVERY_CLAIM_SECONDS):
        return False
    await identity_of(runtime).persons.set_recovery_code_hashes(person.id, remaining)
    return True

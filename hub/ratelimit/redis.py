"""Redis rate-limit store: one atomic Lua script per hit, hits of one loop tick pipelined.

The script reads the clock with Redis ``TIME`` so every replica of the hub judges a bucket by
the same clock, whatever their own clocks say. It stores the TAT as an integer of
microseconds under ``hub:rl:<key>`` with an expiry at the moment the bucket is full again,
so idle keys cost nothing.

A multi-bucket hit (``hit_all``) is one call of a second script over all its keys: it reads
every bucket, and writes them all only if each has room, so the buckets pass or refuse as one.
Keys of one multi-bucket hit must live on one Redis node (the hub does not use Redis Cluster).

Hits that arrive in the same event-loop iteration are sent as one non-transactional pipeline
of ``EVALSHA`` calls (one round trip instead of one per hit); the script is loaded only when
Redis answers ``NOSCRIPT`` (first use, restart, ``SCRIPT FLUSH``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from hub.errors import BackendUnavailable
from hub.ratelimit.base import Bucket, Decision, Limit, RateLimitStore, check_buckets
from hub.ratelimit.gcra import bounds, decide, decide_all

__all__ = ["RedisRateLimitStore"]

# KEYS[1] bucket; ARGV[1] increment, ARGV[2] tolerance (tau + T), both in microseconds.
# Mirrors gcra.decide and returns how far the stored TAT lies ahead of now (0 if behind or
# absent): all decide needs to rebuild the Decision, in one integer, the cheapest reply to parse.
# string.format('%d') because tostring() keeps only 14 significant digits.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
if new_tat - tonumber(ARGV[2]) <= now then
  redis.call('SET', KEYS[1], string.format('%d', new_tat),
             'PX', math.ceil((new_tat - now) / 1000))
end
return tat - now
"""

# KEYS[1..n] buckets; ARGV[2i-1], ARGV[2i] the increment and tolerance of KEYS[i]. The same
# arithmetic per bucket; the TATs move only when every bucket has room. Returns each lead.
_MULTI_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local leads, tats, ok = {}, {}, true
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  leads[i] = tat - now
  tats[i] = tat + tonumber(ARGV[2 * i - 1])
  if tats[i] - tonumber(ARGV[2 * i]) > now then ok = false end
end
if ok then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%d', tats[i]),
               'PX', math.ceil((tats[i] - now) / 1000))
  end
end
return leads
"""


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_SHA = _sha(_SCRIPT)
_MULTI_SHA = _sha(_MULTI_SCRIPT)
_SCRIPTS = {_SHA: _SCRIPT, _MULTI_SHA: _MULTI_SCRIPT}

_Reply = int | list[int] | BaseException


@dataclass(slots=True, kw_only=True)
class _Pending:
    keys: tuple[str, ...]
    args: tuple[int, ...]  # (increment, tolerance) per key
    future: asyncio.Future[_Reply]
    sha: str  # which script


class RedisRateLimitStore(RateLimitStore):
    """GCRA buckets in Redis, shared by every replica of the hub.

    The client is passed in and stays the caller's unless ``owns_client`` (as with
    :meth:`from_url`). A limiter sits on every request, so give it a client that fails fast
    (short timeouts, at most one retry): the gateway, not this store, decides the fallback.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "hub:rl:",
        max_batch: int = 1024,
        owns_client: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._client = client
        self._prefix = prefix
        self._max_batch = max_batch
        self._owns_client = owns_client
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 0.5, prefix: str = "hub:rl:", max_batch: int = 1024
    ) -> RedisRateLimitStore:
        """A store with its own fail-fast client for ``url`` (``redis://host:port/db``)."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # one retry reconnects a pooled socket the server dropped; more only adds latency
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, prefix=prefix, max_batch=max_batch, owns_client=True)

    async def hit(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        reply = await self._queue((key,), bounds(limit, cost), _SHA)
        if not isinstance(reply, int):  # pragma: no cover - the script returns one integer
            raise BackendUnavailable(f"Redis rate-limit store answered {reply!r}")
        # a decision depends only on how far the TAT is ahead, so "now" can be 0 here
        decision, _ = decide(reply, 0, limit, cost)
        return decision

    async def hit_all(self, buckets: Sequence[Bucket], cost: int = 1) -> tuple[Decision, ...]:
        check_buckets(buckets)
        args = tuple(n for bucket in buckets for n in bounds(bucket.limit, cost))
        reply = await self._queue(tuple(bucket.key for bucket in buckets), args, _MULTI_SHA)
        if not isinstance(reply, list) or len(reply) != len(buckets):
            raise BackendUnavailable(f"Redis rate-limit store answered {reply!r}")
        decisions, _ = decide_all(reply, 0, [bucket.limit for bucket in buckets], cost)
        return decisions

    async def _queue(self, keys: tuple[str, ...], args: tuple[int, ...], sha: str) -> _Reply:
        """Queue one script call for this tick's pipeline and wait for its reply."""
        if self._closed:
            raise BackendUnavailable("The Redis rate-limit store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Reply] = loop.create_future()
        prefixed = tuple(self._prefix + key for key in keys)
        self._pending.append(_Pending(keys=prefixed, args=args, future=future, sha=sha))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # runs after every task already scheduled in this iteration has queued its hit
            loop.call_soon(self._flush)
        reply = await future
        if isinstance(reply, BaseException):
            if isinstance(reply, RedisError | OSError):
                raise BackendUnavailable(f"Redis rate-limit store failed: {reply}") from reply
            raise reply
        return reply

    async def check(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(f"Redis rate-limit store unreachable: {exc}") from exc

    async def aclose(self) -> None:
        self._closed = True
        self._flush()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._max_batch):
            task = asyncio.ensure_future(self._send(pending[start : start + self._max_batch]))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        try:
            replies = await self._run(batch)
        except BaseException as exc:
            # every waiter must wake, whatever went wrong; each translates the error itself
            for item in batch:
                if not item.future.done():
                    item.future.set_result(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, reply in zip(batch, replies, strict=True):
            if not item.future.done():
                item.future.set_result(reply)

    async def _run(self, batch: Sequence[_Pending]) -> list[_Reply]:
        raw = await self._pipeline(batch)
        missing = [i for i, reply in enumerate(raw) if isinstance(reply, NoScriptError)]
        if missing:
            for sha in {batch[i].sha for i in missing}:
                await self._client.script_load(_SCRIPTS[sha])
            again = await self._pipeline([batch[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                raw[i] = reply
        return [_parse(reply) for reply in raw]

    async def _pipeline(self, batch: Sequence[_Pending]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for item in batch:
                pipe.evalsha(item.sha, len(item.keys), *item.keys, *item.args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


def _parse(reply: Any) -> _Reply:
    if isinstance(reply, BaseException):
        return reply
    if isinstance(reply, list):
        return [int(lead) for lead in reply]
    return int(reply)

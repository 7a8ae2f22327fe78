"""Rate limiting with GCRA over pluggable bucket stores (in-process or Redis)."""

from __future__ import annotations

from hub.ratelimit.base import Bucket, Decision, FallbackMode, Limit, RateLimitStore
from hub.ratelimit.fallback import FallbackRateLimitStore
from hub.ratelimit.memory import MemoryRateLimitStore
from hub.ratelimit.redis import RedisRateLimitStore

__all__ = [
    "Bucket",
    "Decision",
    "FallbackMode",
    "FallbackRateLimitStore",
    "Limit",
    "MemoryRateLimitStore",
    "RateLimitStore",
    "RedisRateLimitStore",
]

"""The budget of every host: a sliding log in a Redis sorted set, checked and written by one Lua script.

Why not pyrate-limiter's RedisBucket (4.6.0, evaluated for issue 3): it stamps each send with
the *client's* clock before its script runs, so two processes racing (stamped 1001 ms, then
1000 ms) or a host whose clock is behind both get in under a 1-per-second limit; it calls
EVALSHA with no fallback, so after `SCRIPT FLUSH` or a restart every call raises NoScriptError;
it reports the wait of the first full window only; and it has no 429 pause. The script below
reads `TIME` on the server, checks the cooldown and every window and inserts in one atomic
step, and redis-py's `register_script` re-sends it when the server has forgotten it.
"""

from __future__ import annotations

import math
import uuid

import redis

from plugin.config import QuotaSettings
from plugin.errors import ServiceUnavailableError
from plugin.quota import describe

# KEYS[1]: sorted set, one member per send, score = server time in microseconds.
# KEYS[2]: the 429 cooldown: its end in server microseconds (expires with it).
# ARGV: mode ('take' | 'peek' | 'pause' | 'settle'), member, longest window (us), pause (us),
#       then per window: its length (us) and the lane's cap.
# Returns {taken (0/1), now, cooldown left, then per window: used, wait} in integer microseconds.
# Times are integers below 2^53, so exact in Lua's doubles; string.format('%.0f') keeps them
# exact where Lua's tostring() would print 14 significant digits.
SCRIPT = """
redis.replicate_commands()  -- Redis < 5: allow writes after TIME (a no-op since 5)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
if mode == 'pause' then
  local pause = tonumber(ARGV[4])
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  if now + pause > current then  -- extend, never shorten
    redis.call('SET', KEYS[2], string.format('%.0f', now + pause), 'PX', math.ceil(pause / 1000) + 1)
  end
  return {0, now, pause}
end
if mode == 'settle' then  -- restamp a taken permit (XX: only if it is still in the log)
  redis.call('ZADD', KEYS[1], 'XX', 'GT', string.format('%.0f', now), ARGV[2])
  return {0, now, 0}
end
local cooldown = math.max(0, tonumber(redis.call('GET', KEYS[2]) or '0') - now)
local reply = {0, now, cooldown}
local wait = cooldown
for i = 5, #ARGV, 2 do
  local per, cap = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local since = '(' .. string.format('%.0f', now - per)  -- a window is (now - per, now]
  local used = redis.call('ZCOUNT', KEYS[1], since, '+inf')
  local w = 0
  if used >= cap then
    -- The send whose leaving makes room for one more: the (used - cap + 1)-th oldest in the window.
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES', 'LIMIT', used - cap, 1)
    w = tonumber(oldest[2]) + per - now
  end
  reply[#reply + 1] = used
  reply[#reply + 1] = w
  if w > wait then wait = w end
end
if mode == 'take' and wait <= 0 then
  local longest = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - longest))
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], math.ceil(longest / 1000) + 1)  -- idle budgets leave nothing behind
  reply[1] = 1
end
return reply
"""

US = 1_000_000


class RedisQuota:
    """Exact sliding windows shared by every client of one Redis with the same budget key, on the server's clock."""

    backend = "redis"

    def __init__(self, settings: QuotaSettings, url: str, budget_key: str, *, client: redis.Redis | None = None):
        self._settings = settings
        self._redis = client or redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        # The hash tag {...} keeps both keys in one slot, so the script also runs on a Redis Cluster.
        prefix = f"defender-ip:quota:{{{budget_key}}}"
        self.keys = (f"{prefix}:sends", f"{prefix}:cooldown")
        self._longest_us = math.ceil(max(w.per_seconds for w in settings.limits) * US)
        self._script = self._redis.register_script(SCRIPT)  # EVALSHA, falling back to EVAL on NoScriptError
        self.last_permit_at: float | None = None  # server time of the last permit taken here (diagnostics, tests)

    def try_acquire(self, lane: str, permit: str | None = None) -> float:
        """Take one permit now and return 0, or take nothing and return the seconds to wait."""
        taken, now, cooldown, measured = self._run("take", lane, member=permit)
        if taken:
            self.last_permit_at = now
            return 0.0
        return max(cooldown, *(w for _, w in measured))

    def settle(self, permit: str) -> None:
        """Restamp a taken permit with the server's current time, once its request is answered or abandoned."""
        self._run("settle", "analyst", member=permit)

    def pause(self, seconds: float) -> None:
        """Stop every caller of this budget, on any host, for `seconds`; never shortens a longer pause."""
        self._run("pause", "analyst", pause_us=math.ceil(max(0.0, seconds) * US))

    def state(self, lane: str) -> dict:
        """Used/left per window for the lane, and any cooldown, for the envelope."""
        _, _, cooldown, measured = self._run("peek", lane)
        return describe(self.backend, self._settings, lane, cooldown, measured)

    def close(self) -> None:
        self._redis.close()

    def _run(self, mode: str, lane: str, pause_us: int = 0,
             member: str | None = None) -> tuple[bool, float, float, list[tuple[int, float]]]:
        args: list[object] = [mode, member or uuid.uuid4().hex, self._longest_us, pause_us]
        for window in self._settings.limits:
            args += [math.ceil(window.per_seconds * US), self._settings.cap(window, lane)]
        try:
            reply = self._script(keys=self.keys, args=args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # Never echo the URL: it may hold a password.
            raise ServiceUnavailableError("the quota store (Redis at connection.quota.redis_url) could not be reached") from None
        taken, now, cooldown, *rest = (int(v) for v in reply)
        measured = [(rest[i], rest[i + 1] / US) for i in range(0, len(rest), 2)]
        return bool(taken), now / US, cooldown / US, measured

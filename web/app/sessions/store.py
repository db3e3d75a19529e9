"""Server-side sessions in Redis that the server can list and end.

What lives where:
- `session:<sid>`: the session data (msgpack). Its Redis TTL is the time it has left:
  anonymous sessions get a short lifetime; signed-in sessions the smaller of the idle timeout
  (sliding, renewed by each request) and what is left of the absolute lifetime.
- `user-sessions:<user id>`: a sorted set of that user's session ids, scored by when each
  expires. It is pruned and its own TTL moved to its latest member's expiry on every write,
  so it never outlives the sessions it points to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, current_app, request, session
from flask.wrappers import Response
from flask_session.redis import RedisSessionInterface
from redis import Redis, RedisError

from .config import now
from .devices import device_label

AUTH = "_auth"  # set at login: {"uid", "started", "ip", "device"}
SEEN = "_seen"  # time of the last request, for the idle timeout
INDEX_PREFIX = "user-sessions:"

# Add or move one session in a user's index, drop the expired ones, and let the index
# expire with its last session. Relative PEXPIRE keeps this correct under a test clock.
_TOUCH_INDEX = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - tonumber(ARGV[3])))
end
return 1
"""


def index_key(user_id: int) -> str:
    """Return the Redis key of a user's session index."""
    return f"{INDEX_PREFIX}{user_id}"


def session_handle(sid: str) -> str:
    """Return a public name for a session: the id itself is a credential and never shown."""
    return hashlib.sha256(sid.encode()).hexdigest()[:16]


def time_left(config: Any, data: Any, at: float) -> float:
    """Return how many seconds the session `data` has left at time `at`."""
    seen = data.get(SEEN, at)
    auth = data.get(AUTH)
    if not auth:
        return config["SESSION_ANONYMOUS_TIMEOUT"] - (at - seen)
    idle_left = config["SESSION_IDLE_TIMEOUT"] - (at - seen)
    absolute_left = auth["started"] + config["SESSION_ABSOLUTE_TIMEOUT"] - at
    return min(idle_left, absolute_left)


class TrackedRedisSessionInterface(RedisSessionInterface):
    """Flask-Session's Redis store with per-session lifetimes and a per-user index."""

    def __init__(self, app: Flask, client: Redis, key_prefix: str) -> None:
        super().__init__(app, client=client, key_prefix=key_prefix, permanent=True)
        self._touch_index = client.register_script(_TOUCH_INDEX)

    def open_session(self, app: Flask, request: Request) -> Any:
        """Load the session; one past its idle or absolute limit comes back empty."""
        try:
            loaded = super().open_session(app, request)
        except RedisError:
            # Answer 503 quickly (see errors.py) rather than hang or 500.
            app.logger.error("session store unavailable", exc_info=True)
            broken = self._new_session()
            broken.unavailable = True
            return broken
        auth = loaded.get(AUTH)
        loaded.owner_uid = auth["uid"] if auth else None
        if loaded and time_left(app.config, loaded, now(app.config)) <= 0:
            # Redis' TTL normally removed it already; this covers clock skew and test clocks.
            self.forget(loaded.sid, loaded.owner_uid)
            return self._new_session()
        return loaded

    def _new_session(self) -> Any:
        """Return an empty session under a new id, owned by nobody."""
        fresh = self.session_class(sid=self._generate_sid(self.sid_length), permanent=True)
        fresh.owner_uid = None
        return fresh

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        """Save as Flask-Session does, but delete an emptied session fully, index included."""
        if getattr(session, "unavailable", False):
            return
        if not session and session.modified:
            self.forget(session.sid, getattr(session, "owner_uid", None))
            # A __Host- cookie is only replaced by one that is Secure with Path=/ too.
            response.delete_cookie(
                self.get_cookie_name(app),
                path=self.get_cookie_path(app),
                secure=self.get_cookie_secure(app),
                httponly=True,
                samesite=self.get_cookie_samesite(app),
            )
            response.vary.add("Cookie")
            return
        super().save_session(app, session, response)

    def _upsert_session(self, session_lifetime: Any, session: Any, store_id: str) -> None:
        at = now(current_app.config)
        session[SEEN] = at
        ttl = int(time_left(current_app.config, session, at))
        auth = session.get(AUTH)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(store_id, self.serializer.encode(session), ex=max(ttl, 1))
        if auth:
            self._touch_index(
                keys=[index_key(auth["uid"])],
                args=[session.sid, int((at + ttl) * 1000), int(at * 1000)],
                client=pipe,
            )
        pipe.execute()

    def regenerate(self, session: Any) -> None:
        """Give the session a new id (after login), dropping the old one from the index."""
        old_sid = session.sid
        super().regenerate(session)
        if getattr(session, "owner_uid", None):
            self.client.zrem(index_key(session.owner_uid), old_sid)

    def forget(self, sid: str, user_id: int | None) -> None:
        """Delete a session and its index entry."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self._get_store_id(sid))
        if user_id:
            pipe.zrem(index_key(user_id), sid)
        pipe.execute()

    def load_many(self, sids: list[str]) -> list[dict[str, Any] | None]:
        """Return the stored data of each session in `sids` (None if gone), in one round trip."""
        if not sids:
            return []
        raws = self.client.mget([self._get_store_id(sid) for sid in sids])
        return [self.serializer.decode(raw) if raw else None for raw in raws]


def _interface() -> TrackedRedisSessionInterface:
    interface = current_app.session_interface
    assert isinstance(interface, TrackedRedisSessionInterface)
    return interface


def start_authenticated(user_id: int) -> None:
    """Mark the current session as signed in, under a new id (no fixation)."""
    _interface().regenerate(session)
    session[AUTH] = {
        "uid": user_id,
        "started": now(current_app.config),
        "ip": request.remote_addr,
        "device": device_label(request.user_agent.string),
    }
    session.owner_uid = user_id  # type: ignore[attr-defined]


def end_current() -> None:
    """Delete the current session from Redis and continue under a new, empty one."""
    interface = _interface()
    interface.forget(session.sid, session.owner_uid)  # type: ignore[attr-defined]
    session.clear()
    session.sid = interface._generate_sid(interface.sid_length)  # type: ignore[attr-defined]
    session.owner_uid = None  # type: ignore[attr-defined]


def current_sid() -> str:
    """Return the id of the current session."""
    return str(session.sid)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SessionInfo:
    """What the sessions page shows of one live session."""

    handle: str
    started: float
    last_seen: float
    ip: str | None
    device: str
    current: bool


def list_sessions(user_id: int, current: str | None = None) -> list[SessionInfo]:
    """Return the user's live sessions, `current` first, then by last use; prune dead ones."""
    interface = _interface()
    at = now(current_app.config)
    sids = [
        s.decode() for s in interface.client.zrangebyscore(index_key(user_id), at * 1000, "+inf")
    ]
    infos, dead = [], []
    for sid, data in zip(sids, interface.load_many(sids), strict=True):
        auth = data.get(AUTH) if data else None
        if (
            not data
            or not auth
            or auth["uid"] != user_id
            or time_left(current_app.config, data, at) <= 0
        ):
            dead.append(sid)
            continue
        infos.append(
            SessionInfo(
                handle=session_handle(sid),
                started=auth["started"],
                last_seen=data.get(SEEN, auth["started"]),
                ip=auth.get("ip"),
                device=auth.get("device") or "Unknown device",
                current=sid == current,
            )
        )
    if dead:
        interface.client.zrem(index_key(user_id), *dead)
    return sorted(infos, key=lambda info: (not info.current, -info.last_seen))


def end_session(user_id: int, handle: str) -> bool:
    """End the user's session whose public handle is `handle`; False if there is none."""
    interface = _interface()
    for raw in interface.client.zrange(index_key(user_id), 0, -1):
        sid = raw.decode()
        if session_handle(sid) == handle:
            interface.forget(sid, user_id)
            return True
    return False


def end_all_sessions(user_id: int, keep_sid: str | None = None) -> int:
    """End every session of the user except `keep_sid`; return how many were ended."""
    interface = _interface()
    sids = [s.decode() for s in interface.client.zrange(index_key(user_id), 0, -1)]
    ended = [sid for sid in sids if sid != keep_sid]
    for sid in ended:
        interface.forget(sid, user_id)
    return len(ended)

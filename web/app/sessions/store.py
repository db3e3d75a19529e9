"""The session store: signed-in sessions in Redis, anonymous ones in a signed cookie.

What lives where:
- A signed-out visitor's session (Flask-WTF's CSRF secret, flashed messages) is a signed,
  HttpOnly cookie: nothing is stored on the server until login.
- `session:<sid>`: a signed-in session (msgpack), created at login under a fresh id. Its
  Redis TTL is the time it has left: the smaller of the idle timeout (slid at most once per
  SESSION_TOUCH_INTERVAL) and what is left of the absolute lifetime.
- `user-sessions:<uid>`: a sorted set of the user's session ids scored by expiry; it expires
  with its last session.
- `user-sessions:<uid>:epoch`: the user's session epoch, a counter that every revocation
  (ending a user's sessions in bulk, forgetting a device) increments in the same script that
  ends the sessions. A sign-in reads it *before* it checks the credential, and the session is
  created only if the epoch is still the same: a sign-in that raced a revocation (a
  remember-me restore that read a token about to be revoked) cannot create a session after
  the revocation ended the others. It expires SESSION_ABSOLUTE_TIMEOUT after the last bump.

Loading a signed-in session is one GET. It is written only when its data changed or its
touch is due, by a script that writes only if the key still exists: a session ended by any
means (DEL of the key and its index entry) is never written back by a request in flight.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from flask import Flask, Request, current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask.wrappers import Response
from flask_session.redis import RedisSession, RedisSessionInterface
from itsdangerous import BadSignature
from redis import Redis, RedisError

from ..config import now
from ..metrics import SESSION_STORE_ERRORS

# Set at login: {"uid", "username", "started", "ip", "device", "remembered", "method",
# "verified_at", "mfa", "cv"} (sessions/__init__.py, start_authenticated).
AUTH = "_auth"
SEEN = "_seen"  # when the session was last touched, for the idle timeout
INDEX_PREFIX = "user-sessions:"

# Write a session only if it still exists (XX), or create it (NX) if its user's epoch is
# still the one read before the credential was checked (else -1); only then add it to its
# user's index, drop expired members and let the index expire with its last session.
_WRITE = """
if ARGV[5] == 'NX' and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[6] then return -1 end
if not redis.call('SET', KEYS[1], ARGV[1], ARGV[5], 'PX', ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]) + tonumber(ARGV[2]), ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[2], math.max(1, tonumber(last[2]) - tonumber(ARGV[4])))
return 1
"""
# End sessions: KEYS = index, epoch, then one key per id in ARGV[3...]. With ARGV[1] = 1 the
# epoch is incremented (and expires in ARGV[2] ms). Returns {how many still existed, epoch}.
_END = """
local ended = 0
for i = 3, #ARGV do
  ended = ended + redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
local epoch = 0
if ARGV[1] == '1' then
  epoch = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return {ended, epoch}
"""
REVOKED = -1  # _WRITE's answer when a revocation happened since the sign-in began


def index_key(user_id: int) -> str:
    """Return the Redis key of a user's session index."""
    return f"{INDEX_PREFIX}{user_id}"


def epoch_key(user_id: int) -> str:
    """Return the Redis key of a user's session epoch."""
    return f"{INDEX_PREFIX}{user_id}:epoch"


def session_handle(sid: str) -> str:
    """Return a public name for a session: the id itself is a credential and never shown."""
    return hashlib.sha256(sid.encode()).hexdigest()[:16]


def time_left(config: Any, data: Any, at: float) -> float:
    """Return how many seconds the signed-in session `data` has left at time `at`."""
    auth = data[AUTH]
    idle_left = config["SESSION_IDLE_TIMEOUT"] - (at - data.get(SEEN, auth["started"]))
    return min(idle_left, auth["started"] + config["SESSION_ABSOLUTE_TIMEOUT"] - at)


class StoreSession(RedisSession):
    """The request's session: in Redis while `sid` is set, else in the anonymous cookie."""

    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None) -> None:
        super().__init__(initial, sid=sid)
        self.unavailable = False  # Redis failed while loading it: the request answers 503
        self.pending = False  # signed in during this request: create it in Redis at the end
        self.replaces: tuple[int, str] | None = None  # (owner, sid) of the one it replaces
        self.epoch = 0  # the owner's epoch read before the sign-in checked its credential
        self.owner = int(self[AUTH]["uid"]) if sid and AUTH in self else None  # its index


class _AnonymousCookie(SecureCookieSessionInterface):
    """Flask's signed-cookie format under its own salt, for signed-out visitors only."""

    salt = "anonymous-session"
    digest_method = staticmethod(hashlib.sha256)


class SessionStore(RedisSessionInterface):
    """Flask-Session's Redis store, for signed-in sessions only, with conditional writes."""

    session_class = StoreSession

    def __init__(self, app: Flask, client: Redis) -> None:
        super().__init__(app, client=client, key_prefix=app.config["SESSION_KEY_PREFIX"])
        self.anonymous = _AnonymousCookie()
        self._write = client.register_script(_WRITE)
        self._end = client.register_script(_END)

    def open_session(self, app: Flask, request: Request) -> StoreSession:
        """Load the signed-in session with one GET, or else the anonymous cookie."""
        sid = request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        try:
            raw = self.client.get(self.key_prefix + sid) if sid else None
            if raw:
                loaded = StoreSession(self.serializer.decode(raw), sid=sid)
                if time_left(app.config, loaded, now(app.config)) > 0:
                    return loaded
                # Redis' TTL normally removed it already; this covers skew and test clocks.
                self.end(loaded.owner or 0, [str(sid)])
        except RedisError:
            SESSION_STORE_ERRORS.labels("load").inc()
            app.logger.error("session store unavailable", exc_info=True)
            broken = StoreSession()
            broken.unavailable = True
            return broken
        return self.open_anonymous(app, request)

    def open_anonymous(self, app: Flask, request: Request) -> StoreSession:
        """Return the data of the signed anonymous cookie; a bad or expired one is empty."""
        value = request.cookies.get(app.config["SESSION_ANONYMOUS_COOKIE_NAME"])
        if not value:  # most requests (probes, first visits): no serializer to build
            return StoreSession({})
        serializer = self.anonymous.get_signing_serializer(app)
        data: dict[str, Any] = {}
        if serializer:
            try:
                data = serializer.loads(value, max_age=app.config["SESSION_ANONYMOUS_TIMEOUT"])
            except BadSignature:  # forged, from another secret key, or expired: start empty
                data = {}
        return StoreSession(data)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        """Do nothing: `commit` saved it in an after_request hook, which can answer 503."""

    def regenerate(self, session: Any) -> None:
        """Move the session under a fresh id, to be created in Redis when the request ends."""
        if session.sid and session.owner and not session.pending:
            session.replaces = (session.owner, session.sid)
        session.sid = secrets.token_urlsafe(32)
        session.pending = True
        session.modified = True

    def write(self, session: StoreSession, create: bool = False) -> int:
        """Write a signed-in session if it still exists (or create it if its user's epoch is
        unchanged); return 1 if written, 0 if it had ended, REVOKED if revoked meanwhile."""
        at = now(current_app.config)
        ttl_ms = int(time_left(current_app.config, session, at) * 1000)
        owner = int(session[AUTH]["uid"])
        if ttl_ms <= 0:
            self.end(owner, [str(session.sid)])
            return 0
        args = [self.serializer.encode(session), ttl_ms, session.sid, int(at * 1000)]
        args += ["NX" if create else "XX", session.epoch]
        keys = [self.key_prefix + str(session.sid), index_key(owner), epoch_key(owner)]
        return int(self._write(keys=keys, args=args, client=self.client))

    def epoch(self, user_id: int) -> int:
        """Return the user's session epoch (read it before checking a credential)."""
        return int(self.client.get(epoch_key(user_id)) or 0)

    def end(self, user_id: int, sids: list[str]) -> int:
        """Delete sessions and their index entries at once; return how many still existed."""
        return self._run_end(user_id, sids, revoke=False)[0] if sids else 0

    def revoke(self, user_id: int, sids: list[str]) -> tuple[int, int]:
        """End sessions and increment the user's epoch in the same step, so that no sign-in
        that began before (and checked a credential revoked now) can create a session
        afterwards. Return (how many still existed, the epoch this step set)."""
        return self._run_end(user_id, sids, revoke=True)

    def _run_end(self, user_id: int, sids: list[str], revoke: bool) -> tuple[int, int]:
        keys = [index_key(user_id), epoch_key(user_id), *(self.key_prefix + sid for sid in sids)]
        ttl_ms = int(current_app.config["SESSION_ABSOLUTE_TIMEOUT"] * 1000)
        ended, epoch = self._end(keys=keys, args=[int(revoke), ttl_ms, *sids], client=self.client)
        return int(ended), int(epoch)

    def commit(self, session: StoreSession, response: Response) -> None:
        """Save what changed: create, write or touch in Redis, or the anonymous cookie."""
        config = current_app.config
        if session.pending and response.status_code >= 500:
            return  # the request failed: the sign-in it began does not happen
        if session.pending:
            written = self.write(session, create=True)
            if written == 0:
                raise RedisError("a new session id collided or expired at once")
            if session.replaces:
                uid, sid = session.replaces
                self.end(uid, [sid])
            if written == REVOKED:  # the user's sessions were revoked since this sign-in began
                session.sid, session.pending, session.replaces = None, False, None
                session.clear()
            else:
                session.pending, session.owner = False, int(session[AUTH]["uid"])
                self.set_cookie(response, config["SESSION_COOKIE_NAME"], str(session.sid))
        elif session.sid and AUTH not in session:  # emptied without signing out: end it
            self.end(session.owner or 0, [session.sid])
            session.sid = None
        elif session.sid:
            at = now(config)
            if session.modified or at - session.get(SEEN, 0) >= config["SESSION_TOUCH_INTERVAL"]:
                session[SEEN] = at
                if not self.write(session):
                    # Ended meanwhile: signed out, and none of its data may become a cookie.
                    session.sid = None
                    session.clear()
        if session.sid:
            self.drop_cookie(response, config["SESSION_ANONYMOUS_COOKIE_NAME"])
            return
        self.drop_cookie(response, config["SESSION_COOKIE_NAME"])
        if session.modified and session:
            serializer = self.anonymous.get_signing_serializer(current_app)
            assert serializer is not None, "SECRET_KEY is validated at start"
            value = serializer.dumps(dict(session))
            self.set_cookie(response, config["SESSION_ANONYMOUS_COOKIE_NAME"], value)
        elif session.modified:
            self.drop_cookie(response, config["SESSION_ANONYMOUS_COOKIE_NAME"])

    def set_cookie(self, response: Response, name: str, value: str) -> None:
        """Set a session cookie: HttpOnly, SameSite=Lax, Path=/, Secure outside development."""
        app = current_app
        anonymous = name == app.config["SESSION_ANONYMOUS_COOKIE_NAME"]
        lifetime = "SESSION_ANONYMOUS_TIMEOUT" if anonymous else "SESSION_ABSOLUTE_TIMEOUT"
        response.set_cookie(
            name,
            value,
            max_age=app.config[lifetime],
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            httponly=True,
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")

    def drop_cookie(self, response: Response, name: str) -> None:
        """Delete cookie `name` if the request carried it (same attributes, as __Host- needs)."""
        if name in request.cookies:
            response.delete_cookie(
                name,
                path=self.get_cookie_path(current_app),
                secure=self.get_cookie_secure(current_app),
                httponly=True,
                samesite=self.get_cookie_samesite(current_app),
            )
            response.vary.add("Cookie")

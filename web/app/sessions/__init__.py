"""Sessions, the one home: the store, signing in and out, listing and ending, Redis outages.

The store itself (what lives where in Redis and in the anonymous cookie) is in `store.py`.
Ending a session, by whatever path, is one script: its key and its index entry go at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request, session
from flask.typing import ResponseReturnValue
from flask.wrappers import Response
from redis import Redis, RedisError

from ..config import now
from ..devices import device_label
from ..errors import service_unavailable
from ..metrics import SESSION_STORE_ERRORS
from .store import AUTH, SEEN, SessionStore, StoreSession, index_key, time_left
from .store import INDEX_PREFIX as INDEX_PREFIX
from .store import session_handle as session_handle


def init_app(app: Flask, client: Redis) -> None:
    """Install the store and its hooks (before other extensions: see `save`)."""
    store = SessionStore(app, client)
    app.session_interface = store
    app.extensions["sessions"] = store

    @app.before_request
    def store_down() -> None:
        # Registered first, so it runs before CSRFProtect reads the missing session.
        if _current().unavailable and request.blueprint != "health":
            raise RedisError("session store unavailable")

    @app.after_request
    def save(response: Response) -> Response:
        # Registered first, so it runs last: after Flask-Login's hook has updated the session.
        current = _current()
        if current.unavailable:
            return response
        try:
            store.commit(current, response)
        except RedisError:
            SESSION_STORE_ERRORS.labels("save").inc()
            return service_unavailable("session store")
        if current.accessed:
            response.vary.add("Cookie")
        return response

    @app.errorhandler(RedisError)
    def redis_error(error: RedisError) -> ResponseReturnValue:
        if not _current().unavailable:  # else already counted when loading it
            SESSION_STORE_ERRORS.labels("request").inc()
        return service_unavailable("session store")


def guard_after_request_hooks(app: Flask) -> None:
    """Make a Redis error in any after-request hook (Flask-Limiter's deductions among them)
    a 503 like everywhere else, not a 500: call once every extension is installed."""
    hooks = app.after_request_funcs.setdefault(None, [])
    hooks[:] = [_guarded(hook) for hook in hooks]  # type: ignore[arg-type]


def _guarded(hook: Callable[[Response], Response]) -> Callable[[Response], Response]:
    def run(response: Response) -> Response:
        try:
            return hook(response)
        except RedisError:
            SESSION_STORE_ERRORS.labels("request").inc()
            return service_unavailable("session store")

    return run


def _store() -> SessionStore:
    store: SessionStore = current_app.extensions["sessions"]
    return store


def _current() -> StoreSession:
    current = session._get_current_object()  # type: ignore[attr-defined]
    assert isinstance(current, StoreSession)
    return current


def session_epoch(user_id: int) -> int:
    """Return the user's session epoch: read it before checking a credential (see store.py)."""
    return _store().epoch(user_id)


def start_authenticated(
    user_id: int,
    username: str,
    epoch: int,
    remembered: int | None = None,
    method: str = "password",
    mfa: bool = False,
    version: int = 0,
) -> None:
    """Sign the current session in under a fresh id (no fixation), created as the request ends.

    `epoch` is the user's session epoch read before the credential was checked: if a
    revocation happened since, the session is not created. `remembered` is the id of the
    remembered device this session belongs to, if any. `method` says how the user signed in
    (the sessions page shows it); a remember-me restore is no sign-in, so its session is not
    fresh for a step-up (auth/credentials.py). `mfa`: the account has a second factor.
    `version`: the user's credential version the sign-in checked (step-up needs the current).
    """
    current = _current()
    at = now(current_app.config)
    current[AUTH] = {
        "uid": user_id,
        "username": username,
        "started": at,
        "ip": request.remote_addr,
        "device": device_label(request.user_agent.string),
        "remembered": remembered,
        "method": method,
        "verified_at": 0 if method == "remember-me" else at,
        "mfa": mfa,
        "cv": version,
    }
    current[SEEN] = at
    current.epoch = epoch
    _store().regenerate(current)


def rotate_current_session(epoch: int) -> None:
    """Move this signed-in session under a fresh id (after a password change, say)."""
    current = _current()
    if current.sid:
        current.epoch = epoch
        _store().regenerate(current)


def update_identity(**changes: Any) -> None:
    """Change what this signed-in session knows of its user (its factors, say)."""
    current = _current()
    if current.sid and current.get(AUTH):
        current[AUTH] = {**current[AUTH], **changes}


def signed_in_identity() -> dict[str, Any] | None:
    """Return the login data of the live server-side session, None when signed out."""
    current = _current()
    return current.get(AUTH) if current.sid else None


def current_sid() -> str | None:
    """Return the id of the current signed-in session, None when signed out."""
    return _current().sid


def end_current_session() -> None:
    """End this browser's session on the server; the request continues signed out."""
    current = _current()
    if current.sid and current.owner and not current.pending:
        _store().end(current.owner, [current.sid])
    elif current.replaces:
        uid, sid = current.replaces
        _store().end(uid, [sid])
    current.clear()
    current.sid, current.pending, current.replaces = None, False, None


def end_session(user_id: int, handle: str) -> bool:
    """End the user's session whose public handle is `handle`; False if there is none."""
    for raw in _store().client.zrange(index_key(user_id), 0, -1):
        if session_handle(raw.decode()) == handle:
            return _store().end(user_id, [raw.decode()]) > 0
    return False


def end_sessions_of(user_id: int, keep: str | None = None) -> tuple[int, int]:
    """Revoke every session of the user except `keep`: return (how many were live, new epoch).

    Sign-ins of the user that are in flight (and checked a credential before this) fail.
    """
    store = _store()
    sids = [s.decode() for s in store.client.zrange(index_key(user_id), 0, -1)]
    return store.revoke(user_id, [sid for sid in sids if sid != keep])


def end_device_sessions(
    user_id: int, device_id: int, revoke: bool = True, keep: str | None = None
) -> int:
    """End the sessions a remembered device started, except `keep`; return how many were live.

    `revoke` (forgetting the device) also fails the user's sign-ins in flight; a restore that
    replaces the device's previous session does not revoke.
    """
    store = _store()
    sids = [s.decode() for s in store.client.zrange(index_key(user_id), 0, -1)]
    raws = store.client.mget([store.key_prefix + sid for sid in sids]) if sids else []
    ours = [
        sid
        for sid, raw in zip(sids, raws, strict=True)
        if sid != keep
        and raw
        and (store.serializer.decode(raw).get(AUTH) or {}).get("remembered") == device_id
    ]
    return store.revoke(user_id, ours)[0] if revoke else store.end(user_id, ours)


def end_every_session() -> int:
    """End every signed-in session of every user (deleted accounts' too); return how many."""
    store, ended = _store(), 0
    for key in store.client.scan_iter(match=f"{INDEX_PREFIX}*"):
        uid = key.decode().removeprefix(INDEX_PREFIX)
        if uid.isdigit():  # not an epoch key
            sids = [s.decode() for s in store.client.zrange(key, 0, -1)]
            ended += store.revoke(int(uid), sids)[0]
    return ended


@dataclass(frozen=True)
class SessionInfo:
    """What the sessions page shows of one live session."""

    handle: str
    started: float
    last_seen: float
    ip: str | None
    device: str
    current: bool
    remembered: int | None  # the remembered device that started it, if any
    method: str  # how it signed in: password, password+totp, passkey, remember-me, ...


def list_sessions(user_id: int, current: str | None = None) -> list[SessionInfo]:
    """Return the user's live sessions, `current` first, then by last use; prune dead ones."""
    store, at = _store(), now(current_app.config)
    sids = [s.decode() for s in store.client.zrangebyscore(index_key(user_id), at * 1000, "+inf")]
    raws = store.client.mget([store.key_prefix + sid for sid in sids]) if sids else []
    infos, dead = [], []
    for sid, raw in zip(sids, raws, strict=True):
        data = store.serializer.decode(raw) if raw else None
        auth = data.get(AUTH) if data else None
        if not auth or auth["uid"] != user_id or time_left(current_app.config, data, at) <= 0:
            dead.append(sid)
            continue
        infos.append(
            SessionInfo(
                handle=session_handle(sid),
                started=auth["started"],
                last_seen=data.get(SEEN, auth["started"]),  # type: ignore[union-attr]
                ip=auth.get("ip"),
                device=auth.get("device") or "Unknown device",
                current=sid == current,
                remembered=auth.get("remembered"),
                method=auth.get("method", "password"),  # sessions from before methods existed
            )
        )
    if dead:  # only the index entries: a key that is still there belongs to someone else
        store.client.zrem(index_key(user_id), *dead)
    return sorted(infos, key=lambda info: (not info.current, -info.last_seen))

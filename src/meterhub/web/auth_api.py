"""Sign-in, first-run setup, sessions, users and API tokens under ``/api/v1`` (issue 6 "Users and roles").

Users are never public: listing and changing them needs the admin role; a signed-in user may change
their own password, manage their own tokens, list their sessions and sign out everywhere.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from meterhub.errors import http_status_of
from meterhub.model.readings import iso_utc
from meterhub.web.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    ApiToken,
    AuthError,
    Principal,
    Role,
    User,
    auth_state,
    consume_setup_token,
    describe,
    live_allowed,
    principal_of,
    require_admin,
    require_reader,
    validate_password,
    validate_username,
)
from meterhub.web.sessions import hash_session_id

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["users"])

READER = Annotated[Principal, Depends(require_reader)]
ADMIN = Annotated[Principal, Depends(require_admin)]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SetupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="the one-time setup token printed at start")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)


class MeOut(BaseModel):
    authenticated: bool
    username: str | None
    role: Literal["admin", "reader"] | None
    via: str | None
    setup_required: bool
    public_live: bool
    csrf: str | None = Field(default=None, description="send as X-CSRF-Token with changes (session only)")
    title: str = Field(default="meterhub", description="header title for the sign-in page")
    language: Literal["en", "de"] = "en"


class UserOut(BaseModel):
    username: str
    role: Literal["admin", "reader"]
    created: str


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["admin", "reader"] = "reader"


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(default=None, min_length=8, max_length=1024, description="the new password")
    current_password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="your current password: needed to change your own password (an admin resetting "
        "another user's password does not send it)",
    )
    role: Literal["admin", "reader"] | None = None


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["admin", "reader"] | None = Field(default=None, description="default: the user's role")


class TokenOut(BaseModel):
    id: str
    name: str
    username: str
    role: Literal["admin", "reader"]
    created: str
    last_used: str | None


class TokenCreated(TokenOut):
    token: str = Field(description="the secret; shown only once")


class SessionOut(BaseModel):
    created: str
    last_seen: str
    expires: str = Field(description="when the session ends unless used again (idle or absolute limit)")
    current: bool = Field(description="the session making this request")


def _user_out(u: User) -> UserOut:
    return UserOut(username=u.username, role=u.role.value, created=iso_utc(u.created))


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _throttled(wait: float, why: str) -> HTTPException:
    """429 telling when to try again; ``wait`` [s]."""
    seconds = max(int(math.ceil(wait)), 1)
    return HTTPException(429, f"{why}; try again in {seconds} s", headers={"Retry-After": str(seconds)})


def _branding(request: Request) -> dict[str, str]:
    cfg = request.app.state.gateway.config
    return {"title": cfg.web.title or cfg.site.name, "language": cfg.site.language}


def _start_session(request: Request, response: Response, username: str) -> str:
    st = auth_state(request)
    session = st.sessions.create(username)
    age = int(st.sessions.lifetime)  # the server ends idle sessions sooner
    secure = request.url.scheme == "https"  # behind a TLS proxy the cookies never travel in clear
    response.set_cookie(
        SESSION_COOKIE, session.id, max_age=age, path="/", httponly=True, samesite="strict", secure=secure
    )
    response.set_cookie(
        CSRF_COOKIE, session.csrf, max_age=age, path="/", httponly=False, samesite="strict", secure=secure
    )
    return session.csrf


@router.get("/auth/me", response_model=MeOut, summary="Who am I (and does the gateway need set-up)")
def me(request: Request) -> MeOut:
    st = auth_state(request)
    p = principal_of(request, check_csrf=False)
    info = describe(p if p is not None else live_allowed(request))
    csrf = None
    if p is not None and p.via == "session":
        session = st.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        csrf = session.csrf if session else None
    return MeOut(
        **info,
        setup_required=not st.store.users(),
        public_live=request.app.state.gateway.config.web.public_live,
        csrf=csrf,
        **_branding(request),
    )


@router.post(
    "/auth/login",
    response_model=MeOut,
    summary="Sign in (sets an HttpOnly session cookie)",
    responses={
        401: {"description": "wrong user name or password"},
        429: {"description": "too many failures"},
    },
)
def login(body: LoginIn, request: Request, response: Response) -> MeOut:
    st = auth_state(request)
    address = _client(request)
    wait = st.limiter.attempt(address, body.username)
    if wait > 0:
        raise _throttled(wait, "too many failed sign-ins for this account from your address")
    user = st.store.verify(body.username, body.password)
    if user is None:
        raise HTTPException(401, "wrong user name or password")
    st.limiter.succeeded(address, body.username)
    csrf = _start_session(request, response, user.username)
    return MeOut(
        authenticated=True,
        username=user.username,
        role=user.role.value,
        via="session",
        setup_required=False,
        public_live=request.app.state.gateway.config.web.public_live,
        csrf=csrf,
        **_branding(request),
    )


@router.post("/auth/logout", status_code=204, summary="Sign out")
def logout(request: Request, response: Response) -> Response:
    st = auth_state(request)
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        st.sessions.end(sid)
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE, path="/")
    return out


@router.post("/auth/logout-all", status_code=204, summary="Sign out everywhere (every session of yours)")
def logout_all(request: Request, who: READER) -> Response:
    if who.username is None:  # pragma: no cover - require_reader guarantees a user
        raise HTTPException(401, "sign in first")
    auth_state(request).sessions.end_user(who.username)
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE, path="/")
    return out


@router.get(
    "/auth/sessions",
    response_model=list[SessionOut],
    summary="Your signed-in sessions (never their ids), most recently seen first",
)
def list_sessions(request: Request, who: READER) -> list[SessionOut]:
    if who.username is None:  # pragma: no cover - require_reader guarantees a user
        raise HTTPException(401, "sign in first")
    sid = request.cookies.get(SESSION_COOKIE, "") if who.via == "session" else ""
    own = hash_session_id(sid) if sid else None
    return [
        SessionOut(
            created=iso_utc(s.created),
            last_seen=iso_utc(s.last_seen),
            expires=iso_utc(s.expires),
            current=s.id_hash == own,
        )
        for s in auth_state(request).sessions.of_user(who.username)
    ]


@router.post(
    "/setup",
    response_model=MeOut,
    summary="First run: create the admin account with the one-time setup token",
    responses={403: {"description": "wrong setup token"}, 409: {"description": "already set up"}},
)
def setup(body: SetupIn, request: Request, response: Response) -> MeOut:
    st = auth_state(request)
    if st.store.users():
        raise HTTPException(409, "the gateway is already set up; sign in instead")
    try:
        validate_username(body.username)
        validate_password(body.password)
    except AuthError as exc:
        raise HTTPException(422, str(exc)) from None
    address = _client(request)
    wait = st.limiter.attempt(address)
    if wait > 0:
        raise _throttled(wait, "too many wrong setup tokens from your address")
    if not consume_setup_token(st.data_dir, body.token):
        raise HTTPException(403, "wrong setup token (see the gateway's console or DATA/setup-token)")
    st.limiter.succeeded(address)
    user = st.store.add(body.username, body.password, Role.ADMIN)
    csrf = _start_session(request, response, user.username)
    return MeOut(
        authenticated=True,
        username=user.username,
        role="admin",
        via="session",
        setup_required=False,
        public_live=request.app.state.gateway.config.web.public_live,
        csrf=csrf,
        **_branding(request),
    )


# -- users -------------------------------------------------------------------------------------------
@router.get("/users", response_model=list[UserOut], summary="List users (admin)")
def list_users(request: Request, _: ADMIN) -> list[UserOut]:
    return [_user_out(u) for u in auth_state(request).store.users()]


@router.post("/users", response_model=UserOut, status_code=201, summary="Add a user (admin)")
def add_user(body: UserIn, request: Request, _: ADMIN) -> UserOut:
    try:
        return _user_out(auth_state(request).store.add(body.username, body.password, body.role))
    except AuthError as exc:
        raise HTTPException(http_status_of(exc), str(exc)) from None


@router.patch(
    "/users/{username}",
    response_model=UserOut,
    summary="Change a user's password or role (admin; anyone for their own password, with the current one)",
    responses={
        403: {"description": "not allowed, or the current password is wrong"},
        429: {"description": "too many wrong current passwords"},
    },
)
def patch_user(username: str, body: UserPatch, request: Request, who: READER) -> UserOut:
    st = auth_state(request)
    if not who.is_admin and (username != who.username or body.role is not None):
        raise HTTPException(403, "this needs the admin role")
    if body.password is not None and username == who.username:
        _check_current_password(request, username, body.current_password)
    # a new password ends the user's other sessions; the caller's own session stays
    own = request.cookies.get(SESSION_COOKIE) if username == who.username and who.via == "session" else None
    try:
        user = st.store.update(username, password=body.password, role=body.role, keep_session=own)
    except KeyError:
        raise HTTPException(404, f"unknown user {username!r}") from None
    except AuthError as exc:
        raise HTTPException(http_status_of(exc), str(exc)) from None
    return _user_out(user)


def _check_current_password(request: Request, username: str, current: str | None) -> None:
    """A user changing their own password proves they know the current one (a stolen session or API
    token alone must not take the account over); wrong guesses are throttled like sign-ins."""
    if current is None:
        raise HTTPException(
            422, "to change your own password, send your current password as current_password"
        )
    st = auth_state(request)
    address = _client(request)
    wait = st.limiter.attempt(address, username)
    if wait > 0:
        raise _throttled(wait, "too many wrong current passwords from your address")
    if st.store.verify(username, current) is None:
        raise HTTPException(403, "the current password is wrong")
    st.limiter.succeeded(address, username)


@router.delete("/users/{username}", status_code=204, summary="Remove a user (admin)")
def delete_user(username: str, request: Request, _: ADMIN) -> Response:
    st = auth_state(request)
    try:
        st.store.remove(username)
    except KeyError:
        raise HTTPException(404, f"unknown user {username!r}") from None
    except AuthError as exc:
        raise HTTPException(http_status_of(exc), str(exc)) from None
    return Response(status_code=204)  # the store ended the user's sessions


@router.delete(
    "/users/{username}/sessions",
    status_code=204,
    summary="Sign a user out everywhere (admin)",
    responses={404: {"description": "unknown user"}},
)
def revoke_user_sessions(username: str, request: Request, _: ADMIN) -> Response:
    st = auth_state(request)
    if st.store.get(username) is None:
        raise HTTPException(404, f"unknown user {username!r}")
    st.sessions.end_user(username)
    return Response(status_code=204)


# -- API tokens -------------------------------------------------------------------------------------
def _token_out(t: ApiToken) -> TokenOut:
    return TokenOut(
        id=t.id,
        name=t.name,
        username=t.username,
        role=t.role.value,
        created=iso_utc(t.created),
        last_used=iso_utc(t.last_used) if t.last_used else None,
    )


@router.get("/tokens", response_model=list[TokenOut], summary="API tokens (admin: all; others: own)")
def list_tokens(request: Request, who: READER) -> list[TokenOut]:
    store = auth_state(request).store
    return [_token_out(t) for t in store.tokens(None if who.is_admin else who.username)]


@router.post(
    "/tokens", response_model=TokenCreated, status_code=201, summary="Create an API token for yourself"
)
def create_token(body: TokenIn, request: Request, who: READER) -> TokenCreated:
    if who.username is None:  # pragma: no cover - require_reader guarantees a user
        raise HTTPException(401, "sign in first")
    try:
        tok, secret = auth_state(request).store.create_token(who.username, body.name, body.role)
    except AuthError as exc:
        raise HTTPException(http_status_of(exc), str(exc)) from None
    except KeyError:
        raise HTTPException(404, f"unknown user {who.username!r}") from None
    return TokenCreated(**_token_out(tok).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
def revoke_token(token_id: str, request: Request, who: READER) -> Response:
    store = auth_state(request).store
    mine = {t.id for t in store.tokens(None if who.is_admin else who.username)}
    if token_id not in mine:
        raise HTTPException(404, f"unknown token {token_id!r}")
    store.revoke_token(token_id)
    return Response(status_code=204)

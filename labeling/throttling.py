"""Login throttling: after repeated failed logins, refuse further attempts for a while.

Failures are counted per user name and per client address in Django's cache. With several
gunicorn workers (or machines) the counts must be shared, so production points the cache at
Redis (``CACHE_URL`` or ``REDIS_URL``, see the hardening block of ``labeling/settings.py``);
without one it falls back to a per-process local-memory cache, which is enough for the demo.

Two pieces, one rule:

* ``ThrottledModelBackend`` is the enforcement point. Every password check goes through
  ``authenticate()`` (login page, Django admin, any API endpoint that takes a password), so a
  locked user name or address is refused there, and every failure is counted there.
* ``LoginThrottleMiddleware`` answers a locked login form with a clear 429 page ("too many
  failed logins, try again in N minutes") instead of the generic "wrong password" message.

The per-address limit is higher than the per-name one: a team of inspectors behind one office
NAT shares an address, and one person's typos must not lock the others out.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.urls import NoReverseMatch, reverse

logger = logging.getLogger(__name__)

KEY_PREFIX = "login-throttle"


def _limit(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def client_ip(request: HttpRequest | None) -> str:
    """The client address: ``REMOTE_ADDR``, or the first hop of the header a trusted proxy sets
    (``LOGIN_THROTTLE_IP_HEADER``, e.g. ``HTTP_X_FORWARDED_FOR``) when one is configured."""
    if request is None:
        return ""
    header = getattr(settings, "LOGIN_THROTTLE_IP_HEADER", "")
    if header and request.META.get(header):
        return request.META[header].split(",")[0].strip()[:64]
    return (request.META.get("REMOTE_ADDR") or "")[:64]


def _keys(kind: str, value: str) -> tuple[str, str]:
    digest = hashlib.sha256(value.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]
    return f"{KEY_PREFIX}:{kind}:fail:{digest}", f"{KEY_PREFIX}:{kind}:lock:{digest}"


def _subjects(username: str | None, ip: str) -> list[tuple[str, str, int]]:
    subjects = []
    if username:
        subjects.append(("user", username, _limit("LOGIN_FAILURES_PER_USER", 5)))
    if ip:
        subjects.append(("ip", ip, _limit("LOGIN_FAILURES_PER_IP", 20)))
    return subjects


def login_throttle_wait(*, username: str | None, ip: str) -> int:
    """Seconds until this user name and address may try again; 0 when they may now.

    Fails open: if the cache is unreachable, logins are not throttled (and a warning is logged)
    rather than nobody being able to log in."""
    try:
        now = time.time()
        wait = 0.0
        for kind, value, _ in _subjects(username, ip):
            until = cache.get(_keys(kind, value)[1])
            if until:
                wait = max(wait, float(until) - now)
        return max(int(wait + 0.999), 0)
    except Exception:  # noqa: BLE001 - a cache outage must not stop every login
        logger.warning("Login throttle cache unavailable; not throttling", exc_info=True)
        return 0


def login_failure_record(*, username: str | None, ip: str) -> None:
    """Count one failed login; at the limit, lock that name or address for the lockout time."""
    window = _limit("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
    lockout = _limit("LOGIN_LOCKOUT_SECONDS", 15 * 60)
    try:
        for kind, value, limit in _subjects(username, ip):
            fail_key, lock_key = _keys(kind, value)
            cache.add(fail_key, 0, timeout=window)  # the window starts at the first failure
            try:
                failures = cache.incr(fail_key)
            except ValueError:  # expired between add and incr
                cache.set(fail_key, 1, timeout=window)
                failures = 1
            if failures >= limit:
                cache.set(lock_key, time.time() + lockout, timeout=lockout)
                if failures == limit:
                    logger.warning("Login locked for %s %r after %d failures", kind, value, limit)
    except Exception:  # noqa: BLE001
        logger.warning("Login throttle cache unavailable; failure not counted", exc_info=True)


def login_throttle_reset(*, username: str | None = None, ip: str = "") -> None:
    """Forget the failures and lock of a user name and/or address (a successful login resets
    its user name; an admin may reset either from a shell)."""
    try:
        for kind, value, _ in _subjects(username, ip):
            cache.delete_many(list(_keys(kind, value)))
    except Exception:  # noqa: BLE001
        logger.warning("Login throttle cache unavailable; nothing reset", exc_info=True)


class ThrottledModelBackend(ModelBackend):
    """Django's model backend, refusing locked user names and addresses and counting failures."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        ip = client_ip(request)
        if login_throttle_wait(username=username, ip=ip):
            # PermissionDenied stops authenticate() from trying any other backend.
            raise PermissionDenied("Too many failed logins; try again later.")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            if username is not None and password is not None:
                login_failure_record(username=username, ip=ip)
        else:
            # Only the name is reset: one good login must not clear an address's record.
            login_throttle_reset(username=username)
        return user

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


_PAGE = engines["django"].from_string(
    '{% extends "base.html" %}{% block title %}Too many attempts{% endblock %}'
    '{% block content %}<section class="card narrow"><h1>Too many failed logins</h1>'
    '<p class="error">{{ message }}</p></section>{% endblock %}'
)


def throttled_response(request: HttpRequest, wait: int) -> HttpResponse:
    minutes = max(1, (wait + 59) // 60)
    message = (
        f"Too many failed logins for this user name or address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    if "json" in request.headers.get("Accept", "") or request.path.startswith("/api/"):
        response = JsonResponse({"detail": message, "code": "login_throttled"}, status=429)
    else:
        response = HttpResponse(
            _PAGE.render({"message": message}, request), status=429, content_type="text/html"
        )
    response["Retry-After"] = str(wait)
    return response


def _login_paths() -> set[str]:
    paths = set()
    for name in getattr(settings, "LOGIN_THROTTLE_URL_NAMES", ("login", "admin:login")):
        try:
            paths.add(reverse(name))
        except NoReverseMatch:
            continue
    return paths


class LoginThrottleMiddleware:
    """Answer a POST to a login form of a locked user name or address with a clear 429."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._paths: set[str] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.method != "POST":
            return None
        if self._paths is None:
            self._paths = _login_paths()
        if request.path not in self._paths:
            return None
        wait = login_throttle_wait(username=request.POST.get("username"), ip=client_ip(request))
        return throttled_response(request, wait) if wait else None

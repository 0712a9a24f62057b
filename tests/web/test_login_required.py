"""No page or endpoint answers an unauthenticated request with data (the bug we investigate)."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {"healthz", "readyz", "login"}
CASE_DATA_MARKERS = ("WP-", "system:anonymous", "sha256", "Incident")


def _walk(patterns: list, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            found += _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            found.append((prefix + str(entry.pattern), entry.name or ""))
    return found


def _concrete(route: str) -> str:
    """Fill converters and regex groups with a plausible value."""
    route = re.sub(r"<int:\w+>", "1", route)
    route = re.sub(r"<(?:slug|str|path):\w+>", "x", route)
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
    route = route.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
    return "/" + route


ALL_ROUTES = [(route, name) for route, name in _walk(get_resolver().url_patterns) if name not in PUBLIC]


def test_route_walk_found_the_app_pages() -> None:
    names = {name for _, name in ALL_ROUTES}
    assert {"list", "detail", "timeline", "evidence-download", "item-status"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("route,name", ALL_ROUTES, ids=[r for r, _ in ALL_ROUTES])
def test_every_route_refuses_anonymous_requests(client, incident, route: str, name: str, method: str) -> None:
    # given: a real incident with id 1-ish exists, so a leak would have data to leak
    url = _concrete(route).replace("/1/", f"/{incident.pk}/")
    # when
    response = getattr(client, method)(url)
    # then: a redirect to login, 401, 403, 404 or 405; never case data
    assert response.status_code in (301, 302, 401, 403, 404, 405), (url, response.status_code)
    if response.status_code in (301, 302):
        assert "/login/" in response["Location"], response["Location"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    for marker in CASE_DATA_MARKERS:
        assert marker.encode() not in body, (url, marker)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer_without_login_and_without_case_data(client, incident, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (200, 503)
    assert set(response.json()) <= {"status", "checks"}

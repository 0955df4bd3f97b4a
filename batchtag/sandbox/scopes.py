"""Projects and regions as the API lists them, and scopes set to fail (`--fail-scope`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from batchtag.sandbox.seed import region_name
from batchtag.sandbox.volumes import VOLUME_TYPES

CLIENT_ID = 1
CREATED = "2023-01-01T00:00:00+00:00"  # every sandbox project and region is this old
# Where the named regions are (seed.REGION_NAMES): (country, zone, latitude, longitude)
PLACES = {
    1: ("LU", "EMEA", "49.6116", "6.1319"),
    2: ("NL", "EMEA", "52.3676", "4.9041"),
    3: ("DE", "EMEA", "50.1109", "8.6821"),
    4: ("SG", "APAC", "1.3521", "103.8198"),
    5: ("US", "AMERICAS", "38.7509", "-77.4753"),
}
# The answer of a scope set to fail, by HTTP status: (exception_class, message)
FAILURES = {
    400: ("ValidationError", "Validation error"),
    403: ("ForbiddenError", "You do not have permission to access project {p} region {r}"),
    404: ("NotFoundError", "Project {p} region {r} not found"),
    409: ("ConflictError", "Project {p} region {r} is locked by a task"),
    429: ("TooManyRequests", "Rate limit exceeded"),
    500: ("InternalServerError", "Internal server error"),
    502: ("BadGateway", "Bad gateway"),
    503: ("ServiceUnavailable", "Service temporarily unavailable"),
    504: ("GatewayTimeout", "Gateway timeout"),
}
DEFAULT_FAILURE = 500
_FAIL_SCOPE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*(?::\s*(\d{3})\s*)?")


def project_json(project_id: int, default: bool) -> dict[str, Any]:
    """One project as `GET /cloud/v1/projects` lists it."""
    return {
        "id": project_id,
        "client_id": CLIENT_ID,
        "name": "default" if default else f"project-{project_id}",
        "description": "Sandbox project",
        "is_default": default,
        "state": "ACTIVE",
        "created_at": CREATED,
        "deleted_at": None,
        "task_id": None,
    }


def region_json(region_id: int) -> dict[str, Any]:
    """One region as `GET /cloud/v1/regions` lists it (display_name as in the snapshots'
    `region`)."""
    name = region_name(region_id)
    slug = name.lower()
    country, zone, latitude, longitude = PLACES.get(region_id, PLACES[1])
    return {
        "id": region_id,
        "display_name": name,
        "slug": slug,
        "state": "ACTIVE",
        "access_level": "core",
        "country": country,
        "zone": zone,
        "coordinates": {"latitude": latitude, "longitude": longitude},
        "endpoint_type": "public",
        "keystone_id": region_id,
        "keystone_name": slug,
        "available_volume_types": list(VOLUME_TYPES),
        "file_share_types": ["standard"],
        "external_network_id": None,
        "vlan_physical_network": "physnet1",
        "metrics_database_id": None,
        "ddos_endpoint_id": None,
        "has_ai": False,
        "has_ai_gpu": False,
        "has_baremetal": False,
        "has_basic_vm": True,
        "has_dbaas": False,
        "has_ddos": False,
        "has_k8s": False,
        "has_kvm": True,
        "has_sfs": False,
        "created_at": CREATED,
        "created_on": CREATED,
        "task_id": None,
    }


def parse_fail_scope(item: str | Iterable[int]) -> tuple[tuple[int, int], int]:
    """((project_id, region_id), status) of ``"P/R"`` or ``"P/R:STATUS"`` (or a tuple
    ``(P, R)`` / ``(P, R, STATUS)``); the status is 500 unless given, and must be 4xx/5xx."""
    if isinstance(item, str):
        found = _FAIL_SCOPE.fullmatch(item)
        if found is None:
            raise ValueError(
                f"fail scope {item!r}: expected PROJECT/REGION or PROJECT/REGION:STATUS"
            )
        project, region, status = found.groups()
        numbers = [int(project), int(region), int(status or DEFAULT_FAILURE)]
    else:
        numbers = [int(n) for n in item]
        if len(numbers) == 2:
            numbers.append(DEFAULT_FAILURE)
        if len(numbers) != 3:
            raise ValueError(f"fail scope {item!r}: expected (project, region[, status])")
    project_id, region_id, status = numbers
    if not 400 <= status <= 599:
        raise ValueError(f"fail scope {item!r}: status {status} is not an HTTP error (400-599)")
    return (project_id, region_id), status


def failing_scopes(
    items: Iterable[str | Iterable[int]], project_ids: list[int], region_ids: list[int]
) -> dict[tuple[int, int], int]:
    """The status each failing scope answers; every one must be a served scope."""
    out = {}
    for item in items:
        (project_id, region_id), status = parse_fail_scope(item)
        if project_id not in project_ids or region_id not in region_ids:
            served = ", ".join(f"{p}/{r}" for p in project_ids for r in region_ids)
            raise ValueError(
                f"fail scope {project_id}/{region_id} is not served by this sandbox "
                f"(its scopes: {served})"
            )
        out[(project_id, region_id)] = status
    return out


def failure(status: int, project_id: int, region_id: int) -> tuple[str, str]:
    """(exception_class, message) a failing scope answers with."""
    exception_class, message = FAILURES.get(status, ("HTTPError", "Request failed"))
    return exception_class, message.format(p=project_id, r=region_id)

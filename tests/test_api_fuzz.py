"""Schemathesis fuzzes every operation of /api/schema/ in-process: no input may cause a 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

from labeling.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_token(people):
    return Token.objects.create(user=people["admin"]).key


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_server_errors(case, admin_token, project):
    if "slug" in (case.path_parameters or {}):
        # Aim at a real project most of the time so the fuzzer gets past the 404s.
        case.path_parameters["slug"] = "reviews"
    case.call_and_validate(
        headers={"Authorization": f"Token {admin_token}"}, checks=[not_a_server_error]
    )

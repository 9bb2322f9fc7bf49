from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.errors import ServiceError


def exception_handler(exc, context):
    """Service errors become JSON with the message a person can act on and a stable code."""
    if isinstance(exc, ServiceError):
        body = {"detail": exc.message, "code": exc.code}
        if getattr(exc, "field", None):
            body["field"] = exc.field  # which input to fix, where the refusal is about one
        return Response(body, status=exc.status)
    # Django's request limits would otherwise become its HTML 400 page.
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "The request body is too large.", "code": "request_too_large"}, status=413
        )
    if isinstance(exc, TooManyFilesSent | TooManyFieldsSent):
        what, limit = (
            ("files", settings.DATA_UPLOAD_MAX_NUMBER_FILES)
            if isinstance(exc, TooManyFilesSent)
            else ("fields", settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)
        )
        return Response(
            {
                "detail": f"Too many {what} in one request: send at most {limit} per request.",
                "code": "too_many",
            },
            status=400,
        )
    return drf_exception_handler(exc, context)

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.errors import ServiceError


def exception_handler(exc, context):
    """Service errors become JSON with the message a person can act on and a stable code."""
    if isinstance(exc, ServiceError):
        return Response({"detail": exc.message, "code": exc.code}, status=exc.status)
    return drf_exception_handler(exc, context)

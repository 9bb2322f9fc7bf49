"""The app as ``bench/load.py`` serves it: Django's WSGI application, plus an ``X-Queries``
response header with the number of SQL statements the request ran (transaction control
statements such as BEGIN and COMMIT are not counted). The benchmark reports queries per request
from it; the product's own ``labeling.wsgi`` has no such header."""

from django.db import connection

from labeling.wsgi import application as django_application


def application(environ, start_response):
    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    def start(status, headers, exc_info=None):
        # Django starts the response after the view and its middleware ran: the count is final.
        return start_response(status, [*headers, ("X-Queries", str(statements))], exc_info)

    with connection.execute_wrapper(count):
        return django_application(environ, start)

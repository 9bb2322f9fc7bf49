"""Styled error pages with a way back, in debug mode too.

With ``DEBUG`` off, Django renders ``templates/403.html``, ``404.html``, ``500.html`` itself.
With it on (the embedded run command) a 404 would be Django's technical page, listing the URL
patterns, which tells a new user nothing: this middleware shows the styled page instead for
pages (not the API, whose 404s are JSON). A 500 in debug mode keeps the traceback, which is what
debug mode is for.
"""

from django.conf import settings
from django.shortcuts import render


class StyledNotFoundMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            settings.DEBUG
            and response.status_code == 404
            and not request.path.startswith("/api/")
            and response.get("Content-Type", "").startswith("text/html")
            and not getattr(response, "streaming", False)
        ):
            return render(request, "404.html", status=404)
        return response

"""People's own accounts: set a password from the one-time link an admin handed out, and change
it later. Django's own views, with the service's templates."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy


class PasswordSet(auth_views.PasswordResetConfirmView):
    """The set-password link of a new member (labeling.members.set_password_path): Django's
    reset token, which stops working once used, after the next login, or when it expires."""

    template_name = "password_set.html"
    success_url = reverse_lazy("login")

    def form_valid(self, form):
        messages.success(self.request, "Your password is set. Log in with it now.")
        return super().form_valid(form)


class PasswordChange(auth_views.PasswordChangeView):
    template_name = "password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        messages.success(self.request, "Your password is changed.")
        return super().form_valid(form)

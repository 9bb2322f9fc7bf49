"""Errors the services raise for a person to read; views and the API turn them into responses."""


class ServiceError(Exception):
    """A refused action. ``status`` is the HTTP status the API answers with."""

    status = 400
    code = "invalid"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class LeaseExpired(ServiceError):
    status, code = 409, "lease_expired"


class LeaseNotYours(ServiceError):
    status, code = 403, "lease_not_yours"


class AlreadyAnswered(ServiceError):
    status, code = 409, "already_answered"


class InvalidLabel(ServiceError):
    status, code = 400, "invalid_label"


class NothingToUndo(ServiceError):
    status, code = 409, "nothing_to_undo"


class NotDisputed(ServiceError):
    status, code = 409, "not_disputed"


class ProjectArchived(ServiceError):
    status, code = 409, "project_archived"


def project_require_open(project) -> None:
    """Refuse work on an archived project: it takes no uploads, leases, answers or trainings."""
    if project.archived_at is not None:
        raise ProjectArchived(
            f"{project.name} is archived: it takes no new images, answers or trainings. "
            "An admin of the project can restore it on its settings page."
        )

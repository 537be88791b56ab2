"""Errors of the annotation server, each with the HTTP status it is answered with."""
from __future__ import annotations


class AnnotationError(Exception):
    """A request the server refuses; ``str(err)`` is the message sent to the client.

    Args:
        message (str): what went wrong, phrased for the person using the page.
        status_code (int): HTTP status of the answer.
    """

    status_code = 400

    def __init__(self, message: str, status_code: int = None):
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class NotFound(AnnotationError):
    status_code = 404


class BadInput(AnnotationError):
    """Well-formed JSON whose values make no sense (points outside the image, bad labels)."""
    status_code = 422


class NotAnImage(AnnotationError):
    status_code = 415


class TooLarge(AnnotationError):
    status_code = 413


class Conflict(AnnotationError):
    """The request would overwrite or contradict saved annotations."""
    status_code = 409


class ModelUnavailable(AnnotationError):
    """The model ran out of memory (or cannot run now); retrying later may work."""
    status_code = 503

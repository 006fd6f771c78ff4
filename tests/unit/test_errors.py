"""Error classes: what each client error stands for (outage, refused credentials, the input's fault)."""

from __future__ import annotations

from syncd import errors


def test_obstore_errors_are_classified() -> None:
    import obstore.exceptions

    from syncd.errors import classify

    assert classify(obstore.exceptions.GenericError("HTTP error: error sending request")) == errors.UNAVAILABLE
    assert classify(obstore.exceptions.GenericError("Server returned non-2xx status code: 503")) == errors.UNAVAILABLE
    assert classify(obstore.exceptions.PermissionDeniedError("denied")) == errors.NOPERM
    assert classify(obstore.exceptions.GenericError("invalid key")) == errors.CHECK_FAILED

"""Everything syncd says to Label Studio: the client (every call), the review layouts, and webhook payloads."""

from syncd.labelstudio.client import LabelStudioClient, LabelStudioError, as_dict, ls_datetime, ls_time

__all__ = ["LabelStudioClient", "LabelStudioError", "as_dict", "ls_datetime", "ls_time"]

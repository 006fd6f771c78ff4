"""The operator's commands besides `run` and `once`: `check`, `status`, `retry` and `report`, one module each."""

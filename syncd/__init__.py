__version__ = "0.5.0.dev0"
"""The one place the version is set: pyproject.toml reads it, `syncd --version` prints it, the state records it."""

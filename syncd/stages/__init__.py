"""The pipeline's stages, one module each: scan -> transcribe -> importer -> exporter.

Each stage reads its work from the state store and leaves its results there, so any stage may crash, restart or run
alone without losing or repeating work.
"""

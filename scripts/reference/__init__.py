"""The reference pages under docs/reference/, generated from the code: `python -m scripts.reference` writes them,
``--check`` names each page that differs from what the code says (the suite runs the same comparison)."""

"""Make the Label Studio data templates (``devstack.services.LS_TEMPLATES``) for every installed release whose template
is missing or was made for another release or format: start it once in a scratch folder (migrations, the admin), stop
it, keep its data folder. No personal access token: a server made from it makes its own (``LabelStudio.wait``), so
no token's issue time comes from another server's clock. Idempotent; scripts/stack-install.sh runs it.

    .venv/bin/python -m devstack.templates
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from devstack.services import LS_TEMPLATES, LS_VENV, OLD_LS_VENV, LabelStudio, template_for, template_release


def make(venv: Path) -> Path | None:
    """The template for the release in ``venv`` (None when that release is not installed)."""
    if not (venv / "bin" / "label-studio").exists():
        return None
    found = template_for(venv)
    if found is not None:
        return found
    target = LS_TEMPLATES / venv.name
    with tempfile.TemporaryDirectory(prefix="syncd-ls-template-") as tmp:
        with LabelStudio("template", Path(tmp), venv=venv, mint=False) as server:
            server.login()
        scratch = LS_TEMPLATES / f".{venv.name}.new"
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(Path(tmp) / "data", scratch)
    (scratch / ".release").write_text(template_release(venv))
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    return target


def main() -> None:
    LS_TEMPLATES.mkdir(parents=True, exist_ok=True)
    for venv in (LS_VENV, OLD_LS_VENV):
        made = make(venv)
        print(f"==> {venv.name}: {'template ' + str(made) if made else 'not installed'}")


if __name__ == "__main__":
    main()

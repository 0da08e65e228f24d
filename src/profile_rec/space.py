"""The files of the Hugging Face Space that serves a published model as a live demo.

A Space runs only what was uploaded to it, on a machine that installs nothing but
its ``requirements.txt`` and Gradio. So :func:`space_files` returns the demo app,
its Space card and requirements, and a copy of the part of ``profile_rec`` the app
imports: the numpy inference code, without TensorFlow or training code.

>>> from profile_rec.space import space_files
>>> files = space_files("user/profile-rec")  # doctest: +SKIP
>>> sorted(files)  # doctest: +SKIP
['README.md', 'app.py', 'profile_rec/__init__.py', ...]
"""

from __future__ import annotations

import ast
import re
from importlib import resources
from pathlib import Path

__all__ = ["SPACE_APP_FILES", "bundled_modules", "space_files"]

#: The demo's own files, read from ``space_app/`` (shipped as profile_rec.space_app).
SPACE_APP_FILES = ("app.py", "README.md", "requirements.txt")
# Never bundled: the Space would need TensorFlow or training-only packages.
_FORBIDDEN_IMPORTS = ("tensorflow", "keras", "matplotlib")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_PACKAGE_DIR = Path(__file__).resolve().parent


def space_files(model_repo: str, revision: str | None = None) -> dict[str, bytes]:
    """The exact files to upload to a Gradio Space that demos ``model_repo``.

    Parameters
    ----------
    model_repo : str
        The model's Hub repo id, e.g. ``"user/profile-rec"``; written into the
        Space card's ``models:`` so the Hub links the Space and the model.
    revision : str, optional
        The model revision the Space will serve, named in the card. The app reads
        the repo and revision from the Space variables ``MODEL_REPO`` and
        ``MODEL_REVISION``, which the publisher sets.

    Returns
    -------
    dict of str to bytes
        Path in the Space repo -> content: ``app.py``, ``README.md``,
        ``requirements.txt`` and ``profile_rec/<module>.py`` for each module the
        app needs.

    Raises
    ------
    ValueError
        If ``model_repo`` is not an ``owner/name`` repo id, or a bundled module
        imports TensorFlow or another training-only package.
    """
    if not isinstance(model_repo, str) or not _REPO_ID.match(model_repo):
        raise ValueError(
            f"model_repo must be a Hub repo id like 'user/profile-rec', got "
            f"{model_repo!r}; a Space cannot read a local folder."
        )
    app_dir = resources.files("profile_rec.space_app")
    files = {name: app_dir.joinpath(name).read_bytes() for name in SPACE_APP_FILES}
    files["README.md"] = _space_card(
        files["README.md"].decode("utf-8"), model_repo, revision
    ).encode("utf-8")
    for module in bundled_modules(files["app.py"].decode("utf-8")):
        source = (_PACKAGE_DIR / f"{module}.py").read_bytes()
        files[f"profile_rec/{module}.py"] = source
    return files


def bundled_modules(app_source: str) -> list[str]:
    """profile_rec modules an app needs: those it imports, and theirs in turn.

    Every ``profile_rec`` import in the app counts. In the package's own modules
    only module-level imports are followed: imports inside functions belong to code
    the app never runs (saving, training) and are left out with their modules.
    """
    entry = ["__init__"]
    for node in ast.walk(ast.parse(app_source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        entry += [n.split(".")[1] for n in names if n.startswith("profile_rec.")]
    found: list[str] = []
    pending = entry
    while pending:
        module = pending.pop(0)
        if module in found:
            continue
        found.append(module)
        tree = ast.parse((_PACKAGE_DIR / f"{module}.py").read_text(encoding="utf-8"))
        for name in _module_level_imports(tree):
            if name.startswith("."):
                pending.append(name.lstrip(".").split(".")[0] or "__init__")
            elif name.split(".")[0] in _FORBIDDEN_IMPORTS:
                raise ValueError(
                    f"profile_rec/{module}.py imports {name} at module level, so "
                    "the Space would need it; import it inside the function that "
                    "uses it instead."
                )
    return sorted(found)


def _module_level_imports(tree: ast.Module) -> list[str]:
    """Imported module names outside functions; relative ones keep their dots."""
    names: list[str] = []
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop(0)
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
            # Imports under `if`/`try`/`with` and in class bodies run on import too.
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    nodes.append(child)
            if isinstance(node, ast.Try):
                for handler in node.handlers:
                    nodes.extend(handler.body)
    return names


def _space_card(template: str, model_repo: str, revision: str | None) -> str:
    """The Space README with ``models:`` naming the served model."""
    from huggingface_hub import SpaceCard

    card = SpaceCard(template)
    card.data.models = [model_repo]
    at = f" at revision `{revision}`" if revision else ""
    card.text = (
        card.text.rstrip("\n")
        + f"\n\n## Model\n\nThis Space serves [`{model_repo}`]"
        + f"(https://huggingface.co/{model_repo}){at}.\n"
    )
    return str(card)

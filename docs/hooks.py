"""MkDocs hooks of the documentation site (``mkdocs.yml``).

* The notebooks of ``notebooks/`` are executed (top to bottom, with nbclient, as a reader would run
  them) into ``build/docs/notebooks/`` and rendered from there by mkdocs-jupyter; an executed copy
  is reused while the notebook, the package source, ``MULTILEVEL_NB_DRAWS`` and
  ``MULTILEVEL_NB_CHAINS`` are unchanged
  (``tests/test_docs.py`` executes them through :func:`execute_notebook` first, so the site build
  in ``make test`` reuses those copies).
* Sphinx roles in docstrings (``:func:`x```, ``:math:`...```) are shown as plain code.
* Every public name (``multilevel.__all__``, the ``__all__`` of the public modules it lists, and the
  report functions) must be on an API page (``docs/api/*.md``) and carry a docstring, as must the
  public methods of the public classes; each one missing is a warning, i.e. an error under
  ``--strict``.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CACHE = ROOT / "build" / "docs" / "notebooks"
KEY = "multilevel_build_key"
log = logging.getLogger("mkdocs.hooks.multilevel")


def source_hash() -> str:
    """sha256 of the package's files (code and bundled data) and the versions of Python and the
    packages it runs on, so an executed notebook goes stale with any of them."""
    from multilevel.versions import package_versions

    h = hashlib.sha256(repr(sorted(package_versions().items())).encode())
    for path in sorted(p for p in (ROOT / "src" / "multilevel").rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts):
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def build_key(path: Path, src: str) -> str:
    """What an executed copy of ``path`` depends on: its text, the package source, and the draws
    and chains asked for (``MULTILEVEL_NB_DRAWS``, ``MULTILEVEL_NB_CHAINS``)."""
    knobs = "|".join(os.environ.get(k, "") for k in ("MULTILEVEL_NB_DRAWS", "MULTILEVEL_NB_CHAINS"))
    return hashlib.sha256(path.read_bytes() + src.encode() + knobs.encode()).hexdigest()


_INTERNAL_IMPORT = re.compile(r"^\s*(from\s+multilevel[\s.]|import\s+multilevel\.)", re.MULTILINE)


def execute_notebook(path: Path, src: str | None = None, *, force: bool = False):
    """Run ``path`` top to bottom and write the executed copy to ``build/docs/notebooks``.

    Returns the executed notebook. Raises ``ValueError`` when the notebook is committed with
    outputs or imports ``multilevel`` internals, and ``nbclient``'s ``CellExecutionError`` when
    a cell fails. A readable copy with the same build key is read back instead of run again,
    unless ``force``. The kernel runs without ``MPLBACKEND``, so figures are captured inline.
    """
    import nbformat
    from nbclient import NotebookClient

    key = build_key(path, src or source_hash())
    out = CACHE / path.name
    if out.is_file() and not force:
        try:
            done = nbformat.read(out, as_version=4)
        except Exception:  # noqa: BLE001  (a copy cut short: run the notebook again)
            done = None
        if done is not None and done.metadata.get(KEY) == key:
            return done
    nb = nbformat.read(path, as_version=4)
    if any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
        raise ValueError(f"{path.name} is committed with outputs; clear them (outputs are made by "
                         "running it)")
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if _INTERNAL_IMPORT.search(source):
        raise ValueError(f"{path.name}: notebooks use the public API (import multilevel as ml)")
    backend = os.environ.pop("MPLBACKEND", None)  # the kernel inherits the environment
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend
    nb.metadata[KEY] = key
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    nbformat.write(nb, partial)
    os.replace(partial, out)  # never a half-written copy in the cache
    return nb


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files, config):
    """Add the executed notebooks as ``notebooks/<name>.ipynb`` pages, and bench/'s figures
    beside the results pages that include bench/*.md."""

    for figure in sorted((ROOT / "bench").glob("*.png")):  # figures of the included bench/*.md
        files.append(File.generated(config, f"results/{figure.name}", abs_src_path=str(figure)))
    src = source_hash()
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        execute_notebook(path, src)
        files.append(File(f"notebooks/{path.name}", src_dir=str(CACHE.parent), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files


def public_names() -> dict[str, object]:
    """Dotted name -> object for every public name of the package."""
    import multilevel as ml
    from multilevel import report

    names: dict[str, object] = {}
    for name in ml.__all__:
        obj = getattr(ml, name)
        if inspect.ismodule(obj):
            names |= {f"{obj.__name__}.{n}": getattr(obj, n) for n in obj.__all__}
        else:
            names[f"multilevel.{name}"] = obj
    names |= {f"multilevel.report.{n}": getattr(report, n) for n in report.__all__}
    # returned by a public function though not exported by name
    from multilevel.frequentist.meta import MetaAnalysisFit

    names["multilevel.frequentist.meta.MetaAnalysisFit"] = MetaAnalysisFit
    return names


def _documented(text: str) -> set[str]:
    return set(re.findall(r"^::: *([\w.]+)", text, flags=re.MULTILINE))


def _undocumented_members(cls: type) -> list[str]:
    """Public methods and properties of ``cls`` (inherited ones too) without a docstring."""
    missing = []
    for attr in dir(cls):
        if attr.startswith("_"):
            continue
        member = inspect.getattr_static(cls, attr)
        target = getattr(member, "fget", None) or getattr(member, "func", None) or getattr(
            member, "__func__", member)
        if callable(target) and not inspect.getdoc(target):
            missing.append(attr)
    return missing


def check_api_pages(docs_dir: Path) -> list[str]:
    """Every problem with the API reference: a public name on no page or without a docstring."""
    pages = _documented("\n".join(p.read_text() for p in sorted((docs_dir / "api").glob("*.md"))))
    problems = []
    for dotted, obj in public_names().items():
        module = dotted.rsplit(".", 1)[0]
        if dotted not in pages and module not in pages and dotted.replace(module, "multilevel") not in pages:
            problems.append(f"{dotted} is public but on no page of docs/api/ (add '::: {dotted}')")
        if (callable(obj) or inspect.ismodule(obj)) and not inspect.getdoc(obj):
            problems.append(f"{dotted} has no docstring")
        if inspect.isclass(obj) and obj.__module__.startswith("multilevel"):
            problems += [f"{dotted}.{attr} has no docstring" for attr in _undocumented_members(obj)]
    return problems


_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|math|ref):<code>~?([^<]*)</code>")
_RAW_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|math|ref):`~?([^`<]*)`")


def on_page_content(html, page, config, files):
    """Docstrings use Sphinx roles (``:func:`x```); show them as code, without the role."""
    html = _ROLE.sub(lambda m: f"<code>{m.group(1)}</code>", html)
    return _RAW_ROLE.sub(lambda m: f"<code>{m.group(1)}</code>", html)


def on_pre_build(config):
    """Warn (an error under --strict) for every public name the API reference misses."""
    for problem in check_api_pages(Path(config["docs_dir"])):
        log.warning(problem)

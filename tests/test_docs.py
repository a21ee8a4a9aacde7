"""The documentation site: notebooks run, guide code runs, every public name is documented, and
the site builds with warnings as errors (mkdocs --strict).

The tests run in this order on purpose: the notebooks are executed first (through the site's own
hook, docs/hooks.py), so the strict site build at the end reuses those executed copies instead of
running the notebooks a second time.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed (make installs .[test,docs])")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_spec = importlib.util.spec_from_file_location("multilevel_docs_hooks", DOCS / "hooks.py")
hooks = importlib.util.module_from_spec(_spec)  # docs/hooks.py: the site's MkDocs hooks
_spec.loader.exec_module(hooks)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted(p for p in DOCS.rglob("*.md") if "api" not in p.parts)
FEW = {"MULTILEVEL_NB_DRAWS": "200", "MULTILEVEL_NB_CHAINS": "2"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    for key, value in FEW.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as in the test process: the kernel must not inherit it
    nb = hooks.execute_notebook(path, force=True)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert outputs
    if "plot" in "\n".join(c.source for c in nb.cells if c.cell_type == "code"):
        assert any("image/png" in o.get("data", {}) for o in outputs), "figures were not captured"
    assert os.environ["MPLBACKEND"] == "Agg"
    assert nb.metadata[hooks.KEY] == hooks.build_key(path, hooks.source_hash())


def test_notebook_with_outputs_or_internal_imports_is_refused(tmp_path, monkeypatch):
    import nbformat

    monkeypatch.setattr(hooks, "CACHE", tmp_path / "cache")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("from multilevel.fit import x")])
    path = tmp_path / "internal.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="public API"):
        hooks.execute_notebook(path)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import multilevel.fit")]), path)
    with pytest.raises(ValueError, match="public API"):
        hooks.execute_notebook(path)
    cell = nbformat.v4.new_code_cell("1 + 1", outputs=[nbformat.v4.new_output(
        "execute_result", data={"text/plain": "2"}, execution_count=1)])
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    with pytest.raises(ValueError, match="committed with outputs"):
        hooks.execute_notebook(path)


def python_blocks(page: Path) -> list[str]:
    """The ```python code blocks of a Markdown page, in order."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_python_blocks_are_found():
    blocks = python_blocks(DOCS / "guide" / "shrinkage.md")
    assert len(blocks) == 1 and "fit.shrinkage()" in blocks[0]


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)],
                         ids=lambda p: p.relative_to(DOCS).as_posix())
def test_guide_code_runs(page, tmp_path, monkeypatch):
    """Every Python block of a page runs, in order, in one namespace (with few draws)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import multilevel as ml

    real = ml.fit_hierarchical

    def quick(*args, **kwargs):
        for key, value in (("draws", 150), ("tune", 150), ("chains", 2), ("progressbar", False)):
            kwargs.setdefault(key, value)
        return real(*args, **kwargs)

    monkeypatch.setattr(ml, "fit_hierarchical", quick)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, block in enumerate(python_blocks(page)):
        try:
            exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)  # noqa: S102
        finally:
            plt.close("all")


def test_toml_blocks_load_as_specs(tmp_path):
    import multilevel as ml

    found = 0
    for page in PAGES:
        for block in re.findall(r"^```toml\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL):
            if "formula" in block:
                path = tmp_path / f"{page.stem}.toml"
                path.write_text(block)
                assert ml.load_spec(path).to_formula()
                found += 1
    assert found >= 1


def test_every_public_name_is_in_the_api_reference():
    assert hooks.check_api_pages(DOCS) == []


def test_an_undocumented_method_is_reported():
    class Documented:
        """A class."""

        def ok(self):
            """Has one."""

        def bare(self):
            pass

        @property
        def bare_property(self):
            return 1

    assert hooks._undocumented_members(Documented) == ["bare", "bare_property"]


def test_a_missing_api_page_is_reported(tmp_path):
    shutil.copytree(DOCS / "api", tmp_path / "api")
    (tmp_path / "api" / "plots.md").unlink()
    problems = hooks.check_api_pages(tmp_path)
    assert any("multilevel.plots.plot_caterpillar is public but on no page" in p for p in problems)


@pytest.mark.slow
def test_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, **FEW, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    api = (site / "api" / "fitting" / "index.html").read_text()
    assert "fit_hierarchical" in api and "Parameters" in api
    results = (site / "api" / "results" / "index.html").read_text()
    assert "variance_components" in results and "plot_shrinkage" in results
    notebook = (site / "notebooks" / "01_radon_varying_intercept" / "index.html").read_text()
    figures = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", notebook)
    assert any(len(f) > 20_000 for f in figures)  # the executed notebook's figures, not icons
    assert notebook.count('id="shrinkage"') == 1  # the fit's display adds no ids of its own
    assert not (site / "hooks.py").exists()
    bench = (site / "results" / "benchmarks" / "index.html").read_text()
    assert "min bulk ESS" in bench  # bench/RESULTS.md included

"""The `multilevel` command and its self-contained HTML report (checked in headless Chromium)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from multilevel.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "multilevel.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_help_documents_every_option():
    out = _run("fit", "--help")
    assert out.returncode == 0
    for option in ("--data", "--out", "--draws", "--seed", "--tune", "--chains", "--sampler"):
        assert option in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "no/such/spec.toml"], "does not exist"),
        (["fit", "models/radon_intercept.toml", "--data", "no/such.csv"], "does not exist"),
    ],
)
def test_bad_paths_are_one_line_errors(args, message):
    out = _run(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert message in out.stderr


def test_bad_spec_is_one_line_error(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('data = "radon"\nformula = "log_radon ~ floor + (1 | nocolumn)"\n')
    out = _run("fit", str(spec))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "nocolumn" in out.stderr
    spec.write_text('formula = "y ~ x + (1 | g)"\nbogus = 3\n')
    assert main(["fit", str(spec)]) == 2


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "cbpp.html"
    code = main(["fit", str(ROOT / "models" / "cbpp_binomial.toml"), "--out", str(out),
                 "--draws", "200", "--tune", "300", "--chains", "2", "--seed", "3"])
    assert code == 0
    return out


def test_report_is_self_contained(report):
    text = report.read_text()
    assert report.with_suffix(".txt").is_file()
    for heading in ("Fixed effects", "Variance components", "Intraclass correlation", "Shrinkage",
                    "Sampler diagnostics", "Package versions", "Spec", "Data"):
        assert heading in text
    assert "laplace" in text  # the frequentist column
    sources = re.findall(r"src='([^']*)'", text) + re.findall(r'src="([^"]*)"', text)
    assert len(sources) >= 6
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in text and "https://" not in text
    assert "cbind(incidence, size - incidence)" in text
    assert "herd" in text and ">15<" in text  # 15 herds in the data summary


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed "
                    "(apt-get install chromium); the HTML is still checked structurally above")
def test_report_renders_in_headless_chromium(report, tmp_path):
    js = tmp_path / "check.html"
    # Load the report in an iframe-free way: dump the DOM after scripts ran, then count images
    # that decoded (naturalWidth > 0) by printing a marker through document.title.
    probe = report.read_text().replace(
        "</body>",
        "<script>window.onload=function(){var i=document.images,ok=0;for(var k=0;k<i.length;k++)"
        "{if(i[k].complete&&i[k].naturalWidth>0)ok++;}document.title='IMAGES '+ok+'/'+i.length;};"
        "</script></body>",
    )
    js.write_text(probe)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    out = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom",
                          js.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    match = re.search(r"<title>IMAGES (\d+)/(\d+)</title>", out.stdout)
    assert match, out.stdout[:500]
    loaded, total = map(int, match.groups())
    assert total >= 6 and loaded == total
    console_errors = [ln for ln in out.stderr.splitlines() if "CONSOLE" in ln and "ERROR" in ln.upper()]
    assert not console_errors
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,2000",
                    report.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000

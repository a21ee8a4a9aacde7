"""Save a fit (:class:`~multilevel.results.record.FitRecord`) to one file and read it back.

File format (``multilevel_format = 1``): a zip archive holding a Zarr (format 2) store of the
fit's ArviZ ``DataTree`` (posterior, sample_stats, warm-up groups, ...). Zarr is used because it
needs nothing beyond what nutpie already installs; netCDF through h5netcdf would need h5py.
The root attributes carry everything needed to rebuild the fit:

========================  ===================================================================
attribute                 content
========================  ===================================================================
``multilevel_spec``       the spec as TOML (:meth:`ModelSpec.to_toml`)
``multilevel_versions``   package versions the fit was sampled with
``multilevel_format``     this format's version (1)
``multilevel_fit``        JSON: parameterization, notes, rows dropped for missing values,
                          the data fingerprint, the frequentist method, ``n_agq`` and messages
========================  ===================================================================

and a group ``multilevel_data`` holds the used data columns (``Design.frame``): numbers as
they are, categorical and text columns as integer codes with their categories (and order) in
the variable's attributes. A fit of data larger than memory (a design without rows,
:mod:`multilevel.design.partitioned`) stores its encoding frame there instead, and its
statistics, level counts and sums in a group ``multilevel_stats`` (arrays, and the facts as
JSON in its ``info`` attribute); loading rebuilds that design with
:func:`~multilevel.design.summary_io.design_from_summary`. A logistic fit of Dask data
collapsed to binomial counts also stores the rows behind each count (group
``multilevel_row_weights``) and its log-likelihood constant (``loglik_offset`` in
``multilevel_fit``).

Loading rebuilds the :class:`~multilevel.design.Design` with
:func:`~multilevel.design.build_design` from the stored columns and checks it against the
fingerprint (a sha256 of the arrays the model sees: response, trials, fixed-effect matrix,
group indices, labels and varying-term matrices, with their names and shape), recomputes the
priors (deterministic from the design) and refits the frequentist comparison, which is
deterministic and takes a second or less, rather than storing its internals; its messages are
the stored ones. ``model`` is ``None`` on a loaded fit: every summary, table and plot works
from the posterior. A fit sampled with another major version of PyMC or ArviZ loads with a
warning.

Examples
--------
>>> import tempfile, pathlib, warnings
>>> from multilevel import datasets, fit_hierarchical, load_fit
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     fit = fit_hierarchical("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"),
...                            draws=100, tune=100, chains=2, seed=1, progressbar=False)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "sleepstudy.fit.zip"
>>> _ = fit.save(path)
>>> again = load_fit(path)  # read_fit(path), wrapped in a HierarchicalFit
>>> again.fixed_effects().equals(fit.fixed_effects())
True
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multilevel.design import Design, build_design
from multilevel.design.build import weighted_design
from multilevel.design.collapse import Collapsed
from multilevel.design.statistics import marginal_statistics
from multilevel.design.summary_io import design_from_summary, summary_arrays
from multilevel.errors import DataError
from multilevel.frequentist import fit_design
from multilevel.model.priors import resolve_priors
from multilevel.results.record import FitRecord
from multilevel.spec.io import spec_from_toml
from multilevel.versions import package_versions

__all__ = ["FORMAT_VERSION", "data_fingerprint", "read_fit", "save_fit"]

FORMAT_VERSION = 1
DATA_GROUP = "multilevel_data"
STATS_GROUP = "multilevel_stats"
WEIGHTS_GROUP = "multilevel_row_weights"
_CHECKED_MAJOR = ("pymc", "arviz")
_OWN_ATTRS = ("multilevel_format", "multilevel_fit")


def data_fingerprint(design: Design) -> str:
    """sha256 of the arrays and names the model sees (see the module notes).

    Examples
    --------
    >>> from multilevel import ModelSpec, datasets
    >>> from multilevel.design import build_design
    >>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)"),
    ...                  datasets.load("sleepstudy"))
    >>> len(data_fingerprint(d))
    64
    """
    h = hashlib.sha256()

    def add(item: Any) -> None:
        if isinstance(item, np.ndarray):
            arr = np.ascontiguousarray(item, dtype=np.int64 if item.dtype.kind in "iub" else float)
            h.update(json.dumps([str(arr.dtype), list(arr.shape)]).encode())
            h.update(arr.tobytes())
        else:
            h.update(json.dumps(item, default=str).encode())

    if design.summary is not None:  # no rows: the statistics and level counts define the fit
        arrays, info = summary_arrays(design)
        add(info)
        for key in sorted(arrays):
            add(arrays[key])
    if design.row_weights is not None:
        add(design.row_weights)
    add([str(c) for c in design.frame.columns])
    add(list(design.frame.shape))
    add(list(design.fixed_names))
    for arr in (design.y, design.X, design.trials, design.se):
        add(arr if arr is not None else "none")
    for g in design.groups:
        add([g.factor, list(g.levels), list(g.term_names), g.correlated, g.intercept])
        add(g.index)
        add(g.Z)
    if design.serial is not None:  # the series and times define the residual correlation
        ser = design.serial
        add([ser.kind, ser.time_column, list(ser.series_levels)])
        add(ser.time)
        add(ser.series)
    return h.hexdigest()


def _plain(values: pd.Index) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values.tolist()]


def _frame_to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    data_vars = {}
    for col in frame.columns:
        s = frame[col]
        attrs: dict[str, Any] = {"dtype": str(s.dtype)}
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = s.cat.categories
            attrs |= {"kind": "category", "ordered": int(bool(s.cat.ordered)),
                      "categories": json.dumps(_plain(cats), default=str),
                      "categories_dtype": str(cats.dtype)}
            values = s.cat.codes.to_numpy()
        elif pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            attrs["kind"] = "numeric"
            values = s.to_numpy(dtype=getattr(s.dtype, "numpy_dtype", s.dtype))
        else:
            cat = pd.Categorical(s)
            attrs |= {"kind": "values", "categories": json.dumps(_plain(cat.categories), default=str)}
            values = np.asarray(cat.codes)
        data_vars[str(col)] = xr.Variable(("row",), values, attrs)
    return xr.Dataset(data_vars, attrs={"columns": json.dumps([str(c) for c in frame.columns])})


def _index(values: list[Any], dtype: str | None) -> pd.Index:
    try:
        return pd.Index(values, dtype=dtype)
    except (TypeError, ValueError):
        return pd.Index(values)


def _dataset_to_frame(ds: xr.Dataset) -> pd.DataFrame:
    out = {}
    for col in json.loads(ds.attrs["columns"]):
        var = ds[col]
        kind, dtype = var.attrs["kind"], var.attrs["dtype"]
        codes = var.to_numpy()
        if kind == "category":
            cats = _index(json.loads(var.attrs["categories"]), var.attrs.get("categories_dtype"))
            out[col] = pd.Categorical.from_codes(codes, categories=cats,
                                                 ordered=bool(var.attrs["ordered"]))
        elif kind == "values":
            values = np.asarray(json.loads(var.attrs["categories"]), dtype=object)[codes]
            series = pd.Series(values, dtype=object)
            try:
                series = series.astype(dtype)
            except (TypeError, ValueError):
                pass
            out[col] = series
        else:
            out[col] = pd.Series(codes).astype(dtype)
    return pd.DataFrame(out)


def _versions(attrs: dict[str, Any]) -> dict[str, str]:
    text = attrs.get("multilevel_versions")
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)  # fit_hierarchical stores a dict's repr
        except (ValueError, SyntaxError):
            return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _major(text: str) -> str:
    return text.split(".")[0]


def _check_versions(stored: dict[str, str]) -> None:
    now = package_versions()
    for name in _CHECKED_MAJOR:
        old, new = stored.get(name), now.get(name)
        if old and new and _major(old) != _major(new):
            warnings.warn(
                f"This fit was sampled with {name} {old}, but {name} {new} is installed: a "
                "different major version may read the draws differently. Check the tables, or "
                "refit with the installed versions.",
                UserWarning,
                stacklevel=3,
            )


def _strings_to_object(tree: Any) -> Any:
    """Zarr returns numpy StringDType for text; make it object dtype again, as sampled."""
    def fix(ds: xr.Dataset) -> xr.Dataset:
        ds = ds.copy()
        for name, var in ds.variables.items():
            if var.dtype.kind == "T":
                ds[name] = var.astype(object)
        return ds

    return tree.map_over_datasets(fix)


def _store_ready(tree: Any) -> Any:
    """Object (text) variables with None entries cannot be stored: write them as text."""
    def fix(ds: xr.Dataset) -> xr.Dataset:
        ds = ds.copy()
        for name, var in ds.data_vars.items():
            if var.dtype == object:
                ds[name] = var.copy(data=np.vectorize(lambda v: "" if v is None else str(v),
                                                      otypes=[object])(var.to_numpy()))
        return ds

    return tree.map_over_datasets(fix)


def save_fit(fit: FitRecord, path: str | os.PathLike) -> Path:
    """Write ``fit`` to ``path`` (a zip file; see the module notes) and return the path."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a directory: give a file name such as 'fit.zip'.")
    freq = fit.frequentist
    meta = {
        "parameterization": fit.parameterization,
        "notes": list(fit.notes),
        "dropped_rows": int(fit.design.dropped_rows),
        "fingerprint": data_fingerprint(fit.design),
        "frequentist": None if freq is None else {
            "method": freq.method, "n_agq": int(getattr(freq, "n_agq", 1)),
            "messages": list(freq.messages),
        },
    }
    if fit.design.row_weights is not None:
        meta["loglik_offset"] = fit.design.loglik_offset
    tree = _store_ready(fit.idata.copy())
    tree.attrs = dict(fit.idata.attrs)
    tree.attrs.setdefault("multilevel_spec", fit.spec.to_toml())
    tree.attrs.setdefault("multilevel_versions", json.dumps(package_versions()))
    tree.attrs |= {"multilevel_format": FORMAT_VERSION, "multilevel_fit": json.dumps(meta)}
    if fit.design.row_weights is not None:  # binomial counts from Dask: rows behind each
        tree[WEIGHTS_GROUP] = xr.DataTree(xr.Dataset({"rows": ("row", fit.design.row_weights)}))
    if fit.design.summary is None:
        tree[DATA_GROUP] = xr.DataTree(_frame_to_dataset(fit.design.frame))
    else:  # data larger than memory: the statistics, and the frame new data are encoded on
        arrays, info = summary_arrays(fit.design)
        stats = xr.Dataset({k: xr.DataArray(v, dims=[f"{k}_{i}" for i in range(np.ndim(v))])
                            for k, v in arrays.items()}, attrs={"info": json.dumps(info)})
        tree[DATA_GROUP] = xr.DataTree(_frame_to_dataset(fit.design.encoding))
        tree[STATS_GROUP] = xr.DataTree(stats)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store.zarr"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's notes on string dtypes
            tree.to_zarr(store, mode="w", zarr_format=2, consolidated=True)
        partial = Path(tmp) / "fit.zip"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(store.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(store).as_posix())
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(partial, path)
    return path


def _read_tree(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"Fit file {str(path)!r} does not exist.")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{str(path)!r} is not a saved multilevel fit (not a zip file).")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(path) as zf:
            zf.extractall(tmp)  # extractall drops absolute and '..' parts of member names
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = xr.open_datatree(tmp, engine="zarr", consolidated=True, zarr_format=2)
                tree = tree.load()
        except Exception as err:  # zarr and xarray raise many kinds here
            raise DataError(
                f"{str(path)!r} is not a saved multilevel fit (cannot read its store: {err!r})."
            ) from None
        tree.close()
    return tree


def read_fit(path: str | os.PathLike) -> FitRecord:
    """Read a fit written by :meth:`HierarchicalFit.save` (see the module notes).

    Raises
    ------
    DataError
        When the file is missing, is not a saved fit, was written by a newer format, or its
        data no longer give the design it was fitted to (fingerprint mismatch).

    Warns
    -----
    UserWarning
        When the fit was sampled with another major version of PyMC or ArviZ.
    """
    path = Path(path)
    tree = _read_tree(path)
    attrs = dict(tree.attrs)
    version = attrs.get("multilevel_format")
    if version is None or DATA_GROUP not in tree.children:
        raise DataError(f"{str(path)!r} is not a saved multilevel fit (no multilevel metadata).")
    if int(version) > FORMAT_VERSION:
        raise DataError(
            f"{str(path)!r} uses fit format {version}, newer than this multilevel's "
            f"{FORMAT_VERSION}: upgrade multilevel to read it."
        )
    _check_versions(_versions(attrs))
    meta = json.loads(attrs["multilevel_fit"])
    spec = spec_from_toml(attrs["multilevel_spec"])
    frame = _dataset_to_frame(tree[DATA_GROUP].to_dataset())
    if STATS_GROUP in tree.children:  # a design without rows (data larger than memory)
        ds = tree[STATS_GROUP].to_dataset()
        design = design_from_summary(spec, frame, {k: ds[k].to_numpy() for k in ds.data_vars},
                                     json.loads(ds.attrs["info"]))
        tree = tree.drop_nodes(STATS_GROUP)
    elif WEIGHTS_GROUP in tree.children:  # binomial counts standing for weighted rows
        rows = tree[WEIGHTS_GROUP].to_dataset()["rows"].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # slope/separation warnings were given at fit time
            design = weighted_design(Collapsed(spec, frame, rows, float(meta["loglik_offset"]),
                                               int(meta["dropped_rows"]), meta["notes"][0]))
        tree = tree.drop_nodes(WEIGHTS_GROUP)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # slope/separation warnings were given at fit time
            design = build_design(spec, frame)
    design = replace(design, dropped_rows=int(meta["dropped_rows"]))
    if data_fingerprint(design) != meta["fingerprint"]:
        raise DataError(
            f"The data stored in {str(path)!r} no longer give the design the fit was sampled "
            "with (fingerprint mismatch): the file was altered, or the design code changed. "
            "Refit the model."
        )
    idata = _strings_to_object(tree.drop_nodes(DATA_GROUP))
    idata.attrs = {k: v for k, v in attrs.items() if k not in _OWN_ATTRS}
    param = meta["parameterization"]
    return FitRecord(
        spec, design, None, idata, resolve_priors(design), param,
        _refit_frequentist(design, meta["frequentist"]), tuple(meta["notes"]),
        marginal_statistics(design) if param == "marginal" else None,
    )


def _refit_frequentist(design: Design, info: dict[str, Any] | None) -> Any:
    if info is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = None if design.spec.se is not None else info["method"]
        freq = fit_design(design, method, info["n_agq"])
    return replace(freq, messages=tuple(info["messages"]))

"""`frs audit` and `frs doctor`: the audit trail, and what frs runs on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from frs_cli import __version__
from frs_cli.cli.base import (
    _default_workers,
    _watchlist_path,
    cli,
    watchlist_option,
)
from frs_cli.errors import (
    EXIT_FAILURE,
    FrsError,
)
from frs_cli.files import printable


# -- audit ------------------------------------------------------------------
@cli.command("audit")
@watchlist_option
@click.option(
    "--format", "fmt", type=click.Choice(("table", "jsonl")), default="table", show_default=True
)
def audit_cmd(watchlist: Path | None, fmt: str) -> None:
    """Show the audit trail of a watchlist: every enrol and scan, who ran it, on what."""
    from frs_cli.watchlist import audit

    path = _watchlist_path(watchlist)
    entries = audit.read(path)
    if fmt == "jsonl":
        for entry in entries:
            click.echo(json.dumps(entry, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{audit.log_path(path)} ({len(entries)} records)")
    for col in ("time", "command", "user@host", "inputs", "threshold", "result"):
        table.add_column(col)
    for e in entries:
        counts = e.get("counts", {})
        result = ", ".join(f"{k} {v}" for k, v in counts.items())
        cells = (
            str(e.get("time", "")), str(e.get("command", "")),
            f"{e.get('user', '')}@{e.get('host', '')}", str(len(e.get("inputs", []))),
            str(e.get("threshold", "")), result,
        )  # fmt: skip
        table.add_row(*map(printable, cells))  # a record is data: no escape sequences
    Console(highlight=False, markup=False, width=160).print(table)


# -- doctor -----------------------------------------------------------------
@cli.command()
def doctor() -> None:
    """Show which dlib build, models and libraries frs is using, and what that means
    for speed."""
    import platform

    import av
    import dlib
    import hnswlib  # noqa: F401  (imported to show it loads)
    import numpy

    from frs_cli.faces import dlib_models

    def flag(name: str) -> bool:
        return bool(getattr(dlib, name, False))

    blas, cuda, avx = flag("DLIB_USE_BLAS"), flag("DLIB_USE_CUDA"), flag("USE_AVX_INSTRUCTIONS")
    lines = [
        f"frs {__version__} on Python {platform.python_version()} ({platform.machine()}), "
        f"{_default_workers()} usable cores",
        f"dlib {dlib.__version__}: BLAS {'yes' if blas else 'no'}, CUDA {'yes' if cuda else 'no'}, "
        f"AVX {'yes' if avx else 'no'}, LAPACK {'yes' if flag('DLIB_USE_LAPACK') else 'no'}",
        f"PyAV {av.__version__} (libavcodec "
        f"{'.'.join(map(str, av.library_versions['libavcodec']))}), NumPy {numpy.__version__}",
    ]
    ok = True
    try:
        lines.append(
            f"models: {dlib_models.model_path(dlib_models.RESNET).parent}; encoder "
            f"{dlib_models.encoder_model_id()}"
        )
        for name in (dlib_models.SHAPE_5, dlib_models.RESNET, dlib_models.MMOD):
            dlib_models.model_path(name)
    except FrsError as err:
        lines.append(f"models: MISSING: {err}")
        ok = False
    encoder = dlib_models.choice(dlib_models.RESNET) if ok else None
    if encoder is not None:
        for name in (dlib_models.RESNET, dlib_models.MMOD):
            c = dlib_models.choice(name)
            runs = "ONNX Runtime" if c.backend == "onnxruntime" else "dlib"
            lines.append(f"{dlib_models.NETWORKS[name]}: {runs} ({c.why})")
    if encoder is not None and encoder.backend == "onnxruntime":
        lines.append(
            "speed: encodings ~9 ms per face and --model cnn ~0.55 s per 1280x720 search on "
            "one core (dlib-bin: ~115 ms and ~8.6 s; docs/performance.md)."
        )
    elif cuda:
        lines.append("speed: CUDA build: dlib's networks run on the GPU.")
    elif blas:
        lines.append(
            "speed: BLAS build: encodings ~16 ms per face on one core (about 5x the wheel)."
        )
    else:
        lines.append(
            "speed: no BLAS (the dlib-bin wheel): encodings ~80-115 ms per face and "
            "--model cnn ~8.6 s per 1280x720 search; on ONNX Runtime ~9 ms and ~0.55 s "
            "(docs/performance.md)."
        )
    if not avx:
        lines.append(
            "speed: dlib built without AVX: HOG detection about 2x slower than it could be."
        )
    lines += _families()
    for line in lines:
        click.echo(line)
    if not ok:
        sys.exit(EXIT_FAILURE)


def _families() -> list[str]:
    """Each model family: its networks, where their files were found, whether their bytes
    are the pinned ones, and their licence."""
    from frs_cli.faces import arcface_weights, families

    lines = [
        "family dlib (the default): HOG or CNN detector, 5-point landmarks, ResNet encoder, "
        f"{families.DLIB.dim}-d; {families.DLIB.licence}"
    ]
    found = []
    for network in ("scrfd", "arcface"):
        try:
            f = arcface_weights.find(network)
            found.append(f"{network} {f.path} ({f.where}; SHA-256 ok)")
        except arcface_weights.ModelMissing as err:
            found.append(f"{network}: {err}")
    lines.append(
        "family arcface: SCRFD-500M detector with five landmarks, ArcFace MobileFaceNet "
        f"encoder, {families.ARCFACE.dim}-d; {'; '.join(found)}"
    )
    lines.append(f"licence of family arcface: {families.ARCFACE.licence}")
    return lines

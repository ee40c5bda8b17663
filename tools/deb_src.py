"""Make Debian's source packages reachable: `apt-get source firmware-microbit-micropython` needs a
deb-src entry, and a fresh Debian image has only `deb` ones. Run by `make deps` as root, with
the system's python3 (no venv yet, standard library only).

It copies the machine's own `deb` entries for Debian's main archive (deb822 .sources files and
one-line sources.list alike) as `deb-src` entries in one file of its own, so the same mirror
and keys are used, then runs apt-get update. Nothing is written when a deb-src entry for the
package already answers. Exit status 0 when the source is reachable, 1 with the reason when not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = "firmware-microbit-micropython"
APT = Path("/etc/apt")
OURS = APT / "sources.list.d" / "seatlink-deb-src.sources"


def source_reachable() -> bool:
    proc = subprocess.run(["apt-cache", "showsrc", PACKAGE], capture_output=True, text=True)
    return proc.returncode == 0 and "Package: " + PACKAGE in proc.stdout


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
        elif not line.startswith("#") and ":" in line and not line[0].isspace():
            key, value = line.split(":", 1)
            current[key.strip()] = value.strip()
    return stanzas


def deb_entries() -> list[dict[str, str]]:
    """The machine's `deb` entries for main, as deb822 fields (URIs, Suites, Components, ...)."""
    entries = []
    for path in sorted((APT / "sources.list.d").glob("*.sources")):
        if path == OURS:
            continue
        for stanza in _stanzas(path.read_text()):
            if "deb" in stanza.get("Types", "").split() and stanza.get("Enabled", "yes") != "no":
                entries.append(stanza)
    lists = [APT / "sources.list", *sorted((APT / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) >= 4 and words[0] == "deb":
                options = {}
                if words[1].startswith("["):  # [signed-by=... arch=...]
                    while not words[1].endswith("]"):
                        words[1:3] = [words[1] + " " + words[2]]
                    for option in words.pop(1).strip("[]").split():
                        key, _, value = option.partition("=")
                        options[key] = value
                entry = {"Types": "deb", "URIs": words[1], "Suites": words[2],
                         "Components": " ".join(words[3:])}  # fmt: skip
                if "signed-by" in options:
                    entry["Signed-By"] = options["signed-by"]
                entries.append(entry)
    # Debian's archive itself, not security or updates (they carry no such source package)
    kept = []
    for entry in entries:
        suites = [s for s in entry.get("Suites", "").split()
                  if not s.endswith(("-security", "-updates", "-backports"))]  # fmt: skip
        if suites and "main" in entry.get("Components", "").split():
            kept.append({**entry, "Suites": " ".join(suites)})
    return kept


def main() -> int:
    if source_reachable():
        return 0
    entries = deb_entries()
    if not entries:
        print(f"deb_src: no deb entry for Debian's main archive to copy; add a deb-src entry "
              f"for {PACKAGE} by hand", file=sys.stderr)  # fmt: skip
        return 1
    text = "# Written by seatlink (make deps): Debian's source packages, for the micro:bit image\n"
    for entry in entries:
        fields = {**entry, "Types": "deb-src", "Components": "main"}
        text += "\n" + "".join(f"{k}: {v}\n" for k, v in fields.items()
                               if k in ("Types", "URIs", "Suites", "Components", "Signed-By"))
    OURS.write_text(text)
    print(f"deb_src: wrote {OURS}; apt-get update", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-q"], check=False)
    if not source_reachable():
        print(f"deb_src: apt-cache showsrc {PACKAGE} still finds nothing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

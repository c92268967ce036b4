"""Fetch another Debian release's `nft` into a directory of its own, to benchmark the nftables
proxy with it (bench/test_programming_cost.py, `HARNESS_BENCH_PROGCOST_NFT`).

Why: `nft -f` 1.0.6 (Debian 12, and the patched build kube-proxy's own image ships:
kubernetes/release#4419) dumps every chain of the namespace into its cache before any
transaction, so one endpoint change costs more the more chains there are; nft 1.1.3 (Debian 13)
fetches only what a transaction names. Both measured side by side in one run show which share of
the nftables proxy's growth is the `nft` binary's.

    .venv/bin/python3 bench/debian_nft.py DIR [--suite trixie]

writes `DIR/nft`, a script that runs that release's unmodified `nft` with that release's own
libraries and dynamic loader (`DIR/root`), so nothing of this machine is replaced: put DIR first
on PATH for the process that should use it. Trust: the suite's InRelease must carry a good
signature from a key of this machine's Debian archive keyring (`gpgv`); Packages.xz must match
the SHA256 it states, and every package the one Packages.xz states. A run that fails leaves
nothing at DIR (the work happens in a sibling directory renamed at the end); a DIR that already
holds a working `nft` is kept as it is. amd64 only. Needs `gpgv` and `dpkg-deb`.

Exit status: 0 done (or already there), 2 refused with one line on stderr. Must not install
anything into the system, run as a benchmark, or touch any network namespace.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

MIRROR = "https://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
PACKAGES_INDEX = "main/binary-amd64/Packages.xz"
ROOT_PACKAGE = "nftables"
LIBRARY_DIR = "usr/lib/x86_64-linux-gnu"
LOADER = f"{LIBRARY_DIR}/ld-linux-x86-64.so.2"
DOWNLOAD_TIMEOUT_S = 60.0
MAX_PACKAGES = 40
"""More packages than nftables' closure needs (14 in trixie) means a wrong index: refuse."""


class Refusal(Exception):
    """One line for the user: what failed and what to do."""


Stanzas = Mapping[str, Mapping[str, str]]


def parse_packages(text: str) -> dict[str, dict[str, str]]:
    """The stanzas of a Debian Packages file by package name (the first stanza of a name wins;
    continuation lines are dropped, as no field read here has them)."""
    stanzas: dict[str, dict[str, str]] = {}
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        name = fields.get("Package")
        if name and name not in stanzas:
            stanzas[name] = fields
    return stanzas


def dependencies(fields: Mapping[str, str]) -> list[str]:
    """The names a stanza's Depends and Pre-Depends need: of each group of alternatives, the
    first; version constraints and architecture qualifiers dropped."""
    names = []
    for key in ("Pre-Depends", "Depends"):
        for group in filter(None, (g.strip() for g in fields.get(key, "").split(","))):
            first = group.split("|")[0].strip()
            names.append(re.split(r"[\s(:]", first, maxsplit=1)[0])
    return names


def closure(stanzas: Stanzas, root: str) -> list[str]:
    """`root` and every package it needs, transitively, sorted; Refusal when one is missing
    from the index or there are more than `MAX_PACKAGES`."""
    found: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        if name not in stanzas:
            raise Refusal(f"the package index has no {name!r} (needed by {root}); try --suite")
        found.add(name)
        if len(found) > MAX_PACKAGES:
            raise Refusal(f"{root} needs over {MAX_PACKAGES} packages: not an index to trust")
        todo += dependencies(stanzas[name])
    return sorted(found)


def release_hash(release: str, index: str) -> str:
    """The SHA256 that a verified Release text states for `index`."""
    section = release.partition("\nSHA256:")[2]
    for line in section.splitlines()[1:]:
        if not line.startswith(" "):
            break
        digest, _, name = line.split()
        if name == index:
            return digest
    raise Refusal(f"the Release file states no SHA256 for {index}")


def wrapper(root: Path) -> str:
    """The `nft` script: the release's own loader runs its `nft` with its own libraries."""
    return (
        "#!/bin/sh\n"
        f"# Debian's nft from {root}, written by bench/debian_nft.py\n"
        f'exec "{root / LOADER}" --library-path "{root / LIBRARY_DIR}"'
        f' "{root / "usr/sbin/nft"}" "$@"\n'
    )


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as error:
        raise Refusal(f"cannot download {url}: {error}; is --suite right?") from None
    except OSError as error:
        raise Refusal(f"cannot download {url}: {error}; check the network or --mirror") from None


def checked(data: bytes, digest: str, what: str) -> bytes:
    if hashlib.sha256(data).hexdigest() != digest:
        raise Refusal(f"{what} does not match its SHA256: a broken mirror? try --mirror")
    return data


def signature_good(status: str) -> bool:
    """Whether `gpgv --status-fd` output shows a valid signature and no bad one. As apt judges
    it: InRelease carries several signatures (one per archive key in use), and a keyring
    without one of the keys (an older release's) makes gpgv exit 2 beside a good one."""
    words = [line.split()[1] for line in status.splitlines()
             if line.startswith("[GNUPG:] ") and len(line.split()) > 1]  # fmt: skip
    return "VALIDSIG" in words and "BADSIG" not in words


def verified_release(mirror: str, suite: str, work: Path) -> str:
    """The suite's InRelease text, once `gpgv` has found a good signature on it."""
    signed = work / "InRelease"
    signed.write_bytes(download(f"{mirror}/dists/{suite}/InRelease"))
    plain = work / "Release"
    done = subprocess.run(
        ["gpgv", "--status-fd", "1", "--keyring", str(KEYRING), "--output", str(plain),
         str(signed)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if not (signature_good(done.stdout) and plain.is_file()):
        raise Refusal(f"{suite}'s InRelease has no good signature from {KEYRING} (gpgv)")
    return plain.read_text()


def fetch(target: Path, suite: str, mirror: str) -> Path:
    """Fill `target` (which must not exist) with the suite's nft and what it needs, unpacked
    under `target/root`; return that root."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        release = verified_release(mirror, suite, work)
        index = download(f"{mirror}/dists/{suite}/{PACKAGES_INDEX}")
        index = checked(index, release_hash(release, PACKAGES_INDEX), PACKAGES_INDEX)
        stanzas = parse_packages(lzma.decompress(index).decode())
        root = target / "root"
        root.mkdir(parents=True)
        for name in closure(stanzas, ROOT_PACKAGE):
            fields = stanzas[name]
            deb = work / f"{name}.deb"
            data = download(f"{mirror}/{fields['Filename']}")
            deb.write_bytes(checked(data, fields["SHA256"], fields["Filename"]))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=120)
    return root


def working(script: Path) -> str | None:
    """The version line of `script --version`, or None when it does not run."""
    if not script.is_file():
        return None
    try:
        done = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                              timeout=10, check=False)  # fmt: skip
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="where to put the release's nft")
    parser.add_argument("--suite", default="trixie", help="the Debian suite (default: trixie)")
    parser.add_argument("--mirror", default=MIRROR, help=f"the archive (default: {MIRROR})")
    args = parser.parse_args(None if argv is None else list(argv))
    target: Path = args.directory.absolute()
    try:
        if platform.machine() != "x86_64":
            raise Refusal(f"only amd64 is supported; this machine is {platform.machine()}")
        for tool in ("gpgv", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise Refusal(f"`{tool}` is not installed (apt-get install gpgv dpkg)")
        version = working(target / "nft")
        if version is None and target.exists():
            raise Refusal(f"{target} exists without a working nft; remove it or choose another")
        if version is None:
            partial = target.with_name(f".{target.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            try:
                fetch(partial, args.suite, args.mirror.rstrip("/"))
                partial.rename(target)
                script = target / "nft"
                script.write_text(wrapper(target / "root"))
                script.chmod(0o755)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            version = working(target / "nft")
            if version is None:
                shutil.rmtree(target, ignore_errors=True)
                raise Refusal(f"{args.suite}'s nft does not run on this machine")
    except Refusal as refusal:
        print(f"debian_nft: {refusal}", file=sys.stderr)
        return 2
    except (OSError, subprocess.SubprocessError) as error:
        print(f"debian_nft: {error}", file=sys.stderr)
        return 2
    print(f"{version}: put {target} first on PATH (e.g. HARNESS_BENCH_PROGCOST_NFT={target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench/debian_nft.py's pure parts, without the network: the Packages index, nftables'
dependency closure, the Release file's checksums and the `nft` script it writes; and its
refusals, one line and exit 2, with nothing left behind."""

from __future__ import annotations

from pathlib import Path

import debian_nft
import pytest
from debian_nft import (
    Refusal,
    closure,
    dependencies,
    main,
    parse_packages,
    release_hash,
    signature_good,
    wrapper,
)

PACKAGES = """Package: nftables
Version: 1.1.3-1
Depends: libc6 (>= 2.34), libedit2 (>= 3.1-20130611-0), libnftables1 (= 1.1.3-1)
Filename: pool/main/n/nftables/nftables_1.1.3-1_amd64.deb
SHA256: 11
Description: Program to control packet filtering rules by Netfilter project
 This software provides an in-kernel packet classification framework.

Package: libnftables1
Depends: libc6 (>= 2.38), libgmp10 (>= 2:6.3.0+dfsg), libjansson4 | libjansson-dev:any
Filename: pool/main/n/nftables/libnftables1_1.1.3-1_amd64.deb
SHA256: 22

Package: libedit2
Pre-Depends: libc6
Depends: libbsd0 (>= 0.1.3)
SHA256: 33

Package: libc6
Depends: libgcc-s1
SHA256: 44

Package: libgcc-s1
Depends: libc6 (>= 2.35)

Package: libgmp10

Package: libjansson4

Package: libbsd0

Package: libc6
Depends: never-read
"""


def test_the_index_and_the_closure_of_nftables() -> None:
    stanzas = parse_packages(PACKAGES)
    assert stanzas["nftables"]["SHA256"] == "11"
    assert stanzas["libc6"]["Depends"] == "libgcc-s1"  # the first stanza of a name wins
    assert dependencies(stanzas["libnftables1"]) == ["libc6", "libgmp10", "libjansson4"]
    assert dependencies(stanzas["libedit2"]) == ["libc6", "libbsd0"]
    assert closure(stanzas, "nftables") == [
        "libbsd0", "libc6", "libedit2", "libgcc-s1", "libgmp10", "libjansson4", "libnftables1",
        "nftables",
    ]  # fmt: skip


def test_a_missing_or_runaway_dependency_is_refused() -> None:
    stanzas = parse_packages(PACKAGES.replace("Package: libbsd0\n", ""))
    with pytest.raises(Refusal, match="no 'libbsd0'"):
        closure(stanzas, "nftables")
    many = {f"p{n}": {"Depends": f"p{n + 1}"} for n in range(50)}
    with pytest.raises(Refusal, match="over 40 packages"):
        closure(many, "p0")


def test_the_release_files_checksum_of_the_index() -> None:
    release = (
        "Origin: Debian\nMD5Sum:\n aa 1 main/binary-amd64/Packages.xz\nSHA256:\n"
        " bb 10 main/binary-all/Packages.xz\n cc 20 main/binary-amd64/Packages.xz\n"
        "Acquire-By-Hash: yes\n"
    )
    assert release_hash(release, "main/binary-amd64/Packages.xz") == "cc"
    with pytest.raises(Refusal, match=r"no SHA256 for main/binary-i386/Packages\.xz"):
        release_hash(release, "main/binary-i386/Packages.xz")


def test_the_script_runs_the_releases_nft_with_its_own_loader_and_libraries() -> None:
    script = wrapper(Path("/opt/n/root"))
    assert script.startswith("#!/bin/sh\n")
    assert script.splitlines()[-1] == (
        'exec "/opt/n/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path'
        ' "/opt/n/root/usr/lib/x86_64-linux-gnu" "/opt/n/root/usr/sbin/nft" "$@"'
    )


def test_a_directory_without_a_working_nft_is_refused_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes").write_text("kept")
    assert main([str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists without a working nft" in err
    assert (tmp_path / "mine" / "notes").read_text() == "kept"


def test_a_failed_fetch_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(url: str) -> bytes:
        raise Refusal(f"cannot download {url}: no network here")

    monkeypatch.setattr(debian_nft, "download", unreachable)
    assert main([str(tmp_path / "nft"), "--mirror", "http://mirror.invalid/debian"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "debian_nft: cannot download http://mirror.invalid/debian/dists/trixie/InRelease:"
        " no network here\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_one_valid_signature_suffices_and_a_bad_one_refuses() -> None:
    """As apt judges InRelease: a keyring without a newer release's keys (gpgv exits 2) still
    verifies the signature of a key it has; any bad signature refuses."""
    good = "[GNUPG:] GOODSIG 6ED0E7B82643E131 Debian (12/bookworm)\n[GNUPG:] VALIDSIG 4CB5 2026\n"
    missing = "[GNUPG:] ERRSIG 78DBA3BC47EF2265 1 8\n[GNUPG:] NO_PUBKEY 78DBA3BC47EF2265\n"
    assert signature_good("[GNUPG:] NEWSIG\n" + good + "[GNUPG:] NEWSIG\n" + missing)
    assert not signature_good(missing)
    assert not signature_good(good + "[GNUPG:] BADSIG 762F67A0B2C39DE4 Debian (13/trixie)\n")
    assert not signature_good("")

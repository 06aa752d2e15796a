"""Tests for consist.core.paths: mounts, portable URIs and traversal guards."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

import consist.core.paths as paths_module
from consist.core.paths import PathResolver, to_posix_relative


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A symlink-free absolute base directory (tmp may itself sit behind a link)."""
    return tmp_path.resolve()


@pytest.fixture
def layout(base: Path) -> dict[str, Path]:
    run_dir = base / "run"
    inputs = base / "data" / "inputs"
    scratch = base / "scratch"
    outside = base / "outside"
    for directory in (run_dir, inputs, scratch, outside):
        directory.mkdir(parents=True)
    return {"run": run_dir, "inputs": inputs, "scratch": scratch, "outside": outside}


@pytest.fixture
def resolver(layout: dict[str, Path]) -> PathResolver:
    return PathResolver(
        layout["run"], {"inputs": layout["inputs"], "scratch": str(layout["scratch"])}
    )


# --------------------------------------------------------------------------- #
# Construction and validation
# --------------------------------------------------------------------------- #
class TestConstruction:
    def test_attributes_are_absolute_paths(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        assert resolver.run_dir == layout["run"]
        assert isinstance(resolver.run_dir, Path)
        assert dict(resolver.mounts) == {"inputs": layout["inputs"], "scratch": layout["scratch"]}
        assert all(isinstance(root, Path) for root in resolver.mounts.values())
        assert resolver.allow_external_paths is False

    def test_mounts_view_is_read_only(self, resolver: PathResolver) -> None:
        with pytest.raises(TypeError):
            resolver.mounts["new"] = Path("/x")  # type: ignore[index]

    def test_mounts_view_is_detached_from_caller_dict(self, base: Path) -> None:
        given = {"inputs": str(base / "in")}
        resolver = PathResolver(base / "run", given)
        given["other"] = str(base / "other")
        assert set(resolver.mounts) == {"inputs"}

    def test_relative_run_dir_and_mount_roots_use_cwd(
        self, base: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(base)
        resolver = PathResolver("run", {"inputs": "data/./inputs/"})
        assert resolver.run_dir == base / "run"
        assert resolver.mounts["inputs"] == base / "data" / "inputs"

    def test_trailing_slashes_and_dots_in_roots_are_normalised(self, base: Path) -> None:
        resolver = PathResolver(f"{base}/run///", {"inputs": f"{base}//data/x/../inputs/"})
        assert str(resolver.run_dir) == f"{base}/run"
        assert str(resolver.mounts["inputs"]) == f"{base}/data/inputs"

    def test_tilde_is_expanded(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOME", str(base))
        resolver = PathResolver("~/run", {"home": "~"})
        assert resolver.run_dir == base / "run"
        assert resolver.mounts["home"] == base

    def test_missing_mount_root_is_allowed(self, base: Path) -> None:
        missing = base / "not" / "here"
        resolver = PathResolver(base / "run", {"remote": missing})
        assert resolver.mounts["remote"] == missing
        assert resolver.virtualize(missing / "f.csv") == "remote://f.csv"
        assert resolver.resolve_uri("remote://f.csv") == str(missing / "f.csv")

    def test_run_dir_need_not_exist(self, base: Path) -> None:
        resolver = PathResolver(base / "later")
        assert resolver.virtualize(base / "later" / "x") == "./x"

    @pytest.mark.parametrize(
        "name", ["", "1abc", "_x", "-x", "a b", "a/b", "a:b", "a.b", "ä", "in\n", "x://"]
    )
    def test_invalid_mount_names_rejected(self, base: Path, name: str) -> None:
        with pytest.raises(ValueError, match="mounts"):
            PathResolver(base, {name: base})

    @pytest.mark.parametrize("name", ["a", "inputs", "Data_2", "my-mount", "X9_-z"])
    def test_valid_mount_names_accepted(self, base: Path, name: str) -> None:
        assert name in PathResolver(base, {name: base}).mounts

    def test_non_string_mount_name_rejected(self, base: Path) -> None:
        with pytest.raises(ValueError, match="mounts"):
            PathResolver(base, {1: base})  # type: ignore[dict-item]

    @pytest.mark.parametrize("name", ["file", "FILE", "File"])
    def test_file_mount_name_is_reserved(self, base: Path, name: str) -> None:
        with pytest.raises(ValueError, match=r"mounts.*reserved"):
            PathResolver(base, {name: base})

    def test_empty_mount_root_rejected(self, base: Path) -> None:
        with pytest.raises(ValueError, match=r"mounts\['inputs'\]"):
            PathResolver(base, {"inputs": ""})

    def test_bad_mount_root_type_rejected(self, base: Path) -> None:
        with pytest.raises(TypeError, match="mounts"):
            PathResolver(base, {"inputs": 3})  # type: ignore[dict-item]

    def test_mounts_must_be_mapping(self, base: Path) -> None:
        with pytest.raises(TypeError, match="mounts"):
            PathResolver(base, [("inputs", base)])  # type: ignore[arg-type]

    def test_empty_run_dir_rejected(self) -> None:
        with pytest.raises(ValueError, match="run_dir"):
            PathResolver("")

    def test_bytes_run_dir_rejected(self) -> None:
        with pytest.raises(TypeError, match="run_dir"):
            PathResolver(b"/tmp")  # type: ignore[arg-type]

    def test_allow_external_paths_must_be_bool(self, base: Path) -> None:
        with pytest.raises(TypeError, match="allow_external_paths"):
            PathResolver(base, allow_external_paths="yes")  # type: ignore[arg-type]

    def test_repr_mentions_roots(self, resolver: PathResolver) -> None:
        text = repr(resolver)
        assert "run_dir=" in text and "inputs" in text and "allow_external_paths=False" in text


# --------------------------------------------------------------------------- #
# virtualize
# --------------------------------------------------------------------------- #
class TestVirtualize:
    def test_path_under_mount(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        assert resolver.virtualize(layout["inputs"] / "a" / "b.csv") == "inputs://a/b.csv"
        assert resolver.virtualize(str(layout["scratch"] / "t.parquet")) == "scratch://t.parquet"

    def test_path_under_run_dir(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        assert resolver.virtualize(layout["run"] / "outputs" / "x.csv") == "./outputs/x.csv"

    def test_external_path_is_absolute_posix(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        target = layout["outside"] / "raw.csv"
        assert resolver.virtualize(target) == str(target)
        assert resolver.virtualize("/data/raw.csv") == "/data/raw.csv"

    def test_relative_path_uses_cwd(
        self, resolver: PathResolver, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(layout["inputs"])
        assert resolver.virtualize("sub/f.csv") == "inputs://sub/f.csv"
        assert resolver.virtualize("./f.csv") == "inputs://f.csv"
        monkeypatch.chdir(layout["run"])
        assert resolver.virtualize("f.csv") == "./f.csv"
        assert resolver.virtualize("../outside/f.csv") == str(layout["outside"] / "f.csv")

    def test_tilde_is_expanded(
        self, resolver: PathResolver, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HOME", str(layout["inputs"]))
        assert resolver.virtualize("~/f.csv") == "inputs://f.csv"

    def test_path_equal_to_mount_root(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        uri = resolver.virtualize(layout["inputs"])
        assert uri == "inputs://"
        assert resolver.resolve_uri(uri) == str(layout["inputs"])
        assert resolver.virtualize(f"{layout['inputs']}/") == "inputs://"

    def test_path_equal_to_run_dir(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        assert resolver.virtualize(layout["run"]) == "./"
        assert resolver.resolve_uri("./") == str(layout["run"])

    def test_dots_and_double_slashes_normalised(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        messy = f"{layout['inputs']}//a/./b/../c.csv"
        assert resolver.virtualize(messy) == "inputs://a/c.csv"
        assert resolver.virtualize(f"{layout['inputs']}/../inputs/x") == "inputs://x"
        assert resolver.virtualize(f"{layout['inputs']}/../elsewhere") == str(
            layout["inputs"].parent / "elsewhere"
        )

    def test_matching_is_by_whole_components(self, base: Path) -> None:
        resolver = PathResolver(base / "run", {"in": base / "data" / "in"})
        assert resolver.virtualize(base / "data" / "inputs" / "x") == str(
            base / "data" / "inputs" / "x"
        )
        assert resolver.virtualize(base / "run2" / "x") == str(base / "run2" / "x")

    def test_nested_mounts_longest_root_wins(self, base: Path) -> None:
        resolver = PathResolver(
            base / "run", {"data": base / "data", "deep": base / "data" / "a" / "b"}
        )
        assert resolver.virtualize(base / "data" / "a" / "x") == "data://a/x"
        assert resolver.virtualize(base / "data" / "a" / "b" / "x") == "deep://x"
        # Declaration order does not matter for nesting.
        flipped = PathResolver(
            base / "run", {"deep": base / "data" / "a" / "b", "data": base / "data"}
        )
        assert flipped.virtualize(base / "data" / "a" / "b" / "x") == "deep://x"

    def test_mount_inside_run_dir_wins(self, base: Path) -> None:
        run_dir = base / "run"
        resolver = PathResolver(run_dir, {"cache": run_dir / "cache"})
        assert resolver.virtualize(run_dir / "cache" / "x") == "cache://x"
        assert resolver.virtualize(run_dir / "other" / "x") == "./other/x"

    def test_mount_equal_to_run_dir_wins(self, base: Path) -> None:
        run_dir = base / "run"
        resolver = PathResolver(run_dir, {"work": f"{run_dir}/"})
        assert resolver.virtualize(run_dir / "x") == "work://x"
        assert resolver.resolve_uri("./x") == str(run_dir / "x")

    def test_run_dir_inside_mount_wins_over_mount(self, base: Path) -> None:
        resolver = PathResolver(base / "scratch" / "run", {"scratch": base / "scratch"})
        assert resolver.virtualize(base / "scratch" / "run" / "x") == "./x"
        assert resolver.virtualize(base / "scratch" / "y") == "scratch://y"

    def test_identical_mount_roots_first_declared_wins(self, base: Path) -> None:
        resolver = PathResolver(base / "run", {"b": base / "d", "a": base / "d"})
        assert resolver.virtualize(base / "d" / "x") == "b://x"

    def test_filesystem_root_mount(self, base: Path) -> None:
        resolver = PathResolver(base / "run", {"root": "/"})
        assert resolver.virtualize("/etc/hosts") == "root://etc/hosts"
        assert resolver.virtualize("/") == "root://"
        assert resolver.resolve_uri("root://etc/hosts") == "/etc/hosts"
        assert resolver.resolve_uri("root://") == "/"
        assert resolver.virtualize(base / "run" / "x") == "./x"

    def test_symlinked_mount_keeps_user_name(self, base: Path) -> None:
        real = base / "nfs" / "inputs"
        real.mkdir(parents=True)
        link = base / "inputs_link"
        link.symlink_to(real, target_is_directory=True)
        resolver = PathResolver(base / "run", {"inputs": link})
        # Mapped by the name the user gave, not the link target...
        assert resolver.mounts["inputs"] == link
        assert resolver.virtualize(link / "f.csv") == "inputs://f.csv"
        assert resolver.resolve_uri("inputs://f.csv") == str(link / "f.csv")
        # ...and a path spelled via the real location still maps to the mount.
        assert resolver.virtualize(real / "f.csv") == "inputs://f.csv"

    def test_path_reaching_run_dir_via_symlink_maps_to_run_dir(self, base: Path) -> None:
        run_dir = base / "run"
        run_dir.mkdir()
        alias = base / "alias"
        alias.symlink_to(run_dir, target_is_directory=True)
        resolver = PathResolver(run_dir)
        assert resolver.virtualize(alias / "out" / "x") == "./out/x"

    def test_symlinked_run_dir_maps_real_spelling(self, base: Path) -> None:
        real = base / "real_run"
        real.mkdir()
        link = base / "run"
        link.symlink_to(real, target_is_directory=True)
        resolver = PathResolver(link)
        assert resolver.virtualize(link / "x") == "./x"
        assert resolver.virtualize(real / "x") == "./x"

    def test_uri_input_is_canonicalised(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        assert resolver.virtualize("inputs://a/./b/../c.csv") == "inputs://a/c.csv"
        assert resolver.virtualize(f"file://{layout['inputs']}/x.csv") == "inputs://x.csv"
        assert resolver.virtualize("file:///data/raw.csv") == "/data/raw.csv"

    def test_unresolvable_uri_input_returned_unchanged(self, resolver: PathResolver) -> None:
        assert resolver.virtualize("s3://bucket/key.csv") == "s3://bucket/key.csv"
        assert resolver.virtualize("other://x") == "other://x"

    def test_escaping_uri_input_rejected(self, resolver: PathResolver) -> None:
        with pytest.raises(ValueError, match=re.escape("inputs://../x")):
            resolver.virtualize("inputs://../x")

    def test_pathlike_with_scheme_like_text_is_a_path(
        self, resolver: PathResolver, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(layout["run"])
        # A Path is never parsed as a URI ("inputs:" is just a directory name).
        assert resolver.virtualize(Path("inputs://x")) == "./inputs:/x"

    def test_empty_path_rejected(self, resolver: PathResolver) -> None:
        with pytest.raises(ValueError, match="path"):
            resolver.virtualize("")

    def test_non_path_rejected(self, resolver: PathResolver) -> None:
        with pytest.raises(TypeError, match="path"):
            resolver.virtualize(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="path"):
            resolver.virtualize(b"/x")  # type: ignore[arg-type]

    def test_nul_rejected(self, resolver: PathResolver) -> None:
        with pytest.raises(ValueError, match="NUL"):
            resolver.virtualize("/a\x00b")


# --------------------------------------------------------------------------- #
# resolve_uri
# --------------------------------------------------------------------------- #
class TestResolveUri:
    def test_run_dir_relative(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        assert resolver.resolve_uri("./outputs/x.csv") == str(layout["run"] / "outputs" / "x.csv")
        result = resolver.resolve_uri("./x")
        assert isinstance(result, str)

    def test_bare_relative_is_run_dir_relative(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        assert resolver.resolve_uri("outputs/x.csv") == str(layout["run"] / "outputs" / "x.csv")
        assert resolver.resolve_uri(".") == str(layout["run"])
        assert resolver.resolve_uri("~/x") == str(layout["run"] / "~" / "x")

    def test_mounted(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        assert resolver.resolve_uri("inputs://a/b.csv") == str(layout["inputs"] / "a" / "b.csv")
        assert resolver.resolve_uri("scratch://t") == str(layout["scratch"] / "t")

    def test_absolute_path_returned_normalised(self, resolver: PathResolver) -> None:
        assert resolver.resolve_uri("/data/raw.csv") == "/data/raw.csv"
        assert resolver.resolve_uri("/data//x/../raw.csv") == "/data/raw.csv"
        assert resolver.resolve_uri("//data/raw.csv") == "/data/raw.csv"

    def test_file_uris(self, resolver: PathResolver) -> None:
        assert resolver.resolve_uri("file:///data/raw.csv") == "/data/raw.csv"
        assert resolver.resolve_uri("FILE:///data/raw.csv") == "/data/raw.csv"
        assert resolver.resolve_uri("file://localhost/data/raw.csv") == "/data/raw.csv"
        assert resolver.resolve_uri("file:///data/my%20file.csv") == "/data/my file.csv"
        assert resolver.resolve_uri("file:///data/a/../b") == "/data/b"

    def test_file_uri_for_other_host_unchanged(self, resolver: PathResolver) -> None:
        assert resolver.resolve_uri("file://server/share/x") == "file://server/share/x"
        assert resolver.resolve_uri("file://") == "file://"

    @pytest.mark.parametrize(
        "uri",
        ["other://x.csv", "s3://bucket/key", "https://example.org/a?b=c", "Inputs://x", "x+y://z"],
    )
    def test_unmounted_or_unknown_scheme_unchanged(self, resolver: PathResolver, uri: str) -> None:
        assert resolver.resolve_uri(uri) == uri

    @pytest.mark.parametrize(
        ("uri", "rel"),
        [
            ("inputs://a//b/./c", "a/b/c"),
            ("inputs://a/../b", "b"),
            ("inputs://./a", "a"),
            ("inputs://a/", "a"),
            ("inputs://", ""),
            ("inputs://.", ""),
            ("inputs://a/..", ""),
        ],
    )
    def test_dots_and_slashes_inside_mounted_uri(
        self, resolver: PathResolver, layout: dict[str, Path], uri: str, rel: str
    ) -> None:
        expected = layout["inputs"] / rel if rel else layout["inputs"]
        assert resolver.resolve_uri(uri) == str(expected)

    @pytest.mark.parametrize(
        "uri", ["inputs://..", "inputs://../x", "inputs://a/../../x", "inputs://a/../../inputs2/x"]
    )
    def test_dotdot_escape_from_mount_rejected(
        self, resolver: PathResolver, layout: dict[str, Path], uri: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            resolver.resolve_uri(uri)
        message = str(info.value)
        assert uri in message
        assert str(layout["inputs"]) in message

    def test_sibling_with_shared_prefix_is_an_escape(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        # <root>/../inputs2 shares the string prefix "<root>" but is outside it.
        with pytest.raises(ValueError, match="outside"):
            resolver.resolve_uri(f"inputs://../{layout['inputs'].name}2/x")

    @pytest.mark.parametrize("uri", ["./..", "./../x", "./a/../../x", "..", "../x", "./a/../.."])
    def test_dotdot_escape_from_run_dir_rejected(
        self, resolver: PathResolver, layout: dict[str, Path], uri: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            resolver.resolve_uri(uri)
        assert uri in str(info.value)
        assert str(layout["run"]) in str(info.value)

    @pytest.mark.parametrize("uri", ["inputs:///etc/passwd", "inputs:////etc/passwd"])
    def test_absolute_component_in_mounted_uri_rejected(
        self, resolver: PathResolver, layout: dict[str, Path], uri: str
    ) -> None:
        with pytest.raises(ValueError, match="absolute") as info:
            resolver.resolve_uri(uri)
        assert str(layout["inputs"]) in str(info.value)

    def test_dotdot_escape_rejected_even_when_external_allowed(
        self, layout: dict[str, Path]
    ) -> None:
        resolver = PathResolver(
            layout["run"], {"inputs": layout["inputs"]}, allow_external_paths=True
        )
        with pytest.raises(ValueError):
            resolver.resolve_uri("inputs://../x")
        with pytest.raises(ValueError):
            resolver.resolve_uri("./../x")

    def test_symlink_in_run_dir_pointing_outside_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        (layout["run"] / "link").symlink_to(layout["outside"], target_is_directory=True)
        with pytest.raises(ValueError, match="symlink") as info:
            resolver.resolve_uri("./link/x")
        assert "./link/x" in str(info.value)
        assert str(layout["run"]) in str(info.value)
        with pytest.raises(ValueError, match="symlink"):
            resolver.resolve_uri("./link")

    def test_symlink_in_mount_pointing_outside_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        (layout["inputs"] / "escape").symlink_to(layout["outside"] / "secret.csv")
        with pytest.raises(ValueError, match="symlink"):
            resolver.resolve_uri("inputs://escape")

    def test_symlink_to_file_outside_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        secret = layout["outside"] / "secret.txt"
        secret.write_text("x")
        (layout["run"] / "s.txt").symlink_to(secret)
        with pytest.raises(ValueError):
            resolver.resolve_uri("./s.txt")

    def test_symlink_escape_followed_when_external_allowed(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        (layout["run"] / "link").symlink_to(layout["outside"], target_is_directory=True)
        expected = str(layout["run"] / "link" / "x")
        assert resolver.resolve_uri("./link/x", allow_external_paths=True) == expected
        permissive = PathResolver(layout["run"], allow_external_paths=True)
        assert permissive.resolve_uri("./link/x") == expected
        with pytest.raises(ValueError):
            permissive.resolve_uri("./link/x", allow_external_paths=False)

    def test_symlink_staying_inside_root_is_fine(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        (layout["run"] / "real").mkdir()
        (layout["run"] / "alias").symlink_to(layout["run"] / "real", target_is_directory=True)
        assert resolver.resolve_uri("./alias/x") == str(layout["run"] / "alias" / "x")

    def test_symlinked_root_itself_is_fine(self, base: Path) -> None:
        real = base / "real_inputs"
        real.mkdir()
        link = base / "inputs"
        link.symlink_to(real, target_is_directory=True)
        resolver = PathResolver(base / "run", {"inputs": link})
        assert resolver.resolve_uri("inputs://a/b") == str(link / "a" / "b")

    def test_symlink_loop_does_not_hang(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        loop = layout["run"] / "loop"
        loop.symlink_to(loop)
        result = resolver.resolve_uri("./loop/x")
        assert result == str(loop / "x")

    def test_empty_uri_rejected(self, resolver: PathResolver) -> None:
        with pytest.raises(ValueError, match="uri"):
            resolver.resolve_uri("")

    def test_non_str_uri_rejected(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        with pytest.raises(TypeError, match="uri"):
            resolver.resolve_uri(layout["run"])  # type: ignore[arg-type]

    def test_nul_in_uri_rejected(self, resolver: PathResolver) -> None:
        with pytest.raises(ValueError, match="uri"):
            resolver.resolve_uri("./a\x00b")
        with pytest.raises(ValueError, match="uri"):
            resolver.resolve_uri("file:///a%00b")

    def test_bad_allow_external_paths_type(self, resolver: PathResolver) -> None:
        with pytest.raises(TypeError, match="allow_external_paths"):
            resolver.resolve_uri("./x", allow_external_paths=1)  # type: ignore[arg-type]

    def test_mount_moved_to_other_machine(self, base: Path) -> None:
        here = PathResolver(base / "run_a", {"inputs": base / "machine_a" / "in"})
        there = PathResolver(base / "run_b", {"inputs": base / "machine_b" / "in"})
        uri = here.virtualize(base / "machine_a" / "in" / "zones.csv")
        assert there.resolve_uri(uri) == str(base / "machine_b" / "in" / "zones.csv")
        out = here.virtualize(base / "run_a" / "outputs" / "x.parquet")
        assert there.resolve_uri(out) == str(base / "run_b" / "outputs" / "x.parquet")


# --------------------------------------------------------------------------- #
# Round trip
# --------------------------------------------------------------------------- #
_NAMES = [
    "f.csv",
    "a/b/c.parquet",
    "with space.txt",
    "percent%20.txt",
    "hash#and?query.csv",
    "colon:name",
    "x:/y",
    "scheme-like://inside",
    "~",
    "~user/file",
    "ünïcödé/文件.csv",
    "line\nbreak",
    ".hidden",
    "...",
    "a/./b/../c",
    "trailing/",
    "double//slash",
    "back\\slash",
]


@pytest.mark.parametrize("name", _NAMES)
@pytest.mark.parametrize("root_key", ["run", "inputs", "scratch", "nested_mount"])
def test_round_trip_virtualize_then_resolve(
    layout: dict[str, Path], root_key: str, name: str
) -> None:
    nested = layout["run"] / "cache"
    resolver = PathResolver(
        layout["run"],
        {"inputs": layout["inputs"], "scratch": layout["scratch"], "cache": nested},
    )
    root = nested if root_key == "nested_mount" else layout[root_key]
    original = f"{root}/{name}"
    uri = resolver.virtualize(original)
    expected_prefix = {
        "run": "./",
        "inputs": "inputs://",
        "scratch": "scratch://",
        "nested_mount": "cache://",
    }
    assert uri.startswith(expected_prefix[root_key])
    assert resolver.resolve_uri(uri) == os.path.normpath(original)
    # Virtualizing the resolved path again is stable.
    assert resolver.virtualize(resolver.resolve_uri(uri)) == uri


def test_round_trip_external_path(resolver: PathResolver, layout: dict[str, Path]) -> None:
    original = str(layout["outside"] / "raw.csv")
    uri = resolver.virtualize(original)
    assert uri == original
    assert resolver.resolve_uri(uri) == original


# --------------------------------------------------------------------------- #
# is_within_run_dir
# --------------------------------------------------------------------------- #
class TestIsWithinRunDir:
    def test_inside_and_equal(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        assert resolver.is_within_run_dir(layout["run"])
        assert resolver.is_within_run_dir(layout["run"] / "a" / "b")
        assert resolver.is_within_run_dir(str(layout["run"] / "missing" / "file"))

    def test_outside(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        assert not resolver.is_within_run_dir(layout["outside"] / "x")
        assert not resolver.is_within_run_dir(layout["inputs"] / "x")
        assert not resolver.is_within_run_dir(f"{layout['run']}2/x")
        assert not resolver.is_within_run_dir(f"{layout['run']}/../outside")

    def test_relative_uses_cwd(
        self, resolver: PathResolver, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(layout["run"])
        assert resolver.is_within_run_dir("x")
        assert not resolver.is_within_run_dir("../x")

    def test_symlinks(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        (layout["run"] / "out").symlink_to(layout["outside"], target_is_directory=True)
        assert not resolver.is_within_run_dir(layout["run"] / "out" / "x")
        (layout["outside"] / "in").symlink_to(layout["run"], target_is_directory=True)
        assert resolver.is_within_run_dir(layout["outside"] / "in" / "x")

    def test_empty_rejected(self, resolver: PathResolver) -> None:
        with pytest.raises(ValueError, match="path"):
            resolver.is_within_run_dir("")


# --------------------------------------------------------------------------- #
# guard_write_path
# --------------------------------------------------------------------------- #
class TestGuardWritePath:
    def test_inside_run_dir(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        result = resolver.guard_write_path(f"{layout['run']}//a/./b.csv")
        assert result == layout["run"] / "a" / "b.csv"
        assert isinstance(result, Path)
        assert resolver.guard_write_path(layout["run"]) == layout["run"]

    def test_inside_mount(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        assert resolver.guard_write_path(layout["scratch"] / "t") == layout["scratch"] / "t"
        assert resolver.guard_write_path(layout["inputs"]) == layout["inputs"]

    def test_outside_rejected_with_helpful_message(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        target = layout["outside"] / "x.csv"
        with pytest.raises(ValueError) as info:
            resolver.guard_write_path(target)
        message = str(info.value)
        assert message.startswith("path=")
        assert str(target) in message
        assert "allow_external_paths=True" in message
        assert str(layout["run"]) in message

    def test_custom_param_name_in_message(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        with pytest.raises(ValueError, match=r"^output_path="):
            resolver.guard_write_path(layout["outside"] / "x", param="output_path")
        with pytest.raises(ValueError, match="output_path"):
            resolver.guard_write_path("", param="output_path")

    def test_dotdot_out_of_run_dir_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        with pytest.raises(ValueError):
            resolver.guard_write_path(f"{layout['run']}/../outside/x")
        with pytest.raises(ValueError):
            resolver.guard_write_path(f"{layout['run']}2/x")

    def test_relative_path_uses_cwd(
        self, resolver: PathResolver, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(layout["run"])
        assert resolver.guard_write_path("out/x.csv") == layout["run"] / "out" / "x.csv"
        with pytest.raises(ValueError):
            resolver.guard_write_path("../outside/x.csv")

    def test_allow_external_argument(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        target = layout["outside"] / "x.csv"
        assert resolver.guard_write_path(target, allow_external_paths=True) == target

    def test_allow_external_default_from_resolver(self, layout: dict[str, Path]) -> None:
        target = layout["outside"] / "x.csv"
        permissive = PathResolver(layout["run"], allow_external_paths=True)
        assert permissive.guard_write_path(target) == target
        with pytest.raises(ValueError):
            permissive.guard_write_path(target, allow_external_paths=False)

    def test_symlink_in_run_dir_pointing_outside_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        (layout["run"] / "link").symlink_to(layout["outside"], target_is_directory=True)
        with pytest.raises(ValueError, match="allow_external_paths=True"):
            resolver.guard_write_path(layout["run"] / "link" / "x.csv")
        with pytest.raises(ValueError):
            resolver.guard_write_path(layout["run"] / "link")
        link = layout["run"] / "link" / "x.csv"
        assert resolver.guard_write_path(link, allow_external_paths=True) == link

    def test_dangling_symlink_pointing_outside_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        (layout["run"] / "dangling.csv").symlink_to(layout["outside"] / "not_yet.csv")
        with pytest.raises(ValueError):
            resolver.guard_write_path(layout["run"] / "dangling.csv")

    def test_symlink_from_run_dir_into_mount_allowed(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        (layout["run"] / "to_scratch").symlink_to(layout["scratch"], target_is_directory=True)
        target = layout["run"] / "to_scratch" / "x"
        assert resolver.guard_write_path(target) == target

    def test_returned_path_is_the_normalised_one(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        # "link/.." is collapsed lexically; the caller writes to run_dir/x,
        # which is inside, so it is accepted.
        (layout["run"] / "link").symlink_to(layout["outside"], target_is_directory=True)
        result = resolver.guard_write_path(f"{layout['run']}/link/../x")
        assert result == layout["run"] / "x"

    def test_empty_and_bad_types(self, resolver: PathResolver) -> None:
        with pytest.raises(ValueError, match="path"):
            resolver.guard_write_path("")
        with pytest.raises(TypeError, match="path"):
            resolver.guard_write_path(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="allow_external_paths"):
            resolver.guard_write_path("/x", allow_external_paths="no")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# resolve_artifact_dir
# --------------------------------------------------------------------------- #
class TestResolveArtifactDir:
    def test_default(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        result = resolver.resolve_artifact_dir(None, "run_1")
        assert result == layout["run"] / "outputs" / "run_1"
        assert isinstance(result, Path)

    def test_default_nested_subdir(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        result = resolver.resolve_artifact_dir(None, "model/./2024//run_1/")
        assert result == layout["run"] / "outputs" / "model" / "2024" / "run_1"

    @pytest.mark.parametrize(
        "subdir", ["", ".", "./", "..", "../x", "a/../../b", "a/..", "/abs", "/", "a\x00b"]
    )
    def test_unsafe_default_subdir_rejected(self, resolver: PathResolver, subdir: str) -> None:
        with pytest.raises(ValueError, match="run_subdir_fn"):
            resolver.resolve_artifact_dir(None, subdir)

    def test_unsafe_default_subdir_rejected_even_with_override(
        self, resolver: PathResolver
    ) -> None:
        with pytest.raises(ValueError, match="run_subdir_fn"):
            resolver.resolve_artifact_dir("custom", "../x")

    def test_default_subdir_type_checked(self, resolver: PathResolver) -> None:
        with pytest.raises(TypeError, match="run_subdir_fn"):
            resolver.resolve_artifact_dir(None, None)  # type: ignore[arg-type]

    def test_tilde_in_default_subdir_is_literal(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        result = resolver.resolve_artifact_dir(None, "~x")
        assert result == layout["run"] / "outputs" / "~x"

    def test_relative_override(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        outputs = layout["run"] / "outputs"
        assert resolver.resolve_artifact_dir("custom", "r") == outputs / "custom"
        assert resolver.resolve_artifact_dir(Path("a/b"), "r") == outputs / "a" / "b"
        assert resolver.resolve_artifact_dir("a/../b", "r") == outputs / "b"
        assert resolver.resolve_artifact_dir(".", "r") == outputs

    @pytest.mark.parametrize("artifact_dir", ["..", "../x", "a/../../x", "../../outside"])
    def test_relative_escape_rejected(self, resolver: PathResolver, artifact_dir: str) -> None:
        with pytest.raises(ValueError, match="artifact_dir") as info:
            resolver.resolve_artifact_dir(artifact_dir, "r")
        assert repr(artifact_dir) in str(info.value)
        with pytest.raises(ValueError, match="artifact_dir"):
            resolver.resolve_artifact_dir(artifact_dir, "r", allow_external_paths=True)

    def test_absolute_inside_run_dir(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        target = layout["run"] / "elsewhere" / "r1"
        assert resolver.resolve_artifact_dir(target, "r") == target
        assert resolver.resolve_artifact_dir(str(layout["run"]), "r") == layout["run"]

    def test_absolute_outside_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        target = layout["outside"] / "r1"
        with pytest.raises(ValueError) as info:
            resolver.resolve_artifact_dir(target, "r")
        message = str(info.value)
        assert message.startswith("artifact_dir=")
        assert str(target) in message
        assert "allow_external_paths=True" in message

    def test_absolute_in_mount_outside_run_dir_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        with pytest.raises(ValueError, match="artifact_dir"):
            resolver.resolve_artifact_dir(layout["scratch"] / "r1", "r")

    def test_absolute_dotdot_out_of_run_dir_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        with pytest.raises(ValueError, match="artifact_dir"):
            resolver.resolve_artifact_dir(f"{layout['run']}/../outside", "r")

    def test_absolute_outside_allowed(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        target = layout["outside"] / "r1"
        assert resolver.resolve_artifact_dir(target, "r", allow_external_paths=True) == target
        permissive = PathResolver(layout["run"], allow_external_paths=True)
        assert permissive.resolve_artifact_dir(target, "r") == target
        with pytest.raises(ValueError):
            permissive.resolve_artifact_dir(target, "r", allow_external_paths=False)

    def test_tilde_override_expanded(
        self, resolver: PathResolver, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HOME", str(layout["run"]))
        assert resolver.resolve_artifact_dir("~/r1", "r") == layout["run"] / "r1"

    def test_symlinked_outputs_dir_needs_opt_in(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        (layout["run"] / "outputs").symlink_to(layout["outside"], target_is_directory=True)
        with pytest.raises(ValueError, match="artifact_dir=None") as info:
            resolver.resolve_artifact_dir(None, "r1")
        assert "allow_external_paths=True" in str(info.value)
        with pytest.raises(ValueError, match="artifact_dir='custom'"):
            resolver.resolve_artifact_dir("custom", "r1")
        result = resolver.resolve_artifact_dir(None, "r1", allow_external_paths=True)
        assert result == layout["run"] / "outputs" / "r1"

    def test_symlink_inside_outputs_pointing_outside_rejected(
        self, resolver: PathResolver, layout: dict[str, Path]
    ) -> None:
        outputs = layout["run"] / "outputs"
        outputs.mkdir()
        (outputs / "r1").symlink_to(layout["outside"], target_is_directory=True)
        with pytest.raises(ValueError):
            resolver.resolve_artifact_dir(None, "r1")

    def test_bad_override_types(self, resolver: PathResolver) -> None:
        with pytest.raises(TypeError, match="artifact_dir"):
            resolver.resolve_artifact_dir(5, "r")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="artifact_dir"):
            resolver.resolve_artifact_dir("", "r")

    def test_nothing_is_created(self, resolver: PathResolver, layout: dict[str, Path]) -> None:
        resolver.resolve_artifact_dir(None, "r1")
        assert not (layout["run"] / "outputs").exists()


# --------------------------------------------------------------------------- #
# to_posix_relative and module hygiene
# --------------------------------------------------------------------------- #
class TestToPosixRelative:
    def test_cases(self, base: Path) -> None:
        assert to_posix_relative(base / "a" / "b", base) == "a/b"
        assert to_posix_relative(base, base) == ""
        assert to_posix_relative(base / "x", base / "a") is None
        assert to_posix_relative(Path(f"{base}/ab"), Path(f"{base}/a")) is None
        assert to_posix_relative(Path("/etc/hosts"), Path("/")) == "etc/hosts"
        assert to_posix_relative(f"{base}/a/../b", f"{base}/") == "b"

    def test_relative_arguments_use_cwd(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(base)
        assert to_posix_relative(Path("a/b"), base) == "a/b"


def test_module_imports_only_stdlib() -> None:
    tree = ast.parse(Path(paths_module.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}

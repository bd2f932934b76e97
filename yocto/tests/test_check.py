"""Self-tests of yocto/check.py: it passes on a copy of the repository, and each kind of drift
it exists for makes it fail with a line that names the problem.

    python3 -m unittest discover -s yocto/tests

Each test works on a temporary copy of the files the layer refers to (the big model files are
not needed), with the crate list regenerated from the copy's Cargo.lock, so the tests check the
checker whatever state the real Cargo.lock is in (check.py itself checks that).
"""
import contextlib
import io
import re
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

YOCTO = Path(__file__).resolve().parent.parent
ROOT = YOCTO.parent
sys.path.insert(0, str(YOCTO))
import check  # noqa: E402

GEN = check.load_gen()
COPY = [
    "LICENSE",
    "Cargo.toml",
    "Cargo.lock",
    "*/Cargo.toml",
    "daemon/emotiond.toml",
    "systemd/*",
    "models/packages/*/manifest.toml",
    "models/packages/*/*.md",
    "models/packages/*/LICENSE",
    "**/SOURCES.md",
]
RECIPE = "yocto/meta-emotiond/recipes-emotiond/emotiond/emotiond_0.1.0.bb"
INC = "yocto/meta-emotiond/recipes-emotiond/emotiond/emotiond-crates.inc"
EXTRA_CRATE = """
[[package]]
name = "zzz-new-crate"
version = "9.9.9"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
"""


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        for pattern in COPY:
            for src in ROOT.glob(pattern):
                rel = src.relative_to(ROOT)
                if src.is_file() and not rel.parts[0] in ("target", "runtimes-cache", "yocto"):
                    (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, self.root / rel)
        shutil.copytree(YOCTO, self.root / "yocto", ignore=shutil.ignore_patterns("__pycache__"))
        self.regen()

    def tearDown(self):
        self.tmp.cleanup()

    def regen(self):
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(GEN.main(["--lock", str(self.root / "Cargo.lock"), "--out", str(self.root / INC)]), 0)

    def edit(self, rel, old, new, count=1):
        path = self.root / rel
        text = path.read_text()
        self.assertIn(old, text, f"{rel} no longer has {old!r}: update the test")
        path.write_text(text.replace(old, new, count))

    def problems(self):
        return check.check(self.root)

    def assertProblem(self, pattern):
        problems = self.problems()
        self.assertTrue(any(re.search(pattern, p) for p in problems), f"no problem matching {pattern!r} in {problems}")
        return problems

    def test_copy_of_the_repository_passes(self):
        self.assertEqual(self.problems(), [])

    def test_crate_added_to_cargo_lock_is_reported_until_regenerated(self):
        with open(self.root / "Cargo.lock", "a") as f:
            f.write(EXTRA_CRATE)
        problems = self.assertProblem(r"crate zzz-new-crate 9\.9\.9 is in Cargo\.lock but not in the recipe's SRC_URI .*gen-crates\.py")
        self.assertEqual(len(problems), 1, problems)
        self.regen()
        self.assertEqual(self.problems(), [])

    def test_stale_crate_is_reported(self):
        lock = (self.root / "Cargo.lock").read_text()
        first = re.search(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"\nsource = "registry[^\n]*\nchecksum = "[0-9a-f]+"\n(?:dependencies = \[\n(?:[^\]]*\n)*?\]\n)?\n', lock)
        self.assertIsNotNone(first)
        (self.root / "Cargo.lock").write_text(lock.replace(first[0], "", 1))
        self.assertProblem(rf"crate {re.escape(first[1])} {re.escape(first[2])} is in the recipe's SRC_URI but no longer in Cargo\.lock .*gen-crates\.py")

    def test_wrong_checksum_is_reported(self):
        inc = (self.root / INC).read_text()
        m = re.search(r'SRC_URI\[(\S+)-(\d[^\]]*)\.sha256sum\] = "([0-9a-f]{64})"', inc)
        bad = ("0" if m[3][0] != "0" else "1") + m[3][1:]
        (self.root / INC).write_text(inc.replace(m[3], bad, 1))
        self.assertProblem(rf"crate {re.escape(m[1])} {re.escape(m[2])}: the recipe's sha256sum {bad} is not Cargo\.lock's {m[3]} .*gen-crates\.py")

    def test_missing_installed_file_is_reported(self):
        (self.root / "daemon/assets/SOURCES.md").unlink()
        self.assertProblem(r"do_install installs \$\{S\}/daemon/assets/SOURCES\.md, which does not exist")

    def test_model_package_without_provenance_is_reported(self):
        pkg = self.root / "models/packages/zz_new_model"
        pkg.mkdir()
        (pkg / "manifest.toml").write_text("")
        self.assertProblem(r"model package zz_new_model has no PROVENANCE\.md")

    def test_unit_execstart_elsewhere_is_reported(self):
        self.edit("systemd/emotiond.service", "ExecStart=/usr/bin/emotiond", "ExecStart=/usr/local/bin/emotiond")
        self.assertProblem(r"ExecStart runs /usr/local/bin/emotiond, but the recipe installs the binary as /usr/bin/emotiond")

    def test_unit_config_path_not_installed_is_reported(self):
        self.edit("systemd/emotiond.service", "--config /etc/emotiond/emotiond.toml", "--config /etc/emotiond.toml")
        self.assertProblem(r"ExecStart reads /etc/emotiond\.toml, which the recipe does not install")

    def test_unit_user_differs_from_useradd_is_reported(self):
        self.edit("systemd/emotiond.service", "User=emotiond", "User=kiosk")
        self.assertProblem(r"User=kiosk, but the recipe's useradd creates 'emotiond'")

    def test_unit_groups_differ_from_useradd_is_reported(self):
        self.edit("systemd/emotiond.service", "SupplementaryGroups=video audio", "SupplementaryGroups=video audio gpio")
        self.assertProblem(r"SupplementaryGroups=audio gpio video, but useradd gives --groups audio,video")

    def test_pv_differs_from_workspace_version_is_reported(self):
        self.edit("Cargo.toml", 'version = "0.1.0"', 'version = "0.2.0"')
        self.assertProblem(r"PV is '0\.1\.0', the workspace version in Cargo\.toml is '0\.2\.0'")

    def test_licence_changed_is_reported(self):
        self.edit("LICENSE", "Version 2.0", "Version 3.0")
        self.assertProblem(r"LIC_FILES_CHKSUM: md5 of LICENSE is [0-9a-f]{32}, the recipe says")

    def test_licence_text_moved_in_provenance_is_reported(self):
        self.edit("models/packages/fer_mini_xception/PROVENANCE.md", "# ", "# \n# ")
        self.assertProblem(r"LIC_FILES_CHKSUM: md5 of lines 122-142 of models/packages/fer_mini_xception/PROVENANCE\.md")

    def test_layer_conf_collection_mismatch_is_reported(self):
        self.edit("yocto/meta-emotiond/conf/layer.conf", "LAYERDEPENDS_emotiond", "LAYERDEPENDS_emotion")
        problems = self.assertProblem(r"LAYERDEPENDS_emotion is not for the collection 'emotiond'")
        self.assertTrue(any("no LAYERDEPENDS_emotiond" in p for p in problems), problems)

    def test_undocumented_image_append_is_reported(self):
        images = self.root / "yocto/meta-emotiond/recipes-core/images"
        (images / "core-image-minimal.bbappend").rename(images / "kiosk-image.bbappend")
        self.assertProblem(r"kiosk-image\.bbappend: extends kiosk-image, which yocto/README\.md does not name")

    def test_syntax_errors_are_reported(self):
        self.edit(RECIPE, 'SECTION = "multimedia"', 'SECTION = multimedia\nthis is not bitbake')
        problems = self.assertProblem(r"emotiond_0\.1\.0\.bb:\d+: the value of SECTION is not one quoted string")
        self.assertTrue(any("not a comment, assignment" in p and "this is not bitbake" in p for p in problems), problems)

    def test_unbalanced_function_is_reported(self):
        self.edit(RECIPE, "\tinstall -d ${D}${bindir}\n", "\tinstall -d ${D}${bindir}\n\tif true; then { echo; fi\n")
        self.assertProblem(r"braces in function do_install do not balance")

    def test_crates_before_git_uri_are_reported(self):
        text = (self.root / RECIPE).read_text()
        git = re.search(r'^SRC_URI = "git://[^\n]*\n', text, re.M)[0]
        text = text.replace(git, "", 1).replace("require ${BPN}-crates.inc\n", "require ${BPN}-crates.inc\n" + git, 1)
        (self.root / RECIPE).write_text(text)
        self.assertProblem(r"SRC_URI = comes after the require of the crate list")

    def test_git_dependency_in_cargo_lock_is_reported(self):
        with open(self.root / "Cargo.lock", "a") as f:
            f.write('\n[[package]]\nname = "from-git"\nversion = "0.1.0"\nsource = "git+https://example.org/x.git#abc"\n')
        self.assertProblem(r"from-git 0\.1\.0: source 'git\+https://example\.org/x\.git#abc' is not crates\.io")


if __name__ == "__main__":
    unittest.main()

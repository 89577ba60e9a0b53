"""Make doorman's model files and demo photos from models/manifest.toml.

Run through models/fetch, which creates the Python venv this needs. For
every produced file (a model in $CACHE/models, a photo in $CACHE/demo):

1. a file already there whose sha256 matches the manifest is kept as is;
2. otherwise its package artifact is taken from $CACHE/downloads when its
   sha256 matches, or downloaded with the client the manifest names;
3. the artifact's sha256 is checked, the file is extracted (and converted
   where the manifest says so), and the result's sha256 is checked before it
   gets its final name.

Any checksum difference stops the run with the file, both values and what
to do. Exit codes: 0 done; 1 a check or a step failed; 2 bad usage.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
# The helper modules beside this file are imported from the source tree:
# leave no __pycache__ there.
sys.dont_write_bytecode = True
MANIFEST = MODELS_DIR / "manifest.toml"
REFERENCE = MODELS_DIR / "dlib-reference.json"

# Largest accepted difference between the ONNX graph and dlib's own
# descriptors (raw values, about 0.1 in size) in `--verify`.
VERIFY_MAX_ABS_DIFF = 1e-5


class FetchError(Exception):
    """A step failed; the message says which and what to do."""


def log(message: str) -> None:
    print(f"fetch: {message}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Artifact:
    """A package file fetched with a package client."""

    table: str  # manifest table, for messages: "detector"
    package: str
    version: str
    client: str
    name: str
    sha256: str


@dataclass
class Output:
    """A file doorman uses, with the recipe that produces it."""

    table: str  # manifest table of the entry: "detector.files.pnet"
    label: str  # short name for the final listing: "detector.pnet"
    path: Path
    sha256: str
    artifact: Artifact
    source: str  # member of the artifact
    source_sha256: str | None = None  # checked before converting
    convert: str | None = None  # "dlib_to_onnx" or None (used as is)


def artifact_of(table: str, entry: dict) -> Artifact:
    return Artifact(
        table,
        entry["package"],
        entry["version"],
        entry["client"],
        entry["artifact"],
        entry["artifact_sha256"],
    )


def plan(manifest: dict, cache: Path) -> list[Output]:
    """Every output the manifest asks for, in a stable order."""
    if manifest.get("schema") != 1:
        raise FetchError(f"{MANIFEST}: schema {manifest.get('schema')!r} is not 1")
    outputs = []
    models = cache / "models"

    det = manifest["detector"]
    if not det["conversion"].startswith("none"):
        raise FetchError(
            "the detector's conversion is not 'none': fetch.py knows no other"
        )
    art = artifact_of("detector", det)
    for key, f in det["files"].items():
        outputs.append(
            Output(
                f"detector.files.{key}",
                f"detector.{key}",
                models / f["file"],
                f["sha256"],
                art,
                f["source"],
            )
        )

    emb = manifest["embedder"]
    art = artifact_of("embedder", emb)
    if not emb["conversion"].startswith("models/dlib_to_onnx.py"):
        raise FetchError("the embedder's conversion is not models/dlib_to_onnx.py")
    for key, f in emb["files"].items():
        if key != "float":
            # Limitation: only the float graph is produced so far; a
            # quantized variant needs its own step here.
            raise FetchError(
                f"embedder variant {key!r} has no conversion step in fetch.py"
            )
        outputs.append(
            Output(
                f"embedder.files.{key}",
                f"embedder.{key}",
                models / f["file"],
                f["sha256"],
                art,
                emb["source"],
                emb["source_sha256"],
                "dlib_to_onnx",
            )
        )

    demo = manifest["demo"]
    for src_key, src in demo["sources"].items():
        art = artifact_of(f"demo.sources.{src_key}", src)
        for key, f in src["files"].items():
            outputs.append(
                Output(
                    f"demo.sources.{src_key}.files.{key}",
                    f"demo.{key}",
                    cache / demo["dir"] / f["file"],
                    f["sha256"],
                    art,
                    f["source"],
                )
            )
    return outputs


class Fetcher:
    def __init__(self, cache: Path):
        self.cache = cache
        self.downloads = cache / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        self._verified: dict[str, Path] = {}

    # -- artifacts ---------------------------------------------------------

    def artifact(self, art: Artifact) -> Path:
        """The artifact file, checked; downloaded only when not cached."""
        if art.name in self._verified:
            return self._verified[art.name]
        path = self.downloads / art.name
        if path.exists():
            got = sha256_file(path)
            if got == art.sha256:
                self._verified[art.name] = path
                return path
            log(
                f"cached {path} has sha256 {got}, not the pinned one: downloading again"
            )
            path.unlink()

        self._download(art, path)
        got = sha256_file(path)
        if got != art.sha256:
            bad = path.with_name(path.name + ".mismatch")
            path.replace(bad)
            raise FetchError(
                f"artifact checksum mismatch for {art.package}=={art.version}\n"
                f"  file:     {bad}\n"
                f"  expected: {art.sha256}  (models/manifest.toml [{art.table}] artifact_sha256)\n"
                f"  got:      {got}\n"
                f"  The package index served a different file than the one pinned. Do not\n"
                f"  update the pin unless you know why the published file changed."
            )
        self._verified[art.name] = path
        return path

    def _download(self, art: Artifact, dest: Path) -> None:
        words = shlex.split(art.client)
        if words[:2] != ["pip", "download"] or "--no-deps" not in words:
            raise FetchError(
                f"[{art.table}] client {art.client!r}: "
                "only 'pip download --no-deps ...' is supported"
            )
        with tempfile.TemporaryDirectory(dir=self.downloads, prefix=".pip-") as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                *words[2:],
                "--quiet",
                "--dest",
                tmp,
                f"{art.package}=={art.version}",
            ]
            log(
                f"downloading {art.name} ({' '.join(words)} {art.package}=={art.version})"
            )
            done = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise FetchError(
                    f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n"
                    f"{(done.stderr or done.stdout).strip()}"
                )
            got = sorted(os.listdir(tmp))
            if got != [art.name]:
                raise FetchError(
                    f"pip download of {art.package}=={art.version} gave {got}, "
                    f"expected exactly [{art.name!r}] "
                    f"(models/manifest.toml [{art.table}] artifact)"
                )
            shutil.move(os.path.join(tmp, art.name), dest)

    def extract(self, archive: Path, member: str, dest: Path) -> None:
        """Copy one member of a .tar.gz or a wheel to `dest` (atomically)."""
        tmp = dest.with_name(dest.name + ".part")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        if archive.name.endswith(".tar.gz"):
            with tarfile.open(archive, "r:gz") as tar:
                try:
                    info = tar.getmember(member)
                except KeyError:
                    raise FetchError(
                        f"{archive.name} has no member {member!r}"
                    ) from None
                if not info.isfile():
                    raise FetchError(
                        f"{archive.name}: {member!r} is not a regular file"
                    )
                with tar.extractfile(info) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
        elif archive.name.endswith(".whl"):
            with zipfile.ZipFile(archive) as zf:
                try:
                    src = zf.open(member)
                except KeyError:
                    raise FetchError(
                        f"{archive.name} has no member {member!r}"
                    ) from None
                with src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
        else:
            raise FetchError(f"{archive.name}: unknown archive type")
        tmp.replace(dest)

    # -- outputs -----------------------------------------------------------

    def source_file(self, out: Output) -> Path:
        """The checked source of a converted output, kept in downloads/."""
        path = self.downloads / Path(out.source).name
        if path.exists() and sha256_file(path) == out.source_sha256:
            return path
        self.extract(self.artifact(out.artifact), out.source, path)
        got = sha256_file(path)
        if got != out.source_sha256:
            entry = out.table.split(".files")[0]
            raise FetchError(
                f"source checksum mismatch for {path}\n"
                f"  expected: {out.source_sha256}  "
                f"(models/manifest.toml [{entry}] source_sha256)\n"
                f"  got:      {got}"
            )
        return path

    def produce(self, out: Output) -> Path:
        """Make `out` at a temporary name and return that name."""
        tmp = out.path.with_name(out.path.name + ".unverified")
        if out.convert is None:
            self.extract(self.artifact(out.artifact), out.source, tmp)
            return tmp
        src = self.source_file(out)
        log(f"converting {src.name} -> {out.path.name}")
        sys.path.insert(0, str(MODELS_DIR))
        import dlib_to_onnx  # noqa: E402  (needs numpy/onnx: import only here)

        try:
            dlib_to_onnx.convert(str(src), str(tmp))
        except dlib_to_onnx.FormatError as e:
            raise FetchError(f"converting {src}: {e}") from None
        return tmp


def run(cache: Path, print_checksums: bool) -> list[tuple[Output, str]]:
    manifest = tomllib.loads(MANIFEST.read_text())
    outputs = plan(manifest, cache)
    fetcher = Fetcher(cache)
    results = []
    for out in outputs:
        # --print-checksums remakes every file: a cached file only shows
        # that the old recipe was reproducible, not what the new one gives.
        if (
            not print_checksums
            and out.path.exists()
            and sha256_file(out.path) == out.sha256
        ):
            results.append((out, out.sha256))
            continue
        out.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = fetcher.produce(out)
        got = sha256_file(tmp)
        if got == out.sha256:
            tmp.replace(out.path)
            log(f"made {out.path}")
        elif print_checksums:
            log(f"{out.path.name}: sha256 differs from the manifest; kept as {tmp}")
        else:
            raise FetchError(
                f"checksum mismatch for the produced file {out.path.name}\n"
                f"  file:     {tmp}  (kept under this name; the old file, if any, is untouched)\n"
                f"  expected: {out.sha256}  (models/manifest.toml [{out.table}] sha256)\n"
                f"  got:      {got}\n"
                f"  If the conversion or its pinned tools changed on purpose, run\n"
                f"  `models/fetch --print-checksums` and copy the new sha256 into\n"
                f"  models/manifest.toml; otherwise the conversion is not reproducible here."
            )
        results.append((out, got))
    return results


def verify(cache: Path, manifest: dict) -> None:
    """Compare the ONNX embedder with dlib's descriptors in the fixture."""
    import numpy as np
    import onnxruntime as ort

    sys.path.insert(0, str(MODELS_DIR))
    import chips  # noqa: E402

    if not REFERENCE.exists():
        raise FetchError(f"{REFERENCE} is missing: run models/verify-dlib to make it")
    ref = json.loads(REFERENCE.read_text())
    emb = manifest["embedder"]
    if ref["source_sha256"] != emb["source_sha256"]:
        raise FetchError(
            f"{REFERENCE.name} was made from another .dat (sha256 {ref['source_sha256']}); "
            f"run models/verify-dlib again"
        )
    model = cache / "models" / emb["files"]["float"]["file"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name_in = session.get_inputs()[0].name
    mean = np.array(emb["mean"], dtype=np.float32)
    scale = np.float32(emb["scale"])

    worst = 0.0
    demo_dir = cache / manifest["demo"]["dir"]
    for i, entry in enumerate(ref["chips"]):
        chip = chips.make_chip(entry["recipe"], demo_dir)
        digest = chips.chip_sha256(chip)
        if digest != entry["sha256"]:
            raise FetchError(
                f"chip {i} {entry['recipe']} is not the chip dlib saw (sha256 {digest}, "
                f"fixture {entry['sha256']}): models/chips.py changed; run models/verify-dlib"
            )
        x = ((chip.astype(np.float32) - mean) * scale).transpose(2, 0, 1)[None]
        (out,) = session.run(None, {name_in: np.ascontiguousarray(x)})
        want = np.array(entry["descriptor"], dtype=np.float64)
        diff = float(np.max(np.abs(out[0].astype(np.float64) - want)))
        worst = max(worst, diff)
        log(
            f"chip {i:2d} {json.dumps(entry['recipe'])}: max |onnx - dlib| = {diff:.2e}"
        )
    verdict = "ok" if worst < VERIFY_MAX_ABS_DIFF else "FAILED"
    print(
        f"verify: {len(ref['chips'])} chips, dlib {ref['dlib_version']}, "
        f"max |onnx - dlib| = {worst:.3e} (limit {VERIFY_MAX_ABS_DIFF:g}): {verdict}"
    )
    if worst >= VERIFY_MAX_ABS_DIFF:
        raise FetchError(f"{model.name} differs from dlib by {worst:.3e}")


def write_reference_chips(cache: Path, manifest: dict) -> Path:
    """Write the fixture's chips as raw 150x150 RGB files for the Rust tests,
    which compare doorman's own embedder run against dlib's descriptors."""
    sys.path.insert(0, str(MODELS_DIR))
    import chips  # noqa: E402  (needs numpy: import only here)
    import numpy as np

    ref = json.loads(REFERENCE.read_text())
    out_dir = cache / "models" / "reference-chips"
    out_dir.mkdir(parents=True, exist_ok=True)
    demo_dir = cache / manifest["demo"]["dir"]
    for i, entry in enumerate(ref["chips"]):
        path = out_dir / f"chip-{i:02d}.rgb"
        if path.exists() and sha256_file(path) == entry["sha256"]:
            continue
        chip = chips.make_chip(entry["recipe"], demo_dir)
        if chips.chip_sha256(chip) != entry["sha256"]:
            raise FetchError(
                f"chip {i} {entry['recipe']} is not the chip dlib saw: models/chips.py "
                f"changed; run models/verify-dlib"
            )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(np.ascontiguousarray(chip, dtype=np.uint8).tobytes())
        tmp.replace(path)
    return out_dir


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="models/fetch",
        description="Make doorman's model files and demo photos, "
        "pinned by models/manifest.toml.",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        required=True,
        help="cache root (models/fetch passes ${DOORMAN_CACHE:-~/.cache/doorman})",
    )
    parser.add_argument(
        "--print-checksums",
        action="store_true",
        help="make every file and print its sha256 in manifest form, "
        "without failing when a produced file differs from the manifest",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also compare the embedder with dlib's descriptors in "
        "models/dlib-reference.json",
    )
    args = parser.parse_args()
    cache = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)

    try:
        with open(cache / ".fetch.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            results = run(cache, args.print_checksums)
            write_reference_chips(cache, tomllib.loads(MANIFEST.read_text()))
            if args.verify:
                verify(cache, tomllib.loads(MANIFEST.read_text()))
    except FetchError as e:
        print(f"fetch: error: {e}", file=sys.stderr)
        return 1

    if args.print_checksums:
        for out, got in results:
            mark = "" if got == out.sha256 else "   # CHANGED"
            print(f'[{out.table}] sha256 = "{got}"{mark}')
        return 0
    width = max(len(out.label) for out, _ in results)
    for out, _ in results:
        print(f"{out.label:<{width}}  {out.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write dlib's own face descriptors of the test chips to a fixture.

Runs in $CACHE/venv-dlib (made by models/verify-dlib, which has dlib built
from source). For each recipe in models/chips.py it makes the 150x150 RGB
chip and asks dlib for its descriptor, exactly as an application would:

    dlib.face_recognition_model_v1(DAT).compute_face_descriptor(chip)

(the overload for an already aligned 150x150 chip, num_jitters = 0). The
fixture keeps the recipe, the sha256 of the chip's bytes and the
descriptor, never the pixels; `models/fetch --verify` rebuilds the chips and
compares the ONNX graph with these values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tomllib
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent
# The helper modules beside this file are imported from the source tree:
# leave no __pycache__ there.
sys.dont_write_bytecode = True
sys.path.insert(0, str(MODELS_DIR))

import chips  # noqa: E402


def shortest_float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import dlib

    manifest = tomllib.loads((MODELS_DIR / "manifest.toml").read_text())
    emb = manifest["embedder"]
    dat = args.cache / "downloads" / Path(emb["source"]).name
    digest = hashlib.sha256(dat.read_bytes()).hexdigest()
    if digest != emb["source_sha256"]:
        print(
            f"verify_dlib: {dat} has sha256 {digest}, the manifest pins "
            f"{emb['source_sha256']}: run models/fetch",
            file=sys.stderr,
        )
        return 1
    model = dlib.face_recognition_model_v1(str(dat))
    demo_dir = args.cache / manifest["demo"]["dir"]

    entries = []
    for recipe in chips.RECIPES:
        chip = chips.make_chip(recipe, demo_dir)
        descriptor = np.array(model.compute_face_descriptor(chip), dtype=np.float64)
        if descriptor.shape != (emb["output_dim"],) or not np.all(
            np.isfinite(descriptor)
        ):
            print(
                f"verify_dlib: dlib gave {descriptor.shape} for {recipe}",
                file=sys.stderr,
            )
            return 1
        entries.append(
            {
                "recipe": recipe,
                "sha256": chips.chip_sha256(chip),
                "descriptor": [shortest_float32(v) for v in descriptor],
            }
        )
        print(
            f"verify_dlib: {json.dumps(recipe)}: |descriptor| = "
            f"{np.linalg.norm(descriptor):.4f}",
            file=sys.stderr,
        )

    head = {
        "schema": 1,
        "about": "dlib's own descriptors of the chips of models/chips.py; made by "
        "models/verify-dlib, checked by models/fetch --verify",
        "dlib_version": dlib.__version__,
        "call": "dlib.face_recognition_model_v1(dat).compute_face_descriptor(chip), "
        "chip = 150x150x3 uint8 RGB, num_jitters = 0",
        "source": dat.name,
        "source_sha256": digest,
    }
    lines = json.dumps(head, indent=2).rstrip("}").rstrip().rstrip(",")
    chip_lines = ",\n".join(
        "    {" + f'"recipe": {json.dumps(e["recipe"])}, "sha256": "{e["sha256"]}",\n'
        f'     "descriptor": {json.dumps(e["descriptor"])}' + "}"
        for e in entries
    )
    text = f'{lines},\n  "chips": [\n{chip_lines}\n  ]\n}}\n'
    json.loads(text)  # the hand-made layout must still be JSON
    args.out.write_text(text)
    print(f"verify_dlib: wrote {args.out} ({len(entries)} chips)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the Python stubs in common/pb from proto/.

The proto files are compiled as if they lived under common/pb/ so the generated
modules import each other as `common.pb.migrate.v1...`. CI runs this and fails
when `git diff --exit-code common/pb` shows a change.
"""

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "common" / "pb"


def main() -> int:
    generated = OUT_DIR / "migrate"
    if generated.exists():
        shutil.rmtree(generated)
    protos = sorted(p.relative_to(PROTO_DIR) for p in PROTO_DIR.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-Icommon/pb={PROTO_DIR}",
        f"--python_out={ROOT}",
        f"--pyi_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        *(f"common/pb/{p}" for p in protos),
    ]
    if protoc.main(args) != 0:
        return 1
    for package in {generated, *(p.parent for p in generated.rglob("*.py"))}:
        (package / "__init__.py").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())

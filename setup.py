"""The package build's one step beyond pyproject.toml: the gRPC API's Python modules are
generated from proto/jobrunner/v1/jobs.proto (grpcio-tools, a build requirement), never
committed. They are written beside their package (jobrunner/grpc/v1/, ignored by git) before
build_py runs, so a wheel carries them and an editable install (`pip install -e .`) finds them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTO_ROOT = ROOT / "proto"
PROTO = "jobrunner/v1/jobs.proto"
OUT = ROOT / "jobrunner" / "grpc" / "v1"


def generate_protos() -> None:
    """jobs_pb2.py, jobs_pb2.pyi and jobs_pb2_grpc.py from the .proto, into jobrunner/grpc/v1.

    protoc names modules after the proto's path (``jobrunner.v1``): they are generated into a
    scratch directory, and the service module's import is pointed at ``jobrunner.grpc.v1``.
    The descriptor keeps the file name ``jobrunner/v1/jobs.proto`` (what reflection shows).
    """
    if not (PROTO_ROOT / PROTO).exists():  # a wheel built from an sdist without proto/
        return
    from grpc_tools import protoc  # the build requirement

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    with tempfile.TemporaryDirectory() as scratch:
        argv = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}",
                f"--python_out={scratch}", f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}", str(PROTO_ROOT / PROTO)]  # fmt: skip
        if protoc.main(argv) != 0:
            sys.exit(f"protoc failed on {PROTO}")
        made = Path(scratch) / "jobrunner" / "v1"
        OUT.mkdir(parents=True, exist_ok=True)
        for name in ("jobs_pb2.py", "jobs_pb2.pyi", "jobs_pb2_grpc.py"):
            text = (made / name).read_text()
            text = text.replace("from jobrunner.v1 import", "from jobrunner.grpc.v1 import")
            (OUT / name).write_text(text)


class BuildPy(build_py):
    def run(self) -> None:
        generate_protos()
        super().run()


setup(cmdclass={"build_py": BuildPy})

"""The gRPC API (``jobrunner grpc``): ``jobrunner.v1.Jobs`` from proto/jobrunner/v1/jobs.proto,
with the HTTP API's checks, tokens and error meanings (docs/grpc.md). Needs the ``grpc`` extra."""

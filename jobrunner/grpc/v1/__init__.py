"""The modules generated from proto/jobrunner/v1/jobs.proto by the package build (setup.py):
``jobs_pb2`` (messages) and ``jobs_pb2_grpc`` (the service). Not in git."""

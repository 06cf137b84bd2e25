"""The generated gRPC stubs and their type stubs (private; `generate.py` writes every other file
here from the repository's `proto/`). Use the public `flowtime` API instead."""

"""Stubs generated from proto/hearken/speech/v1/speech.proto by generate_stubs.sh; do not edit.

They are committed so that installing the client needs no protoc, and tests/test_stubs.py
regenerates them to prove they still match the proto.
"""

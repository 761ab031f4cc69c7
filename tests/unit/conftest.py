"""Unit tests run with the network blocked: any socket a test opens fails the test."""

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _block_network():
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()

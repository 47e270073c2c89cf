"""Clients of the simulated management cluster: the real `kubernetes` client over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from cozystack.simulator import SimulatedPlatform


@pytest.fixture
def api(simulated_platform: SimulatedPlatform) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(simulated_platform.kubeconfig_path))
    yield api_client
    api_client.close()


@pytest.fixture
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)

"""A short fuzz sample of every decoder of outside input (issue 12, attack 3): wire
models, gossip framing through to the store, TOML loaders. The only exceptions allowed
are each parser's declared format errors; tests/bench/bench_wire_fuzz.py runs the same
targets on 100,000+ inputs."""

import contextlib
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings

from tests.agent._wire_fuzz import (
    DECLARED,
    JSON_SEEDS,
    JSON_TARGETS,
    TOML_SEEDS,
    TOML_TARGETS,
    GossipReceiver,
    frame_batches,
    json_batches,
    toml_batches,
)

SAMPLE = settings(max_examples=15, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
BATCH = 8


def run_all(target, inputs):
    for data in inputs:
        with contextlib.suppress(*DECLARED):
            target(data)


@pytest.mark.parametrize("name", JSON_TARGETS)
def test_wire_models_raise_only_their_format_error(name):
    target, seed = JSON_TARGETS[name]
    target(json.dumps(JSON_SEEDS[seed]).encode())  # the seed itself is valid

    @SAMPLE
    @given(json_batches(JSON_SEEDS[seed], BATCH))
    def fuzz(inputs):
        run_all(target, inputs)

    fuzz()


@pytest.mark.parametrize("name", TOML_TARGETS)
def test_toml_loaders_raise_only_their_format_error(name):
    target, seed = TOML_TARGETS[name]
    target(TOML_SEEDS[seed])

    @SAMPLE
    @given(toml_batches(TOML_SEEDS[seed], BATCH))
    def fuzz(inputs):
        run_all(target, inputs)

    fuzz()


def test_gossip_frames_raise_only_gossip_errors():
    receive = GossipReceiver()
    seed = json.dumps(JSON_SEEDS["delta"]).encode()
    with contextlib.suppress(*DECLARED):  # its certificate is not a certificate
        receive(struct.pack(">I", len(seed)) + seed)

    @settings(SAMPLE, max_examples=40)
    @given(frame_batches(BATCH))
    def fuzz(inputs):
        run_all(receive, inputs)

    fuzz()

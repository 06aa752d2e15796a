"""Composing a run's identity: the versioned pre-image of its cache signature.

A signature folds together everything that can change a result:

* the model name and, for function-shaped runs, the callable's qualified name;
* the canonical config digest;
* one entry per input: a raw file contributes its content digest, an
  artifact produced by an earlier run contributes that run's signature *and*
  the recorded content digest (a Merkle DAG over runs);
* hash-only identity inputs (``identity_inputs`` / ``hash_inputs``);
* the code identity digest;
* ``year``, ``iteration``, ``cache_version`` and ``cache_epoch``.

``stage``, ``phase``, facets, tags, descriptions and ``runtime_kwargs`` are
deliberately left out: they label a run without changing what it computes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consist.core.identity.hashing import hash_bytes

SIGNATURE_VERSION = "consist-signature-v1"
INPUTS_VERSION = "consist-inputs-v1"


@dataclass(frozen=True)
class InputIdentity:
    """What one input contributes to identity.

    Attributes
    ----------
    digest:
        Content digest of the bytes as they are now.
    producer_signature:
        Signature of the run that produced this exact content, if any.
    """

    digest: str | None
    producer_signature: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Plain form for the stored identity manifest."""
        data: dict[str, Any] = {"digest": self.digest}
        if self.producer_signature:
            data["producer_signature"] = self.producer_signature
        return data


@dataclass
class RunIdentity:
    """All identity components of one run and the signature they fold into."""

    model: str
    callable_name: str | None
    config_hash: str
    inputs: dict[str, InputIdentity] = field(default_factory=dict)
    identity_inputs: dict[str, str] = field(default_factory=dict)
    code_digest: str | None = None
    code_mode: str | None = None
    code_details: dict[str, Any] = field(default_factory=dict)
    year: int | None = None
    iteration: int | None = None
    cache_version: int | None = None
    cache_epoch: int | None = None

    @property
    def input_hash(self) -> str:
        """Digest over all inputs and identity inputs."""
        payload = {
            "inputs": {k: v.as_json() for k, v in sorted(self.inputs.items())},
            "identity_inputs": dict(sorted(self.identity_inputs.items())),
        }
        return hash_bytes(_preimage(INPUTS_VERSION, payload))

    @property
    def signature(self) -> str | None:
        """The cache key, or None when the code identity is unavailable."""
        return self.digests()[1]

    def digests(self) -> tuple[str, str | None]:
        """``(input_hash, signature)``, the input digest computed once for both."""
        input_hash = self.input_hash
        if self.code_digest is None:
            return input_hash, None
        payload = {
            "model": self.model,
            "callable": self.callable_name,
            "config": self.config_hash,
            "inputs": input_hash,
            "code": self.code_digest,
            "year": self.year,
            "iteration": self.iteration,
            "cache_version": self.cache_version,
            "cache_epoch": self.cache_epoch,
        }
        return input_hash, hash_bytes(_preimage(SIGNATURE_VERSION, payload))

    def manifest(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """The stored explanation of this identity (used to explain misses)."""
        return {
            "version": SIGNATURE_VERSION,
            "model": self.model,
            "callable": self.callable_name,
            "config_hash": self.config_hash,
            "config": dict(config or {}),
            "inputs": {k: v.as_json() for k, v in sorted(self.inputs.items())},
            "identity_inputs": dict(sorted(self.identity_inputs.items())),
            "code": {
                "mode": self.code_mode,
                "digest": self.code_digest,
                "details": self.code_details,
            },
            "year": self.year,
            "iteration": self.iteration,
            "cache_version": self.cache_version,
            "cache_epoch": self.cache_epoch,
        }


def _preimage(tag: str, payload: Mapping[str, Any]) -> bytes:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return tag.encode() + b"\0" + text.encode()

"""Firecracker's --config-file schema, built from its own API description
(/work/shared/firecracker/firecracker-api-v1.16.1.yaml, copied into the repository
as tests/data/firecracker-api-v1.16.1.yaml so CI has it).

The file is Swagger 2.0: the objects of a config file are its `definitions`
(BootSource, Drive, MachineConfiguration, Vsock, NetworkInterface, Logger,
Metrics). The top level of a config file is not in the API description;
Firecracker v1.16.1 reads it as kebab-case keys, `boot-source` and `drives`
required. Firecracker rejects unknown fields (serde deny_unknown_fields) though
the schema does not say so: every object definition gets
`additionalProperties: false` here. `$ref`s resolve against the definitions.

Used by test_firecracker_config.py and by the stand-in VMM (fc_standin_vmm.py),
which refuses a config file exactly when this schema does.
"""
from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

API_YAML = Path(__file__).resolve().parents[1] / "data" / "firecracker-api-v1.16.1.yaml"


def _close(node):
    """additionalProperties: false on every object schema that lists properties."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            _close(v)
    elif isinstance(node, list):
        for v in node:
            _close(v)


def config_schema() -> dict:
    api = yaml.safe_load(API_YAML.read_text())
    defs = copy.deepcopy(api["definitions"])
    _close(defs)

    def ref(name):
        return {"$ref": f"#/definitions/{name}"}

    return {
        "type": "object",
        "required": ["boot-source", "drives"],
        "additionalProperties": False,
        "properties": {
            "boot-source": ref("BootSource"),
            "drives": {"type": "array", "items": ref("Drive")},
            "machine-config": ref("MachineConfiguration"),
            "vsock": ref("Vsock"),
            "network-interfaces": {"type": "array", "items": ref("NetworkInterface")},
            "logger": ref("Logger"),
            "metrics": ref("Metrics"),
        },
        "definitions": defs,
    }


def validator() -> jsonschema.Draft4Validator:
    schema = config_schema()
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def problems(doc) -> list[str]:
    """Every way `doc` breaks the schema, one line each ('' path = top level)."""
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in sorted(validator().iter_errors(doc), key=lambda e: list(e.absolute_path))]

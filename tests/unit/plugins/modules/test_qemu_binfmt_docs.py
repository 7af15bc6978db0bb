"""qemu_binfmt: the documented options are exactly the argument spec (pure, no kernel)."""
from __future__ import annotations

import yaml

from ansible_collections.archfleet.multiarch.plugins.modules import qemu_binfmt


def _argument_spec():
    captured = {}

    class Stop(Exception):
        pass

    def fake_module(argument_spec, **kwargs):
        captured.update(argument_spec)
        raise Stop

    original = qemu_binfmt.AnsibleModule
    qemu_binfmt.AnsibleModule = fake_module
    try:
        qemu_binfmt.main()
    except Stop:
        pass
    finally:
        qemu_binfmt.AnsibleModule = original
    return captured


def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(qemu_binfmt.DOCUMENTATION)
    spec = _argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in doc["options"].items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
        assert option.get("choices") == spec[name].get("choices"), name
    assert set(doc["attributes"]) == {"check_mode", "diff_mode", "idempotent", "platform"}


def test_examples_and_return_are_yaml():
    examples = yaml.safe_load(qemu_binfmt.EXAMPLES)
    assert all("archfleet.multiarch.qemu_binfmt" in task for task in examples)
    returned = yaml.safe_load(qemu_binfmt.RETURN)
    assert {"entries", "requested"} <= set(returned)

"""Property tests (hypothesis) of the daemon.json merge (issue 21): any current file, any options."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._daemon_json import DaemonJsonError, merged

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                      max_leaves=15)
options = st.dictionaries(st.sampled_from(["features", "registry-mirrors", "debug", "max-concurrent-downloads",
                                           "insecure-registries", "x-custom", "log-opts"]), values, max_size=4)


@SETTINGS
@given(options, st.one_of(st.text(max_size=200), values.map(json.dumps), st.just("[" * 5000)),
       st.sampled_from(["merge", "replace", "other"]))
def test_merged_raises_only_its_own_error(wanted, current, mode):
    try:
        result = merged(wanted, current, mode)
    except DaemonJsonError:
        return
    assert isinstance(result, dict) and all(result[k] == v for k, v in wanted.items())


@SETTINGS
@given(options, st.dictionaries(st.text(max_size=8), values, max_size=4))
def test_merging_again_changes_nothing(wanted, current):
    try:
        once = merged(wanted, json.dumps(current))
    except DaemonJsonError:
        return
    assert merged(wanted, json.dumps(once)) == once

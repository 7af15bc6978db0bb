"""The merge protocol (``_publish.merge``) run step by step: several writers' steps in every interleaving up to a
bound, against a registry that does exactly one step at a time (docs/manifests.md, "Concurrent merges").

Each writer is the real generator ``merge_steps`` with the real ``composer``; the registry is a dict of tags.
Exploration is preemption-bounded (as CHESS does: every schedule that switches away from a writer that could
go on at most ``bound`` times; switching when a writer has finished is free), which covers the lost update
every read-modify-write suffers (one writer stopped between its read and its write while another runs).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import random

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import Entry, descriptor
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    sha256_digest,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish import merge as merging

TARGET = parse_reference("registry.example/team/app:1.0")
PLATFORMS = [("linux", "amd64", None), ("linux", "arm64", None), ("linux", "arm", "v7"), ("linux", "s390x", None)]


def image_entry(platform, build=0):
    os_name, arch, variant = platform
    digest = "sha256:" + hashlib.sha256(("%s/%s/%s#%d" % (os_name, arch, variant, build)).encode()).hexdigest()
    oci_platform = {"os": os_name, "architecture": arch}
    if variant:
        oci_platform["variant"] = variant
    return Entry(descriptor(MEDIA_OCI_MANIFEST, digest, 500, oci_platform), "builds", TARGET)


class Registry:
    """Tags of one repository; each step is atomic, as one HTTP request is."""

    def __init__(self):
        self.tags = {}      # tag -> (digest, document)

    def put(self, tag, body):
        self.tags[tag] = (sha256_digest(body), json.loads(body))

    def step(self, step):
        if isinstance(step, merging.Read):
            found = self.tags.get(step.tag)
            return None if found is None else merging.Current(found[0], found[1])
        if isinstance(step, merging.List):
            return [tag for tag in self.tags if tag.startswith(step.prefix)]
        if isinstance(step, merging.Write):
            self.put(step.tag, step.body)
        return None      # Backoff: nothing at the registry

    def platforms(self):
        digest, document = self.tags[TARGET.tag]
        return sorted((m["platform"]["architecture"], m["digest"]) for m in document["manifests"])


def writer(entries, annotations=None, attempts=50):
    """One ``mode=merge`` run: the plan's read of the tag, then the protocol."""
    current = yield merging.Read(TARGET.tag)
    compose = merging.composer(TARGET, annotations, "auto")
    result = yield from merging.merge_steps(TARGET.tag, merging.group_contributions(entries), compose, current,
                                            attempts=attempts)
    return result


class Run:
    """Writers advanced one step at a time in a given order of writer numbers."""

    def __init__(self, registry, writers):
        self.registry = registry
        self.writers = writers
        self.pending = [None] * len(writers)     # the step each writer waits to have done, None before its first
        self.done = [False] * len(writers)
        self.started = [False] * len(writers)
        self.last_step = [None] * len(writers)

    def advance(self, number):
        generator = self.writers[number]
        try:
            if not self.started[number]:
                self.started[number] = True
                step = next(generator)
            else:
                step = generator.send(self.registry.step(self.pending[number]))
            self.last_step[number] = self.pending[number]
            self.pending[number] = step
        except StopIteration:
            self.last_step[number] = self.pending[number]
            self.done[number] = True

    def enabled(self):
        return [n for n, finished in enumerate(self.done) if not finished]


def fresh(contributions, seed_index=True):
    """A registry whose tag holds an index of amd64 (written by another tool), and one writer per entry list."""
    registry = Registry()
    if seed_index:
        from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import build_index
        registry.put(TARGET.tag, build_index(MEDIA_OCI_INDEX, [image_entry(PLATFORMS[0])])[1])
    return registry, [writer(entries) for entries in contributions]


def schedules(run_factory, bound):
    """Every schedule with at most ``bound`` preemptions; yields each finished Run.

    Depth first; a run goes on in place while only one writer may move, and a schedule that branches is
    replayed from the start (generators cannot be copied), so the cost is one replay per branch.
    """
    stack = [((), 0, None)]
    while stack:
        prefix, preemptions, run = stack.pop()
        if run is None:
            run = run_factory()
            for number in prefix:
                run.advance(number)
        while True:
            enabled = run.enabled()
            if not enabled:
                yield run
                break
            previous = prefix[-1] if prefix else None
            choices = [(number, preemptions + (1 if previous in enabled and number != previous else 0))
                       for number in enabled]
            choices = [(number, cost) for number, cost in choices if cost <= bound]
            for number, cost in choices[1:]:
                stack.append((prefix + (number,), cost, None))
            number, preemptions = choices[0]
            run.advance(number)
            prefix = prefix + (number,)


def expected(registry_platforms, entries_per_writer):
    wanted = {(e.descriptor["platform"]["architecture"], e.digest) for entries in entries_per_writer for e in entries}
    return wanted <= set(registry_platforms)


@pytest.mark.parametrize("writers,bound", [(2, 3), (3, 2)])
def test_every_interleaving_up_to_the_bound_keeps_every_platform(writers, bound):
    contributions = [[image_entry(platform)] for platform in PLATFORMS[1:1 + writers]]
    count = 0
    for run in schedules(lambda: Run(*fresh(contributions)), bound):
        count += 1
        platforms = run.registry.platforms()
        assert expected(platforms, contributions), (count, platforms)
        assert ("amd64", image_entry(PLATFORMS[0]).digest) in platforms      # the entry that was there stays
    assert count > {2: 300, 3: 1000}[writers]       # the exploration really branched


def test_random_interleavings_of_four_writers_keep_every_platform():
    """Beyond the bound: 500 random schedules of four writers (seeded, so a failure can be replayed)."""
    contributions = [[image_entry(platform, build=1)] for platform in PLATFORMS]     # amd64 replaced too
    rng = random.Random(20261205)
    for attempt in range(500):
        run = Run(*fresh(contributions))
        while run.enabled():
            run.advance(rng.choice(run.enabled()))
        assert expected(run.registry.platforms(), contributions), attempt
        assert len(run.registry.platforms()) == 4          # amd64 build 1 replaced build 0


def test_a_writer_stopped_at_any_step_costs_at_most_what_the_next_merge_restores():
    """A writer killed at each possible step (never resumed) while two others run: the others' platforms are in
    the index, except when it was killed right after an index write (its read-back never came: documented);
    one more merge run alone then holds every contribution written, the killed writer's included."""
    contributions = [[image_entry(PLATFORMS[1])], [image_entry(PLATFORMS[2])], [image_entry(PLATFORMS[3])]]
    for kill_after, order in itertools.product(range(1, 14), itertools.permutations(range(3))):
        registry, writers = fresh(contributions)
        run = Run(registry, writers)
        for _step in range(kill_after):
            if not run.done[0]:
                run.advance(0)
        killed_after_index_write = (isinstance(run.last_step[0], merging.Write)
                                    and not run.last_step[0].contribution)
        rng = random.Random(kill_after)
        while [n for n in run.enabled() if n != 0]:
            run.advance(rng.choice([n for n in run.enabled() if n != 0]))
        if not killed_after_index_write:
            assert expected(registry.platforms(), contributions[1:]), (kill_after, order)
        again = Run(registry, [writer([image_entry(PLATFORMS[1])])])
        while again.enabled():
            again.advance(0)
        assert expected(registry.platforms(), contributions[1:]), (kill_after, order)
        if any(tag.startswith("1.0.merge.") and registry.tags[tag][1]["manifests"][0]["digest"]
               == contributions[0][0].digest for tag in registry.tags):
            assert expected(registry.platforms(), contributions), (kill_after, order)


def test_a_replace_by_another_tool_starts_a_new_epoch_and_old_contributions_stay_out():
    """After another tool replaced the tag, a merge does not bring back what earlier merges contributed."""
    registry, writers = fresh([[image_entry(PLATFORMS[1])], [image_entry(PLATFORMS[2])]])
    for number in (0, 1):
        run = Run(registry, [writers[number]])
        while run.enabled():
            run.advance(0)
    assert len(registry.platforms()) == 3
    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import build_index
    registry.put(TARGET.tag, build_index(MEDIA_OCI_INDEX, [image_entry(PLATFORMS[0], build=7)])[1])
    run = Run(registry, [writer([image_entry(PLATFORMS[3])])])
    while run.enabled():
        run.advance(0)
    assert [arch for arch, _digest in registry.platforms()] == ["amd64", "s390x"]
    digest, document = registry.tags[TARGET.tag]
    replaced = registry.tags  # the epoch is the replacing index's digest, kept by the merge
    assert document["annotations"][merging.EPOCH_ANNOTATION] != merging.NO_EPOCH
    assert sum(1 for tag in replaced if tag.startswith("1.0.merge.")) == 3      # old side tags stay, unread


def test_a_merge_into_an_absent_tag_and_the_side_tag_names():
    registry, writers = fresh([[image_entry(PLATFORMS[1])]], seed_index=False)
    run = Run(registry, writers)
    while run.enabled():
        run.advance(0)
    assert [arch for arch, _digest in registry.platforms()] == ["arm64"]
    side = [tag for tag in registry.tags if tag != TARGET.tag]
    assert len(side) == 1 and side[0].startswith("1.0.merge.000000000000.")
    long_tag = "v" * 128
    prefix = merging.side_prefix(long_tag, "0" * 12)
    assert len(prefix + "a" * 12) <= 128 and prefix.startswith("t") and prefix.endswith(".merge.000000000000.")
    assert merging.side_prefix("v" * 96, "0" * 12) == "v" * 96 + ".merge.000000000000."


def test_contributions_that_are_not_of_the_epoch_or_not_indexes_are_ignored():
    assert merging.contribution_descriptors({"manifests": []}, "0" * 12) is None
    assert merging.contribution_descriptors({"annotations": {merging.EPOCH_ANNOTATION: "1" * 12},
                                             "manifests": [{"digest": "sha256:x", "mediaType": "m"}]}, "0" * 12) is None
    assert merging.contribution_descriptors({"annotations": {merging.EPOCH_ANNOTATION: "0" * 12},
                                             "manifests": [{"digest": 7}]}, "0" * 12) is None
    assert merging.contribution_descriptors("garbage", "0" * 12) is None


def test_writing_again_to_add_new_contributions_is_progress_not_a_conflict():
    """Contributions that keep arriving (writers starting one after another) make a writer write again, but only
    writes that other writers undid count against ``attempts``: with attempts=0, eight late contributions still
    end in success, and an undone write fails at once."""
    registry, (first,) = fresh([[image_entry(PLATFORMS[1])]])
    run = Run(registry, [first])
    late = [writer([image_entry(("linux", "arch%d" % n, None))], attempts=0) for n in range(8)]
    run.writers = [first] + late
    run.pending += [None] * 8
    run.done += [False] * 8
    run.started += [False] * 8
    run.last_step += [None] * 8
    # each late writer writes its contribution and stops before its index write; the first writer then checks
    for number in range(1, 9):
        while not (isinstance(run.pending[number], merging.List)):
            run.advance(number)
    while not run.done[0]:
        run.advance(0)
    assert len(registry.platforms()) == 10      # amd64, arm64 and the eight late ones
    for number in range(1, 9):                  # the late writers finish, one after another (attempts=0)
        while not run.done[number]:
            run.advance(number)
    assert len(registry.platforms()) == 10


def test_an_index_write_undone_more_than_attempts_times_is_a_conflict():
    registry, (only,) = fresh([[image_entry(PLATFORMS[1])]])
    only = writer([image_entry(PLATFORMS[1])], attempts=1)
    run = Run(registry, [only])
    seed = dict(registry.tags)
    with pytest.raises(merging.MergeConflict, match="undid this run's index write 2 times") as caught:
        while not run.done[0]:
            run.advance(0)
            if isinstance(run.last_step[0], merging.Write) and not run.last_step[0].contribution:
                registry.tags[TARGET.tag] = seed[TARGET.tag]      # a stale writer puts the old index back
    assert caught.value.side_tags and caught.value.side_tags[0].startswith("1.0.merge.")

# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One docker_manifest_create task: every index of it planned, then written (or deleted), then reported.

``state=present``: every index is planned first (reads only), so a bad source anywhere writes
nothing; then each plan is applied (:meth:`Publisher.apply`). ``state=absent``: each tag is deleted.
Indexes run side by side, and within each index its reads and copies run side by side too; the
client's transport lets at most ``concurrency`` requests be in flight at once, whichever index
they belong to, so no slot waits while an index runs its steps one after another.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import PlanError, platform_lines
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import index_facts
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.delete import Deleter
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.publisher import Publisher, authorize
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.referrers_copy import copied_facts
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError


class Batch:
    """The indexes of one task and how to publish them.

    ``jobs`` are ``_publish.jobs.Job`` values and ``options`` the ``PublishOptions`` that apply to every
    index (both made by ``parse_jobs``).
    """

    def __init__(self, client, jobs, options, check_mode=False, diff=False, signer=None):
        self.client = client
        self.signer = signer            # _publish.signing.Signer (signing_key), or None
        self.jobs = jobs
        self.options = options
        self.check_mode = check_mode
        self.diff = diff
        concurrency = options.concurrency
        self.outer = min(concurrency, len(jobs))
        contradictions = "allow" if options.force_platform else "warn" if check_mode else "refuse"
        self.publishers = [Publisher(client, job.target, job.tags, concurrency,
                                     options.force, referrers=options.referrers,
                                     contradictions=contradictions)
                           for job in jobs]

    def run(self):
        """The module result (without ``registry_stats``): one index's fields, or ``indexes`` for a batch."""
        pairs = list(zip(self.jobs, self.publishers))
        if self.options.state == "absent":
            results = parallel_map(lambda pair: labelled(pair[0], self.absent, pair[1]), pairs, self.outer)
        else:
            results = self.present(pairs)
        for result, publisher in zip(results, self.publishers):
            result["name"] = publisher.target.canonical
            result["tags"] = [publisher.target.canonical] + [r.canonical for r in publisher.extra_tags]
        if not self.options.batch:
            output = results[0]
        else:
            output = {"changed": any(r["changed"] for r in results), "indexes": results}
            if self.diff:
                output["diff"] = [r.pop("diff") for r in results if "diff" in r]
        warnings = [sentence for publisher in self.publishers for sentence in publisher.warnings]
        if warnings:  # check mode: what a real run refuses (AnsibleModule shows them as warnings)
            output["warnings"] = warnings
        return output

    def present(self, pairs):
        """Plan every index first (reads only), then write: a bad source anywhere writes nothing."""
        options = self.options
        authorize(self.client, [(job.target, job.sources) for job in self.jobs])
        plans = parallel_map(lambda pair: labelled(pair[0], pair[1].plan, pair[0].sources, options.mode,
                                                   options.media_type, pair[0].annotations,
                                                   options.attestations),
                             pairs, self.outer)
        if self.signer is not None:
            plans = [plan.replace(signature=labelled(job, self.signer.plan, publisher.target, plan.digest,
                                                     plan.document))
                     for (job, publisher), plan in zip(pairs, plans)]
        for (job, publisher), plan in zip(pairs, plans):
            if plan.changed or (plan.signature or {}).get("sign"):
                labelled(job, publisher.ensure_push_permission)
        if not self.check_mode:
            planned = plans
            plans = parallel_map(lambda item: labelled(item[0][0], self.write, item[0], item[1]),
                                 list(zip(pairs, plans)), self.outer)
            for index, ((job, publisher), before, plan) in enumerate(zip(pairs, planned, plans)):
                signature = before.signature
                if signature is not None and signature["digest"] != plan.digest:   # a merge was redone
                    signature = labelled(job, self.signer.plan, publisher.target, plan.digest, plan.document)
                plans[index] = plan = plan.replace(signature=signature)
                if (signature or {}).get("sign"):
                    labelled(job, self.signer.apply, publisher.target, signature, plan.media_type, len(plan.body))
        return [self.result_of(publisher, plan) for publisher, plan in zip(self.publishers, plans)]

    def write(self, pair, plan):
        """Apply ``plan``; a merge writes its index through the merge protocol (Publisher.merge)."""
        job, publisher = pair
        merge = self.options.mode == "merge" and plan.changed
        publisher.apply(plan, write_tags=not merge)
        if not merge:
            return plan
        return publisher.merge(plan, job.annotations, self.options.media_type)

    def result_of(self, publisher, plan):
        result = {
            "changed": plan.changed,
            "digest": plan.digest,
            "media_type": plan.media_type,
            "manifest": plan.document,
            "platforms": index_facts(plan.document)["platforms"],
            "written_tags": [r.canonical for r in plan.tags_to_write],
            "copied": publisher.copied,
        }
        if publisher.referrer_copy is not None:
            result["referrers_copied"] = copied_facts(plan.referrers)
        if plan.rewrites:
            result["merge_rewrites"] = plan.rewrites
        if plan.side_tags:
            result["merge_side_tags"] = [publisher.target.with_tag(tag).canonical for tag in plan.side_tags]
        signature = plan.signature
        if signature is not None:
            result["signature"] = {"digest": signature["digest"], "key_id": signature["key_id"],
                                   "signed": signature.get("index_sign", signature["sign"]), "form": signature["form"]}
            if "platforms" in signature:
                result["signature"]["platforms"] = [{"digest": child["digest"], "platform": child["platform"],
                                                     "signed": child["sign"], "form": child["form"]}
                                                    for child in signature["platforms"]]
            result["changed"] = result["changed"] or signature["sign"]
        if self.diff:
            result["diff"] = {
                "before_header": "%s (%s)" % (publisher.target.canonical,
                                              plan.existing.digest if plan.existing else "absent"),
                "before": platform_lines(plan.before_document),
                "after_header": "%s (%s)" % (publisher.target.canonical, plan.digest),
                "after": platform_lines(plan.document) + "".join(
                    "referrer %s: %s (copied)\n" % (item["category"] or "other", item["digest"])
                    for item in result.get("referrers_copied") or []) + (
                    "signature: %s by %s (%s)\n" % (signature["digest"], signature["key_id"], signature["form"])
                    if signature is not None and signature.get("index_sign", signature["sign"]) else "") + "".join(
                    "signature: %s %s by %s (%s)\n" % (child["platform"], child["digest"], signature["key_id"],
                                                       child["form"])
                    for child in (signature or {}).get("platforms") or [] if child["sign"]),
            }
        return result

    def absent(self, publisher):
        deleter = Deleter(self.client, publisher.target, delete_manifest=self.options.delete_manifest,
                          force=self.options.force, concurrency=publisher.concurrency)
        return deleter.run(check_mode=self.check_mode, diff=self.diff)


def labelled(job, function, *args):
    """Run ``function``; in a batch, errors say which item of ``indexes`` they belong to."""
    try:
        return function(*args)
    except RegistryError as exc:
        if not job.label.startswith("indexes["):
            raise
        raise RegistryError("%s (%s): %s" % (job.label, job.target.canonical, exc), code=exc.code, status=exc.status)
    except PlanError as exc:
        if not job.label.startswith("indexes["):
            raise
        raise PlanError("%s (%s): %s" % (job.label, job.target.canonical, exc))

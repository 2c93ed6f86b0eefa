"""The data model's fixed vocabularies: PanDA job statuses and the topology tags of `jobs`."""

PANDA_JOB_STATUSES = (
    "pending", "defined", "waiting", "assigned", "throttled", "activated", "sent", "starting",
    "running", "holding", "transferring", "merging", "finished", "failed", "cancelled", "closed",
)
# Always present in PanDA's statistics (zero-filled by the server).
PANDA_ALWAYS_PRESENT = ("assigned", "activated", "running", "finished", "failed")
# Tags `enrich` adds to every `jobs` point, from the CRIC PanDA-queue record.
TOPOLOGY_TAGS = ("atlas_site", "cloud", "country", "tier", "site_state", "queue_type",
                 "resource_type")
UNKNOWN = "unknown"

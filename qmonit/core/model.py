"""The data model's fixed vocabularies: PanDA job statuses and the topology tags of `jobs`."""

PANDA_JOB_STATUSES = (
    "pending", "defined", "waiting", "assigned", "throttled", "activated", "sent", "starting",
    "running", "holding", "transferring", "merging", "finished", "failed", "cancelled", "closed",
)
# Always present in PanDA's statistics (zero-filled by the server).
PANDA_ALWAYS_PRESENT = ("assigned", "activated", "running", "finished", "failed")
# Tags `enrich` adds to every `jobs` point, from the CRIC PanDA-queue record.
# queue_status is the PanDA queue's CRIC `status` (online, brokeroff, offline, test);
# site_state is the site's CRIC `site_state` (ACTIVE, ...).
TOPOLOGY_TAGS = ("atlas_site", "cloud", "country", "tier", "queue_status", "site_state",
                 "queue_type", "resource_type")
UNKNOWN = "unknown"
# Moving averages kept in queue_stats, and the suspicious-site rules.
AVERAGED_STATUSES = ("assigned", "activated", "running", "failed")
AVERAGE_WINDOWS = ("1h", "6h", "12h", "24h", "7d", "30d")
RULES = ("drop", "starving", "failing", "backlog", "stale")
# Counts the derive job reads from the SQL history (queue_history columns).
HISTORY_STATUSES = ("assigned", "activated", "running", "failed", "finished", "transferring")
# the statuses whose 10-minute noise the drop and backlog rules read (sums of squares)
NOISE_STATUSES = ("assigned", "running", "transferring")
SEASONAL_STATUSES = NOISE_STATUSES  # the ones judged against a baseline median (drop, backlog)


# The longest value a tag may have: the SQL column it is kept in (state tables, batch
# tables) is this wide; a longer name is a malformed record, reported and skipped before it
# reaches any store (a test checks every such column against this table).
TAG_LIMITS = {"prod_source": 64, "resource": 64, "cloud": 64, "site_state": 32, "queue_status": 32,
              "cluster": 64, "scheduler": 16, "state": 16, "native_state": 32,
              "factory_type": 16, "job_status": 64}
TAG_LIMIT = 128  # every other tag

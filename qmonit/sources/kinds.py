"""What a recorded output or a server's answer looks like, and which kinds each reader takes.

A file or an endpoint of the wrong kind (a Slurm jobs answer given for nodes, a Slurm answer
at the CRIC URL, Harvester statistics at the PanDA URL) is refused by name before any parser
runs: read as it is, it would give zero samples, or queues named after its keys.
The kinds are told apart by their top-level keys (`jobs`, `nodes`, `sinfo`, `partitions`,
`statistics`, `reservations`, `meta.plugin(s)`, `meta.command`), by CRIC's record keys
(`panda_resource`, `corecount`, ...), by how deep PanDA's and Harvester's counts nest, and
for text by its first line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from qmonit.core.sample import shown
from qmonit.sources.base import SourceError

# kind keys
SLURM_JOBS = "slurm_jobs"
SLURM_NODES = "slurm_nodes"
SLURM_NODE_GROUPS = "slurm_node_groups"  # sinfo --json since 23.02: the `sinfo` list
SLURM_PARTITIONS = "slurm_partitions"
SLURM_RESERVATIONS = "slurm_reservations"
SLURM_DIAG = "slurm_diag"
SLURM_SHARES = "slurm_shares"
SLURM_ERROR = "slurm_error"  # a Slurm answer whose `errors` list is not empty
SLURM_OTHER = "slurm_other"
SQUEUE_TEXT = "squeue_text"
SINFO_TEXT = "sinfo_text"
PANDA_JOB_STATS = "panda_job_stats"
HARVESTER_WORKER_STATS = "harvester_worker_stats"
PANDA_V1 = "panda_v1"  # an API v1 envelope that failed or holds no object of queues
CRIC_QUEUES = "cric_queues"
CRIC_RECORD = "cric_record"
CONDOR_JSON = "condor_json"
CONDOR_LONG = "condor_long"
ELASTICSEARCH = "elasticsearch_msearch"
EMPTY_OBJECT = "empty_object"
EMPTY_LIST = "empty_list"
EMPTY_TEXT = "empty_text"
UNKNOWN = "unknown"


class Kind(NamedTuple):
    key: str  # one of the kind keys above
    label: str  # what it looks like, in words: "a slurmrestd /jobs answer"


class Reader(NamedTuple):
    kinds: frozenset[str]
    wanted: str  # what it reads, after "not": "nodes"
    forms: str  # the outputs it reads, for a file's refusal


_SLURM_JSON_READ = "squeue --json, sinfo --json, slurmrestd /jobs, /nodes or /partitions"
READERS: dict[str, Reader] = {
    # `qmonit states test SOURCE --input FILE`: recorded files
    "slurm": Reader(frozenset({SLURM_JOBS, SLURM_NODES, SLURM_NODE_GROUPS, SLURM_PARTITIONS,
                               SLURM_ERROR, SQUEUE_TEXT, SINFO_TEXT}),
                    "Slurm jobs, nodes or partitions",
                    f"{_SLURM_JSON_READ}, squeue -O or sinfo -N -O text"),
    "slurm_nodes": Reader(frozenset({SLURM_NODES, SLURM_NODE_GROUPS, SLURM_ERROR, SINFO_TEXT}),
                          "nodes", "sinfo --json, slurmrestd /nodes or sinfo -N -O text"),
    "panda": Reader(frozenset({PANDA_JOB_STATS, PANDA_V1, EMPTY_OBJECT}),
                    "PanDA job statistics",
                    "the PanDA server's job statistics, API v1 or legacy"),
    "harvester": Reader(frozenset({HARVESTER_WORKER_STATS, PANDA_V1, EMPTY_OBJECT}),
                        "Harvester worker statistics",
                        "the PanDA server's Harvester worker statistics"),
    "htcondor": Reader(frozenset({CONDOR_JSON, CONDOR_LONG, EMPTY_LIST, EMPTY_TEXT}),
                       "HTCondor ads", "condor_q or condor_status -long or -json"),
    "cric": Reader(frozenset({CRIC_QUEUES, CRIC_RECORD, EMPTY_OBJECT}), "CRIC pandaqueues",
                   "CRIC's pandaqueue query JSON, or one queuedata.json record"),
    # the live answers
    "squeue --json": Reader(frozenset({SLURM_JOBS, SLURM_ERROR}), "jobs", "squeue --json"),
    "sinfo --json": Reader(frozenset({SLURM_NODES, SLURM_NODE_GROUPS, SLURM_ERROR}), "nodes",
                           "sinfo --json"),
    "cric query": Reader(frozenset({CRIC_QUEUES, EMPTY_OBJECT}), "CRIC pandaqueues",
                         "CRIC's pandaqueue query JSON"),
    # for a partitions reader: slurmrestd /partitions, and sinfo --json's node groups
    "slurm_partitions": Reader(frozenset({SLURM_PARTITIONS, SLURM_NODE_GROUPS, SLURM_ERROR}),
                               "partitions",
                               "slurmrestd /partitions, scontrol show partitions --json or "
                               "sinfo --json"),
}
READERS["apf"] = READERS["htcondor"]

# Slurm's data keys, first match wins, with the type the value must have
_SLURM_DATA = ((SLURM_JOBS, "jobs", list), (SLURM_NODE_GROUPS, "sinfo", list),
               (SLURM_NODES, "nodes", list), (SLURM_PARTITIONS, "partitions", list),
               (SLURM_RESERVATIONS, "reservations", list), (SLURM_DIAG, "statistics", dict),
               (SLURM_SHARES, "shares", dict))
# kind: (its client, the client's output, slurmrestd's answer, either of them)
_SLURM_LABELS = {
    SLURM_JOBS: ("squeue", "squeue --json output", "a slurmrestd /jobs answer",
                 "Slurm jobs JSON (squeue --json or slurmrestd /jobs)"),
    SLURM_NODES: ("sinfo", "sinfo --json output", "a slurmrestd /nodes answer",
                  "Slurm nodes JSON (sinfo --json or slurmrestd /nodes)"),
    SLURM_NODE_GROUPS: ("sinfo", "sinfo --json output (node groups)",
                        "sinfo --json output (node groups)", "sinfo --json output (node groups)"),
    # before 23.02 only slurmrestd answered these in JSON
    SLURM_PARTITIONS: ("scontrol", "scontrol show partitions --json output",
                       "a slurmrestd /partitions answer", "a slurmrestd /partitions answer"),
    SLURM_RESERVATIONS: ("scontrol", "scontrol show reservations --json output",
                         "a slurmrestd /reservations answer", "a slurmrestd /reservations answer"),
    SLURM_DIAG: ("sdiag", "sdiag --json output", "a slurmrestd /diag answer",
                 "a slurmrestd /diag answer"),
    SLURM_SHARES: ("sshare", "sshare --json output", "a slurmrestd /shares answer",
                   "a slurmrestd /shares answer"),
}
_SLURM_CLIENTS = {"squeue", "sinfo", "sdiag", "scontrol", "sshare", "sacct", "sacctmgr"}
_SLURM_META = {"plugin", "plugins", "Slurm", "slurm", "command", "client"}

# keys of a CRIC pandaqueue record that no PanDA or Harvester statistics level uses
CRIC_KEYS = frozenset({"panda_resource", "nickname", "atlas_site", "siteid", "cloud",
                       "country", "tier", "tier_level", "corecount", "corepower",
                       "resource_type", "site_state", "pilot_manager", "harvester", "astorages",
                       "acopytools", "catchall", "maxrss", "maxtime", "appdir", "rc_site"})
_CONDOR_KEYS = frozenset({"MyType", "TargetType", "JobStatus", "ClusterId", "GlobalJobId",
                          "SlotType", "Activity"})
_CLASSAD_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\s*=")
_CPU_STATES = re.compile(r"\d+/\d+/\d+/\d+")  # sinfo's CPUsState: allocated/idle/other/total
_LINES = 20  # the lines of a text file its kind is judged on
_DEPTHS = {3: PANDA_JOB_STATS, 4: HARVESTER_WORKER_STATS}  # dict levels above the counts
_LABELS = {PANDA_JOB_STATS: "PanDA job statistics",
           HARVESTER_WORKER_STATS: "Harvester worker statistics"}


def kind_of(doc: Any) -> Kind:
    """The kind of a decoded JSON document."""
    if isinstance(doc, list):
        return _list_kind(doc)
    if not isinstance(doc, dict):
        return Kind(UNKNOWN, f"a JSON {_json_type(doc)}")
    if not doc:
        return Kind(EMPTY_OBJECT, "an empty JSON object")
    for probe in (_slurm_kind, _panda_v1_kind, _single_record_kind):
        kind = probe(doc)
        if kind is not None:
            return kind
    if isinstance(doc.get("responses"), list):
        return Kind(ELASTICSEARCH, "an Elasticsearch _msearch answer")
    return _keyed_kind(doc)


def kind_of_text(text: str) -> Kind:
    """The kind of a file's text: JSON is decoded and told apart by kind_of."""
    stripped = text.strip()
    if not stripped:
        return Kind(EMPTY_TEXT, "an empty file")
    if stripped[0] in "{[":
        try:
            return kind_of(json.loads(stripped))
        except (ValueError, RecursionError) as exc:
            return Kind(UNKNOWN, f"text that is not valid JSON ({exc})")
    lines = stripped.split("\n", _LINES)[:_LINES]  # not the whole of a large file
    first = lines[0].strip()  # not blank: the text is stripped
    if _CLASSAD_LINE.match(first):
        return Kind(CONDOR_LONG, "condor_q/condor_status -long output")
    from qmonit.sources.slurm import SEP, SINFO_FIELDS, SQUEUE_FIELDS  # slurm imports this

    if SEP in first:
        return _pipe_text_kind(lines, SEP, SQUEUE_FIELDS, SINFO_FIELDS)
    return Kind(UNKNOWN, f"text whose first line is {shown(first, 80)}")


def _pipe_text_kind(lines: list[str], sep: str, squeue: tuple[str, ...],
                    sinfo: tuple[str, ...]) -> Kind:
    """squeue -O or sinfo -N -O text in qmonit's formats, told by the fields of most of the
    first lines (a line that does not parse is the reader's to report)."""
    rows = [line.rstrip().rstrip(sep).split(sep) for line in lines if line.strip()]
    jobs = sum(1 for row in rows if len(row) == len(squeue))
    nodes = sum(1 for row in rows if len(row) == len(sinfo) and _CPU_STATES.fullmatch(
        row[2].strip()))
    if 2 * jobs > len(rows):
        return Kind(SQUEUE_TEXT, "squeue -O text")
    if 2 * nodes > len(rows):
        return Kind(SINFO_TEXT, "sinfo -N -O text")
    return Kind(UNKNOWN, f"text of {len(rows[0])} '|'-separated fields: neither squeue -O "
                         f"{','.join(squeue)} nor sinfo -N -O {','.join(sinfo)} "
                         "(CPUsState as A/I/O/T)")


def describe(doc_or_text: Any) -> str:
    """What a document (decoded JSON) or a file's text (str) looks like, in words."""
    if isinstance(doc_or_text, str):
        return kind_of_text(doc_or_text).label
    return kind_of(doc_or_text).label


def refusal(reader: str, kind: Kind) -> str | None:
    """Why `reader` does not read a file of `kind` ("a slurmrestd /jobs answer, not nodes
    (slurm_nodes reads ...)"), or None when it does."""
    wanted = READERS[reader]
    if kind.key in wanted.kinds:
        return None
    if kind.key == UNKNOWN:
        return (f"not a {reader} output qmonit reads ({kind.label}; {reader} reads "
                f"{wanted.forms})")
    return f"{kind.label}, not {wanted.wanted} ({reader} reads {wanted.forms})"


def check_answer(reader: str, doc: Any, origin: str, verb: str = "answered") -> None:
    """A live answer of a kind `reader` does not read is a SourceError naming `origin` and
    what came instead ("CRIC https://... answered a slurmrestd /jobs answer, not CRIC
    pandaqueues"): a wrong endpoint must fail, never give zero samples."""
    kind = kind_of(doc)
    wanted = READERS[reader]
    if kind.key not in wanted.kinds:
        raise SourceError(f"{origin} {verb} {kind.label}, not {wanted.wanted}")


# -- the probes -----------------------------------------------------------------------------

def _slurm_kind(doc: dict) -> Kind | None:
    meta = doc.get("meta")
    slurm_meta = isinstance(meta, dict) and bool(_SLURM_META & meta.keys())
    data = next(((key, field) for key, field, kind in _SLURM_DATA
                 if isinstance(doc.get(field), kind) and (kind is list or slurm_meta)), None)
    if not slurm_meta and data is None:
        return None
    errors = doc.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0] if isinstance(errors[0], dict) else {"error": errors[0]}
        text = str(first.get("description") or first.get("error") or first)
        return Kind(SLURM_ERROR, f"a Slurm error answer ({shown(text, 120)})")
    if data is None:
        return Kind(SLURM_OTHER, f"a Slurm JSON answer with keys {_keys(doc)}")
    key = data[0]
    client, client_label, rest_label, either = _SLURM_LABELS[key]
    meta = meta if isinstance(meta, dict) else {}
    command = meta.get("command")
    if isinstance(command, list) and command and isinstance(command[0], str):
        name = command[0].rsplit("/", 1)[-1]
        if name == client:
            return Kind(key, client_label)
        if name in _SLURM_CLIENTS:
            return Kind(key, f"{shown(' '.join(map(str, command)), 80)} output")
    plugin = meta.get("plugin")
    if not isinstance(plugin, dict):
        plugin = {}
    rest = str(plugin.get("type") or "").startswith(("openapi/slurmctld", "openapi/slurmdbd",
                                                     "openapi/dbv")) or command == []
    return Kind(key, rest_label if rest else either)


def _panda_v1_kind(doc: dict) -> Kind | None:
    """The PanDA API v1 envelope {"success", "message", "data"}: what its data is, when the
    server succeeded and sent an object of queues."""
    if "success" not in doc or not ({"data", "message"} & doc.keys()):
        return None
    data = doc.get("data")
    if doc["success"] is True and isinstance(data, dict) and data:
        return kind_of(data)
    if doc["success"] is not True:
        return Kind(PANDA_V1, "a PanDA API v1 answer reporting failure")
    return Kind(PANDA_V1, f"a PanDA API v1 answer whose data is {kind_of(data).label}")


def _single_record_kind(doc: dict) -> Kind | None:
    if isinstance(doc.get("panda_resource"), str) or isinstance(doc.get("nickname"), str):
        return Kind(CRIC_RECORD, "a CRIC pandaqueue record (queuedata.json)")
    if _CONDOR_KEYS & doc.keys():
        return Kind(CONDOR_JSON, "condor_q/condor_status -json output (one ad)")
    return None


def _keyed_kind(doc: dict) -> Kind:
    """An object keyed by queue: CRIC pandaqueues when most records carry CRIC's keys;
    PanDA or Harvester statistics when most queues nest their counts 3 or 4 objects deep."""
    records = [v for v in doc.values() if isinstance(v, dict) and v]
    cric = sum(1 for record in records if CRIC_KEYS & record.keys())
    if cric and 2 * cric > len(records):
        return Kind(CRIC_QUEUES, "CRIC pandaqueues (keyed by queue)")
    votes = {kind: 0 for kind in _DEPTHS.values()}
    for value in doc.values():
        kind = _DEPTHS.get(_depth(value))
        if kind:
            votes[kind] += 1
    (best, most), (_, other) = sorted(votes.items(), key=lambda item: -item[1])
    if most > other and 2 * most >= len(doc):
        return Kind(best, _LABELS[best])
    return Kind(UNKNOWN, f"a JSON object with keys {_keys(doc)}")


def _depth(value: Any, limit: int = 6) -> int:
    """How many objects nest along the first entries of `value` (PanDA's queue: labels,
    resources, statuses = 3; Harvester's adds the instance = 4)."""
    depth = 0
    while isinstance(value, dict) and value and depth < limit:
        value = next(iter(value.values()))
        depth += 1
    return depth


def _list_kind(doc: list) -> Kind:
    if not doc:
        return Kind(EMPTY_LIST, "an empty JSON list")
    ads = sum(1 for item in doc if isinstance(item, dict) and _CONDOR_KEYS & item.keys())
    if 2 * ads > len(doc):
        return Kind(CONDOR_JSON, "condor_q/condor_status -json output")
    types = sorted({_json_type(item) for item in doc})
    return Kind(UNKNOWN, f"a JSON list of {len(doc)} {' and '.join(types)} item(s)")


def _keys(doc: dict, limit: int = 6) -> str:
    names: Iterable[str] = (shown(str(key), 40) for key in list(doc)[:limit])
    return ", ".join(names) + (", ..." if len(doc) > limit else "")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "list", dict: "object", type(None): "null"}.get(
        type(value), type(value).__name__)

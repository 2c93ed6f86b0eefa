"""State rules: a table per built-in rule set (every native state and an unknown one),
the rule language's errors, config overrides, and `qmonit states show`."""

import logging

import pytest

from qmonit.app import cli
from qmonit.core import config
from qmonit.core.states.rules import Mapped, RuleError, load_rules, parse_rules

PANDA = [
    ("pending", "pending"), ("defined", "pending"), ("waiting", "pending"),
    ("assigned", "pending"), ("throttled", "held"), ("activated", "pending"),
    ("sent", "running"), ("starting", "running"), ("running", "running"),
    ("holding", "running"), ("transferring", "running"), ("merging", "running"),
    ("finished", "completed"), ("failed", "failed"), ("cancelled", "cancelled"),
    ("closed", "cancelled"), ("reassigned", "unknown"),
]
HARVESTER = [
    ("submitted", "pending"), ("running", "running"), ("finished", "completed"),
    ("failed", "failed"), ("ready", "pending"), ("cancelled", "cancelled"), ("idle", "pending"),
    ("missed", "failed"), ("pending", "pending"), ("to_submit", "unknown"),
]
APF = [("created", "pending"), ("running", "running"), ("exiting", "running"),
       ("done", "completed"), ("fault", "failed"), ("lost", "unknown")]
# (native, reason, substate, age_s) -> state, cause
HTCONDOR = [
    ("Idle", "", "", None, "pending", ""),
    ("Idle", "", "Held", None, "pending", ""),
    ("Idle", "", "Completed", None, "completed",
     "LastJobStatus Completed; terminal states do not go back"),
    ("Running", "", "Removing", None, "cancelled",
     "LastJobStatus Removing; terminal states do not go back"),
    ("Running", "", "Idle", None, "running", ""),
    ("Removing", "", "Running", None, "cancelled", "being removed"),
    ("Completed", "", "Running", None, "completed", ""),
    ("Held", "1", "Running", None, "held", "held by its owner or an administrator"),
    ("Held", "3", "Idle", None, "held", "periodic hold policy"),
    ("Held", "12", "Running", None, "failed", "output transfer failed"),
    ("Held", "13", "Idle", None, "failed", "input transfer failed"),
    ("Held", "16", "Idle", None, "pending", "spooling input"),
    ("Held", "34", "Running", None, "failed", "memory limit exceeded"),
    ("Held", "21", "Running", None, "held", ""),
    ("TransferringOutput", "", "Running", None, "running", "transferring output"),
    ("Suspended", "", "Running", None, "held", "suspended"),
    ("Unexpanded", "", "", None, "unknown", "no rule for native state Unexpanded"),
]
SLURM = [
    ("PENDING", "Priority", "", 60, "pending", ""),
    ("PENDING", "Resources", "", 60, "pending", ""),
    ("PENDING", "JobHeldUser", "", 60, "held", "held by its owner"),
    ("PENDING", "JobHeldAdmin", "", 60, "held", "held by an administrator"),
    ("PENDING", "BeginTime", "", 60, "pending", "start time in the future"),
    ("PENDING", "Dependency", "", 60, "pending", "waiting for a dependency"),
    ("PENDING", "DependencyNeverSatisfied", "", 60, "failed",
     "dependency can never be satisfied"),
    ("PENDING", "AssocGrpCpuLimit", "", 60, "pending", "account or QOS limit"),
    ("PENDING", "QOSMaxJobsPerUserLimit", "", 60, "pending", "account or QOS limit"),
    ("PENDING", "ReqNodeNotAvail, UnavailableNodes:n1", "", 60, "pending",
     "requested nodes not available"),
    ("PENDING", "PartitionDown", "", 60, "pending", "partition down"),
    ("RUNNING", "", "", 60, "running", ""),
    ("SUSPENDED", "", "", 60, "held", "suspended"),
    ("COMPLETING", "", "", 120, "running", "completing"),
    ("COMPLETING", "", "", 301, "failed", "stuck in a transitional state"),
    ("CONFIGURING", "", "", 60, "running", "nodes being configured"),
    ("CONFIGURING", "", "", 3600, "failed", "stuck configuring its nodes"),
    ("COMPLETED", "", "", 60, "completed", ""),
    ("CANCELLED", "", "", 60, "cancelled", ""),
    ("FAILED", "", "", 60, "failed", "non-zero exit code"),
    ("TIMEOUT", "", "", 60, "failed", "time limit reached"),
    ("NODE_FAIL", "", "", 60, "failed", "node failure"),
    ("PREEMPTED", "", "", 60, "cancelled", "preempted"),
    ("BOOT_FAIL", "", "", 60, "failed", "node boot failure"),
    ("DEADLINE", "", "", 60, "failed", "deadline reached"),
    ("OUT_OF_MEMORY", "", "", 60, "failed", "out of memory"),
    ("REQUEUED", "", "", 60, "pending", "requeued"),
    ("REQUEUE_HOLD", "", "", 60, "held", "requeued and held"),
    ("STAGE_OUT", "", "", 60, "running", "staging out"),
    ("RESIZING", "", "", 60, "running", "resizing"),
    ("SIGNALING", "", "", 60, "running", "being signalled"),
    ("STOPPED", "", "", 60, "held", "stopped"),
    ("SPECIAL_EXIT", "", "", 60, "failed", "special exit state"),
    ("REVOKED", "", "", 60, "cancelled", "revoked (federation)"),
    ("LAUNCH_FAILED", "", "", 60, "unknown", "no rule for native state LAUNCH_FAILED"),
]


@pytest.mark.parametrize("source,table", [("panda", PANDA), ("harvester", HARVESTER),
                                          ("apf", APF)])
def test_flat_rule_sets_map_every_native_state(source, table):
    rules = load_rules(source)
    assert [(native, rules.map(native).state) for native, _ in table] == table


@pytest.mark.parametrize("native,reason,substate,age,state,cause", HTCONDOR)
def test_htcondor_rules(native, reason, substate, age, state, cause):
    assert load_rules("htcondor").map(native, reason, substate, age) == Mapped(state, cause)


@pytest.mark.parametrize("native,reason,substate,age,state,cause", SLURM)
def test_slurm_rules(native, reason, substate, age, state, cause):
    assert load_rules("slurm").map(native, reason, substate, age) == Mapped(state, cause)


def test_an_unmapped_state_warns_once_and_counts_as_unknown(caplog):
    rules = load_rules("slurm")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert rules.map("LAUNCH_FAILED").state == "unknown"
    assert [r.getMessage() for r in caplog.records] == [
        "slurm: native state 'LAUNCH_FAILED' matches no rule in slurm.rules (built in); "
        "counted as unknown"]


def test_age_without_a_time_never_matches_an_age_condition():
    assert load_rules("slurm").map("COMPLETING", age_s=None) == Mapped("running", "completing")


@pytest.mark.parametrize("text,message", [
    ("RUNNING -> running\nPENDING => pending\n",
     "my.rules, line 2: 'PENDING => pending' is not NATIVE [if CONDITION [and CONDITION]...] "
     "-> STATE [: CAUSE]"),
    ("RUNNING -> runing\n", "my.rules, line 1: state 'runing' is not one of pending, running, "
     "held, completed, failed, cancelled, unknown"),
    ("# comment\n\nCOMPLETING if age > 5 minutes -> failed\n",
     "my.rules, line 3: condition 'age > 5 minutes' is not one of: reason = GLOB, reason != "
     "GLOB, substate = GLOB, substate != GLOB, age > DURATION, age < DURATION (DURATION like "
     "30s, 5m, 2h, 1d)"),
    ("PENDING if user = bob -> held\n", "my.rules, line 1: condition 'user = bob' is not one "
     "of: reason = GLOB, reason != GLOB, substate = GLOB, substate != GLOB, age > DURATION, "
     "age < DURATION (DURATION like 30s, 5m, 2h, 1d)"),
    ("# only a comment\n", "my.rules: no rules"),
])
def test_a_rule_file_with_a_mistake_names_the_line_and_the_reason(text, message):
    with pytest.raises(RuleError) as caught:
        parse_rules(text, "slurm", "my.rules")
    assert str(caught.value) == message


def test_conditions_combine_and_the_first_match_wins():
    rules = parse_rules("PENDING if reason = Job* and reason != JobHeldAdmin and age > 1h "
                        "-> held: long held   # comment\nPENDING -> pending\n", "slurm", "x")
    assert rules.map("PENDING", "JobHeldUser", "", 7200) == Mapped("held", "long held")
    assert rules.map("PENDING", "JobHeldUser", "", 60) == Mapped("pending", "")
    assert rules.map("PENDING", "JobHeldAdmin", "", 7200) == Mapped("pending", "")
    assert str(rules.rules[0]) == ("PENDING if reason = Job* and reason != JobHeldAdmin and "
                                   "age > 1h -> held: long held")


def test_a_configured_rule_file_replaces_the_built_in_one(tmp_path, write_config):
    rules_file = tmp_path / "slurm.rules"
    rules_file.write_text("PENDING -> held: everything waits\n* -> running\n")
    path = write_config({"states": {"slurm": str(rules_file)},
                         "sources": {"enabled": "simulated"}})
    cfg = config.load(str(path))
    from qmonit.collect.components import build

    rules = build(cfg).rules["slurm"]
    assert rules.origin == str(rules_file)
    assert rules.map("PENDING") == Mapped("held", "everything waits")


def test_a_broken_rule_file_stops_qmonit_at_start(tmp_path, write_config, capsys):
    rules_file = tmp_path / "htcondor.rules"
    rules_file.write_text("Idle -> pending\nHeld if reason = 1 -> paused\n")
    path = write_config({"states": {"htcondor": str(rules_file)},
                         "sources": {"enabled": "simulated"}})
    assert cli.main(["-c", str(path), "run", "collect"]) == 2
    assert capsys.readouterr().err == (
        f"qmonit: configuration error: {path}: [states] htcondor: {rules_file}, line 2: state "
        f"'paused' is not one of pending, running, held, completed, failed, cancelled, "
        f"unknown\n")


def test_states_show_prints_the_rules_with_their_lines(capsys):
    assert cli.main(["states", "show", "apf"]) == 0
    assert capsys.readouterr().out == (
        "# apf state rules from apf.rules (built in); first match wins\n"
        "   2  created -> pending: pilot queued at the site\n"
        "   3  running -> running\n"
        "   4  exiting -> running: pilot exiting\n"
        "   5  done -> completed\n"
        "   6  fault -> failed: pilot faulted or was held\n")


@pytest.mark.parametrize("action", ["show", "test"])
def test_cric_has_no_rules_and_the_message_names_the_command_typed(action, write_config,
                                                                   capsys):
    path = write_config({"sources": {"enabled": "simulated"}})
    assert cli.main(["-c", str(path), "states", action, "cric"]) == 2
    assert capsys.readouterr().err == (
        f"qmonit states {action} cric: CRIC has no state rules (it gives the topology); "
        "`qmonit states test cric --input FILE` reads a recorded answer\n")


def test_an_unreadable_rule_file_stops_qmonit_at_start(tmp_path, write_config, capsys):
    missing = tmp_path / "nowhere.rules"
    path = write_config({"states": {"slurm": str(missing)}, "sources": {"enabled": "simulated"}})
    assert cli.main(["-c", str(path), "run", "collect"]) == 2
    assert capsys.readouterr().err == (
        f"qmonit: configuration error: {path}: [states] slurm: {missing}: cannot read the "
        f"slurm state rules: No such file or directory\n")

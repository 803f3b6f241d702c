"""The command line and the configuration: exit codes, error messages that
name where the bad value came from, check-config, and precedence
(built-in default < file < environment < command line)."""

import configparser
import os
import re
from pathlib import Path

import pytest

from conftest import (EX_CONFIG, EX_OK, EX_STUCK, EX_USAGE, HOUR_S, age_tree,
                      build_finished_site, build_stuck_site, clean_env,
                      parse_duration_ms, run_cli, start_agent, write_config)

KEYS = {
    "site": ["root"],
    "policy": ["stuck_after", "auto_floor", "quiet_period", "allow_full_clear", "escalate_within", "dry_run"],
    "scan": ["rescan_interval"],
    "hook": ["command", "timeout", "cooldown"],
    "archive": ["dir", "keep"],
    "log": ["level", "format"],
    "metrics": ["file"],
}
DURATIONS = {("policy", "stuck_after"), ("policy", "auto_floor"), ("policy", "quiet_period"),
             ("policy", "escalate_within"),
             ("scan", "rescan_interval"), ("hook", "timeout"), ("hook", "cooldown"), ("archive", "keep")}


def parse_ini(text):
    cp = configparser.ConfigParser(interpolation=None, comment_prefixes=("#", ";"),
                                   inline_comment_prefixes=("#", ";"), strict=True)
    try:
        cp.read_string(text)
    except configparser.Error as e:
        raise AssertionError(f"check-config output is not an ini file ({e}):\n{text}")
    return cp


def check_config(cfg, env=None):
    r = run_cli(["check-config", "-c", cfg], env=env)
    assert r.returncode == EX_OK, r.stdout + r.stderr
    cp = parse_ini(r.stdout)
    for sec, keys in KEYS.items():
        for key in keys:
            assert cp.has_option(sec, key), f"[{sec}] {key} missing:\n{r.stdout}"
    return cp


def ms(cp, sec, key):
    return parse_duration_ms(cp.get(sec, key))


# ------------------------------------------------------------ bad configs

# (id, lines of the file after `[site]`, `root = ...` and an empty line,
#  the bad line's number, key, value)
BAD_FILES = [
    ("unknown-key", ["[policy]", "stuck_afterr = 5m"], 5, "stuck_afterr", "5m"),
    ("bad-duration", ["[policy]", "stuck_after = soon"], 5, "stuck_after", "soon"),
    ("negative-duration", ["[policy]", "quiet_period = -5s"], 5, "quiet_period", "-5s"),
    ("fraction-duration", ["[scan]", "rescan_interval = 1.5s"], 5, "rescan_interval", "1.5s"),
    ("unit-typo", ["[hook]", "timeout = 10 sec"], 5, "timeout", "10 sec"),
    ("bad-bool", ["[policy]", "dry_run = maybe"], 5, "dry_run", "maybe"),
    ("below-min-stuck", ["[policy]", "stuck_after = 500ms"], 5, "stuck_after", "500ms"),
    ("below-min-rescan", ["[scan]", "rescan_interval = 50ms"], 5, "rescan_interval", "50ms"),
    ("below-min-timeout", ["[hook]", "timeout = 0s"], 5, "timeout", "0s"),
    ("above-max-quiet", ["[policy]", "quiet_period = 25h"], 5, "quiet_period", "25h"),
    ("bad-level", ["[log]", "level = loud"], 5, "level", "loud"),
    ("bad-log-format", ["[log]", "format = yaml"], 5, "format", "yaml"),
    ("relative-metrics-file", ["[metrics]", "file = m.prom"], 5, "file", "m.prom"),
    ("below-min-quiet", ["[policy]", "quiet_period = 0"], 5, "quiet_period", "0"),
    ("below-min-quiet-ms", ["[policy]", "quiet_period = 999ms"], 5, "quiet_period", "999ms"),
    ("later-line", ["[policy]", "stuck_after = 5m", "", "quiet_period = 1s",
                    "dry_run = nope"], 8, "dry_run", "nope"),
]


def bad_ini(tmp_path, root, lines):
    path = tmp_path / "bad.ini"
    path.write_text("\n".join(["[site]", f"root = {root}", ""] + lines) + "\n")
    return path


@pytest.mark.parametrize("lines,line_no,key,value",
                         [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_value_in_the_file_is_exit_78_naming_file_line_key_value(site, tmp_path, lines,
                                                                     line_no, key, value):
    cfg = bad_ini(tmp_path, site, lines)
    r = run_cli(["check-config", "-c", cfg])
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert f"bad.ini:{line_no}" in r.stderr, r.stderr
    assert key in r.stderr, r.stderr
    assert value in r.stderr, r.stderr


def test_unknown_section_is_exit_78_naming_file_line_and_section(site, tmp_path):
    cfg = bad_ini(tmp_path, site, ["[polcy]", "stuck_after = 5m"])
    r = run_cli(["check-config", "-c", cfg])
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    # inih reports a section by its first key; either line is fair.
    assert re.search(r"bad\.ini:[45]\b", r.stderr), r.stderr
    assert "polcy" in r.stderr, r.stderr


def test_line_that_is_not_ini_is_exit_78_naming_file_line(site, tmp_path):
    cfg = bad_ini(tmp_path, site, ["[policy]", "this is not a key value pair"])
    r = run_cli(["check-config", "-c", cfg])
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert "bad.ini:5" in r.stderr, r.stderr


@pytest.mark.parametrize("command", ["run", "report", "check-config"])
def test_every_command_refuses_a_bad_config(site, tmp_path, command):
    build_stuck_site(site)
    cfg = bad_ini(tmp_path, site, ["[policy]", "stuck_after = soon"])
    r = run_cli([command, "-c", cfg, *(["--once"] if command == "run" else [])], timeout=10)
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert "bad.ini:5" in r.stderr and "soon" in r.stderr, r.stderr
    assert (site / "locks" / "deployment").is_dir(), "acted on a config it refused"


BAD_ENV = [
    ("LOCKWARDEN_POLICY_STUCK_AFTER", "soon"),
    ("LOCKWARDEN_POLICY_DRY_RUN", "perhaps"),
    ("LOCKWARDEN_HOOK_TIMEOUT", "0s"),
    ("LOCKWARDEN_LOG_LEVEL", "chatty"),
    # A typo in a variable of one of our sections would be ignored silently.
    ("LOCKWARDEN_POLICY_STUCK_AFTR", "5m"),
]


@pytest.mark.parametrize("name,value", BAD_ENV, ids=[n for n, _ in BAD_ENV])
def test_bad_environment_override_is_exit_78_naming_the_variable(site, tmp_path, name, value):
    cfg = write_config(tmp_path / "lw.ini", site)
    r = run_cli(["check-config", "-c", cfg], env=clean_env(**{name: value}))
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert name in r.stderr, r.stderr
    assert value in r.stderr, r.stderr


def test_a_typo_in_one_of_our_sections_names_the_nearest_key(site, tmp_path):
    cfg = write_config(tmp_path / "lw.ini", site)
    r = run_cli(["check-config", "-c", cfg], env=clean_env(LOCKWARDEN_POLICY_STUCK_AFTR="20m"))
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert "did you mean LOCKWARDEN_POLICY_STUCK_AFTER?" in r.stderr, r.stderr


# A misspelled or missing section: config_load cannot tell it from someone
# else's variable, so it is ignored; it is said, with the nearest name.
UNKNOWN_ENV = [
    ("LOCKWARDEN_HOOKS_COMMAND", "LOCKWARDEN_HOOK_COMMAND"),
    ("LOCKWARDEN_STUCK_AFTER", "LOCKWARDEN_POLICY_STUCK_AFTER"),
    ("LOCKWARDEN_POLICYSTUCK_AFTER", "LOCKWARDEN_POLICY_STUCK_AFTER"),
]


@pytest.mark.parametrize("name,near", UNKNOWN_ENV, ids=[n for n, _ in UNKNOWN_ENV])
def test_an_unknown_variable_fails_check_config_naming_the_nearest(site, tmp_path, name, near):
    cfg = write_config(tmp_path / "lw.ini", site)
    r = run_cli(["check-config", "-c", cfg], env=clean_env(**{name: "20m"}))
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert f"environment {name} is not a setting of lockwarden" in r.stderr, r.stderr
    assert f"did you mean {near}?" in r.stderr, r.stderr
    # Its value may be a secret: never shown.
    assert "20m" not in r.stderr


def test_an_unknown_variable_is_a_warning_for_the_daemon(site, agents, tmp_path):
    cfg = write_config(tmp_path / "lw.ini", site)
    agent = start_agent(agents, cfg, env=clean_env(LOCKWARDEN_STUCK_AFTER="20m"))
    agent.wait_for_log(r"warning: configuration: environment LOCKWARDEN_STUCK_AFTER is not a "
                       r"setting of lockwarden and is ignored; did you mean "
                       r"LOCKWARDEN_POLICY_STUCK_AFTER\?")
    agent.wait_scan(1)
    assert agent.running()


def test_the_names_the_hooks_read_are_no_warning(site, tmp_path):
    cfg = write_config(tmp_path / "lw.ini", site)
    r = run_cli(["check-config", "-c", cfg],
                env=clean_env(LOCKWARDEN_RESTART_SLOT="Production", LOCKWARDEN_CONFIG=cfg,
                              LOCKWARDEN_ENV_FILE=""))
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert "not a setting" not in r.stderr


def test_missing_config_file_named_with_c_is_exit_78(tmp_path):
    missing = tmp_path / "no-such.ini"
    for command in (["check-config"], ["run", "--once"], ["report"]):
        r = run_cli([*command, "-c", missing], timeout=10)
        assert r.returncode == EX_CONFIG, (command, r.stdout + r.stderr)
        assert str(missing) in r.stderr, r.stderr


DEFAULT_PATH = "/etc/lockwarden/lockwarden.ini"


@pytest.mark.skipif(os.path.lexists(DEFAULT_PATH),
                    reason=f"{DEFAULT_PATH} exists here: the built-in defaults cannot be "
                    "checked without touching /etc")
def test_missing_default_config_means_built_in_defaults():
    r = run_cli(["check-config"])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert "warning" not in r.stderr, r.stderr
    cp = parse_ini(r.stdout)
    assert cp.get("site", "root") == "/home/site"
    assert ms(cp, "policy", "stuck_after") == 45 * 60 * 1000
    assert ms(cp, "policy", "quiet_period") == 2 * 60 * 1000
    assert ms(cp, "scan", "rescan_interval") == 5000


SHIPPED = Path(__file__).resolve().parents[2] / "conf" / "lockwarden.ini"


def test_the_shipped_configuration_is_clean_and_pins_no_default():
    """A fresh install: no warning, and every value the built-in default,
    so a later release's defaults reach it."""
    r = run_cli(["check-config", "-c", SHIPPED])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert "warning" not in r.stderr, r.stderr
    assert "; from " not in r.stdout, "a value came from the shipped file:\n" + r.stdout


HOST_ARCHIVE = "/home/LogFiles/lockwarden"


@pytest.mark.skipif(os.path.lexists(HOST_ARCHIVE) or os.path.lexists(DEFAULT_PATH),
                    reason=f"{HOST_ARCHIVE} or {DEFAULT_PATH} exists here: whether the run "
                    "made it, or what the default file says, cannot be told")
def test_once_with_a_site_root_writes_nothing_into_this_hosts_home(tmp_path):
    """[archive] dir left at its default follows the site root (LogFiles/
    is beside site/ on the share): a run on a copy of a site tree writes
    beside it, never into this host's /home."""
    root = tmp_path / "site"
    (root / "locks").mkdir(parents=True)
    (root / "deployments").mkdir()
    r = run_cli(["run", "--once", "--site-root", root],
                env=clean_env(LOCKWARDEN_POLICY_STUCK_AFTER="1s"), timeout=60)
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert not os.path.lexists(HOST_ARCHIVE), "run --once --site-root wrote into /home"
    r = run_cli(["check-config", "--site-root", root])
    assert parse_ini(r.stdout).get("archive", "dir") == str(tmp_path / "LogFiles" / "lockwarden")
    # Without a site root of its own, the archive is where it always was.
    r = run_cli(["check-config"])
    assert parse_ini(r.stdout).get("archive", "dir") == HOST_ARCHIVE


# ------------------------------------------------------------------ usage

USAGE_ERRORS = [
    ["--bogus"],
    ["run", "--bogus"],
    ["report", "--bogus"],
    ["check-config", "--bogus"],
    ["frobnicate"],
    ["run", "-c"],
    ["run", "--once", "stray-argument"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=[" ".join(a) for a in USAGE_ERRORS])
def test_usage_error_is_exit_64(args):
    r = run_cli(args, timeout=10)
    assert r.returncode == EX_USAGE, r.stdout + r.stderr
    assert r.stderr.strip(), "a usage error says nothing"


def test_version():
    r = run_cli(["--version"])
    assert r.returncode == EX_OK, r.stderr
    assert re.search(r"\b\d+\.\d+\.\d+\b", r.stdout), r.stdout


def test_help_names_the_commands():
    r = run_cli(["--help"])
    assert r.returncode == EX_OK, r.stderr
    for word in ("report", "check-config", "--once", "--dry-run", "--site-root"):
        assert word in r.stdout, f"{word} not in --help:\n{r.stdout}"


# ----------------------------------------------------------- check-config

def test_check_config_prints_every_key_with_its_effective_value(site, tmp_path):
    cfg = write_config(tmp_path / "lw.ini", site,
                       policy={"stuck_after": "90s", "quiet_period": "1s", "dry_run": "yes"},
                       scan={"rescan_interval": "250ms"},
                       hook={"command": "echo restart", "timeout": "2h", "cooldown": "0s"},
                       log={"level": "debug"})
    cp = check_config(cfg)
    assert cp.get("site", "root") == str(site)
    assert ms(cp, "policy", "stuck_after") == 90_000
    assert ms(cp, "policy", "quiet_period") == 1000
    assert cp.getboolean("policy", "dry_run") is True
    assert ms(cp, "scan", "rescan_interval") == 250
    assert cp.get("hook", "command") == "echo restart"
    assert ms(cp, "hook", "timeout") == 2 * 3600 * 1000
    assert ms(cp, "hook", "cooldown") == 0
    assert cp.get("log", "level") == "debug"


def test_check_config_output_reads_back_as_the_same_config(site, tmp_path):
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "1h30m"},
                       hook={"command": "true"})
    first = run_cli(["check-config", "-c", cfg])
    assert first.returncode == EX_OK, first.stderr
    again = tmp_path / "again.ini"
    again.write_text(first.stdout)
    second = check_config(again)
    first_cp = parse_ini(first.stdout)
    for sec, keys in KEYS.items():
        for key in keys:
            a, b = first_cp.get(sec, key), second.get(sec, key)
            if (sec, key) in DURATIONS:
                a, b = parse_duration_ms(a), parse_duration_ms(b)
            assert a == b, f"[{sec}] {key}: {a!r} then {b!r}"
    assert ms(second, "policy", "stuck_after") == 90 * 60 * 1000


def test_environment_beats_the_file(site, tmp_path):
    other = tmp_path / "other-site"
    cfg = write_config(tmp_path / "lw.ini", site, policy={"stuck_after": "5m"})
    cp = check_config(cfg, env=clean_env(LOCKWARDEN_POLICY_STUCK_AFTER="7m",
                                         LOCKWARDEN_SITE_ROOT=str(other),
                                         LOCKWARDEN_HOOK_COMMAND="echo from env"))
    assert ms(cp, "policy", "stuck_after") == 7 * 60 * 1000
    assert cp.get("site", "root") == str(other)
    assert cp.get("hook", "command") == "echo from env"
    # A key the environment does not set keeps the file's value.
    assert ms(cp, "scan", "rescan_interval") == 500


def test_site_root_precedence_file_env_flag(tmp_path):
    """Checked by what report finds: file < LOCKWARDEN_SITE_ROOT < --site-root."""
    stuck, healthy = tmp_path / "stuck", tmp_path / "healthy"
    build_stuck_site(stuck)
    build_finished_site(healthy)
    age_tree(healthy, HOUR_S)
    cfg_stuck = write_config(tmp_path / "stuck.ini", stuck, policy={"stuck_after": "2s"})
    cfg_healthy = write_config(tmp_path / "healthy.ini", healthy, policy={"stuck_after": "2s"})

    assert run_cli(["report", "-c", cfg_stuck]).returncode == EX_STUCK
    assert run_cli(["report", "-c", cfg_healthy]).returncode == EX_OK
    env_healthy = clean_env(LOCKWARDEN_SITE_ROOT=str(healthy))
    env_stuck = clean_env(LOCKWARDEN_SITE_ROOT=str(stuck))
    assert run_cli(["report", "-c", cfg_stuck], env=env_healthy).returncode == EX_OK
    assert run_cli(["report", "-c", cfg_healthy], env=env_stuck).returncode == EX_STUCK
    r = run_cli(["report", "-c", cfg_healthy, "--site-root", healthy], env=env_stuck)
    assert r.returncode == EX_OK, r.stdout + r.stderr
    r = run_cli(["report", "-c", cfg_healthy, "--site-root", stuck], env=env_healthy)
    assert r.returncode == EX_STUCK, r.stdout + r.stderr


# ------------------------------------------- defaults never more eager than Kudu

KUDU_LOCK_LIFETIME_MS = 1500 * 1000
QUIET_WARNING = re.compile(r"warning: .*\[policy\] quiet_period = (\S+) \(([^)]*)\): quiet_period "
                           r"no longer has any effect: nothing is removed before stuck_after "
                           r"has been watched")
LONGEST_LIVE_SILENCE_MS = 1773 * 1000  # pip install, microsoft/Oryx#2529 (README)


def test_default_stuck_after_is_at_least_kudus_lock_lifetime(site, tmp_path):
    """A live build step that prints nothing leaves the share untouched: the
    agent must not call it stuck before Kudu itself would free the lock."""
    cfg = write_config(tmp_path / "lw.ini", site)
    text = cfg.read_text()
    cfg.write_text("\n".join(line for line in text.splitlines()
                             if not line.startswith("stuck_after")) + "\n")
    cp = check_config(cfg)
    assert ms(cp, "policy", "stuck_after") >= KUDU_LOCK_LIFETIME_MS
    # Issue 18: above the longest live silence on record, with margin.
    assert ms(cp, "policy", "stuck_after") >= LONGEST_LIVE_SILENCE_MS * 3 // 2
    assert ms(cp, "policy", "auto_floor") > 14.5 * 60 * 1000  # the 868 s copy (Oryx#2590)
    r = run_cli(["check-config", "--sample"])
    assert r.returncode == EX_OK, r.stderr
    m = re.search(r"^[#; ]*stuck_after\s*=\s*(\S+)", r.stdout, re.M)
    assert m, r.stdout
    assert parse_duration_ms(m.group(1)) >= LONGEST_LIVE_SILENCE_MS * 3 // 2


@pytest.mark.parametrize("where", ["file", "environment"])
def test_quiet_period_below_one_second_is_a_config_error(site, tmp_path, where):
    """quiet_period no longer has any effect, but an old file's value is
    still checked as it always was: a file that was wrong stays wrong."""
    if where == "file":
        cfg = bad_ini(tmp_path, site, ["[policy]", "quiet_period = 0s"])
        env = None
    else:
        cfg = write_config(tmp_path / "lw.ini", site)
        env = clean_env(LOCKWARDEN_POLICY_QUIET_PERIOD="500ms")
    for command in (["check-config"], ["run", "--once"]):
        r = run_cli(command + ["-c", cfg], env=env, timeout=10)
        assert r.returncode == EX_CONFIG, r.stdout + r.stderr
        assert "quiet_period" in r.stderr.lower(), r.stderr
        assert ("bad.ini:5" if where == "file" else "LOCKWARDEN_POLICY_QUIET_PERIOD") in r.stderr
        assert ("0s" if where == "file" else "500ms") in r.stderr, r.stderr


def test_check_config_says_quiet_period_has_no_effect(site, tmp_path):
    """An old file's quiet_period still loads, is ignored, and is said to be,
    with where it was set; no quiet_period set, nothing said."""
    cfg = write_config(tmp_path / "lw.ini", site, policy={"quiet_period": "2s"},
                       scan={"rescan_interval": "5s"})
    r = run_cli(["check-config", "-c", cfg])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    m = QUIET_WARNING.search(r.stderr)
    assert m, r.stderr
    assert m.group(1) == "2s" and "lw.ini:" in m.group(2), r.stderr
    parse_ini(r.stdout)  # the configuration itself is still printed, unchanged

    cfg = write_config(tmp_path / "lw.ini", site, scan={"rescan_interval": "5s"})
    r = run_cli(["check-config", "-c", cfg])
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert "quiet_period" not in r.stderr, r.stderr


def test_daemon_says_at_start_that_quiet_period_has_no_effect(site, tmp_path, agents):
    cfg = write_config(tmp_path / "lw.ini", site, policy={"quiet_period": "1s"},
                       scan={"rescan_interval": "3s"})
    agent = start_agent(agents, cfg)
    agent.wait_for_log(QUIET_WARNING.pattern.replace("warning: ", ""), timeout=10)

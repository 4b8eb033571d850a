"""/etc/config/pyprocd: global settings and declarative services -> procd `set` messages."""

import textwrap

from pyprocd.daemon.settings import DeclaredServices, declared_services, load_settings


def write(confdir, name, text):
    confdir.mkdir(exist_ok=True)
    (confdir / name).write_text(textwrap.dedent(text))


def test_globals_and_respawn_defaults_from_system(tmp_path):
    write(tmp_path, "pyprocd", """
        config pyprocd 'main'
        \toption socket '/tmp/ubus.sock'
        \toption object 'pyprocd'
        \toption syslog '/dev/log'
        \toption respawn_timeout '9'
        """)
    write(tmp_path, "system", """
        config system
        \toption hostname 'x'
        config service
        \toption respawn_threshold '60'
        \toption respawn_retry '0'
        """)
    settings = load_settings(str(tmp_path))
    assert (settings.socket, settings.object, settings.syslog) == ("/tmp/ubus.sock", "pyprocd", "/dev/log")
    # main's respawn_timeout is the init script's (pyprocd under procd), not a service default
    assert settings.respawn_defaults == (60, 5, 0)


def test_own_respawn_defaults_win(tmp_path):
    write(tmp_path, "pyprocd", """
        config pyprocd 'main'
        \toption default_respawn_threshold '100'
        \toption default_respawn_timeout '2'
        """)
    assert load_settings(str(tmp_path)).respawn_defaults == (100, 2, 5)


def test_missing_file_gives_defaults(tmp_path):
    settings = load_settings(str(tmp_path))
    assert settings.socket is None and settings.respawn_defaults == (3600, 5, 5)
    assert declared_services(str(tmp_path)) == {}


def test_declared_service_messages(tmp_path):
    write(tmp_path, "pyprocd", """
        config pyprocd 'main'

        config service 'ntp'
        \toption command '/usr/sbin/ntpclient -s -h "pool.ntp.org"'
        \toption respawn '1'
        \toption stdout '1'
        \toption stderr '0'
        \toption user 'nobody'
        \tlist env 'A=1'
        \tlist env 'B=x=y'
        \toption limits 'core=unlimited nofile=1024'
        \toption reload_signal 'HUP'
        \toption term_timeout '7'

        config service 'web'
        \toption autostart '0'

        config instance 'w1'
        \toption service 'web'
        \tlist command '/bin/httpd'
        \tlist command '-p 80'
        \toption respawn '3600 1'

        config instance
        \toption service 'web'
        \toption command '/bin/other'
        \toption respawn_retry '0'

        config service 'off'
        \toption enabled '0'
        \toption command '/bin/true'
        """)
    services = declared_services(str(tmp_path))
    assert services["ntp"] == {
        "name": "ntp",
        "instances": {"instance1": {
            "command": ["/usr/sbin/ntpclient", "-s", "-h", "pool.ntp.org"],
            "env": {"A": "1", "B": "x=y"},
            "limits": {"core": "unlimited", "nofile": "1024"},
            "respawn": ["3600", "5", "5"],
            "term_timeout": 7,
            "reload_signal": 1,
            "user": "nobody",
            "stdout": True,
            "stderr": False,
        }},
        "triggers": [],
    }
    assert services["web"] == {
        "name": "web",
        "autostart": False,
        "instances": {
            "w1": {"command": ["/bin/httpd", "-p 80"], "respawn": ["3600", "1"]},
            "instance2": {"command": ["/bin/other"], "respawn": ["3600", "5", "0"]},
        },
        "triggers": [],
    }
    # disabled: sent without instances, so everything of it stops (procd.sh behaviour)
    assert services["off"] == {"name": "off", "instances": {}, "triggers": []}


class FakeCore:
    def __init__(self):
        self.calls = []

    def call(self, method, msg):
        self.calls.append((method, msg))
        return 0, None


def test_resubmit_sets_all_and_deletes_removed(tmp_path):
    write(tmp_path, "pyprocd", """
        config service 'a'
        \toption command '/bin/a'
        config service 'b'
        \toption command '/bin/b'
        """)
    core = FakeCore()
    declared = DeclaredServices(core.call, str(tmp_path))
    assert declared.apply()
    assert [(m, msg["name"]) for m, msg in core.calls] == [("set", "a"), ("set", "b")]
    core.calls.clear()
    write(tmp_path, "pyprocd", """
        config service 'a'
        \toption command '/bin/a2'
        """)
    assert declared.apply()
    assert core.calls == [
        ("set", {"name": "a", "instances": {"instance1": {"command": ["/bin/a2"]}}, "triggers": []}),
        ("delete", {"name": "b"}),
    ]


def test_malformed_file_changes_nothing_and_logs_libuci_error(tmp_path):
    write(tmp_path, "pyprocd", "config service 'a'\n\toption command '/bin/a'\n")
    core, logs = FakeCore(), []
    declared = DeclaredServices(core.call, str(tmp_path), log=lambda m, p=None: logs.append(m))
    assert declared.apply()
    core.calls.clear()
    write(tmp_path, "pyprocd", "config service 'a'\n\toption command '/bin/a\n")
    assert not declared.apply()
    assert core.calls == []  # nothing stopped, nothing re-set
    assert any("Parse error (EOF with unterminated ') at line 2, byte 24" in m for m in logs)
    assert declared.submitted["a"]["instances"]["instance1"]["command"] == ["/bin/a"]


def test_event_filter():
    declared = DeclaredServices(lambda m, msg: (0, None), "/nonexistent")
    assert declared.on_event("config.change", {"package": "pyprocd"})
    assert not declared.on_event("config.change", {"package": "network"})
    assert not declared.on_event("config.changed", {"package": "pyprocd"})


def test_uncommitted_changes_count_like_config_load(tmp_path):
    # init scripts read with `uci export`, which applies /tmp/.uci deltas
    write(tmp_path, "pyprocd", "config service 'a'\n\toption command '/bin/a'\n")
    (tmp_path / "tmp-uci").mkdir()
    (tmp_path / "tmp-uci" / "pyprocd").write_text("pyprocd.a.command='/bin/b'\n")
    services = declared_services(str(tmp_path))
    assert services["a"]["instances"]["instance1"]["command"] == ["/bin/b"]


def test_command_line_wins_over_uci_settings(tmp_path):
    from pyprocd.daemon.main import parse_args
    from pyprocd.daemon.settings import fill_options

    write(tmp_path, "pyprocd", """
        config pyprocd 'main'
        \toption object 'pyprocd'
        \toption socket '/tmp/from-uci.sock'
        \toption syslog '/tmp/log'
        """)
    defaults = {"socket": "/var/run/ubus/ubus.sock", "object": "service", "syslog": "/dev/log"}
    options = parse_args(["--object", "service", "--confdir", str(tmp_path), "-s/tmp/cli.sock"])
    fill_options(options, defaults)
    # given explicitly, even with the default value: kept; not given: from UCI
    assert (options.object, options.socket, options.syslog) == ("service", "/tmp/cli.sock", "/tmp/log")
    assert options.respawn_defaults == (3600, 5, 5)


def test_unreadable_config_is_an_error_not_an_empty_config(tmp_path):
    write(tmp_path, "pyprocd", "config service 'a'\n\toption command '/bin/a'\n")
    core, logs = FakeCore(), []
    declared = DeclaredServices(core.call, str(tmp_path), log=lambda m, p=None: logs.append(m))
    assert declared.apply()
    core.calls.clear()
    (tmp_path / "pyprocd").unlink()
    (tmp_path / "pyprocd").mkdir()  # not a regular file any more
    assert not declared.apply()
    assert core.calls == [] and any("I/O error" in m for m in logs)
    (tmp_path / "pyprocd").rmdir()  # gone: the services it declared go too
    assert declared.apply()
    assert core.calls == [("delete", {"name": "a"})]


def _config_of(n):
    """n services, each with its command and one extra `config instance` section."""
    lines = []
    for k in range(n):
        lines += [f"config service 's{k}'", "\toption command '/bin/true'",
                  "config instance", f"\toption service 's{k}'", "\toption command '/bin/false'"]
    return "\n".join(lines) + "\n"


def test_declared_services_work_grows_linearly_with_the_services(tmp_path, monkeypatch):
    # A router with thousands of declared services must get them all in one
    # pass over the sections, not one pass per service: count option look-ups.
    from pyprocd.daemon import settings

    lookups = []
    real_get = settings._get

    def counting_get(sec, name):
        lookups.append(name)
        return real_get(sec, name)

    monkeypatch.setattr(settings, "_get", counting_get)
    counts = {}
    for n in (50, 200):
        conf = tmp_path / str(n)
        write(conf, "pyprocd", _config_of(n))
        lookups.clear()
        services = declared_services(str(conf))
        assert len(services) == n
        assert list(services[f"s{n - 1}"]["instances"]) == ["instance1", "instance2"]
        counts[n] = len(lookups)
    assert counts[200] <= 4.5 * counts[50], counts

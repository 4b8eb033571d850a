"""ubusd's access control lists (spec ubus-wire.md §5.6), for `pyprocd bus -A DIR`.

A directory of `*.json` files, each for one "user" (or, without one, one
"group"), granting: `access` (object pattern -> methods), `publish`,
`subscribe`, `listen`, `send` (lists of patterns). Patterns ending in `*`
match by prefix, others exactly. uid 0 bypasses everything; any other
client needs a grant from an entry whose user is its uid or whose group is
its gid or one of its supplementary groups. Files not owned by root:root,
writable by group/others or executable by others are ignored, like ubusd.
"""

import os
import stat

PUBLISH, SUBSCRIBE, LISTEN, SEND, ACCESS = "publish", "subscribe", "listen", "send", "access"


class Entry:
    __slots__ = (
        "acl_table",
        "gid",
        "grants",
        "group",
        "methods",
        "partial",
        "pattern",
        "prefix",
        "uid",
        "user",
    )

    def __init__(self, pattern, owner, grants, methods=None, acl_table=None):
        self.pattern = pattern
        self.partial = pattern.endswith(b"*")
        self.prefix = pattern[:-1] if self.partial else pattern
        self.user, self.group, self.uid, self.gid = owner
        self.grants = grants
        self.methods = methods  # list of bytes, for ACCESS
        self.acl_table = acl_table  # encoded blobmsg table, for the ACL query

    def matches(self, name):
        return name.startswith(self.prefix) if self.partial else name == self.prefix

    def applies_to(self, client):
        if self.user is not None:
            return client.uid == self.uid
        return client.gid == self.gid or self.gid in client.groups


def _acceptable(path):
    """ubusd's file rules: regular, root:root, not group/other-writable, not other-executable."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_gid != 0:
        return False
    return not st.st_mode & (stat.S_IWOTH | stat.S_IWGRP | stat.S_IXOTH)


def _owner(doc):
    import grp
    import pwd

    user, group = doc.get("user"), doc.get("group")
    if isinstance(user, str):
        try:
            return user, None, pwd.getpwnam(user).pw_uid, None
        except KeyError:
            return user, None, 0, None  # unknown names resolve to id 0, as in ubusd
    if isinstance(group, str):
        try:
            return None, group, None, grp.getgrnam(group).gr_gid
        except KeyError:
            return None, group, None, 0
    return None


def _strings(value):
    return [v.encode("utf-8", "surrogateescape") for v in value if isinstance(v, str)] \
        if isinstance(value, list) else []


def entries_of(doc):
    """The entries one parsed ACL file grants (empty if it names no user/group)."""
    from pyprocd.wire import blobmsg

    owner = _owner(doc) if isinstance(doc, dict) else None
    if owner is None:
        return []
    out = []
    access = doc.get("access")
    if isinstance(access, dict):
        for pattern, rules in access.items():
            if not isinstance(rules, dict):
                continue
            table = rules.get("acl")
            out.append(Entry(pattern.encode("utf-8", "surrogateescape"), owner, {ACCESS},
                             _strings(rules.get("methods")),
                             blobmsg.encode_table(table) if isinstance(table, dict) else None))
    for kind in (PUBLISH, SUBSCRIBE, LISTEN, SEND):
        for pattern in _strings(doc.get(kind)):
            out.append(Entry(pattern, owner, {kind}))
    return out


class Acl:
    def __init__(self, directory, log=lambda text: None):
        self.directory = directory
        self.log = log
        self.entries = []
        self.sequence = 0

    def load(self):
        """(Re)read the directory; returns True when at least one *.json file was there."""
        from pyprocd.wire import blobmsg

        entries, found = [], False
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".json"))
        except OSError:
            names = []
        for name in names:
            path = os.path.join(self.directory, name)
            found = True
            if not _acceptable(path):
                self.log(f"ignoring ACL file {path}: owner or mode not accepted")
                continue
            try:
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    doc = blobmsg.from_json(f.read())
            except (OSError, ValueError) as e:
                self.log(f"ignoring ACL file {path}: {e}")
                continue
            entries.extend(entries_of(doc))
        self.entries = entries
        if found:
            self.sequence += 1
        return found

    def allowed(self, client, name, kind, method=None):
        """May client do `kind` on `name` (object path or event name)?"""
        if client.uid == 0 or name is None:
            return True
        for entry in self.entries:
            if kind not in entry.grants or not entry.matches(name) or not entry.applies_to(client):
                continue
            if kind != ACCESS or method in entry.methods or b"*" in entry.methods:
                return True
        return False

    def query(self, client, own_paths):
        """Entries with an `acl` table whose pattern matches one of the caller's objects."""
        return [e for e in self.entries
                if e.acl_table is not None and any(e.matches(p) for p in own_paths)]


def supplementary_groups(pid):
    """At most 64 supplementary gids of pid, from /proc/<pid>/status (ubusd's source)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:65]}
    except (OSError, ValueError):
        pass
    return set()
